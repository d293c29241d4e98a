package pgp

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/secmail/secmail/internal/testpeer"
)

// The interop fixtures are made by the real gpg once per test binary, in a
// short GNUPGHOME under /tmp (gpg-agent's socket path is limited to 108
// bytes).

const lockedPass = "correct horse"

// gpgHome is a GNUPGHOME with a helper to run gpg in it.
type gpgHome struct {
	dir string
}

func newGPGHome() (*gpgHome, error) {
	dir, err := os.MkdirTemp("/tmp", "gpg")
	if err != nil {
		return nil, err
	}
	// A low S2K count keeps the passphrase-protected fixture key fast to
	// make and export (the agent otherwise calibrates to ~100 ms per use,
	// which multiplies on a loaded machine).
	if err := os.WriteFile(filepath.Join(dir, "gpg-agent.conf"), []byte("s2k-count 65536\n"), 0o600); err != nil {
		return nil, err
	}
	return &gpgHome{dir: dir}, nil
}

func (g *gpgHome) close() {
	cmd := exec.Command("gpgconf", "--kill", "gpg-agent")
	cmd.Env = g.env()
	_ = cmd.Run()
	_ = os.RemoveAll(g.dir)
}

func (g *gpgHome) env() []string {
	return append(os.Environ(), "GNUPGHOME="+g.dir, "LC_ALL=C", "LANG=C")
}

// run runs gpg with stdin and returns stdout; stderr is in the error.
func (g *gpgHome) run(stdin []byte, args ...string) ([]byte, error) {
	out, _, err := g.run2(stdin, args...)
	return out, err
}

func (g *gpgHome) run2(stdin []byte, args ...string) ([]byte, []byte, error) {
	base := []string{"--batch", "--no-tty", "--yes", "--pinentry-mode", "loopback", "--trust-model", "always"}
	cmd := exec.Command("gpg", append(base, args...)...)
	cmd.Env = g.env()
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), stderr.Bytes(), fmt.Errorf("gpg %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), stderr.Bytes(), nil
}

// genKey makes a key from a gpg parameter block and returns its fingerprint.
func (g *gpgHome) genKey(params string, extra ...string) (string, error) {
	args := append(extra, "--gen-key")
	if _, err := g.run([]byte(params+"\n%commit\n"), args...); err != nil {
		return "", err
	}
	email := ""
	for _, l := range strings.Split(params, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Name-Email:"); ok {
			email = strings.TrimSpace(v)
		}
	}
	return g.fpr(email)
}

func (g *gpgHome) fpr(email string) (string, error) {
	out, err := g.run(nil, "--with-colons", "--list-keys", email)
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "fpr:") {
			return strings.Split(l, ":")[9], nil
		}
	}
	return "", fmt.Errorf("no fingerprint for %s", email)
}

func readKeys(b []byte) (openpgp.EntityList, error) {
	return openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
}

// memKeys is an in-memory Keys: our secret keys and a public key store.
type memKeys struct {
	secret openpgp.EntityList
	public openpgp.EntityList
	fail   error
}

func (m *memKeys) PGPSecretKeys(ctx context.Context) (openpgp.EntityList, error) {
	return m.secret, nil
}

func (m *memKeys) PGPKeysByID(ctx context.Context, id uint64) (openpgp.EntityList, error) {
	if m.fail != nil {
		return nil, m.fail
	}
	var out openpgp.EntityList
	seen := map[*openpgp.Entity]bool{}
	for _, k := range m.public.KeysById(id) {
		if !seen[k.Entity] {
			seen[k.Entity] = true
			out = append(out, k.Entity)
		}
	}
	return out, nil
}

// fixtures holds gpg-made keys and messages.
type fixtures struct {
	g *gpgHome
	// e-mail → fingerprint
	fpr map[string]string
	// our store: secret keys of rsa, cv, p256, locked; public keys of all
	// but the stranger
	keys *memKeys
	// secret entities by e-mail (unlocked ones), public entities by e-mail
	sec map[string]*openpgp.Entity
	pub map[string]*openpgp.Entity
	// gpg outputs by name
	msg map[string][]byte
	// canonical signed text for the detached signatures
	canon []byte
	// clearsigned text
	clearText string
	// time the expired key expired
	expiredAt time.Time

	mu    sync.Mutex
	homes map[string]*gpgHome // per-recipient GNUPGHOMEs
}

