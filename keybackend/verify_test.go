package keybackend_test

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
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

// TestCBCDecrypter: the openssl backend decrypts AES-CBC content, go and
// pkcs11 leave it to Go; its bytes are crypto/cipher's for every key size
// and length, padding untouched, and bad parameters are errors.
func TestCBCDecrypter(t *testing.T) {
	if _, d := keybackend.Offload(nil); d != nil {
		t.Error("a CBC decrypter for no backend")
	}
	for _, b := range fx.backends {
		t.Run(b.Name(), func(t *testing.T) {
			_, d := keybackend.Offload(b)
			if want := b.Name() == "openssl"; (d != nil) != want {
				t.Fatalf("CBC decrypter %T, want one: %v", d, want)
			}
			if d == nil {
				return
			}
			for _, keyLen := range []int{16, 24, 32} {
				for _, n := range []int{0, 16, 32, 48, 4096, 4112, 1 << 20} {
					key, iv, ct := make([]byte, keyLen), make([]byte, 16), make([]byte, n)
					rand.Read(key)
					rand.Read(iv)
					rand.Read(ct)
					blk, err := aes.NewCipher(key)
					if err != nil {
						t.Fatal(err)
					}
					want := make([]byte, n)
					cipher.NewCBCDecrypter(blk, iv).CryptBlocks(want, ct)
					got := append([]byte(nil), ct...)
					if err := d.DecryptAESCBC(key, iv, got); err != nil {
						t.Fatalf("AES-%d, %d bytes: %v", keyLen*8, n, err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("AES-%d, %d bytes: not crypto/cipher's plaintext", keyLen*8, n)
					}
				}
			}
			for _, c := range []struct {
				name         string
				key, iv, buf int
			}{
				{"key of 20 bytes", 20, 16, 32},
				{"iv of 8 bytes", 32, 8, 32},
				{"partial block", 32, 16, 33},
			} {
				if err := d.DecryptAESCBC(make([]byte, c.key), make([]byte, c.iv), make([]byte, c.buf)); err == nil {
					t.Errorf("%s: no error", c.name)
				}
			}
		})
	}
}
