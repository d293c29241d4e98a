package pgp

import (
	"bytes"
	"context"
	"crypto"
	"io"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/secmail/secmail/reason"
)

// fuzzKeys makes an in-memory key (no gpg needed, so fuzzing runs anywhere)
// and seed messages for it.
func fuzzSetup(f *testing.F) (*memKeys, [][]byte) {
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519}
	e, err := openpgp.NewEntity("Fuzz", "", "fuzz@example.org", cfg)
	if err != nil {
		f.Fatal(err)
	}
	k := &memKeys{secret: openpgp.EntityList{e}, public: openpgp.EntityList{e}}
	data := []byte("Content-Type: text/plain\r\n\r\nhello fuzz\r\n")
	var seeds [][]byte
	signed, err := Encrypt(data, []*openpgp.Entity{e}, e, crypto.SHA256)
	if err != nil {
		f.Fatal(err)
	}
	unsigned, err := Encrypt(data, []*openpgp.Entity{e}, nil, crypto.SHA256)
	if err != nil {
		f.Fatal(err)
	}
	r, err := dearmor(signed, openpgp.MessageType)
	if err != nil {
		f.Fatal(err)
	}
	bin, err := io.ReadAll(r)
	if err != nil {
		f.Fatal(err)
	}
	var so bytes.Buffer
	w, err := openpgp.Sign(&so, e, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	_, _ = w.Write(data)
	_ = w.Close()
	seeds = append(seeds, signed, unsigned, bin, so.Bytes(), bin[:len(bin)/2],
		[]byte("-----BEGIN PGP MESSAGE-----\n\nwx4E\n-----END PGP MESSAGE-----\n"),
		[]byte{0xc1, 0x00}, []byte{0xc9, 0x05, 1, 2, 3, 4, 5})
	return k, seeds
}

func FuzzDecrypt(f *testing.F) {
	k, seeds := fuzzSetup(f)
	for _, s := range seeds {
		f.Add(s)
	}
	at := time.Now()
	f.Fuzz(func(t *testing.T, msg []byte) {
		d, err := Decrypt(context.Background(), msg, k, at)
		if err != nil {
			// Attacker bytes must only ever produce a reason, never a bare
			// error (the store here cannot fail) nor a partial result.
			if reason.CodeOf(err) == "" {
				t.Fatalf("error without reason: %v", err)
			}
			if d != nil {
				t.Fatal("result along with an error")
			}
			return
		}
		if d.Signature != nil && d.SignatureErr != nil {
			t.Fatal("signature both good and bad")
		}
		if d.SignatureErr != nil && reason.CodeOf(d.SignatureErr) == "" {
			t.Fatalf("signature error without reason: %v", d.SignatureErr)
		}
	})
}

func FuzzVerifyDetached(f *testing.F) {
	k, _ := fuzzSetup(f)
	e := k.secret[0]
	data := []byte("signed\r\n")
	sig, _, err := SignDetached(data, e, crypto.SHA256)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sig)
	f.Add(sig[:len(sig)/2])
	f.Add([]byte{0xc2, 0x01, 0x04})
	at := time.Now()
	f.Fuzz(func(t *testing.T, s []byte) {
		v, err := VerifyDetached(context.Background(), data, s, k, at)
		if err != nil && (reason.CodeOf(err) == "" || v != nil) {
			t.Fatalf("bad error %v (verification %v)", err, v)
		}
	})
}
