package cms

import (
	"crypto"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/secmail/secmail/reason"
)

// pssParams builds RSASSA-PSS-params; a zero hash or negative salt/trailer
// leaves that field at its DEFAULT (absent).
func pssParams(t *testing.T, h, mgf crypto.Hash, salt, trailer int64) []byte {
	t.Helper()
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if h != 0 {
			oid, _ := sdDigestOID(h)
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { sdAddAlgID(b, oid, false) })
		}
		if mgf != 0 {
			oid, _ := sdDigestOID(mgf)
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(sdOIDMGF1)
					sdAddAlgID(b, oid, true)
				})
			})
		}
		if salt >= 0 {
			b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddASN1Int64(salt) })
		}
		if trailer >= 0 {
			b.AddASN1(cbasn1.Tag(3).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddASN1Int64(trailer) })
		}
	})
	der, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestPSSParams(t *testing.T) {
	tests := []struct {
		name   string
		params []byte
		hash   crypto.Hash
		salt   int
		want   reason.Code
	}{
		{"absent: RFC 4055 defaults", nil, crypto.SHA1, 20, ""},
		{"empty sequence: defaults", pssParams(t, 0, 0, -1, -1), crypto.SHA1, 20, ""},
		{"sha256 salt 32", pssParams(t, crypto.SHA256, crypto.SHA256, 32, -1), crypto.SHA256, 32, ""},
		{"sha512 salt 0 trailer 1", pssParams(t, crypto.SHA512, crypto.SHA512, 0, 1), crypto.SHA512, 0, ""},
		{"sha384 salt default", pssParams(t, crypto.SHA384, crypto.SHA384, -1, -1), crypto.SHA384, 20, ""},
		{"mgf1 hash differs", pssParams(t, crypto.SHA256, crypto.SHA1, 32, -1), 0, 0, reason.UnsupportedAlgorithm},
		{"mgf1 default with sha256", pssParams(t, crypto.SHA256, 0, 32, -1), 0, 0, reason.UnsupportedAlgorithm},
		{"trailer 2", pssParams(t, crypto.SHA256, crypto.SHA256, 32, 2), 0, 0, reason.Malformed},
		{"absurd salt", pssParams(t, crypto.SHA256, crypto.SHA256, 5000, -1), 0, 0, reason.Malformed},
		{"empty bytes", []byte{}, 0, 0, reason.Malformed},
		{"garbage", []byte{0x30, 0x03, 0x02, 0x01}, 0, 0, reason.Malformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := sdSigByOID(sdOIDRSAPSS, tc.params)
			if got := reason.CodeOf(err); got != tc.want {
				t.Fatalf("err = %v (code %q), want %q", err, got, tc.want)
			}
			if tc.want == "" && (sc.name != SigRSAPSS || sc.hash != tc.hash || sc.saltLength != tc.salt) {
				t.Fatalf("got %+v, want hash %v salt %d", sc, tc.hash, tc.salt)
			}
		})
	}
}

func TestDigestAndSignatureOIDs(t *testing.T) {
	if _, _, err := sdDigestByOID(sdOIDMD5); reason.CodeOf(err) != reason.UnsupportedAlgorithm {
		t.Errorf("MD5 digest: %v", err)
	}
	if _, err := sdSigByOID(sdOIDMD5WithRSA, nil); reason.CodeOf(err) != reason.UnsupportedAlgorithm {
		t.Errorf("MD5 signature: %v", err)
	}
	if _, err := sdSigByOID([]int{1, 2, 3}, nil); reason.CodeOf(err) != reason.UnsupportedAlgorithm {
		t.Errorf("unknown signature: %v", err)
	}
	for _, d := range sdDigests {
		h, name, err := sdDigestByOID(d.oid)
		if err != nil || h != d.hash || name != d.name {
			t.Errorf("%s: %v %q %v", d.oid, h, name, err)
		}
	}
}
