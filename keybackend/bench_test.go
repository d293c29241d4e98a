package keybackend_test

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
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
