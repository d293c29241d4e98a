package keybackend_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/secmail/secmail/cms"
	"github.com/secmail/secmail/keybackend"
	"github.com/secmail/secmail/keyring"
	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/reason"
)

// world is an openssl-made PKI: an EC CA, an RSA-2048 and an EC P-256
// S/MIME identity in a keyring directory, plus an identity whose key is
// not in the keyring (wrong-key cases).
type world struct {
	dir     string // scratch
	keyring string // keyring.LoadDir input
	ring    *keyring.Keyring
	ca      string // CA certificate path
	certs   map[string]string
	keys    map[string]string
}

var (
	worldOnce sync.Once
	theWorld  *world
	worldErr  error
)

func needOpenSSL(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal("openssl binary missing")
		}
		tb.Skip("openssl binary missing")
	}
}

func openssl(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("openssl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

func getWorld(tb testing.TB) *world {
	tb.Helper()
	needOpenSSL(tb)
	worldOnce.Do(func() { theWorld, worldErr = makeWorld(filepath.Join(fx.tmp, "world")) })
	if worldErr != nil {
		tb.Fatal(worldErr)
	}
	return theWorld
}

func makeWorld(dir string) (*world, error) {
	w := &world{dir: dir, keyring: filepath.Join(dir, "keyring"), certs: map[string]string{}, keys: map[string]string{}}
	if err := os.MkdirAll(w.keyring, 0o700); err != nil {
		return nil, err
	}
	run := func(args ...string) error { _, err := openssl(dir, args...); return err }
	ext := filepath.Join(dir, "ext.cnf")
	if err := os.WriteFile(ext, []byte(`[ca]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
[rsa]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=emailProtection
subjectAltName=email:rsa@example.org
[ec]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=emailProtection
subjectAltName=email:ec@example.org
[stranger]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=emailProtection
subjectAltName=email:stranger@example.org
`), 0o600); err != nil {
		return nil, err
	}
	w.ca = filepath.Join(dir, "ca.pem")
	steps := [][]string{
		{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ca.key"},
		{"req", "-new", "-x509", "-key", "ca.key", "-subj", "/CN=Test CA", "-days", "30", "-extensions", "ca", "-config", ext, "-out", "ca.pem"},
	}
	for _, id := range []string{"rsa", "ec", "stranger"} {
		gen := []string{"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", id + ".key"}
		if id == "ec" {
			gen = []string{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", id + ".key"}
		}
		steps = append(steps, gen,
			[]string{"req", "-new", "-key", id + ".key", "-subj", "/CN=" + id, "-config", ext, "-out", id + ".csr"},
			[]string{"x509", "-req", "-in", id + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "30", "-extfile", ext, "-extensions", id, "-out", id + ".pem"})
		w.certs[id] = filepath.Join(dir, id+".pem")
		w.keys[id] = filepath.Join(dir, id+".key")
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return nil, err
		}
	}
	// The keyring: the CA, and certificate + key per identity in one PEM
	// file (RT's layout), except the stranger.
	cp := func(dst string, srcs ...string) error {
		var b []byte
		for _, s := range srcs {
			d, err := os.ReadFile(s)
			if err != nil {
				return err
			}
			b = append(b, d...)
		}
		return os.WriteFile(filepath.Join(w.keyring, dst), b, 0o600)
	}
	if err := cp("ca.pem", w.ca); err != nil {
		return nil, err
	}
	for _, id := range []string{"rsa", "ec"} {
		if err := cp(id+"@example.org.pem", w.certs[id], w.keys[id]); err != nil {
			return nil, err
		}
	}
	var err error
	if w.ring, err = keyring.LoadDir(w.keyring, keyring.Options{}); err != nil {
		return nil, err
	}
	return w, nil
}

// encrypt runs openssl cms -encrypt and returns DER.
func (w *world) encrypt(tb testing.TB, plain []byte, args ...string) []byte {
	tb.Helper()
	d := tb.TempDir()
	in, out := filepath.Join(d, "in"), filepath.Join(d, "out")
	os.WriteFile(in, plain, 0o600)
	if _, err := openssl(d, append([]string{"cms", "-encrypt", "-binary", "-in", in, "-outform", "DER", "-out", out}, args...)...); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// backendKeys returns the keyring's keys with their private keys loaded
// into b.
func (w *world) backendKeys(tb testing.TB, b keybackend.Backend) []keys.SMIMEKey {
	tb.Helper()
	ks, err := w.ring.SMIMEKeys(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	if len(ks) != 2 {
		tb.Fatalf("keyring has %d keys, want 2", len(ks))
	}
	out := make([]keys.SMIMEKey, len(ks))
	for i, k := range ks {
		k.Key = load(tb, b, k.Key)
		out[i] = k
	}
	return out
}

func (w *world) key(tb testing.TB, ks []keys.SMIMEKey, email string) keys.SMIMEKey {
	for _, k := range ks {
		if keys.AddressMatches(keys.CertEmails(k.Cert), email) {
			return k
		}
	}
	tb.Fatalf("no key for %s", email)
	return keys.SMIMEKey{}
}

// TestInteropOpenSSL decrypts openssl cms -encrypt output and has openssl
// cms -verify check our signatures, with the keyring's keys in every
// backend; outcomes (plaintext, or reason code) must be the same for all.
func TestInteropOpenSSL(t *testing.T) {
	w := getWorld(t)
	plain := bytes.Repeat([]byte("Hello from the helpdesk.\r\n"), 40)
	msgs := []struct {
		name string
		der  []byte
		want reason.Code // "" = decrypts to plain
	}{
		{"rsa-pkcs1v15-aes256cbc", w.encrypt(t, plain, "-aes256", "-recip", w.certs["rsa"]), ""},
		{"rsa-oaep-sha256-aes128gcm", w.encrypt(t, plain, "-aes-128-gcm", "-recip", w.certs["rsa"], "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"), ""},
		{"rsa-oaep-sha1", w.encrypt(t, plain, "-aes256", "-recip", w.certs["rsa"], "-keyopt", "rsa_padding_mode:oaep"), ""},
		{"ecdh-p256", w.encrypt(t, plain, "-aes256", "-recip", w.certs["ec"]), ""},
		{"two-recipients", w.encrypt(t, plain, "-aes256", w.certs["stranger"], w.certs["ec"]), ""},
		{"wrong-key", w.encrypt(t, plain, "-aes256", "-recip", w.certs["stranger"]), reason.NoPrivateKey},
	}
	truncated := msgs[0].der[:len(msgs[0].der)/2]
	msgs = append(msgs, struct {
		name string
		der  []byte
		want reason.Code
	}{"malformed", truncated, reason.Malformed})
	// A PKCS#1 v1.5 recipient whose encrypted key was corrupted: implicit
	// rejection yields a random CEK, so the content cannot decrypt; the
	// outcome must be the same code everywhere (never an RSA error).
	corrupt := append([]byte(nil), msgs[0].der...)
	if i := bytes.Index(corrupt, w.rsaEncKeyMarker(t, corrupt)); i > 0 {
		corrupt[i+10] ^= 0xff
	}
	var goCorrupt reason.Code

	for _, b := range fx.backends {
		t.Run(b.Name(), func(t *testing.T) {
			ours := w.backendKeys(t, b)
			// As the worker runs: the backend's AES-CBC decrypter (nil for go).
			_, cbc := keybackend.Offload(b)
			dopts := cms.DecryptOptions{CBC: cbc}
			for _, m := range msgs {
				t.Run(m.name, func(t *testing.T) {
					d, err := cms.Decrypt(m.der, ours, dopts)
					if m.want != "" {
						if got := reason.CodeOf(err); got != m.want {
							t.Fatalf("reason %q (%v), want %q", got, err, m.want)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(d.Plaintext, plain) {
						t.Fatal("plaintext mismatch")
					}
				})
			}
			t.Run("corrupt-encrypted-key", func(t *testing.T) {
				_, err := cms.Decrypt(corrupt, ours, dopts)
				code := reason.CodeOf(err)
				if err == nil || code == "" {
					t.Fatalf("corrupt key decrypted or untyped error: %v", err)
				}
				if goCorrupt == "" {
					goCorrupt = code // the go backend runs first
				} else if code != goCorrupt {
					t.Fatalf("reason %q, go backend gave %q", code, goCorrupt)
				}
			})
			for _, id := range []string{"rsa", "ec"} {
				for _, pss := range []bool{false, true} {
					if pss && id == "ec" {
						continue
					}
					t.Run(fmt.Sprintf("sign-%s-pss=%v", id, pss), func(t *testing.T) {
						k := w.key(t, ours, id+"@example.org")
						sig, err := cms.Sign(plain, k.Cert, k.Key, k.Chain, cms.SignOptions{PSS: pss})
						if err != nil {
							t.Fatal(err)
						}
						w.opensslVerify(t, sig, plain)
					})
				}
			}
		})
	}
}

// rsaEncKeyMarker returns a slice of the message from the start of the
// RSA-encrypted CEK: we find it as the last 256-byte OCTET STRING header.
func (w *world) rsaEncKeyMarker(tb testing.TB, der []byte) []byte {
	hdr := []byte{0x04, 0x82, 0x01, 0x00}
	if bytes.Index(der, hdr) < 0 {
		tb.Fatal("no 256-byte encrypted key in message")
	}
	return hdr
}

func (w *world) opensslVerify(tb testing.TB, sig, want []byte) {
	tb.Helper()
	d := tb.TempDir()
	in := filepath.Join(d, "sig.der")
	os.WriteFile(in, sig, 0o600)
	out, err := openssl(d, "cms", "-verify", "-binary", "-inform", "DER", "-in", in, "-CAfile", w.ca, "-purpose", "smimesign")
	if err != nil {
		tb.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		tb.Fatal("openssl verified different content")
	}
}
