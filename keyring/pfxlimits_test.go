package keyring

import (
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/secmail/secmail/reason"
)

// withMACIterations re-encodes an openssl PKCS#12 file with another MAC
// iteration count, as a hostile upload would.
func withMACIterations(t *testing.T, p12 []byte, iter int64) []byte {
	t.Helper()
	s := cryptobyte.String(p12)
	var pfx, version, authSafe, mac, digest, salt cryptobyte.String
	if !s.ReadASN1(&pfx, cbasn1.SEQUENCE) || !pfx.ReadASN1Element(&version, cbasn1.INTEGER) ||
		!pfx.ReadASN1Element(&authSafe, cbasn1.SEQUENCE) || !pfx.ReadASN1(&mac, cbasn1.SEQUENCE) ||
		!mac.ReadASN1Element(&digest, cbasn1.SEQUENCE) || !mac.ReadASN1Element(&salt, cbasn1.OCTET_STRING) {
		t.Fatal("unexpected PKCS#12 layout")
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(version)
		b.AddBytes(authSafe)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(digest)
			b.AddBytes(salt)
			b.AddASN1Int64(iter)
		})
	})
	return b.BytesOrPanic()
}

func TestPKCS12IterationLimit(t *testing.T) {
	f := fixtures(t)
	p12 := f.read(t, "alice.p12")
	opts := Options{Passphrases: []string{testPass}}
	// The re-encoding itself is faithful: the same count still opens.
	if _, err := Parse("same.p12", withMACIterations(t, p12, 2048), opts); err != nil {
		t.Fatalf("re-encoded file with the original count: %v", err)
	}
	_, err := Parse("hostile.p12", withMACIterations(t, p12, 1<<40), opts)
	if reason.CodeOf(err) != reason.TooComplex {
		t.Fatalf("absurd MAC iterations: %v, want %s", err, reason.TooComplex)
	}
}
