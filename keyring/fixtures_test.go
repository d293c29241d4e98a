package keyring

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/secmail/secmail/internal/testpeer"
)

// Test fixtures come from the real openssl and gpg binaries, generated once
// per test binary into a temporary directory.

const (
	testPass    = "s3cret pass"
	testPGPPass = "pgp-secret"
)

type fixtureSet struct {
	dir     string // openssl and gpg outputs
	gnupg   string // GNUPGHOME
	daveFP  string // gpg's fingerprint of dave's key
	daveSub uint64 // key id of dave's encryption subkey, as gpg lists it
	aliasFP string
}

var (
	fixOnce sync.Once
	fix     *fixtureSet
	fixErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fix != nil {
		if fix.gnupg != "" {
			c := exec.Command("gpgconf", "--kill", "gpg-agent")
			c.Env = append(os.Environ(), "GNUPGHOME="+fix.gnupg)
			_ = c.Run()
			os.RemoveAll(fix.gnupg)
		}
		os.RemoveAll(fix.dir)
	}
	os.Exit(code)
}

// needTool skips without the tool, but fails in CI where it must exist.
func needTool(t testing.TB, name string) {
	t.Helper()
	testpeer.Need(t, name)
}

func fixtures(t testing.TB) *fixtureSet {
	t.Helper()
	needTool(t, "openssl")
	needTool(t, "gpg")
	fixOnce.Do(func() { fix, fixErr = makeFixtures() })
	if fixErr != nil {
		t.Fatalf("fixtures: %v", fixErr)
	}
	return fix
}

func (f *fixtureSet) path(name string) string { return filepath.Join(f.dir, name) }

