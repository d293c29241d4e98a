package handlers_test

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/cms"
	"github.com/secmail/secmail/demopki"
	"github.com/secmail/secmail/handlers"
	"github.com/secmail/secmail/internal/cputime"
	"github.com/secmail/secmail/keybackend"
	"github.com/secmail/secmail/keyring"
	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/mailgen"
)

var (
	bg        = context.Background()
	smimeType = "S/MIME"
)

// benchWorld is a mailgen world with the helpdesk's keyring loaded.
type benchWorld struct {
	w  *mailgen.World
	kr *keyring.Keyring
	h  *handlers.Handler
}

func newBenchWorld(b *testing.B, kt demopki.KeyType) *benchWorld {
	b.Helper()
	w, err := mailgen.New(kt)
	if err != nil {
		b.Fatal(err)
	}
	kr, err := w.OrgKeyring()
	if err != nil {
		b.Fatal(err)
	}
	return &benchWorld{w: w, kr: kr, h: handlers.New(kr, handlers.DefaultConfig())}
}

// newBackendWorld is newBenchWorld with the helpdesk's private keys in
// backend be and the handler verifying through be's verifier, as the
// worker runs with --key-backend.
func newBackendWorld(b *testing.B, kt demopki.KeyType, be keybackend.Backend) *benchWorld {
	b.Helper()
	w, err := mailgen.New(kt)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	for name, data := range w.OrgFiles {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	kr, err := keyring.LoadDir(dir, keyring.Options{LoadKey: be.Load})
	if err != nil {
		b.Fatal(err)
	}
	cfg := handlers.DefaultConfig()
	cfg.Verifier, cfg.CBC = keybackend.Offload(be)
	return &benchWorld{w: w, kr: kr, h: handlers.New(kr, cfg)}
}

func (bw *benchWorld) sample(b *testing.B, kind string) mailgen.Sample {
	s, err := bw.w.Make(kind, mailgen.Options{BodySize: 4096})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// rawCost returns what an inbound signed-then-encrypted article cannot
// avoid, in two parts: bare, one private-key operation (RSA decryption or
// ECDH, with our key as the handler holds it) and hashing the content
// twice (content digest and signed attributes); verify, one signature
// verification (RSA or ECDSA P-256) by v, nil meaning Go's.
func (bw *benchWorld) rawCost(b *testing.B, content []byte, v cms.PublicKeyVerifier) (bare, verify func()) {
	ks, err := bw.kr.SMIMEKeys(bg)
	if err != nil || len(ks) == 0 {
		b.Fatal("no key", err)
	}
	k := ks[0]
	digest := sha256.Sum256(content)
	switch pub := k.Cert.PublicKey.(type) {
	case *rsa.PublicKey:
		ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, make([]byte, 32))
		if err != nil {
			b.Fatal(err)
		}
		// The sender's RSA-2048 signature; only its verification is timed.
		signerKey, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			b.Fatal(err)
		}
		sig, err := rsa.SignPKCS1v15(rand.Reader, signerKey, crypto.SHA256, digest[:])
		if err != nil {
			b.Fatal(err)
		}
		check := func() error { return rsa.VerifyPKCS1v15(&signerKey.PublicKey, crypto.SHA256, digest[:], sig) }
		if v != nil {
			check = func() error { return v.VerifyPKCS1v15(&signerKey.PublicKey, crypto.SHA256, digest[:], sig) }
		}
		dec := k.Key.(crypto.Decrypter)
		return func() {
				if _, err := dec.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32}); err != nil {
					b.Fatal(err)
				}
				d := sha256.Sum256(content)
				_ = sha256.Sum256(d[:])
			}, func() {
				if check() != nil {
					b.Fatal("benchmark signature does not verify")
				}
			}
	default:
		eph, _ := ecdh.P256().GenerateKey(rand.Reader)
		ka := k.Key.(keys.KeyAgreer)
		signerKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		sig, _ := ecdsa.SignASN1(rand.Reader, signerKey, digest[:])
		check := func() bool { return ecdsa.VerifyASN1(&signerKey.PublicKey, digest[:], sig) }
		if v != nil {
			check = func() bool { return v.VerifyASN1(&signerKey.PublicKey, digest[:], sig) }
		}
		return func() {
				if _, err := ka.ECDH(eph.PublicKey()); err != nil {
					b.Fatal(err)
				}
				d := sha256.Sum256(content)
				_ = sha256.Sum256(d[:])
			}, func() {
				if !check() {
					b.Fatal("benchmark signature does not verify")
				}
			}
	}
}

