package rsapad

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	"testing"
)

// rawDecrypt is textbook c^d mod n: the reference for what a backend's
// raw RSA operation returns.
func rawDecrypt(k *rsa.PrivateKey, ct []byte) []byte {
	m := new(big.Int).Exp(new(big.Int).SetBytes(ct), k.D, k.N)
	return m.FillBytes(make([]byte, k.Size()))
}

func TestAgainstCryptoRSA(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 1024) // padding logic only; size is irrelevant
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("0123456789abcdef")
	v15, _ := rsa.EncryptPKCS1v15(rand.Reader, &k.PublicKey, msg)
	oaep := &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA1, Label: []byte("l")}
	oct, _ := rsa.EncryptOAEPWithOptions(rand.Reader, &k.PublicKey, msg, oaep)
	junk := make([]byte, k.Size())
	rand.Read(junk[1:])

	tests := []struct {
		name string
		run  func() ([]byte, error)
		want []byte
		err  error
	}{
		{"unpad", func() ([]byte, error) { return Unpad(rawDecrypt(k, v15), k.Size()) }, msg, nil},
		{"unpad-junk", func() ([]byte, error) { return Unpad(rawDecrypt(k, junk), k.Size()) }, nil, rsa.ErrDecryption},
		{"unpad-oaep-block", func() ([]byte, error) { return Unpad(rawDecrypt(k, oct), k.Size()) }, nil, rsa.ErrDecryption},
		{"oaep", func() ([]byte, error) {
			return OAEPUnpad(rawDecrypt(k, oct), k.Size(), oaep.Hash, oaep.MGFHash, oaep.Label)
		}, msg, nil},
		{"oaep-wrong-label", func() ([]byte, error) {
			return OAEPUnpad(rawDecrypt(k, oct), k.Size(), oaep.Hash, oaep.MGFHash, nil)
		}, nil, rsa.ErrDecryption},
		{"oaep-wrong-mgf", func() ([]byte, error) {
			return OAEPUnpad(rawDecrypt(k, oct), k.Size(), oaep.Hash, crypto.SHA256, oaep.Label)
		}, nil, rsa.ErrDecryption},
		{"oaep-v15-block", func() ([]byte, error) {
			return OAEPUnpad(rawDecrypt(k, v15), k.Size(), crypto.SHA1, crypto.SHA1, nil)
		}, nil, rsa.ErrDecryption},
		{"session-key", func() ([]byte, error) {
			key := make([]byte, 16)
			return key, SessionKey(rawDecrypt(k, v15), key, k.Size())
		}, msg, nil},
		{"session-key-wrong-len", func() ([]byte, error) {
			key := bytes.Repeat([]byte{7}, 15)
			return key, SessionKey(rawDecrypt(k, v15), key, k.Size())
		}, bytes.Repeat([]byte{7}, 15), nil},
		{"session-key-junk", func() ([]byte, error) {
			key := bytes.Repeat([]byte{7}, 16)
			return key, SessionKey(rawDecrypt(k, junk), key, k.Size())
		}, bytes.Repeat([]byte{7}, 16), nil},
		{"session-key-too-long-for-modulus", func() ([]byte, error) {
			return nil, SessionKey(rawDecrypt(k, v15), make([]byte, k.Size()-10), k.Size())
		}, nil, rsa.ErrDecryption},
		{"left-pad", func() ([]byte, error) { return LeftPad([]byte{1, 2}, 4), nil }, []byte{0, 0, 1, 2}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.run()
			if !errors.Is(err, tc.err) || (tc.err == nil && !bytes.Equal(got, tc.want)) {
				t.Fatalf("got %x, %v; want %x, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestDigestInfoAndSalt(t *testing.T) {
	k, _ := rsa.GenerateKey(rand.Reader, 1024)
	d := make([]byte, 32)
	di, err := DigestInfo(crypto.SHA256, d)
	if err != nil {
		t.Fatal(err)
	}
	// Signing DigestInfo raw (hash 0) equals signing the digest as SHA-256.
	a, _ := rsa.SignPKCS1v15(nil, k, 0, di)
	b, _ := rsa.SignPKCS1v15(nil, k, crypto.SHA256, d)
	if !bytes.Equal(a, b) {
		t.Fatal("DigestInfo prefix differs from crypto/rsa's")
	}
	if _, err := DigestInfo(crypto.SHA256, d[:20]); err == nil {
		t.Fatal("short digest accepted")
	}
	if _, err := DigestInfo(crypto.MD5, d[:16]); !errors.Is(err, ErrUnsupportedHash) {
		t.Fatal("MD5 accepted")
	}
	if s, _ := PSSSaltLength(&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}, crypto.SHA256, 2048); s != 256-2-32 {
		t.Fatalf("auto salt %d", s)
	}
	if s, _ := PSSSaltLength(&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}, crypto.SHA384, 2048); s != 48 {
		t.Fatalf("equals-hash salt %d", s)
	}
	if _, err := PSSSaltLength(&rsa.PSSOptions{SaltLength: -7}, crypto.SHA256, 2048); err == nil {
		t.Fatal("bad salt length accepted")
	}
}
