package keybackend_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"

	"github.com/secmail/secmail/keybackend"
)

// TestVerifier: the openssl backend verifies signatures, go and pkcs11
// leave it to Go; a verifier gives crypto/rsa's answers.
func TestVerifier(t *testing.T) {
	d := sha256.Sum256([]byte("x"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, fx.rsa, crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	if keybackend.Verifier(nil) != nil {
		t.Error("a verifier for no backend")
	}
	for _, b := range fx.backends {
		t.Run(b.Name(), func(t *testing.T) {
			v := keybackend.Verifier(b)
			if want := b.Name() == "openssl"; (v != nil) != want {
				t.Fatalf("verifier %T, want one: %v", v, want)
			}
			if v == nil {
				return
			}
			if err := v.VerifyPKCS1v15(&fx.rsa.PublicKey, crypto.SHA256, d[:], sig); err != nil {
				t.Errorf("valid signature: %v", err)
			}
			bad := append([]byte(nil), sig...)
			bad[0] ^= 1
			if err := v.VerifyPKCS1v15(&fx.rsa.PublicKey, crypto.SHA256, d[:], bad); err != rsa.ErrVerification {
				t.Errorf("tampered signature: %v, want rsa.ErrVerification", err)
			}
		})
	}
}
