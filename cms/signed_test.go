package cms

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secmail/secmail/reason"
)

var sdMessage = []byte("Subject: test\r\n\r\nHello from openssl, with UTF-8: Grüße, çok güzel.\r\n")

// TestVerifyOpenSSL verifies what `openssl cms -sign` produces, for every
// algorithm and every failure reason that the signature itself can show.
func TestVerifyOpenSSL(t *testing.T) {
	fx := sdGetFixture(t)
	tests := []struct {
		name     string
		leaf     string
		flags    []string
		mutate   func([]byte) []byte // applied to the CMS bytes
		content  []byte              // detached content given to Verify; nil = sdMessage
		opaque   bool                // verify with detached == nil
		lookup   bool                // offer the signer cert via lookup
		wantCode reason.Code
		digest   string
		sig      string
		weak     bool
		noTime   bool
		ski      bool
	}{
		{name: "rsa sha256 detached with intermediate", leaf: "rsa", flags: []string{"-md", "sha256", "-certfile", "inter.pem"}, digest: "sha256", sig: SigRSAPKCS1},
		{name: "rsa sha384", leaf: "rsa", flags: []string{"-md", "sha384"}, digest: "sha384", sig: SigRSAPKCS1},
		{name: "rsa sha512", leaf: "rsa", flags: []string{"-md", "sha512"}, digest: "sha512", sig: SigRSAPKCS1},
		{name: "rsa sha1 is weak", leaf: "rsa", flags: []string{"-md", "sha1"}, digest: "sha1", sig: SigRSAPKCS1, weak: true},
		{name: "rsa-pss default salt", leaf: "rsa", flags: []string{"-keyopt", "rsa_padding_mode:pss"}, digest: "sha256", sig: SigRSAPSS},
		{name: "rsa-pss salt 20 (default param)", leaf: "rsa", flags: []string{"-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:20"}, digest: "sha256", sig: SigRSAPSS},
		{name: "rsa-pss sha512 salt 64", leaf: "rsa", flags: []string{"-md", "sha512", "-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:64"}, digest: "sha512", sig: SigRSAPSS},
		{name: "ecdsa p256 sha256", leaf: "ec", flags: []string{"-md", "sha256"}, digest: "sha256", sig: SigECDSA},
		{name: "ecdsa p256 sha1 is weak", leaf: "ec", flags: []string{"-md", "sha1"}, digest: "sha1", sig: SigECDSA, weak: true},
		{name: "ecdsa p384 sha384", leaf: "p384", flags: []string{"-md", "sha384"}, digest: "sha384", sig: SigECDSA},
		{name: "ecdsa p521 sha512", leaf: "p521", flags: []string{"-md", "sha512"}, digest: "sha512", sig: SigECDSA},
		{name: "opaque", leaf: "ec", flags: []string{"-nodetach"}, opaque: true, digest: "sha256", sig: SigECDSA},
		{name: "opaque streamed BER", leaf: "rsa", flags: []string{"-nodetach", "-stream"}, opaque: true, digest: "sha256", sig: SigRSAPKCS1},
		{name: "opaque PEM", leaf: "ec", flags: []string{"-nodetach", "-outform", "PEM"}, opaque: true, digest: "sha256", sig: SigECDSA,
			mutate: func(b []byte) []byte { blk, _ := pem.Decode(b); return blk.Bytes }},
		{name: "subject key identifier", leaf: "ec", flags: []string{"-keyid"}, digest: "sha256", sig: SigECDSA, ski: true},
		{name: "no signed attributes", leaf: "rsa", flags: []string{"-noattr"}, digest: "sha256", sig: SigRSAPKCS1, noTime: true},
		{name: "no signed attributes ecdsa", leaf: "ec", flags: []string{"-noattr", "-nodetach"}, opaque: true, digest: "sha256", sig: SigECDSA, noTime: true},
		{name: "no certs, found by lookup", leaf: "rsa", flags: []string{"-nocerts"}, lookup: true, digest: "sha256", sig: SigRSAPKCS1},
		{name: "no certs, ski lookup", leaf: "ec", flags: []string{"-nocerts", "-keyid"}, lookup: true, digest: "sha256", sig: SigECDSA, ski: true},

		{name: "no certs, no lookup", leaf: "rsa", flags: []string{"-nocerts"}, wantCode: reason.NoCertificate},
		{name: "tampered content", leaf: "rsa", content: append([]byte("X"), sdMessage...), wantCode: reason.BadSignature},
		{name: "tampered content ecdsa", leaf: "ec", content: sdMessage[1:], wantCode: reason.BadSignature},
		{name: "tampered content no attrs", leaf: "rsa", flags: []string{"-noattr"}, content: []byte("other"), wantCode: reason.BadSignature},
		{name: "tampered signature", leaf: "rsa", mutate: sdFlipLast, wantCode: reason.BadSignature},
		{name: "tampered signature ecdsa no attrs", leaf: "ec", flags: []string{"-noattr"}, mutate: sdFlipLast, wantCode: reason.BadSignature},
		{name: "md5 refused", leaf: "rsa", flags: []string{"-md", "md5"}, wantCode: reason.UnsupportedAlgorithm},
		{name: "detached without content", leaf: "rsa", opaque: true, wantCode: reason.Malformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			der := fx.sign(t, tc.leaf, sdMessage, tc.flags...)
			if tc.mutate != nil {
				der = tc.mutate(der)
			}
			for _, set := range sdOptionSets() {
				t.Run(set.name, func(t *testing.T) {
					var calls int64
					if set.calls != nil {
						calls = set.calls()
					}
					sd, err := ParseSignedDataWith(der, set.opts)
					if err != nil {
						t.Fatalf("ParseSignedData: %v", err)
					}
					content := tc.content
					if content == nil && !tc.opaque {
						content = sdMessage
					}
					if tc.opaque && tc.wantCode == "" && !bytes.Equal(sd.Content(), sdMessage) {
						t.Fatalf("Content() = %q", sd.Content())
					}
					leaf := fx.leaves[tc.leaf].cert
					var lookup func(RecipientID) []*x509.Certificate
					if tc.lookup {
						lookup = func(id RecipientID) []*x509.Certificate {
							// Like a store: return everything, Verify must pick.
							var all []*x509.Certificate
							for _, l := range fx.leaves {
								all = append(all, l.cert)
							}
							return all
						}
					}
					infos, err := sd.Verify(content, lookup)
					if tc.wantCode != "" {
						if got := reason.CodeOf(err); got != tc.wantCode {
							t.Fatalf("Verify error = %v (code %q), want %q", err, got, tc.wantCode)
						}
						return
					}
					if err != nil {
						t.Fatalf("Verify: %v", err)
					}
					if set.calls != nil && set.calls() == calls {
						t.Errorf("the verifier was not asked")
					}
					if len(infos) != 1 {
						t.Fatalf("got %d signers", len(infos))
					}
					s := infos[0]
					if !s.Cert.Equal(leaf) {
						t.Errorf("signer cert %q, want %q", s.Cert.Subject, leaf.Subject)
					}
					if s.DigestAlgorithm != tc.digest || s.SignatureAlgorithm != tc.sig || s.Weak != tc.weak {
						t.Errorf("got digest %q sig %q weak %v, want %q %q %v", s.DigestAlgorithm, s.SignatureAlgorithm, s.Weak, tc.digest, tc.sig, tc.weak)
					}
					if tc.ski != (s.SID.SKI != nil) || (!tc.ski && s.SID.IssuerAndSerial == nil) {
						t.Errorf("SID = %+v, want ski=%v", s.SID, tc.ski)
					}
					if tc.noTime {
						if s.SigningTime != nil || s.Capabilities != nil {
							t.Errorf("attributes reported without signed attributes: %v %v", s.SigningTime, s.Capabilities)
						}
						return
					}
					if s.SigningTime == nil || time.Since(*s.SigningTime).Abs() > 10*time.Minute {
						t.Errorf("signing time %v, want about now", s.SigningTime)
					}
					// openssl advertises its ciphers; AES-256-CBC is among them.
					if !sdContains(s.Capabilities, "2.16.840.1.101.3.4.1.42") {
						t.Errorf("capabilities %v lack aes256-CBC", s.Capabilities)
					}
				})
			}
		})
	}
}

