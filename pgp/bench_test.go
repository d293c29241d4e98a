package pgp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// benchCases pairs a recipient/signer key (ours, from gpg) with a name.
var benchCases = []struct{ name, email string }{
	{"rsa2048", "rsa@example.org"},
	{"curve25519", "cv@example.org"},
	{"p256", "p256@example.org"},
}

func payload4KiB(b *testing.B) []byte {
	data := make([]byte, 4096)
	if _, err := rand.Read(data); err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkSignEncrypt4KiB signs with our key and encrypts to a customer key
// and our own copy (two recipients), as an outbound reply does.
func BenchmarkSignEncrypt4KiB(b *testing.B) {
	f := getFixtures(b)
	data := payload4KiB(b)
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			to := []*openpgp.Entity{f.pub["alice@example.org"], f.pub[bc.email]}
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Encrypt(data, to, f.sec[bc.email], crypto.SHA256); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecryptVerify4KiB decrypts with our key and verifies the inline
// signature. The raw sub-benchmark is the private-key operation alone (the
// session-key decryption), to show what share of the total it is.
func BenchmarkDecryptVerify4KiB(b *testing.B) {
	f := getFixtures(b)
	data := payload4KiB(b)
	ctx := context.Background()
	for _, bc := range benchCases {
		msg, err := Encrypt(data, []*openpgp.Entity{f.pub[bc.email]}, f.sec[bc.email], crypto.SHA256)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				d, err := Decrypt(ctx, msg, f.keys, time.Now())
				if err != nil || d.Signature == nil {
					b.Fatal(err, d.SignatureErr)
				}
			}
		})
		b.Run(bc.name+"/raw-session-key", func(b *testing.B) {
			r, err := dearmor(msg, openpgp.MessageType)
			if err != nil {
				b.Fatal(err)
			}
			p, err := packet.Read(r)
			if err != nil {
				b.Fatal(err)
			}
			ek := p.(*packet.EncryptedKey)
			keys := f.keys.secret.KeysById(ek.KeyId)
			if len(keys) == 0 {
				b.Fatal("no key")
			}
			b.ReportAllocs()
			for b.Loop() {
				ek.Key = nil
				if err := ek.Decrypt(keys[0].PrivateKey, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecrypt50MiB reports allocated bytes per message byte for a large
// message: total allocation bounds peak heap, which must stay under 3x.
func BenchmarkDecrypt50MiB(b *testing.B) {
	f := getFixtures(b)
	data := bytes.Repeat([]byte("0123456789abcdef"), 50<<20/16)
	msg, err := Encrypt(data, []*openpgp.Entity{f.pub["cv@example.org"]}, nil, crypto.SHA256)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for b.Loop() {
		d, err := Decrypt(context.Background(), msg, f.keys, time.Now())
		if err != nil || len(d.Plaintext) != len(data) {
			b.Fatal(err)
		}
	}
}
