package handlers

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
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

	"github.com/secmail/secmail/demopki"
	"github.com/secmail/secmail/internal/testpeer"
	"github.com/secmail/secmail/keybackend"
	"github.com/secmail/secmail/keyring"
)

// world is the shared interop fixture: a PKI made in Go, our keys, the
// correspondents' keys, and helpers that drive the real openssl and gpg.
// Messages are produced by those tools, never by secmail itself.
type world struct {
	dir     string // keyring directory
	tmp     string // scratch
	gnupg   string // GNUPGHOME of the correspondents (gpg)
	pki     *demopki.PKI
	foreign *demopki.PKI // not trusted

	ours, oursEC, alice, bob, carol, expired, future, revoked, stranger, strangerElse demopki.Identity
	paths                                                                             map[string][2]string // name -> cert, key

	pgpAliceFpr, pgpStrangerFpr, pgpOursFpr string
}

var (
	worldOnce sync.Once
	theWorld  *world
	worldErr  error
)

func need(t testing.TB, tools ...string) {
	t.Helper()
	testpeer.Need(t, tools...)
}

func getWorld(t testing.TB) *world {
	t.Helper()
	need(t, "openssl", "gpg")
	worldOnce.Do(func() { theWorld, worldErr = buildWorld() })
	if worldErr != nil {
		t.Fatalf("building fixtures: %v", worldErr)
	}
	return theWorld
}

func buildWorld() (*world, error) {
	base, err := os.MkdirTemp("/tmp", "smw")
	if err != nil {
		return nil, err
	}
	w := &world{dir: filepath.Join(base, "kr"), tmp: filepath.Join(base, "t"), gnupg: filepath.Join(base, "g"), paths: map[string][2]string{}}
	for _, d := range []string{w.dir, w.tmp, w.gnupg} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if w.pki, err = demopki.New("Test Trust"); err != nil {
		return nil, err
	}
	if w.foreign, err = demopki.New("Untrusted"); err != nil {
		return nil, err
	}
	leaf := func(p *demopki.PKI, email string, o demopki.LeafOptions) demopki.Identity {
		if err != nil {
			return demopki.Identity{}
		}
		var id demopki.Identity
		id, err = p.Leaf(email, o)
		return id
	}
	now := time.Now()
	w.ours = leaf(w.pki, "support@helpdesk.example", demopki.LeafOptions{})
	w.oursEC = leaf(w.pki, "support@helpdesk.example", demopki.LeafOptions{Type: demopki.P256})
	w.alice = leaf(w.pki, "alice@customer.example", demopki.LeafOptions{})
	w.bob = leaf(w.pki, "bob@customer.example", demopki.LeafOptions{Type: demopki.P256})
	w.carol = leaf(w.pki, "carol@customer.example", demopki.LeafOptions{})
	w.expired = leaf(w.pki, "old@customer.example", demopki.LeafOptions{NotBefore: now.AddDate(-2, 0, 0), NotAfter: now.AddDate(0, 0, -1)})
	w.future = leaf(w.pki, "early@customer.example", demopki.LeafOptions{NotBefore: now.AddDate(0, 1, 0)})
	w.revoked = leaf(w.pki, "gone@customer.example", demopki.LeafOptions{})
	w.stranger = leaf(w.foreign, "alice@customer.example", demopki.LeafOptions{})
	w.strangerElse = leaf(w.foreign, "stranger@customer.example", demopki.LeafOptions{})
	if err != nil {
		return nil, err
	}
	// The keyring: trust anchors, our keys, and the certificates of
	// correspondents we know (carol is deliberately unknown).
	writePEM := func(name string, blocks ...[]byte) {
		if err == nil {
			err = os.WriteFile(filepath.Join(w.dir, name), bytes.Join(blocks, nil), 0o600)
		}
	}
	rootPEM := demopki.Identity{Cert: w.pki.Root.Cert}.CertPEM()
	interPEM := w.pki.Intermediate.CertPEM()
	writePEM("root.pem", rootPEM)
	writePEM("intermediate.pem", interPEM)
	oursKey, _ := w.ours.KeyPEM()
	writePEM("support.pem", w.ours.CertPEM(), oursKey)
	ecKey, _ := w.oursEC.KeyPEM()
	writePEM("support-ec.pem", w.oursEC.CertPEM(), ecKey)
	writePEM("alice.crt", w.alice.CertPEM())
	writePEM("bob.crt", w.bob.CertPEM())
	// Recipients whose certificates are unusable, for outbound and preflight.
	writePEM("old.crt", w.expired.CertPEM())
	writePEM("early.crt", w.future.CertPEM())
	writePEM("gone.crt", w.revoked.CertPEM())
	writePEM("stranger.crt", w.strangerElse.CertPEM())
	if err != nil {
		return nil, err
	}
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:     big.NewInt(1),
		ThisUpdate: now.Add(-time.Hour),
		NextUpdate: now.AddDate(0, 1, 0),
		RevokedCertificateEntries: []x509.RevocationListEntry{
			{SerialNumber: w.revoked.Cert.SerialNumber, RevocationTime: now.Add(-time.Hour)},
		},
	}, w.pki.Intermediate.Cert, w.pki.Intermediate.Key)
	if err != nil {
		return nil, err
	}
	writePEM("intermediate.crl", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl}))

	// Files the tools sign and encrypt with.
	for name, id := range map[string]demopki.Identity{
		"ours": w.ours, "oursEC": w.oursEC, "alice": w.alice, "bob": w.bob, "carol": w.carol,
		"expired": w.expired, "future": w.future, "revoked": w.revoked, "stranger": w.stranger,
	} {
		k, kerr := id.KeyPEM()
		if kerr != nil {
			return nil, kerr
		}
		c := filepath.Join(w.tmp, name+".crt")
		kp := filepath.Join(w.tmp, name+".key")
		if err := os.WriteFile(c, id.CertPEM(), 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(kp, k, 0o600); err != nil {
			return nil, err
		}
		w.paths[name] = [2]string{c, kp}
	}
	if err := os.WriteFile(filepath.Join(w.tmp, "inter.crt"), interPEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(w.tmp, "foreign-inter.crt"), w.foreign.Intermediate.CertPEM(), 0o600); err != nil {
		return nil, err
	}
	// A passphrase-protected copy of our RSA key for the wrong-passphrase
	// case lives in its own keyring directory.
	locked := filepath.Join(base, "locked")
	if err := os.MkdirAll(locked, 0o700); err != nil {
		return nil, err
	}
	if _, err := w.tool(nil, "openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-passout", "pass:correct horse",
		"-in", w.paths["ours"][1], "-out", filepath.Join(locked, "support.key")); err != nil {
		return nil, err
	}
	for _, f := range []string{"root.pem", "intermediate.pem"} {
		b, _ := os.ReadFile(filepath.Join(w.dir, f))
		_ = os.WriteFile(filepath.Join(locked, f), b, 0o600)
	}
	// One file with certificate and protected key, as Request Tracker keeps
	// them (email.pem): the importer pairs a locked key with the
	// certificate beside it.
	lockedKey, err := os.ReadFile(filepath.Join(locked, "support.key"))
	if err != nil {
		return nil, err
	}
	_ = os.Remove(filepath.Join(locked, "support.key"))
	if err := os.WriteFile(filepath.Join(locked, "support.pem"), append(w.ours.CertPEM(), lockedKey...), 0o600); err != nil {
		return nil, err
	}

	if err := w.gpgSetup(); err != nil {
		return nil, err
	}
	return w, nil
}