// TestCertificatesInMessage checks -certfile intermediates are exposed.
func TestCertificatesInMessage(t *testing.T) {
	fx := sdGetFixture(t)
	sd, err := ParseSignedData(fx.sign(t, "ec", sdMessage, "-certfile", "inter.pem"))
	if err != nil {
		t.Fatal(err)
	}
	var leaf, inter bool
	for _, c := range sd.Certificates() {
		leaf = leaf || c.Equal(fx.leaves["ec"].cert)
		inter = inter || c.Equal(fx.inter)
	}
	if !leaf || !inter || len(sd.Certificates()) != 2 {
		t.Fatalf("certificates: leaf %v inter %v count %d", leaf, inter, len(sd.Certificates()))
	}
	if sd.Content() != nil || !sd.Detached() {
		t.Fatal("detached message reports content")
	}
	sd, err = ParseSignedData(fx.sign(t, "ec", sdMessage, "-nocerts"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(sd.Certificates()); n != 0 {
		t.Fatalf("-nocerts message has %d certificates", n)
	}
}

// TestContentTypeMismatch re-signs nothing: it swaps eContentType so the
// content-type attribute no longer matches, which must fail.
func TestContentTypeMismatch(t *testing.T) {
	fx := sdGetFixture(t)
	der := fx.sign(t, "ec", sdMessage, "-nodetach")
	data, _ := asn1.Marshal(OIDData)
	other, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 9}) // same length
	// The first id-data after the SignedData OID is the eContentType.
	i := bytes.Index(der, data)
	if i < 0 || len(other) != len(data) {
		t.Fatal("eContentType not found")
	}
	mod := append([]byte{}, der...)
	copy(mod[i:], other)
	sd, err := ParseSignedData(mod)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sd.Verify(nil, nil); reason.CodeOf(err) != reason.BadSignature {
		t.Fatalf("Verify = %v, want bad-signature", err)
	}
}

