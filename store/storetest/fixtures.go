package storetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
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

	"github.com/secmail/secmail/internal/testpeer"
)

// Passphrase protects every protected fixture.
const Passphrase = "s3cret pass"

// Fixtures are files made by the real openssl and gpg binaries, plus a few
// Go-native ones (an expired certificate, a CRL).
type Fixtures struct {
	Dir string
	// CA signs Alice (RSA-2048) and Bob (EC P-256).
	CA, Alice, Bob *x509.Certificate
	CAKey          *ecdsa.PrivateKey
	// Files by name: ca.pem, alice.pem, alice.der, alice.key,
	// alice.enc.key (PKCS#8, AES-256), bob.pem, bob.key, bob.p12,
	// bundle.p7b (PEM PKCS#7 with alice and CA), bundle.p7b.der,
	// chain.pem (alice + CA), expired.pem, ca.crl (revokes serial 666),
	// other.key (no certificate), bob.legacy.key (legacy encrypted PEM), carol.pub.asc, carol.sec.asc,
	// alias.pub.asc (UID <*@alias.example>).
	Files map[string]string
	// CarolFingerprint is the OpenPGP fingerprint (lower-case hex).
	CarolFingerprint string
	// HavePGP is false when gpg is not installed (and CI unset).
	HavePGP bool
}

// Read returns a fixture file's content.
func (f *Fixtures) Read(t testing.TB, name string) []byte {
	t.Helper()
	p, ok := f.Files[name]
	if !ok {
		t.Fatalf("no fixture %s", name)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	fixOnce sync.Once
	fix     *Fixtures
	fixErr  error
)

// Fx generates the fixtures once per test binary. It skips the test when
// openssl is missing (fails when CI is set).
func Fx(t testing.TB) *Fixtures {
	t.Helper()
	testpeer.Need(t, "openssl")
	fixOnce.Do(func() { fix, fixErr = generate() })
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	if !fix.HavePGP && os.Getenv("CI") != "" {
		t.Fatal("gpg not installed")
	}
	return fix
}

func run(dir string, env []string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func generate() (*Fixtures, error) {
	// A fixed directory under /tmp: shared by the package's tests and
	// removed by the OS; short enough for gpg-agent's socket path.
	dir, err := os.MkdirTemp("/tmp", "smfx")
	if err != nil {
		return nil, err
	}
	f := &Fixtures{Dir: dir, Files: map[string]string{}}
	ossl := func(args ...string) error { return run(dir, nil, "openssl", args...) }
	ext := `[leaf]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment,keyAgreement
extendedKeyUsage=emailProtection
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=email:copy
`
	if err := os.WriteFile(filepath.Join(dir, "ext.cnf"), []byte(ext), 0o600); err != nil {
		return nil, err
	}
	steps := [][]string{
		{"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
			"-subj", "/CN=Secmail Test CA", "-days", "3650", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"},
		{"req", "-newkey", "rsa:2048", "-nodes", "-keyout", "alice.key", "-out", "alice.csr", "-subj", "/CN=Alice/emailAddress=alice@example.com"},
		{"x509", "-req", "-in", "alice.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "1001", "-days", "365", "-extfile", "ext.cnf", "-extensions", "leaf", "-out", "alice.pem"},
		{"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "bob.key", "-out", "bob.csr", "-subj", "/CN=Bob/emailAddress=Bob@Example.com"},
		{"x509", "-req", "-in", "bob.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "1002", "-days", "365", "-extfile", "ext.cnf", "-extensions", "leaf", "-out", "bob.pem"},
		{"x509", "-in", "alice.pem", "-outform", "DER", "-out", "alice.der"},
		{"pkcs8", "-topk8", "-in", "alice.key", "-v2", "aes-256-cbc", "-passout", "pass:" + Passphrase, "-out", "alice.enc.key"},
		{"pkcs12", "-export", "-in", "bob.pem", "-inkey", "bob.key", "-certfile", "ca.pem", "-passout", "pass:" + Passphrase, "-out", "bob.p12"},
		{"crl2pkcs7", "-nocrl", "-certfile", "alice.pem", "-certfile", "ca.pem", "-out", "bundle.p7b"},
		{"crl2pkcs7", "-nocrl", "-certfile", "alice.pem", "-certfile", "ca.pem", "-outform", "DER", "-out", "bundle.p7b.der"},
		{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "other.key"},
		{"ec", "-in", "bob.key", "-aes256", "-passout", "pass:" + Passphrase, "-out", "bob.legacy.key"},
	}
	for _, s := range steps {
		if err := ossl(s...); err != nil {
			return nil, err
		}
	}
	for _, n := range []string{"ca.pem", "alice.pem", "alice.der", "alice.key", "alice.enc.key", "bob.pem", "bob.key", "bob.p12", "bundle.p7b", "bundle.p7b.der", "other.key", "bob.legacy.key"} {
		f.Files[n] = filepath.Join(dir, n)
	}
	if f.CA, err = testpeer.ReadCert(filepath.Join(dir, "ca.pem")); err != nil {
		return nil, err
	}
	if f.Alice, err = testpeer.ReadCert(filepath.Join(dir, "alice.pem")); err != nil {
		return nil, err
	}
	if f.Bob, err = testpeer.ReadCert(filepath.Join(dir, "bob.pem")); err != nil {
		return nil, err
	}
	keyDER, err := testpeer.ReadPEM(filepath.Join(dir, "ca.key"))
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, fmt.Errorf("ca.key: %w", err)
	}
	f.CAKey = k.(*ecdsa.PrivateKey)
	a, _ := os.ReadFile(filepath.Join(dir, "alice.pem"))
	c, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err := write(f, "chain.pem", append(a, c...)); err != nil {
		return nil, err
	}

	// Go-native: an expired leaf and a CRL from the same CA.
	exp := CertTemplate(666, "expired@example.com")
	exp.NotBefore, exp.NotAfter = time.Now().Add(-400*24*time.Hour), time.Now().Add(-24*time.Hour)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, exp, f.CA, &ek.PublicKey, f.CAKey)
	if err != nil {
		return nil, err
	}
	if err := write(f, "expired.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return nil, err
	}
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: time.Now().Add(24 * time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(666), RevocationTime: time.Now().Add(-time.Hour)}},
	}, f.CA, f.CAKey)
	if err != nil {
		return nil, err
	}
	if err := write(f, "ca.crl", crl); err != nil {
		return nil, err
	}

	if _, err := exec.LookPath("gpg"); err == nil {
		if err := genPGP(f); err != nil {
			return nil, err
		}
		f.HavePGP = true
	}
	return f, nil
}

func genPGP(f *Fixtures) error {
	home, err := os.MkdirTemp("/tmp", "gpg")
	if err != nil {
		return err
	}
	defer func() {
		_ = run(home, []string{"GNUPGHOME=" + home}, "gpgconf", "--kill", "gpg-agent")
		_ = os.RemoveAll(home)
	}()
	env := []string{"GNUPGHOME=" + home}
	// The agent's default S2K calibration makes key generation take
	// seconds to minutes on a busy machine; a fixed low count is fine for
	// throw-away test keys.
	if err := os.WriteFile(filepath.Join(home, "gpg-agent.conf"), []byte("s2k-count 65536\n"), 0o600); err != nil {
		return err
	}
	g := func(args ...string) error {
		return run(home, env, "gpg", append([]string{"--batch", "--pinentry-mode", "loopback", "--passphrase", Passphrase}, args...)...)
	}
	if err := g("--quick-gen-key", "Carol <carol@example.com>", "future-default", "default", "1y"); err != nil {
		return err
	}
	// A domain-alias key as Zammad supports it, unprotected.
	if err := run(home, env, "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", "Helpdesk <*@alias.example>", "future-default", "default", "1y"); err != nil {
		return err
	}
	alias := filepath.Join(f.Dir, "alias.pub.asc")
	if err := g("--armor", "--output", alias, "--export", "*@alias.example"); err != nil {
		return err
	}
	f.Files["alias.pub.asc"] = alias
	pub := filepath.Join(f.Dir, "carol.pub.asc")
	sec := filepath.Join(f.Dir, "carol.sec.asc")
	if err := g("--armor", "--output", pub, "--export", "carol@example.com"); err != nil {
		return err
	}
	if err := g("--armor", "--output", sec, "--export-secret-keys", "carol@example.com"); err != nil {
		return err
	}
	f.Files["carol.pub.asc"], f.Files["carol.sec.asc"] = pub, sec
	cmd := exec.Command("gpg", "--batch", "--with-colons", "--fingerprint", "carol@example.com")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("gpg --fingerprint: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "fpr:") {
			f.CarolFingerprint = strings.ToLower(strings.Split(line, ":")[9])
			break
		}
	}
	if f.CarolFingerprint == "" {
		return fmt.Errorf("gpg: no fingerprint in %q", out)
	}
	return nil
}

