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
	"testing"
	"time"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/demopki"
	"github.com/secmail/secmail/handlers"
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

func (bw *benchWorld) sample(b *testing.B, kind string) mailgen.Sample {
	s, err := bw.w.Make(kind, mailgen.Options{BodySize: 4096})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// rawCost performs what an inbound signed-then-encrypted article cannot
// avoid: one private-key operation (RSA decryption or ECDH), one signature
// verification (RSA or ECDSA P-256) and hashing the content twice (content
// digest and signed attributes).
func (bw *benchWorld) rawCost(b *testing.B, content []byte) func() {
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
		dec := k.Key.(crypto.Decrypter)
		return func() {
			_, _ = dec.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32})
			d := sha256.Sum256(content)
			_ = sha256.Sum256(d[:])
			if rsa.VerifyPKCS1v15(&signerKey.PublicKey, crypto.SHA256, d[:], sig) != nil {
				panic("benchmark signature does not verify")
			}
		}
	default:
		eph, _ := ecdh.P256().GenerateKey(rand.Reader)
		ka := k.Key.(keys.KeyAgreer)
		signerKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		sig, _ := ecdsa.SignASN1(rand.Reader, signerKey, digest[:])
		return func() {
			_, _ = ka.ECDH(eph.PublicKey())
			d := sha256.Sum256(content)
			_ = sha256.Sum256(d[:])
			if !ecdsa.VerifyASN1(&signerKey.PublicKey, d[:], sig) {
				panic("benchmark signature does not verify")
			}
		}
	}
}

// BenchmarkInbound4KiB measures the whole inbound path (MIME, CMS, chain
// validation, result) for a 4 KiB signed-then-encrypted article next to
// its raw cryptographic cost in the same run, and reports the ratio.
func BenchmarkInbound4KiB(b *testing.B) {
	for _, kt := range []demopki.KeyType{demopki.RSA2048, demopki.P256} {
		bw := newBenchWorld(b, kt)
		s := bw.sample(b, mailgen.KindSMIMESignedEncrypted)
		raw := bw.rawCost(b, make([]byte, 4096))
		name := map[demopki.KeyType]string{demopki.RSA2048: "RSA2048-CBC", demopki.P256: "ECDH-P256"}[kt]
		var whole, bare time.Duration
		b.Run(name+"/whole", func(b *testing.B) {
			b.ReportAllocs()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				out, err := bw.h.Inbound(bg, s.Raw)
				if err != nil || out.Security.Sign.Status != "ok" || out.Security.Encryption.Status != "ok" {
					b.Fatalf("%v %+v", err, out)
				}
			}
			whole = time.Since(start) / time.Duration(b.N)
		})
		b.Run(name+"/raw-crypto", func(b *testing.B) {
			start := time.Now()
			for i := 0; i < b.N; i++ {
				raw()
			}
			bare = time.Since(start) / time.Duration(b.N)
			if whole > 0 {
				b.ReportMetric(float64(whole)/float64(bare), "whole/raw")
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