// TestParseMalformed feeds broken input: never a panic, always malformed or
// too-large.
func TestParseMalformed(t *testing.T) {
	fx := sdGetFixture(t)
	good := fx.sign(t, "rsa", sdMessage, "-nodetach", "-certfile", "inter.pem")
	envelope, _ := asn1.Marshal(ContentInfo{ContentType: OIDEnvelopedData, Content: asn1.RawValue{FullBytes: []byte{0xa0, 0x02, 0x05, 0x00}}})
	tests := []struct {
		name string
		in   []byte
		want reason.Code
	}{
		{"empty", nil, reason.Malformed},
		{"garbage", []byte("not cms at all"), reason.Malformed},
		{"not signed data", envelope, reason.Malformed},
		{"too large", make([]byte, MaxInput+1), reason.TooLarge},
	}
	for _, n := range []int{1, 10, 40, len(good) / 3, len(good) / 2, len(good) - 300, len(good) - 1} {
		tests = append(tests, struct {
			name string
			in   []byte
			want reason.Code
		}{"truncated", good[:n], reason.Malformed})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sd, err := ParseSignedData(tc.in)
			if err == nil {
				_, err = sd.Verify(nil, nil)
			}
			if got := reason.CodeOf(err); got != tc.want {
				t.Fatalf("err = %v (code %q), want %q", err, got, tc.want)
			}
		})
	}
}