func write(f *Fixtures, name string, data []byte) error {
	p := filepath.Join(f.Dir, name)
	f.Files[name] = p
	return os.WriteFile(p, data, 0o600)
}

// CertTemplate returns an S/MIME leaf template for email.
func CertTemplate(serial int64, email string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:   big.NewInt(serial),
		Subject:        pkix.Name{CommonName: email},
		EmailAddresses: []string{email},
		NotBefore:      time.Now().Add(-time.Hour),
		NotAfter:       time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:       x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}
}

// BulkCerts makes n distinct EC leaf certificates (user<i>@bulk.example)
// signed by the fixture CA, in parallel.
func BulkCerts(f *Fixtures, n int) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, n)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if err != nil {
					errs <- err
					return
				}
				tpl := CertTemplate(int64(100000+i), BulkEmail(i))
				der, err := x509.CreateCertificate(rand.Reader, tpl, f.CA, &k.PublicKey, f.CAKey)
				if err == nil {
					out[i], err = x509.ParseCertificate(der)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	return out, nil
}

// BulkEmail is the address of the i-th bulk certificate.
func BulkEmail(i int) string { return fmt.Sprintf("user%d@bulk.example", i) }

// FP is the SHA-256 fingerprint of a certificate.
func FP(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

// RemoveFixtures deletes the generated fixture directory; call it from
// TestMain after m.Run.
func RemoveFixtures() {
	if fix != nil {
		_ = os.RemoveAll(fix.Dir)
	}
}