func (f *fixtures) close() {
	for _, h := range f.homes {
		h.close()
	}
	f.g.close()
}

var (
	fxOnce sync.Once
	fx     *fixtures
	fxErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fx != nil {
		fx.close()
	}
	os.Exit(code)
}

// getFixtures returns the shared fixtures, skipping (or failing under CI)
// when gpg is not installed.
func getFixtures(tb testing.TB) *fixtures {
	tb.Helper()
	testpeer.Need(tb, "gpg")
	fxOnce.Do(func() { fx, fxErr = makeFixtures() })
	if fxErr != nil {
		tb.Fatalf("making gpg fixtures: %v", fxErr)
	}
	return fx
}

func makeFixtures() (*fixtures, error) {
	g, err := newGPGHome()
	if err != nil {
		return nil, err
	}
	f := &fixtures{g: g, fpr: map[string]string{}, sec: map[string]*openpgp.Entity{}, pub: map[string]*openpgp.Entity{}, msg: map[string][]byte{}, homes: map[string]*gpgHome{}}
	fail := func(err error) (*fixtures, error) {
		g.close()
		return nil, err
	}
	now := time.Now()
	t0 := now.Add(-10 * 24 * time.Hour)
	faked := func(t time.Time) string { return "--faked-system-time=" + strconv.FormatInt(t.Unix(), 10) }

	specs := []struct {
		email, params string
		extra         []string
	}{
		{"rsa@example.org", "Key-Type: RSA\nKey-Length: 2048\nKey-Usage: sign\nSubkey-Type: RSA\nSubkey-Length: 2048\nSubkey-Usage: encrypt\nName-Real: RSA\nName-Email: rsa@example.org\n%no-protection", nil},
		{"cv@example.org", "Key-Type: EDDSA\nKey-Curve: ed25519\nSubkey-Type: ECDH\nSubkey-Curve: cv25519\nName-Real: Curve\nName-Email: cv@example.org\n%no-protection", nil},
		{"p256@example.org", "Key-Type: ECDSA\nKey-Curve: nistp256\nSubkey-Type: ECDH\nSubkey-Curve: nistp256\nName-Real: P256\nName-Email: p256@example.org\n%no-protection", nil},
		{"locked@example.org", "Key-Type: EDDSA\nKey-Curve: ed25519\nSubkey-Type: ECDH\nSubkey-Curve: cv25519\nName-Real: Locked\nName-Email: locked@example.org\nPassphrase: " + lockedPass, nil},
		{"alice@example.org", "Key-Type: EDDSA\nKey-Curve: ed25519\nSubkey-Type: ECDH\nSubkey-Curve: cv25519\nName-Real: Alice\nName-Email: alice@example.org\n%no-protection", nil},
		{"stranger@example.org", "Key-Type: EDDSA\nKey-Curve: ed25519\nSubkey-Type: ECDH\nSubkey-Curve: cv25519\nName-Real: Stranger\nName-Email: stranger@example.org\n%no-protection", nil},
		{"rev@example.org", "Key-Type: EDDSA\nKey-Curve: ed25519\nSubkey-Type: ECDH\nSubkey-Curve: cv25519\nName-Real: Revoked\nName-Email: rev@example.org\n%no-protection", nil},
		// Created ten days ago without expiry; it gets an expiry later.
		{"old@example.org", "Key-Type: EDDSA\nKey-Curve: ed25519\nSubkey-Type: ECDH\nSubkey-Curve: cv25519\nName-Real: Old\nName-Email: old@example.org\n%no-protection", []string{faked(t0)}},
	}
	for _, s := range specs {
		fp, err := g.genKey(s.params, s.extra...)
		if err != nil {
			return fail(err)
		}
		f.fpr[s.email] = fp
	}

	// Signed data: a canonical (CRLF) MIME entity with UTF-8 8-bit text and
	// trailing spaces.
	f.canon = []byte("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln, İstanbul'dan selamlar.  \r\n-- \r\nAlice\r\n")
	f.clearText = "Grüße aus Köln — İstanbul'dan selamlar: ğüşöçı\n- a line with a leading dash\n"
	plain := []byte("Subject: secret\r\n\r\nThe launch code is 1234. Ümlaut.\r\n")
	f.msg["plain"] = plain

	canonFile := filepath.Join(g.dir, "canon.txt")
	if err := os.WriteFile(canonFile, f.canon, 0o600); err != nil {
		return fail(err)
	}
	type job struct {
		name  string
		stdin []byte
		args  []string
	}
	enc := func(rs ...string) []string {
		var a []string
		for _, r := range rs {
			a = append(a, "-r", r)
		}
		return a
	}
	jobs := []job{
		{"enc-rsa", plain, append([]string{"--armor", "-e"}, enc("rsa@example.org")...)},
		{"enc-cv", plain, append([]string{"--armor", "-e"}, enc("cv@example.org")...)},
		{"enc-p256", plain, append([]string{"--armor", "-e"}, enc("p256@example.org")...)},
		{"enc-multi", plain, append([]string{"--armor", "-e"}, enc("stranger@example.org", "rsa@example.org", "cv@example.org", "p256@example.org")...)},
		{"enc-bin", plain, append([]string{"-e"}, enc("cv@example.org")...)},
		{"enc-hidden", plain, append([]string{"--armor", "-e", "--throw-keyids"}, enc("p256@example.org")...)},
		{"enc-stranger", plain, append([]string{"--armor", "-e"}, enc("stranger@example.org")...)},
		{"enc-locked", plain, append([]string{"--armor", "-e"}, enc("locked@example.org")...)},
		{"enc-aes128", plain, append([]string{"--armor", "-e", "--cipher-algo", "AES128"}, enc("rsa@example.org")...)},
		{"se-alice-cv", plain, append([]string{"--armor", "-se", "-u", "alice@example.org"}, enc("cv@example.org")...)},
		{"se-alice-rsa-bin", plain, append([]string{"-se", "-u", "alice@example.org"}, enc("rsa@example.org")...)},
		{"se-stranger-cv", plain, append([]string{"--armor", "-se", "-u", "stranger@example.org"}, enc("cv@example.org")...)},
		{"sign-alice", plain, []string{"--armor", "--sign", "-u", "alice@example.org"}},
		{"det-alice", f.canon, []string{"--armor", "--detach-sign", "-u", "alice@example.org"}},
		{"det-alice-text", f.canon, []string{"--armor", "--textmode", "--detach-sign", "-u", "alice@example.org"}},
		{"det-rsa", f.canon, []string{"--armor", "--detach-sign", "-u", "rsa@example.org"}},
		{"det-p256", f.canon, []string{"--detach-sign", "-u", "p256@example.org"}},
		{"det-sha1", f.canon, []string{"--armor", "--detach-sign", "--digest-algo", "SHA1", "-u", "rsa@example.org"}},
		{"det-stranger", f.canon, []string{"--armor", "--detach-sign", "-u", "stranger@example.org"}},
		{"det-rev", f.canon, []string{"--armor", "--detach-sign", "-u", "rev@example.org"}},
		{"clear-alice", []byte(f.clearText), []string{"--clearsign", "-u", "alice@example.org"}},
		{"clear-p256", []byte(f.clearText), []string{"--clearsign", "-u", "p256@example.org"}},
		{"clear-stranger", []byte(f.clearText), []string{"--clearsign", "-u", "stranger@example.org"}},
		{"sign-alice-bin", plain, []string{"--sign", "-z", "0", "-u", "alice@example.org"}},
		{"se-rev", plain, append([]string{"--armor", "-se", "-u", "rev@example.org"}, enc("cv@example.org")...)},
		// Made by the old key now, before it gets its expiry below.
		{"det-old-after", f.canon, []string{"--armor", "--detach-sign", "-u", "old@example.org"}},
		{"se-old-after", plain, append([]string{"--armor", "-se", "-u", "old@example.org"}, enc("cv@example.org")...)},
	}
	for _, j := range jobs {
		out, err := g.run(j.stdin, j.args...)
		if err != nil {
			return fail(err)
		}
		f.msg[j.name] = out
	}
	// A signature made by the old key while it was valid (one hour after
	// creation), then an expiry of one day set two hours after creation:
	// det-old-after was made nine days after that expiry.
	out, err := g.run(f.canon, faked(t0.Add(time.Hour)), "--armor", "--detach-sign", "-u", "old@example.org")
	if err != nil {
		return fail(err)
	}
	f.msg["det-old-before"] = out
	if _, err := g.run(nil, faked(t0.Add(2*time.Hour)), "--passphrase", "", "--quick-set-expire", f.fpr["old@example.org"], "1d"); err != nil {
		return fail(err)
	}
	f.expiredAt = t0.Add(24 * time.Hour)

	// Revoke rev@ with the revocation certificate gpg wrote at creation
	// (reason "no reason": a hard revocation).
	rc, err := os.ReadFile(filepath.Join(g.dir, "openpgp-revocs.d", f.fpr["rev@example.org"]+".rev"))
	if err != nil {
		return fail(err)
	}
	rc = bytes.Replace(rc, []byte(":-----BEGIN PGP PUBLIC KEY BLOCK-----"), []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----"), 1)
	if _, err := g.run(rc, "--import"); err != nil {
		return fail(err)
	}

	// Load keys as the store would.
	f.keys = &memKeys{}
	for email := range f.fpr {
		pubArm, err := g.run(nil, "--armor", "--export", email)
		if err != nil {
			return fail(err)
		}
		el, err := readKeys(pubArm)
		if err != nil || len(el) != 1 {
			return fail(fmt.Errorf("reading public key of %s: %v (%d)", email, err, len(el)))
		}
		f.pub[email] = el[0]
		if email != "stranger@example.org" {
			f.keys.public = append(f.keys.public, el[0])
		}
		pass := ""
		if email == "locked@example.org" {
			pass = lockedPass
		}
		secArm, err := g.run(nil, "--passphrase", pass, "--armor", "--export-secret-keys", email)
		if err != nil {
			return fail(err)
		}
		sl, err := readKeys(secArm)
		if err != nil || len(sl) != 1 {
			return fail(fmt.Errorf("reading secret key of %s: %v", email, err))
		}
		f.sec[email] = sl[0]
		switch email {
		case "rsa@example.org", "cv@example.org", "p256@example.org", "locked@example.org":
			f.keys.secret = append(f.keys.secret, sl[0])
		}
	}
	return f, nil
}

// gpgDecryptAs decrypts msg in a fresh GNUPGHOME holding only the secret
// key of email (and the public keys of signers), so that each recipient is
// proven able to decrypt on its own.
func (f *fixtures) gpgDecryptAs(email string, msg []byte) (plain []byte, status string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.homes[email]
	if h == nil {
		if h, err = f.recipientHome(email); err != nil {
			return nil, "", err
		}
		f.homes[email] = h
	}
	out, stderr, err := h.run2(msg, "--passphrase", "", "--status-fd", "2", "--decrypt")
	return out, string(stderr), err
}

func (f *fixtures) recipientHome(email string) (*gpgHome, error) {
	h, err := newGPGHome()
	if err != nil {
		return nil, err
	}
	sec, err := f.g.run(nil, "--passphrase", "", "--armor", "--export-secret-keys", email)
	if err == nil {
		_, err = h.run(sec, "--passphrase", "", "--import")
	}
	var pub []byte
	if err == nil {
		pub, err = f.g.run(nil, "--armor", "--export", "cv@example.org", "rsa@example.org", "p256@example.org")
	}
	if err == nil {
		_, err = h.run(pub, "--import")
	}
	if err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}
