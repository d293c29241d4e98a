package cms

import (
	"bytes"
	"encoding/asn1"
	"testing"
)

func TestNormalizeBER(t *testing.T) {
	// SEQUENCE (indefinite) { [0] (indefinite, constructed) { OCTET STRING
	// constructed from two segments }, high-tag-number [31] primitive }.
	ber := []byte{
		0x30, 0x80,
		0xa0, 0x80,
		0x24, 0x80, 0x04, 0x02, 'a', 'b', 0x04, 0x01, 'c', 0x00, 0x00,
		0x00, 0x00,
		0x9f, 0x1f, 0x01, 'z',
		0x00, 0x00,
	}
	want := []byte{
		0x30, 0x0b,
		0xa0, 0x05, 0x04, 0x03, 'a', 'b', 'c',
		0x9f, 0x1f, 0x01, 'z',
	}
	in := bytes.Clone(ber)
	got, err := normalizeBER(ber)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("normalizeBER = % x, want % x", got, want)
	}
	if !bytes.Equal(ber, in) {
		t.Fatal("input modified")
	}
	var s struct {
		Inner []byte `asn1:"explicit,tag:0"`
		Z     []byte `asn1:"tag:31"`
	}
	if _, err := asn1.Unmarshal(got, &s); err != nil || string(s.Inner) != "abc" || string(s.Z) != "z" {
		t.Fatalf("asn1.Unmarshal: %v, %q %q", err, s.Inner, s.Z)
	}

	// DER comes back as is, without allocating.
	der, err := asn1.Marshal(struct {
		A []byte
		B []int
	}{[]byte("octets"), []int{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := normalizeBER(der); err != nil || &out[0] != &der[0] || len(out) != len(der) {
		t.Fatalf("DER input not returned as is: %v", err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = normalizeBER(der) }); n != 0 {
		t.Errorf("normalizeBER(DER) allocates %v times", n)
	}

	for _, bad := range [][]byte{
		{0x30, 0x80, 0x04, 0x01, 'a'},  // no end-of-contents
		{0x04, 0x80, 0x00, 0x00},       // indefinite primitive
		{0x30, 0x05, 0x04, 0x01},       // truncated
		{0x1f, 0xff, 0xff, 0xff, 0xff}, // endless tag
	} {
		if _, err := normalizeBER(bad); err == nil {
			t.Errorf("normalizeBER(% x) accepted", bad)
		}
	}
}
