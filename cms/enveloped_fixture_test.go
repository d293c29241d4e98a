package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secmail/secmail/keys"
)

// envParty is one test identity: a self-signed recipient certificate and
// its key, also as PEM files for openssl.
type envParty struct {
	name    string
	cert    *x509.Certificate
	key     crypto.PrivateKey
	smime   keys.SMIMEKey
	certPEM []byte
	keyPEM  []byte
}

type envFixture struct {
	dir                   string
	rsaA, rsaB, rsaC      *envParty
	ecP256, ecP384, noSKI *envParty
	parties               []*envParty
}

var (
	envFixOnce sync.Once
	envFix     *envFixture
	envFixErr  error
)

// envGetFixture generates the keys once per test binary. Certificates are
// made with crypto/x509; the peer under test is openssl cms.
func envGetFixture(tb testing.TB) *envFixture {
	tb.Helper()
	envFixOnce.Do(func() { envFix, envFixErr = envBuildFixture() })
	if envFixErr != nil {
		tb.Fatalf("fixture: %v", envFixErr)
	}
	// Keys are generated once; each test gets its own copy of the files.
	fx := *envFix
	fx.dir = tb.TempDir()
	for _, p := range fx.parties {
		if err := os.WriteFile(fx.certPath(p), p.certPEM, 0o600); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(fx.keyPath(p), p.keyPEM, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return &fx
}

func (fx *envFixture) certPath(p *envParty) string { return filepath.Join(fx.dir, p.name+".crt") }
func (fx *envFixture) keyPath(p *envParty) string  { return filepath.Join(fx.dir, p.name+".key") }

func envBuildFixture() (*envFixture, error) {
	fx := &envFixture{}
	mk := func(name string, key crypto.Signer, withSKI bool) (*envParty, error) {
		serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
		tmpl := &x509.Certificate{
			SerialNumber:   serial,
			Subject:        pkix.Name{CommonName: name, Organization: []string{"secmail test"}},
			EmailAddresses: []string{name + "@helpdesk.example"},
			NotBefore:      time.Now().Add(-time.Hour),
			NotAfter:       time.Now().Add(24 * time.Hour),
			KeyUsage:       x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement | x509.KeyUsageDigitalSignature,
			ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		}
		if withSKI {
			pub, _ := x509.MarshalPKIXPublicKey(key.Public())
			sum := sha1.Sum(pub)
			tmpl.SubjectKeyId = sum[:]
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			return nil, err
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		if !withSKI && len(cert.SubjectKeyId) > 0 {
			// Go adds an SKI to CA certificates only; this is a leaf.
			return nil, fmt.Errorf("unexpected SKI")
		}
		p8, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		wrapped, err := keys.Wrap(key)
		if err != nil {
			return nil, err
		}
		p := &envParty{
			name:    name,
			cert:    cert,
			key:     key,
			smime:   keys.SMIMEKey{Cert: cert, Key: wrapped},
			certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
		}
		fx.parties = append(fx.parties, p)
		return p, nil
	}
	rsaKey := func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) }
	ecKey := func(c elliptic.Curve) func() (crypto.Signer, error) {
		return func() (crypto.Signer, error) { return ecdsa.GenerateKey(c, rand.Reader) }
	}
	for _, spec := range []struct {
		dst  **envParty
		name string
		gen  func() (crypto.Signer, error)
		ski  bool
	}{
		{&fx.rsaA, "rsa-a", rsaKey, true},
		{&fx.rsaB, "rsa-b", rsaKey, true},
		{&fx.rsaC, "rsa-c", rsaKey, true},
		{&fx.ecP256, "ec-p256", ecKey(elliptic.P256()), true},
		{&fx.ecP384, "ec-p384", ecKey(elliptic.P384()), true},
		{&fx.noSKI, "ec-noski", ecKey(elliptic.P256()), false},
	} {
		k, err := spec.gen()
		if err != nil {
			return nil, err
		}
		if *spec.dst, err = mk(spec.name, k, spec.ski); err != nil {
			return nil, fmt.Errorf("%s: %w", spec.name, err)
		}
	}
	return fx, nil
}

// envOpenSSL runs openssl in dir and returns stdout.
func envOpenSSL(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("openssl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out.Bytes(), nil
}

// envOpenSSLEncrypt encrypts plaintext with openssl cms; recips are
// "-recip FILE [-keyopt ...]" groups already expanded into args.
func envOpenSSLEncrypt(tb testing.TB, plaintext []byte, smime bool, args ...string) []byte {
	tb.Helper()
	dir := tb.TempDir()
	in := filepath.Join(dir, "in")
	out := filepath.Join(dir, "out")
	if err := os.WriteFile(in, plaintext, 0o600); err != nil {
		tb.Fatal(err)
	}
	full := []string{"cms", "-encrypt", "-binary", "-in", in, "-out", out}
	if !smime {
		full = append(full, "-outform", "DER")
	}
	if _, err := envOpenSSL(dir, append(full, args...)...); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	if smime {
		return envSMIMEBody(tb, b)
	}
	return b
}

// envSMIMEBody extracts the base64 body of openssl's S/MIME output.
func envSMIMEBody(tb testing.TB, msg []byte) []byte {
	tb.Helper()
	msg = bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
	i := bytes.Index(msg, []byte("\n\n"))
	if i < 0 {
		tb.Fatalf("no header/body separator in S/MIME output")
	}
	body := bytes.Join(bytes.Fields(msg[i+2:]), nil)
	der, err := base64.StdEncoding.DecodeString(string(body))
	if err != nil {
		tb.Fatalf("S/MIME body: %v", err)
	}
	return der
}

// envOpenSSLDecrypt decrypts der for party p with openssl cms.
func (fx *envFixture) envOpenSSLDecrypt(tb testing.TB, der []byte, p *envParty) ([]byte, error) {
	tb.Helper()
	dir := tb.TempDir()
	in := filepath.Join(dir, "in.der")
	out := filepath.Join(dir, "out")
	if err := os.WriteFile(in, der, 0o600); err != nil {
		tb.Fatal(err)
	}
	if _, err := envOpenSSL(dir, "cms", "-decrypt", "-binary", "-inform", "DER", "-in", in,
		"-recip", fx.certPath(p), "-inkey", fx.keyPath(p), "-out", out); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}