func (f *fixtureSet) read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(f.path(name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type runner struct {
	dir string
	env []string
	err error
}

func (r *runner) run(name string, args ...string) []byte {
	if r.err != nil {
		return nil
	}
	c := exec.Command(name, args...)
	c.Dir = r.dir
	c.Env = append(os.Environ(), r.env...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		r.err = fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func (r *runner) write(name, content string) {
	if r.err == nil {
		r.err = os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o600)
	}
}

func (r *runner) cat(out string, in ...string) {
	var buf bytes.Buffer
	for _, n := range in {
		b, err := os.ReadFile(filepath.Join(r.dir, n))
		if err != nil && r.err == nil {
			r.err = err
		}
		buf.Write(b)
	}
	r.write(out, buf.String())
}

const extConf = `[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[alice_ext]
basicConstraints = CA:FALSE
keyUsage = digitalSignature,keyEncipherment
extendedKeyUsage = emailProtection
subjectAltName = email:Alice@Example.com
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[bob_ext]
basicConstraints = CA:FALSE
keyUsage = digitalSignature,keyAgreement
extendedKeyUsage = emailProtection
subjectAltName = email:bob@example.com
subjectKeyIdentifier = hash
[carol_ext]
basicConstraints = CA:FALSE
subjectAltName = email:carol@example.com
subjectKeyIdentifier = hash
`

const caConf = `[ca]
default_ca = CA_default
[CA_default]
database = index.txt
crlnumber = crlnumber
default_md = sha256
default_crl_days = 30
`

func makeFixtures() (*fixtureSet, error) {
	dir, err := os.MkdirTemp("", "keyring")
	if err != nil {
		return nil, err
	}
	f := &fixtureSet{dir: dir}
	r := &runner{dir: dir}
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"}
	r.write("ext.cnf", extConf)
	r.write("ca.cnf", caConf)
	r.write("index.txt", "")
	r.write("crlnumber", "01\n")

	// Root CA and an intermediate.
	r.run("openssl", append(append([]string{"req", "-x509"}, ec...), "-keyout", "ca.key", "-out", "ca.pem",
		"-subj", "/CN=Keyring Test Root CA", "-days", "30", "-config", "ext.cnf", "-extensions", "ca_ext")...)
	r.run("openssl", append(append([]string{"req", "-new"}, ec...), "-keyout", "inter.key", "-out", "inter.csr",
		"-subj", "/CN=Keyring Test Intermediate")...)
	r.run("openssl", "x509", "-req", "-in", "inter.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "100",
		"-days", "30", "-extfile", "ext.cnf", "-extensions", "ca_ext", "-out", "inter.pem")

	// Alice: RSA, issued by the intermediate, in every key encoding.
	r.run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "alice.key")
	r.run("openssl", "req", "-new", "-key", "alice.key", "-subj", "/CN=Alice/emailAddress=alice@example.com", "-out", "alice.csr")
	r.run("openssl", "x509", "-req", "-in", "alice.csr", "-CA", "inter.pem", "-CAkey", "inter.key", "-set_serial", "4242",
		"-days", "30", "-extfile", "ext.cnf", "-extensions", "alice_ext", "-out", "alice.pem")
	r.run("openssl", "x509", "-in", "alice.pem", "-outform", "DER", "-out", "alice.der")
	r.run("openssl", "rsa", "-in", "alice.key", "-traditional", "-out", "alice-pkcs1.key")
	r.run("openssl", "rsa", "-in", "alice.key", "-aes256", "-traditional", "-passout", "pass:"+testPass, "-out", "alice-legacy.key")
	r.run("openssl", "pkcs8", "-topk8", "-in", "alice.key", "-passout", "pass:"+testPass, "-out", "alice-p8-default.key")
	r.run("openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", "alice.key", "-passout", "pass:"+testPass, "-out", "alice-p8-aes256.key")
	r.run("openssl", "pkcs8", "-topk8", "-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA1", "-in", "alice.key", "-passout", "pass:"+testPass, "-out", "alice-p8-sha1.key")
	r.run("openssl", "pkcs8", "-topk8", "-v2", "des3", "-in", "alice.key", "-passout", "pass:"+testPass, "-out", "alice-p8-des3.key")
	r.run("openssl", "pkcs8", "-topk8", "-scrypt", "-in", "alice.key", "-passout", "pass:"+testPass, "-out", "alice-p8-scrypt.key")
	r.run("openssl", "pkcs8", "-topk8", "-in", "alice.key", "-passout", "pass:"+testPass, "-outform", "DER", "-out", "alice-p8.der")
	r.run("openssl", "pkcs8", "-topk8", "-nocrypt", "-in", "alice.key", "-outform", "DER", "-out", "alice-key.der")
	r.run("openssl", "pkcs8", "-topk8", "-v1", "PBE-SHA1-3DES", "-in", "alice.key", "-passout", "pass:"+testPass, "-out", "alice-p8-v1.key")
	r.cat("chain.pem", "inter.pem", "ca.pem")
	r.run("openssl", "pkcs12", "-export", "-in", "alice.pem", "-inkey", "alice.key", "-certfile", "chain.pem",
		"-passout", "pass:"+testPass, "-out", "alice.p12")
	r.run("openssl", "pkcs12", "-export", "-legacy", "-in", "alice.pem", "-inkey", "alice.key", "-certfile", "inter.pem",
		"-passout", "pass:"+testPass, "-out", "alice-legacy.p12")
	r.run("openssl", "pkcs12", "-export", "-in", "alice.pem", "-inkey", "alice.key", "-passout", "pass:", "-out", "alice-nopass.p12")
	r.run("openssl", "pkcs12", "-export", "-nokeys", "-in", "chain.pem", "-passout", "pass:"+testPass, "-out", "certs-only.p12")

	// Bob: EC P-256 (SEC1), issued by the root, certificate and key in one file.
	r.run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "bob.key")
	r.run("openssl", "req", "-new", "-key", "bob.key", "-subj", "/CN=Bob", "-out", "bob.csr")
	r.run("openssl", "x509", "-req", "-in", "bob.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "7",
		"-days", "30", "-extfile", "ext.cnf", "-extensions", "bob_ext", "-out", "bob.pem")
	r.cat("bob-combined.pem", "bob.pem", "bob.key")

	// Carol: RT's email.pem with a key protected by a passphrase we do not know.
	r.run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "carol.key")
	r.run("openssl", "req", "-new", "-key", "carol.key", "-subj", "/CN=Carol", "-out", "carol.csr")
	r.run("openssl", "x509", "-req", "-in", "carol.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "8",
		"-days", "30", "-extfile", "ext.cnf", "-extensions", "carol_ext", "-out", "carol.pem")
	r.run("openssl", "pkcs8", "-topk8", "-in", "carol.key", "-passout", "pass:unknown-to-us", "-out", "carol-enc.key")
	r.cat("carol-email.pem", "carol.pem", "carol-enc.key")

	// Bundles, trusted-certificate form, CRLs and PKCS#7.
	r.cat("bundle.pem", "ca.pem", "inter.pem", "bob.pem")
	r.run("openssl", "x509", "-in", "ca.pem", "-trustout", "-addtrust", "emailProtection", "-out", "ca-trusted.pem")
	r.run("openssl", "ca", "-config", "ca.cnf", "-gencrl", "-keyfile", "ca.key", "-cert", "ca.pem", "-out", "ca.crl")
	r.run("openssl", "crl", "-in", "ca.crl", "-outform", "DER", "-out", "ca-crl.der")
	r.run("openssl", "crl2pkcs7", "-nocrl", "-certfile", "chain.pem", "-out", "chain.p7b")
	r.run("openssl", "crl2pkcs7", "-nocrl", "-certfile", "chain.pem", "-outform", "DER", "-out", "chain.p7c")
	r.run("openssl", "crl2pkcs7", "-in", "ca.crl", "-certfile", "ca.pem", "-outform", "DER", "-out", "ca-with-crl.p7b")
	// An S/MIME signature as Outlook or openssl -stream writes it: BER
	// with indefinite lengths, carrying the signer and intermediate.
	r.write("msg.txt", "hello\n")
	r.run("openssl", "cms", "-sign", "-stream", "-binary", "-in", "msg.txt", "-signer", "alice.pem", "-inkey", "alice.key",
		"-certfile", "inter.pem", "-outform", "DER", "-out", "alice-signed.p7s")
	r.run("openssl", "cms", "-sign", "-stream", "-binary", "-in", "msg.txt", "-signer", "alice.pem", "-inkey", "alice.key",
		"-certfile", "inter.pem", "-outform", "PEM", "-out", "alice-signed.pem")
	if r.err != nil {
		return f, r.err
	}

	// OpenPGP: Dave (ed25519 + cv25519 subkey, passphrase-protected) and a
	// domain-alias key, both from a real gpg.
	gh, err := os.MkdirTemp("/tmp", "gpg")
	if err != nil {
		return f, err
	}
	f.gnupg = gh
	g := &runner{dir: dir, env: []string{"GNUPGHOME=" + gh}}
	gpg := func(args ...string) []byte {
		return g.run("gpg", append([]string{"--batch", "--yes", "--no-tty", "--pinentry-mode", "loopback"}, args...)...)
	}
	gpg("--passphrase", testPGPPass, "--quick-gen-key", "Dave <Dave@Example.com>", "future-default", "default", "never")
	gpg("--passphrase", "", "--quick-gen-key", "<*@alias.example>", "future-default", "default", "never")
	gpg("--armor", "--output", "dave.asc", "--export", "dave@example.com")
	gpg("--output", "dave.gpg", "--export", "dave@example.com")
	gpg("--passphrase", testPGPPass, "--armor", "--output", "dave-secret.asc", "--export-secret-keys", "dave@example.com")
	gpg("--passphrase", testPGPPass, "--output", "dave-secret.gpg", "--export-secret-keys", "dave@example.com")
	gpg("--armor", "--output", "alias.asc", "--export", "*@alias.example")
	gpg("--armor", "--output", "both.asc", "--export")
	list := gpg("--with-colons", "--list-keys", "dave@example.com")
	if g.err != nil {
		return f, g.err
	}
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		fs := strings.Split(sc.Text(), ":")
		switch {
		case fs[0] == "fpr" && f.daveFP == "":
			f.daveFP = fs[9]
		case fs[0] == "sub" && f.daveSub == 0:
			f.daveSub, err = strconv.ParseUint(fs[4], 16, 64)
			if err != nil {
				return f, err
			}
		}
	}
	if f.daveFP == "" || f.daveSub == 0 {
		return f, fmt.Errorf("gpg --list-keys: no fingerprint or subkey in %q", list)
	}
	list = gpg("--with-colons", "--list-keys", "*@alias.example")
	for _, line := range strings.Split(string(list), "\n") {
		if fs := strings.Split(line, ":"); fs[0] == "fpr" {
			f.aliasFP = fs[9]
			break
		}
	}
	return f, g.err
}
