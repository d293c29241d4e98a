package keybackend_test

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
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

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/secmail/secmail/cms"
	"github.com/secmail/secmail/internal/cputime"
	"github.com/secmail/secmail/keybackend"
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
			start := cputime.Process()
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
			start := cputime.Process()
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
			start := cputime.Process()
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
			start := cputime.Process()
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
		b.ReportMetric(float64(cputime.Process()-start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkArticleInbound is the whole CMS work of one inbound article: a
// 4 KiB message signed and then encrypted by openssl to our RSA-2048 key;
// cms.Decrypt, then cms.ParseSignedData and Verify of the inner
// signature (through the backend's verifier, with a certificate cache, as
// the worker does). The private-key operation is the single RSA decryption.
//
// Each iteration also runs the article's bare cost: the decryption of the
// same wrapped key by the same backend key, and the SHA-256 hashing the
// article cannot avoid (content digest, signed attributes). The two halves
// alternate and each is timed on its own (process CPU time), so load on the
// shared machine hits both alike: cpu-ns/op is the article, bare-cpu-ns/op
// the bare cost, article/bare their ratio (the target in issue #8 is 1.25
// for openssl). Wall ns/op covers both halves.
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
	encKey, attrs := inboundParts(b, der, sd)
	for _, be := range fx.backends {
		b.Run(be.Name(), func(b *testing.B) {
			ours := w.backendKeys(b, be)
			// As the worker runs: the backend's verifier and AES-CBC
			// decrypter (nil for go) and a certificate cache across articles.
			sdOpts := cms.SignedDataOptions{Certs: cms.NewCertCache(64), Verifier: keybackend.Verifier(be)}
			_, cbc := keybackend.Offload(be)
			dopts := cms.DecryptOptions{CBC: cbc}
			dec := w.key(b, ours, "rsa@example.org").Key.(crypto.Decrypter)
			opts := &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32}
			bare := func() {
				if _, err := dec.Decrypt(rand.Reader, encKey, opts); err != nil {
					b.Fatal(err)
				}
				sha256.Sum256(plain)
				sha256.Sum256(attrs)
			}
			article := func() {
				dec, err := cms.Decrypt(der, ours, dopts)
				if err != nil {
					b.Fatal(err)
				}
				p, err := cms.ParseSignedDataWith(dec.Plaintext, sdOpts)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := p.Verify(nil, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(plain)))
			var articleCPU, bareCPU time.Duration
			for b.Loop() {
				t0 := cputime.Process()
				article()
				t1 := cputime.Process()
				bare()
				articleCPU += t1 - t0
				bareCPU += cputime.Process() - t1
			}
			if b.N > 0 && bareCPU > 0 {
				b.ReportMetric(float64(articleCPU)/float64(b.N), "cpu-ns/op")
				b.ReportMetric(float64(bareCPU)/float64(b.N), "bare-cpu-ns/op")
				b.ReportMetric(float64(articleCPU)/float64(bareCPU), "article/bare")
			}
		})
	}
}