// TestSignInterop signs with Sign and verifies with `openssl cms -verify`
// (and with Verify), detached and opaque, for every key type.
func TestSignInterop(t *testing.T) {
	fx := sdGetFixture(t)
	content := []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nReply from the helpdesk.\r\n")
	tests := []struct {
		name   string
		leaf   string
		opts   SignOptions
		sig    string
		digest string
		// openssl 3.0 cannot process Ed25519 in CMS at all ("no default
		// digest" / "invalid digest"), so Ed25519 is checked by Verify only.
		noOpenSSL bool
	}{
		{name: "rsa", leaf: "rsa", sig: SigRSAPKCS1, digest: "sha256"},
		{name: "rsa sha512", leaf: "rsa", opts: SignOptions{Hash: crypto.SHA512}, sig: SigRSAPKCS1, digest: "sha512"},
		{name: "rsa-pss", leaf: "rsa", opts: SignOptions{PSS: true}, sig: SigRSAPSS, digest: "sha256"},
		{name: "rsa-pss sha384", leaf: "rsa", opts: SignOptions{PSS: true, Hash: crypto.SHA384}, sig: SigRSAPSS, digest: "sha384"},
		{name: "ecdsa p256", leaf: "ec", sig: SigECDSA, digest: "sha256"},
		{name: "ecdsa p384", leaf: "p384", sig: SigECDSA, digest: "sha384"},
		{name: "ecdsa p521", leaf: "p521", sig: SigECDSA, digest: "sha512"},
		{name: "ed25519", leaf: "ed", sig: SigEd25519, digest: "sha512", noOpenSSL: true},
	}
	signingTime := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, tc := range tests {
		for _, detached := range []bool{true, false} {
			name := tc.name + map[bool]string{true: " detached", false: " opaque"}[detached]
			t.Run(name, func(t *testing.T) {
				l := fx.leaves[tc.leaf]
				opts := tc.opts
				opts.Detached = detached
				opts.SigningTime = signingTime
				der, err := Sign(content, l.cert, l.key, []*x509.Certificate{fx.inter}, opts)
				if err != nil {
					t.Fatalf("Sign: %v", err)
				}
				sd, err := ParseSignedData(der)
				if err != nil {
					t.Fatalf("ParseSignedData: %v", err)
				}
				var detachedContent []byte
				if detached {
					detachedContent = content
					if sd.Content() != nil {
						t.Fatal("detached signature carries content")
					}
				} else if !bytes.Equal(sd.Content(), content) {
					t.Fatalf("opaque content = %q", sd.Content())
				}
				infos, err := sd.Verify(detachedContent, nil)
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				s := infos[0]
				if s.SignatureAlgorithm != tc.sig || s.DigestAlgorithm != tc.digest {
					t.Errorf("got %s/%s, want %s/%s", s.SignatureAlgorithm, s.DigestAlgorithm, tc.sig, tc.digest)
				}
				if s.SigningTime == nil || !s.SigningTime.Equal(signingTime) {
					t.Errorf("signing time %v", s.SigningTime)
				}
				var want []string
				for _, o := range DefaultCapabilities {
					want = append(want, o.String())
				}
				if strings.Join(s.Capabilities, ",") != strings.Join(want, ",") {
					t.Errorf("capabilities %v, want %v", s.Capabilities, want)
				}
				if len(sd.Certificates()) != 2 {
					t.Errorf("%d certificates in message, want leaf and intermediate", len(sd.Certificates()))
				}
				if tc.noOpenSSL {
					return
				}
				sdOpenSSLVerify(t, fx, der, content, detached)
			})
		}
	}
}

// sdOpenSSLVerify runs `openssl cms -verify` with the root as the only
// trust anchor (the intermediate must come from the message).
func sdOpenSSLVerify(t *testing.T, fx *sdFixture, der, content []byte, detached bool) {
	t.Helper()
	sigPath := filepath.Join(fx.dir, "sig.der")
	outPath := filepath.Join(fx.dir, "out.txt")
	if err := os.WriteFile(sigPath, der, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"cms", "-verify", "-binary", "-inform", "DER", "-in", sigPath, "-CAfile", "root.pem", "-purpose", "any", "-out", outPath}
	if detached {
		contentPath := filepath.Join(fx.dir, "content.txt")
		if err := os.WriteFile(contentPath, content, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-content", contentPath)
	}
	if _, err := sdOpenSSL(fx.dir, nil, args...); err != nil {
		t.Fatalf("openssl rejects our signature: %v", err)
	}
	got, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Fatalf("openssl output %q, want %q", got, content)
	}
}