// benchBackend is the private-key backend BenchmarkInbound4KiB runs with:
// SECMAIL_TEST_KEY_BACKEND (openssl needs -tags openssl), default go.
func benchBackend(b *testing.B) keybackend.Backend {
	be, err := keybackend.Open(os.Getenv("SECMAIL_TEST_KEY_BACKEND"), keybackend.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	return be
}

// BenchmarkInbound4KiB measures the whole inbound path (MIME, CMS, chain
// validation, result) for a 4 KiB signed-then-encrypted article next to
// its raw cryptographic cost, alternating in each iteration and timed
// apart in process CPU time: cpu-ns/op is the whole article, raw-cpu-ns/op
// the private-key operation, signature verification and hashing,
// bare-cpu-ns/op that without the verification; whole/raw and whole/bare
// are the ratios. Wall ns/op covers all of it. The keys and the verifier
// are SECMAIL_TEST_KEY_BACKEND's (go by default; openssl with -tags
// openssl), the sub-benchmark names say which.
func BenchmarkInbound4KiB(b *testing.B) {
	be := benchBackend(b)
	for _, kt := range []demopki.KeyType{demopki.RSA2048, demopki.P256} {
		bw := newBackendWorld(b, kt, be)
		s := bw.sample(b, mailgen.KindSMIMESignedEncrypted)
		bare, verify := bw.rawCost(b, make([]byte, 4096), keybackend.Verifier(be))
		name := map[demopki.KeyType]string{demopki.RSA2048: "RSA2048-CBC", demopki.P256: "ECDH-P256"}[kt]
		b.Run(name+"/"+be.Name(), func(b *testing.B) {
			b.ReportAllocs()
			var whole, bareCPU, raw time.Duration
			for b.Loop() {
				t0 := cputime.Process()
				out, err := bw.h.Inbound(bg, s.Raw)
				if err != nil || out.Security.Sign.Status != "ok" || out.Security.Encryption.Status != "ok" {
					b.Fatalf("%v %+v", err, out)
				}
				t1 := cputime.Process()
				bare()
				t2 := cputime.Process()
				verify()
				whole += t1 - t0
				bareCPU += t2 - t1
				raw += cputime.Process() - t1
			}
			if b.N > 0 && bareCPU > 0 {
				n := float64(b.N)
				b.ReportMetric(float64(whole)/n, "cpu-ns/op")
				b.ReportMetric(float64(raw)/n, "raw-cpu-ns/op")
				b.ReportMetric(float64(bareCPU)/n, "bare-cpu-ns/op")
				b.ReportMetric(float64(whole)/float64(raw), "whole/raw")
				b.ReportMetric(float64(whole)/float64(bareCPU), "whole/bare")
			}
		})
	}
}

// BenchmarkPGP4KiB: inbound decrypt+verify and outbound sign+encrypt.
func BenchmarkPGP4KiB(b *testing.B) {
	bw := newBenchWorld(b, demopki.P256)
	in := bw.sample(b, mailgen.KindPGPSignedEncrypted)
	out := bw.sample(b, mailgen.KindReplyPGP)
	b.Run("inbound", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := bw.h.Inbound(bg, in.Raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("outbound-sign-encrypt", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := bw.h.Outbound(bg, &article.Request{Raw: out.Raw}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOutboundSMIME signs and encrypts a 4 KiB reply to 1, 5 and 20
// recipients, RSA and EC.
func BenchmarkOutboundSMIME(b *testing.B) {
	for _, kt := range []demopki.KeyType{demopki.RSA2048, demopki.P256} {
		bw := newBenchWorld(b, kt)
		pki, err := demopki.New("Bench")
		if err != nil {
			b.Fatal(err)
		}
		var addrs []string
		bundle := &keyring.Bundle{Certs: []*x509.Certificate{pki.Root.Cert, pki.Intermediate.Cert}}
		for i := 0; i < 20; i++ {
			addr := fmt.Sprintf("r%d@customer.example", i)
			id, err := pki.Leaf(addr, demopki.LeafOptions{Type: kt})
			if err != nil {
				b.Fatal(err)
			}
			bundle.Certs = append(bundle.Certs, id.Cert)
			addrs = append(addrs, addr)
		}
		bw.kr.Add(bundle)
		for _, n := range []int{1, 5, 20} {
			to := addrs[0]
			for _, a := range addrs[1:n] {
				to += ", " + a
			}
			raw := mailgen.Message(mailgen.Support, to, "Re: bench", mailgen.Options{BodySize: 4096})
			b.Run(fmt.Sprintf("%s/%d-recipients", kt, n), func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					out, err := bw.h.Outbound(bg, &article.Request{Raw: raw, Options: article.Options{Type: &smimeType}})
					if err != nil || out.Security.Encryption.Status != "ok" {
						b.Fatalf("%v %+v", err, out.Security)
					}
				}
			})
		}
	}
}