// inboundParts returns what the bare cost of BenchmarkArticleInbound
// works on: the RSA-encrypted content key of the single recipient in env
// (EnvelopedData) and the DER SET OF signed attributes of the single
// signer in sd (SignedData), as the signature covers them.
func inboundParts(tb testing.TB, env, sd []byte) (encKey, attrs []byte) {
	tb.Helper()
	// ContentInfo → [0] → EnvelopedData → RecipientInfos → KeyTransRecipientInfo.
	s := cryptobyte.String(env)
	var ci, content, ed, ris, ktri cryptobyte.String
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.SkipASN1(cbasn1.OBJECT_IDENTIFIER) ||
		!ci.ReadASN1(&content, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!content.ReadASN1(&ed, cbasn1.SEQUENCE) || !ed.SkipASN1(cbasn1.INTEGER) ||
		!ed.ReadASN1(&ris, cbasn1.SET) || !ris.ReadASN1(&ktri, cbasn1.SEQUENCE) ||
		!ktri.SkipASN1(cbasn1.INTEGER) || !ktri.SkipASN1(cbasn1.SEQUENCE) || !ktri.SkipASN1(cbasn1.SEQUENCE) ||
		!ktri.ReadASN1Bytes(&encKey, cbasn1.OCTET_STRING) {
		tb.Fatal("benchmark message: no KeyTransRecipientInfo")
	}
	// ContentInfo → [0] → SignedData → SignerInfos → SignerInfo → [0] signedAttrs.
	s = cryptobyte.String(sd)
	var sdata, infos, si, el cryptobyte.String
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.SkipASN1(cbasn1.OBJECT_IDENTIFIER) ||
		!ci.ReadASN1(&content, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!content.ReadASN1(&sdata, cbasn1.SEQUENCE) || !sdata.SkipASN1(cbasn1.INTEGER) ||
		!sdata.SkipASN1(cbasn1.SET) || !sdata.SkipASN1(cbasn1.SEQUENCE) ||
		!sdata.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!sdata.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific()) ||
		!sdata.ReadASN1(&infos, cbasn1.SET) || !infos.ReadASN1(&si, cbasn1.SEQUENCE) ||
		!si.SkipASN1(cbasn1.INTEGER) || !si.SkipASN1(cbasn1.SEQUENCE) || !si.SkipASN1(cbasn1.SEQUENCE) ||
		!si.ReadASN1Element(&el, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		tb.Fatal("benchmark message: no signed attributes")
	}
	attrs = append([]byte{0x31}, el[1:]...) // [0] IMPLICIT → SET OF, RFC 5652 §5.4
	return encKey, attrs
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
			start := cputime.Process()
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

// BenchmarkVerify is the signature check of an inbound article: the
// backend's verifier (backends without one are skipped) against Go's
// crypto/rsa and crypto/ecdsa, alternating in each iteration and timed
// apart: cpu-ns/op is the backend's, go-cpu-ns/op Go's, go/backend their
// ratio. Wall ns/op covers both.
func BenchmarkVerify(b *testing.B) {
	d := sha256.Sum256([]byte("x"))
	rsaSig, _ := rsa.SignPKCS1v15(rand.Reader, fx.rsa, crypto.SHA256, d[:])
	ek := fx.p256.Public().(*ecdsa.PublicKey)
	ecSig, err := fx.p256.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		b.Fatal(err)
	}
	ops := []struct {
		name string
		run  func(cms.PublicKeyVerifier) bool
	}{
		{"RSA2048-PKCS1v15", func(v cms.PublicKeyVerifier) bool {
			return v.VerifyPKCS1v15(&fx.rsa.PublicKey, crypto.SHA256, d[:], rsaSig) == nil
		}},
		{"ECDSA-P256", func(v cms.PublicKeyVerifier) bool { return v.VerifyASN1(ek, d[:], ecSig) }},
	}
	for _, be := range fx.backends {
		v := keybackend.Verifier(be)
		if v == nil {
			continue
		}
		for _, op := range ops {
			b.Run(op.name+"/"+be.Name(), func(b *testing.B) {
				var goCPU, beCPU time.Duration
				for b.Loop() {
					t0 := cputime.Process()
					if !op.run(cms.GoVerifier{}) {
						b.Fatal("Go rejected a valid signature")
					}
					t1 := cputime.Process()
					if !op.run(v) {
						b.Fatal("valid signature rejected")
					}
					goCPU += t1 - t0
					beCPU += cputime.Process() - t1
				}
				if b.N > 0 && beCPU > 0 {
					b.ReportMetric(float64(beCPU)/float64(b.N), "cpu-ns/op")
					b.ReportMetric(float64(goCPU)/float64(b.N), "go-cpu-ns/op")
					b.ReportMetric(float64(goCPU)/float64(beCPU), "go/backend")
				}
			})
		}
	}
}
