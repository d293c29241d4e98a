//go:build pkcs11 && cgo

package pkcs11_test

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/secmail/secmail/internal/softhsm"
	"github.com/secmail/secmail/keybackend/pkcs11"
	"github.com/secmail/secmail/keys"
)

// TestNonExtractable shows the worker cannot read a token key's secret
// parts: the token refuses CKA_PRIVATE_EXPONENT, the primes and CKA_VALUE
// with CKR_ATTRIBUTE_SENSITIVE, while the key still signs.
func TestNonExtractable(t *testing.T) {
	tok := softhsm.OpenToken(t)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	wek, _ := keys.Wrap(ek)
	for _, tc := range []struct {
		name   string
		key    keys.PrivateKey
		secret []uint
	}{
		{"rsa", rk, []uint{p11.CKA_PRIVATE_EXPONENT, p11.CKA_PRIME_1, p11.CKA_PRIME_2, p11.CKA_EXPONENT_1, p11.CKA_COEFFICIENT}},
		{"ec", wek, []uint{p11.CKA_VALUE}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := tok.Import(tc.name, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			for _, typ := range tc.secret {
				v, err := tok.Attribute(k, typ)
				if !errors.Is(err, p11.Error(p11.CKR_ATTRIBUTE_SENSITIVE)) {
					t.Errorf("attribute %#x: got %x, %v; want CKR_ATTRIBUTE_SENSITIVE", typ, v, err)
				}
			}
			for typ, want := range map[uint]byte{p11.CKA_SENSITIVE: 1, p11.CKA_EXTRACTABLE: 0, p11.CKA_NEVER_EXTRACTABLE: 0} {
				v, err := tok.Attribute(k, typ)
				if err != nil || len(v) != 1 || v[0] != want {
					t.Errorf("attribute %#x = %x, %v; want %d", typ, v, err, want)
				}
			}
			// The same key by label and through Load, and it signs.
			byLabel, err := tok.Key(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			loaded, err := tok.Load(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			d := sha256.Sum256([]byte("x"))
			for _, s := range []crypto.Signer{byLabel, loaded} {
				if _, err := s.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func mod(t *testing.T) string {
	m, err := softhsm.Module()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestGenerate creates keys on the token: they work through the same
// interfaces, their secrets are unreadable, and they are found again by
// label and by public key.
func TestGenerate(t *testing.T) {
	tok := softhsm.OpenToken(t)
	rk, err := tok.GenerateRSA("gen-rsa", 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := tok.GenerateEC("gen-ec", elliptic.P384())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.GenerateRSA("weak", 1024); err == nil {
		t.Fatal("1024-bit RSA generated")
	}
	d := sha256.Sum256([]byte("generated"))
	sig, err := rk.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil || rsa.VerifyPKCS1v15(rk.Public().(*rsa.PublicKey), crypto.SHA256, d[:], sig) != nil {
		t.Fatalf("RSA sign: %v", err)
	}
	ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, rk.Public().(*rsa.PublicKey), []byte("cek"), nil)
	if pt, err := rk.(crypto.Decrypter).Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA256}); err != nil || string(pt) != "cek" {
		t.Fatalf("RSA OAEP: %q %v", pt, err)
	}
	sig, err = ek.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(ek.Public().(*ecdsa.PublicKey), d[:], sig) {
		t.Fatalf("ECDSA: %v", err)
	}
	peer, _ := ecdh.P384().GenerateKey(rand.Reader)
	pub, _ := ek.Public().(*ecdsa.PublicKey).ECDH()
	want, _ := peer.ECDH(pub)
	if got, err := ek.(keys.KeyAgreer).ECDH(peer.PublicKey()); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ECDH: %v", err)
	}
	for _, c := range []struct {
		k      keys.PrivateKey
		label  string
		secret uint
	}{{rk, "gen-rsa", p11.CKA_PRIVATE_EXPONENT}, {ek, "gen-ec", p11.CKA_VALUE}} {
		if _, err := tok.Attribute(c.k, c.secret); !errors.Is(err, p11.Error(p11.CKR_ATTRIBUTE_SENSITIVE)) {
			t.Errorf("%s: secret readable: %v", c.label, err)
		}
		if v, err := tok.Attribute(c.k, p11.CKA_NEVER_EXTRACTABLE); err != nil || len(v) != 1 || v[0] != 1 {
			t.Errorf("%s: CKA_NEVER_EXTRACTABLE = %x, %v", c.label, v, err)
		}
		byLabel, err := tok.Key(c.label)
		if err != nil || !byLabel.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(c.k.Public()) {
			t.Errorf("%s by label: %v", c.label, err)
		}
		byPub, err := tok.KeyFor(c.k.Public())
		if err != nil || !byPub.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(c.k.Public()) {
			t.Errorf("%s by public key: %v", c.label, err)
		}
	}
}

func TestWrongPIN(t *testing.T) {
	tok := softhsm.OpenToken(t)
	tok.Close() // a fresh module state: login is per process and token
	if _, err := pkcs11.Open(pkcs11.Config{Module: mod(t), TokenLabel: softhsm.Label, PIN: "0000"}); !errors.Is(err, p11.Error(p11.CKR_PIN_INCORRECT)) {
		t.Fatalf("wrong PIN: %v", err)
	}
}

func TestKeyLookup(t *testing.T) {
	tok := softhsm.OpenToken(t)
	// Callers without the build tag see keys.ErrNotFound.
	if _, err := tok.Key("absent"); !errors.Is(err, pkcs11.ErrNotFound) || !errors.Is(err, keys.ErrNotFound) {
		t.Fatalf("absent label: %v", err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := tok.Load(other); !errors.Is(err, pkcs11.ErrNotFound) {
		t.Fatalf("Load of a key not on the token: %v", err)
	}
	if _, err := pkcs11.Open(pkcs11.Config{Module: "/nonexistent.so", TokenLabel: "x"}); err == nil {
		t.Fatal("missing module accepted")
	}
	if _, err := pkcs11.Open(pkcs11.Config{Module: mod(t), TokenLabel: "other"}); err == nil {
		t.Fatal("unknown token label accepted")
	}
	k, err := tok.Import("ec", other)
	if err != nil {
		t.Fatal(err)
	}
	tok.Close()
	if _, err := k.Sign(rand.Reader, make([]byte, 32), crypto.SHA256); !errors.Is(err, pkcs11.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
