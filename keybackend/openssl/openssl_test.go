//go:build openssl && cgo

package openssl_test

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"

	"github.com/secmail/secmail/keybackend/openssl"
	"github.com/secmail/secmail/keys"
)

func TestLoadAndClose(t *testing.T) {
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	wk, _ := keys.Wrap(ek)
	k, err := openssl.Load(wk)
	if err != nil {
		t.Fatal(err)
	}
	ossl, ok := k.(*openssl.ECKey)
	if !ok {
		t.Fatalf("got %T", k)
	}
	// A plain *ecdsa.PrivateKey loads too.
	if _, err := openssl.Load(ek); err != nil {
		t.Fatal(err)
	}
	// Loading an OpenSSL key again is a no-op.
	if again, err := openssl.Load(k); err != nil || again != k {
		t.Fatalf("reload: %v %v", again, err)
	}
	ossl.Close()
	ossl.Close() // idempotent
	if _, err := k.Sign(rand.Reader, make([]byte, 32), crypto.SHA256); !errors.Is(err, openssl.ErrClosed) {
		t.Fatalf("sign after Close: %v", err)
	}
	peer, _ := ecdh.P256().GenerateKey(rand.Reader)
	if _, err := ossl.ECDH(peer.PublicKey()); !errors.Is(err, openssl.ErrClosed) {
		t.Fatalf("ECDH after Close: %v", err)
	}

	_, edk, _ := ed25519.GenerateKey(rand.Reader)
	if k, err := openssl.Load(edk); err != nil || k.(ed25519.PrivateKey) == nil {
		t.Fatalf("Ed25519 should pass through: %v", err)
	}
	if _, err := openssl.LoadPKCS8([]byte("not a key")); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestRSAClose(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k, err := openssl.Load(rk)
	if err != nil {
		t.Fatal(err)
	}
	k.(*openssl.RSAKey).Close()
	ct, _ := rsa.EncryptPKCS1v15(rand.Reader, &rk.PublicKey, []byte("x"))
	if _, err := k.(crypto.Decrypter).Decrypt(rand.Reader, ct, nil); !errors.Is(err, openssl.ErrClosed) {
		t.Fatalf("decrypt after Close: %v", err)
	}
}