// tool runs an external program with stdin and returns its stdout.
func (w *world) tool(stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+w.gnupg, "LC_ALL=C")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes(), nil
}

func (w *world) gpg(stdin []byte, args ...string) ([]byte, error) {
	return w.tool(stdin, "gpg", append([]string{"--batch", "--yes", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "", "--trust-model", "always"}, args...)...)
}

// gpgSetup makes the correspondents' keys and ours with gpg, and exports
// what belongs in our keyring.
func (w *world) gpgSetup() error {
	for _, uid := range []string{"Alice <alice@customer.example>", "Stranger <stranger@customer.example>", "Support <support@helpdesk.example>"} {
		if _, err := w.gpg(nil, "--quick-gen-key", uid, "future-default", "default", "1y"); err != nil {
			return err
		}
	}
	fpr := func(email string) (string, error) {
		out, err := w.gpg(nil, "--with-colons", "--list-keys", email)
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "fpr:") {
				return strings.Split(line, ":")[9], nil
			}
		}
		return "", fmt.Errorf("no fingerprint for %s", email)
	}
	var err error
	if w.pgpAliceFpr, err = fpr("alice@customer.example"); err != nil {
		return err
	}
	if w.pgpStrangerFpr, err = fpr("stranger@customer.example"); err != nil {
		return err
	}
	if w.pgpOursFpr, err = fpr("support@helpdesk.example"); err != nil {
		return err
	}
	pub, err := w.gpg(nil, "--armor", "--export", w.pgpAliceFpr)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(w.dir, "alice.asc"), pub, 0o600); err != nil {
		return err
	}
	sec, err := w.gpg(nil, "--armor", "--export-secret-keys", w.pgpOursFpr)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(w.dir, "support-secret.asc"), sec, 0o600)
}

// keyring loads the keyring directory as the offline commands do.
func (w *world) keyring(t testing.TB, dir string, pass ...string) *keyring.Keyring {
	t.Helper()
	kr, err := keyring.LoadDir(dir, keyring.Options{Passphrases: pass, LoadKey: testBackend(t).Load})
	if err != nil {
		t.Fatalf("LoadDir(%s): %v", dir, err)
	}
	return kr
}

// cms runs `openssl cms` with args, reading in.
func (w *world) cms(t testing.TB, in []byte, args ...string) []byte {
	t.Helper()
	out, err := w.tool(in, "openssl", append([]string{"cms"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (w *world) cert(name string) string { return w.paths[name][0] }
func (w *world) key(name string) string  { return w.paths[name][1] }

var bg = context.Background()

var (
	backendOnce sync.Once
	backend     keybackend.Backend
	backendErr  error
)

// testConfig is DefaultConfig with the test backend's signature verifier
// and AES-CBC decrypter: OpenSSL's with SECMAIL_TEST_KEY_BACKEND=openssl,
// else none (Go's).
func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	be := testBackend(t)
	cfg.Verifier, cfg.CBC = keybackend.Offload(be)
	return cfg
}

// testBackend is the private-key backend the suites run against:
// SECMAIL_TEST_KEY_BACKEND=openssl (with -tags openssl) runs every interop
// case through OpenSSL's libcrypto; the default is Go's crypto.
func testBackend(t testing.TB) keybackend.Backend {
	backendOnce.Do(func() {
		backend, backendErr = keybackend.Open(os.Getenv("SECMAIL_TEST_KEY_BACKEND"), keybackend.Config{})
	})
	if backendErr != nil {
		t.Fatalf("key backend: %v", backendErr)
	}
	return backend
}
