package cms

import (
	"encoding/asn1"
	"reflect"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// sdParseCapabilitiesOld is sdParseCapabilities without the table of known
// OIDs: the reference it is compared with.
func sdParseCapabilitiesOld(v []byte) []string {
	s := cryptobyte.String(v)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return nil
	}
	var out []string
	for !seq.Empty() && len(out) < sdMaxCapabilities {
		var capab cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !seq.ReadASN1(&capab, cbasn1.SEQUENCE) || !capab.ReadASN1ObjectIdentifier(&oid) {
			break
		}
		out = append(out, oid.String())
	}
	return out
}

func capabilitySeeds() [][]byte {
	seq := func(entries ...[]byte) []byte {
		var b []byte
		for _, e := range entries {
			b = append(b, e...)
		}
		return append([]byte{0x30, byte(len(b))}, b...)
	}
	entry := func(oid []byte, params ...byte) []byte {
		return seq(append(append([]byte{}, oid...), params...))
	}
	aes256, _ := asn1.Marshal(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42})
	rc2, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 2})
	other, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 3, 4})
	// aes256-CBC with a non-minimal arc: not in the table, and invalid.
	nonMinimal := []byte{0x06, 0x0a, 0x60, 0x80, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a}
	var many [][]byte
	for range 70 {
		many = append(many, entry(aes256))
	}
	var all [][]byte
	for k := range sdKnownCapabilities {
		all = append(all, entry(append([]byte{0x06, byte(len(k))}, k...)))
	}
	long := append([]byte{0x30, 0x82, 0x01, 0x18}, func() []byte {
		var b []byte
		for _, e := range many {
			b = append(b, e...)
		}
		return b[:0x118]
	}()...)
	return [][]byte{
		seq(entry(aes256), entry(rc2, 0x02, 0x01, 0x80), entry(other)),
		seq(all...),
		seq(entry(aes256), entry(nonMinimal), entry(rc2)),
		seq(entry(aes256), []byte{0x30, 0x02, 0x05, 0x00}, entry(rc2)),
		seq(entry(aes256)[:3]),
		long,
		{0x30},
		nil,
	}
}

func TestSdParseCapabilitiesMatchesOld(t *testing.T) {
	seeds := capabilitySeeds()
	if got := sdParseCapabilities(seeds[0]); !reflect.DeepEqual(got, []string{"2.16.840.1.101.3.4.1.42", "1.2.840.113549.3.2", "1.2.3.4"}) {
		t.Errorf("sdParseCapabilities = %q", got)
	}
	if got := sdParseCapabilities(seeds[1]); len(got) != len(sdKnownCapabilities) {
		t.Errorf("known capabilities: %q", got)
	}
	for _, b := range seeds {
		if got, want := sdParseCapabilities(b), sdParseCapabilitiesOld(b); !reflect.DeepEqual(got, want) {
			t.Errorf("sdParseCapabilities(% x) = %q, want %q", b, got, want)
		}
	}
}

func FuzzSdParseCapabilities(f *testing.F) {
	for _, b := range capabilitySeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := sdParseCapabilities(b), sdParseCapabilitiesOld(b); !reflect.DeepEqual(got, want) {
			t.Fatalf("sdParseCapabilities(% x) = %q, want %q", b, got, want)
		}
	})
}

func BenchmarkSdParseCapabilities(b *testing.B) {
	v := capabilitySeeds()[1]
	for _, f := range []struct {
		name string
		fn   func([]byte) []string
	}{{"table", sdParseCapabilities}, {"old", sdParseCapabilitiesOld}} {
		b.Run(f.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f.fn(v)
			}
		})
	}
}