func TestSignErrors(t *testing.T) {
	fx := sdGetFixture(t)
	rsaLeaf, ecLeaf, edLeaf := fx.leaves["rsa"], fx.leaves["ec"], fx.leaves["ed"]
	if _, err := Sign(sdMessage, rsaLeaf.cert, ecLeaf.key, nil, SignOptions{}); err == nil {
		t.Error("signing with a key that does not belong to the certificate succeeded")
	}
	if _, err := Sign(sdMessage, edLeaf.cert, edLeaf.key, nil, SignOptions{Hash: crypto.SHA256}); reason.CodeOf(err) != reason.UnsupportedAlgorithm {
		t.Errorf("Ed25519 with SHA-256: %v", err)
	}
	if _, err := Sign(sdMessage, rsaLeaf.cert, rsaLeaf.key, nil, SignOptions{Hash: crypto.SHA1}); reason.CodeOf(err) != reason.UnsupportedAlgorithm {
		t.Errorf("SHA-1 signing: %v", err)
	}
	// An empty non-nil capability list leaves the attribute out.
	der, err := Sign(sdMessage, ecLeaf.cert, ecLeaf.key, nil, SignOptions{Capabilities: []asn1.ObjectIdentifier{}})
	if err != nil {
		t.Fatal(err)
	}
	sd, err := ParseSignedData(der)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := sd.Verify(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if infos[0].Capabilities != nil {
		t.Errorf("capabilities %v, want none", infos[0].Capabilities)
	}
}

func TestMicAlgAndHash(t *testing.T) {
	fx := sdGetFixture(t)
	tests := []struct {
		leaf string
		req  crypto.Hash
		want crypto.Hash
		mic  string
	}{
		{"rsa", 0, crypto.SHA256, "sha-256"},
		{"rsa", crypto.SHA384, crypto.SHA384, "sha-384"},
		{"ec", 0, crypto.SHA256, "sha-256"},
		{"p384", 0, crypto.SHA384, "sha-384"},
		{"p521", 0, crypto.SHA512, "sha-512"},
		{"ed", 0, crypto.SHA512, "sha-512"},
	}
	for _, tc := range tests {
		h, err := SignatureHash(fx.leaves[tc.leaf].cert.PublicKey, tc.req)
		if err != nil || h != tc.want || MicAlg(h) != tc.mic {
			t.Errorf("%s/%v: hash %v err %v micalg %q, want %v %q", tc.leaf, tc.req, h, err, MicAlg(h), tc.want, tc.mic)
		}
	}
	if MicAlg(crypto.SHA1) != "sha-1" {
		t.Error("sha-1 micalg")
	}
}

func sdFlipLast(b []byte) []byte {
	out := append([]byte{}, b...)
	out[len(out)-1] ^= 0x01
	return out
}

func sdContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// FuzzParseSignedData checks that parsing and verifying attacker bytes
// never panics and only fails with reason codes.
func FuzzParseSignedData(f *testing.F) {
	fx := sdGetFixture(f)
	f.Add(fx.sign(f, "ec", []byte("seed"), "-nodetach"))
	f.Add(fx.sign(f, "rsa", []byte("seed"), "-keyopt", "rsa_padding_mode:pss", "-certfile", "inter.pem"))
	f.Add(fx.sign(f, "ec", []byte("seed"), "-noattr", "-keyid", "-nocerts"))
	f.Add(fx.sign(f, "rsa", []byte("seed"), "-nodetach", "-stream"))
	ed := fx.leaves["ed"]
	if der, err := Sign([]byte("seed"), ed.cert, ed.key, nil, SignOptions{}); err == nil {
		f.Add(der)
	}
	sets := sdOptionSets()
	f.Fuzz(func(t *testing.T, b []byte) {
		// Every option set (certificate cache, Go through the hook,
		// OpenSSL's verifier with -tags openssl) gives the default's code.
		var want reason.Code
		for i, set := range sets {
			sd, err := ParseSignedDataWith(b, set.opts)
			if err == nil {
				_ = sd.Certificates()
				_, err = sd.Verify([]byte("seed"), nil)
			}
			var re *reason.Error
			if err != nil && !errors.As(err, &re) {
				t.Fatalf("%s: error without reason code: %v", set.name, err)
			}
			if code := reason.CodeOf(err); i == 0 {
				want = code
			} else if code != want {
				t.Fatalf("%s: code %q, default %q (%v)", set.name, code, want, err)
			}
		}
	})
}

// BenchmarkVerifyRSA2048 measures parse + verify of a detached openssl
// signature over 4 KiB, the per-article cost of S/MIME verification.
func BenchmarkVerifyRSA2048(b *testing.B) {
	fx := sdGetFixture(b)
	content := bytes.Repeat([]byte("0123456789abcdef"), 256)
	der := fx.sign(b, "rsa", content, "-certfile", "inter.pem")
	b.ReportAllocs()
	b.SetBytes(int64(len(content)))
	for b.Loop() {
		sd, err := ParseSignedData(der)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := sd.Verify(content, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMultipleSigners checks that every signer is verified and reported,
// and that one signer without a certificate fails the whole message.
func TestMultipleSigners(t *testing.T) {
	fx := sdGetFixture(t)
	rsaLeaf, ecLeaf := fx.leaves["rsa"], fx.leaves["ec"]
	der := fx.sign(t, "rsa", sdMessage, "-signer", ecLeaf.certPath, "-inkey", ecLeaf.keyPath)
	sd, err := ParseSignedData(der)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(sd.SignerIDs()); n != 2 {
		t.Fatalf("%d signer ids, want 2", n)
	}
	infos, err := sd.Verify(sdMessage, nil)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if len(infos) != 2 {
		t.Fatalf("%d signers, want 2", len(infos))
	}
	seen := map[string]bool{}
	for _, s := range infos {
		seen[s.SignatureAlgorithm] = true
		if !s.Cert.Equal(rsaLeaf.cert) && !s.Cert.Equal(ecLeaf.cert) {
			t.Errorf("unexpected signer %q", s.Cert.Subject)
		}
	}
	if !seen[SigRSAPKCS1] || !seen[SigECDSA] {
		t.Errorf("algorithms %v", seen)
	}

	// Without certificates, a lookup that knows only one signer fails.
	der = fx.sign(t, "rsa", sdMessage, "-nocerts", "-signer", ecLeaf.certPath, "-inkey", ecLeaf.keyPath)
	sd, err = ParseSignedData(der)
	if err != nil {
		t.Fatal(err)
	}
	infos, err = sd.Verify(sdMessage, func(RecipientID) []*x509.Certificate { return []*x509.Certificate{rsaLeaf.cert} })
	if reason.CodeOf(err) != reason.NoCertificate {
		t.Fatalf("Verify = %v, want no-certificate", err)
	}
	if len(infos) == 0 || infos[len(infos)-1].Cert != nil {
		t.Fatalf("failing signer should be reported last without a certificate: %+v", infos)
	}
}

// BenchmarkSign measures Sign over 4 KiB (detached, with the intermediate)
// per key type; the private-key operation dominates.
func BenchmarkSign(b *testing.B) {
	fx := sdGetFixture(b)
	content := bytes.Repeat([]byte("0123456789abcdef"), 256)
	for _, name := range []string{"rsa", "ec", "ed"} {
		b.Run(name, func(b *testing.B) {
			l := fx.leaves[name]
			b.ReportAllocs()
			b.SetBytes(int64(len(content)))
			for b.Loop() {
				if _, err := Sign(content, l.cert, l.key, []*x509.Certificate{fx.inter}, SignOptions{Detached: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
