package keybackend_test

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/secmail/secmail/cms"
	"github.com/secmail/secmail/keys"
)

// The private-key operation benchmarks: one op per iteration, per
// backend, so `go test -bench . -tags openssl,pkcs11` prints go and
// openssl side by side (ratios in README.md).

func BenchmarkRSA2048DecryptPKCS1v15(b *testing.B) {
	ct, _ := rsa.EncryptPKCS1v15(rand.Reader, &fx.rsa.PublicKey, make([]byte, 32))
	opts := &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32}
	for _, be := range fx.backends {
		b.Run(be.Name(), func(b *testing.B) {
			dec := load(b, be, fx.rsa).(crypto.Decrypter)
			start := cpuTime()
			for b.Loop() {
				if _, err := dec.Decrypt(rand.Reader, ct, opts); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}

func BenchmarkRSA2048SignPKCS1v15(b *testing.B) {
	d := sha256.Sum256([]byte("x"))
	for _, be := range fx.backends {
		b.Run(be.Name(), func(b *testing.B) {
			k := load(b, be, fx.rsa)
			start := cpuTime()
			for b.Loop() {
				if _, err := k.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}

func BenchmarkECDSAP256Sign(b *testing.B) {
	d := sha256.Sum256([]byte("x"))
	for _, be := range fx.backends {
		b.Run(be.Name(), func(b *testing.B) {
			k := load(b, be, fx.p256)
			start := cpuTime()
			for b.Loop() {
				if _, err := k.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}

func BenchmarkECDHP256(b *testing.B) {
	peer, _ := ecdh.P256().GenerateKey(rand.Reader)
	for _, be := range fx.backends {
		b.Run(be.Name(), func(b *testing.B) {
			k := load(b, be, fx.p256).(keys.KeyAgreer)
			start := cpuTime()
			for b.Loop() {
				if _, err := k.ECDH(peer.PublicKey()); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}

// reportCPU adds cpu-ns/op: CPU time of the whole process per iteration.
func reportCPU(b *testing.B, start time.Duration) {
	if b.N > 0 {
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkArticleInbound is the whole CMS work of one inbound article: a
// 4 KiB message signed and then encrypted by openssl to our RSA-2048 key;
// cms.Decrypt, then cms.ParseSignedData and Verify of the inner
// signature. The private-key operation is the single RSA decryption.
func BenchmarkArticleInbound(b *testing.B) {
	w := getWorld(b)
	plain := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 64) // 4 KiB
	d := b.TempDir()
	in, signed := filepath.Join(d, "in"), filepath.Join(d, "signed.der")
	os.WriteFile(in, plain, 0o600)
	if _, err := openssl(d, "cms", "-sign", "-binary", "-nodetach", "-in", in, "-signer", w.certs["rsa"], "-inkey", w.keys["rsa"], "-outform", "DER", "-out", signed); err != nil {
		b.Fatal(err)
	}
	sd, _ := os.ReadFile(signed)
	der := w.encrypt(b, sd, "-aes-256-cbc", "-recip", w.certs["rsa"])
	for _, be := range fx.backends {
		b.Run(be.Name(), func(b *testing.B) {
			ours := w.backendKeys(b, be)
			b.SetBytes(int64(len(plain)))
			start := cpuTime()
			for b.Loop() {
				dec, err := cms.Decrypt(der, ours, cms.DecryptOptions{})
				if err != nil {
					b.Fatal(err)
				}
				p, err := cms.ParseSignedData(dec.Plaintext)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := p.Verify(nil, nil); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}

// BenchmarkArticleOutbound is the CMS work of one outbound article:
// cms.Sign with our RSA-2048 key (the one private-key operation) and
// cms.Encrypt of the signed 4 KiB message to 5 recipients (RSA and EC,
// public-key operations only, the same for every backend).
func BenchmarkArticleOutbound(b *testing.B) {
	w := getWorld(b)
	plain := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 64)
	var recips []*x509.Certificate
	for _, id := range []string{"rsa", "ec", "stranger"} {
		pemBytes, err := os.ReadFile(w.certs[id])
		if err != nil {
			b.Fatal(err)
		}
		blk, _ := pem.Decode(pemBytes)
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			b.Fatal(err)
		}
		recips = append(recips, c)
	}
	// Two more recipients: self-signed certificates for the fixture keys.
	for i, k := range []crypto.Signer{fx.rsa, fx.p256} {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 10)), Subject: pkix.Name{CommonName: "extra"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), EmailAddresses: []string{fmt.Sprintf("extra%d@example.org", i)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
		if err != nil {
			b.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		recips = append(recips, c)
	}
	for _, be := range fx.backends {
		b.Run(be.Name(), func(b *testing.B) {
			k := w.key(b, w.backendKeys(b, be), "rsa@example.org")
			b.SetBytes(int64(len(plain)))
			start := cpuTime()
			for b.Loop() {
				sig, err := cms.Sign(plain, k.Cert, k.Key, k.Chain, cms.SignOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := cms.Encrypt(sig, recips, cms.EncryptOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}
