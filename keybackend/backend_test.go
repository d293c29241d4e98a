package keybackend_test

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/secmail/secmail/internal/softhsm"
	"github.com/secmail/secmail/keybackend"
	"github.com/secmail/secmail/keys"
)

type fixture struct {
	rsa        *rsa.PrivateKey
	p256, p384 keys.PrivateKey // keys.Wrap'ed, as the key store hands them out
	backends   []keybackend.Backend
	tmp        string
}

var fx *fixture

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "keybackend tests:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	f := &fixture{}
	var err error
	if f.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return 0, err
	}
	for _, c := range []struct {
		curve elliptic.Curve
		dst   *keys.PrivateKey
	}{{elliptic.P256(), &f.p256}, {elliptic.P384(), &f.p384}} {
		k, err := ecdsa.GenerateKey(c.curve, rand.Reader)
		if err != nil {
			return 0, err
		}
		if *c.dst, err = keys.Wrap(k); err != nil {
			return 0, err
		}
	}
	if f.tmp, err = os.MkdirTemp("", "keybackend"); err != nil {
		return 0, err
	}
	defer os.RemoveAll(f.tmp)
	if f.backends, err = openBackends(f.tmp); err != nil {
		return 0, err
	}
	defer func() {
		for _, b := range f.backends {
			b.Close()
		}
	}()
	fx = f
	return m.Run(), nil
}

// openBackends opens every backend compiled into the test binary. A
// backend built in whose runtime dependency (SoftHSM2) is missing is an
// error under CI and skipped otherwise.
func openBackends(tmp string) ([]keybackend.Backend, error) {
	var out []keybackend.Backend
	for _, name := range keybackend.Names {
		var cfg keybackend.Config
		if name == "pkcs11" && pkcs11BuiltIn() {
			mod, err := softhsm.Setup(tmp)
			if errors.Is(err, softhsm.ErrMissing) {
				if os.Getenv("CI") != "" {
					return nil, err
				}
				fmt.Fprintln(os.Stderr, "keybackend tests: pkcs11 skipped:", err)
				continue
			}
			if err != nil {
				return nil, err
			}
			cfg.PKCS11 = keybackend.PKCS11Config{Module: mod, TokenLabel: softhsm.Label, PIN: softhsm.PIN}
		}
		b, err := keybackend.Open(name, cfg)
		if errors.Is(err, keybackend.ErrNotBuiltIn) {
			fmt.Fprintf(os.Stderr, "keybackend tests: %s not built in (-tags %s)\n", name, name)
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func pkcs11BuiltIn() bool {
	_, err := keybackend.Open("pkcs11", keybackend.Config{})
	return !errors.Is(err, keybackend.ErrNotBuiltIn)
}

var labelSeq int

// load puts k into backend b (importing it onto a token first).
func load(tb testing.TB, b keybackend.Backend, k keys.PrivateKey) keys.PrivateKey {
	tb.Helper()
	// Software keys must be put on a token before Load finds them there.
	if imp, ok := b.(keybackend.TokenKeys); ok {
		labelSeq++
		if _, err := imp.Import(fmt.Sprintf("key%d", labelSeq), k); err != nil {
			tb.Fatal(err)
		}
	}
	lk, err := b.Load(k)
	if err != nil {
		tb.Fatal(err)
	}
	if lk.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) == false {
		tb.Fatalf("%s: loaded key has another public key", b.Name())
	}
	return lk
}

func TestOpen(t *testing.T) {
	if b, err := keybackend.Open("", keybackend.Config{}); err != nil || b.Name() != "go" {
		t.Fatalf("default backend: %v %v", b, err)
	}
	if _, err := keybackend.Open("nope", keybackend.Config{}); err == nil {
		t.Fatal("unknown backend accepted")
	}
	_, err := keybackend.Open("openssl", keybackend.Config{})
	if err != nil && (!errors.Is(err, keybackend.ErrNotBuiltIn) || !strings.Contains(err.Error(), "built without OpenSSL support")) {
		t.Fatalf("openssl: %v", err)
	}
	if _, err := keybackend.Go().Load(nil); err == nil {
		t.Fatal("nil key accepted")
	}
}

// TestCloseKey frees each backend's key; operations on a freed OpenSSL
// key fail instead of touching freed memory, other keys are unaffected.
func TestCloseKey(t *testing.T) {
	d := sha256.Sum256([]byte("x"))
	for _, b := range fx.backends {
		t.Run(b.Name(), func(t *testing.T) {
			k := load(t, b, fx.p256)
			if err := keybackend.CloseKey(k); err != nil {
				t.Fatal(err)
			}
			_, err := k.Sign(rand.Reader, d[:], crypto.SHA256)
			if (b.Name() == "openssl") != (err != nil) {
				t.Fatalf("sign after CloseKey: %v", err)
			}
		})
	}
}

// TestRSADecrypt checks every backend decrypts exactly as crypto/rsa does,
// including implicit rejection of bad PKCS#1 v1.5 blocks.
func TestRSADecrypt(t *testing.T) {
	pub := &fx.rsa.PublicKey
	session := []byte("0123456789abcdef")
	long := []byte("0123456789abcdef01234567")
	ctSession, _ := rsa.EncryptPKCS1v15(rand.Reader, pub, session)
	ctLong, _ := rsa.EncryptPKCS1v15(rand.Reader, pub, long)
	// A random value below n almost surely has no valid padding.
	junk := make([]byte, pub.Size())
	rand.Read(junk)
	junk[0] = 0
	// c >= n must fail up front, as in crypto/rsa.
	tooBig := bytes.Repeat([]byte{0xff}, pub.Size())

	oaepLabel := []byte("label")
	oaep := []struct {
		name string
		opts *rsa.OAEPOptions
	}{
		{"sha1", &rsa.OAEPOptions{Hash: crypto.SHA1}},
		{"sha256", &rsa.OAEPOptions{Hash: crypto.SHA256}},
		{"sha256-mgf1sha1", &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA1}},
		{"sha384-label", &rsa.OAEPOptions{Hash: crypto.SHA384, Label: oaepLabel}},
	}

	for _, b := range fx.backends {
		t.Run(b.Name(), func(t *testing.T) {
			k := load(t, b, fx.rsa)
			dec := k.(crypto.Decrypter)
			sk := &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16}

			tests := []struct {
				name    string
				ct      []byte
				opts    crypto.DecrypterOpts
				want    []byte // nil: random 16 bytes expected (implicit rejection)
				wantErr error
			}{
				{"v15-session-valid", ctSession, sk, session, nil},
				{"v15-session-wrong-length", ctLong, sk, nil, nil},
				{"v15-session-bad-padding", junk, sk, nil, nil},
				{"v15-session-short-ct", ctSession[1:], sk, nil, nil},
				{"v15-session-long-ct", append([]byte{0}, ctSession...), sk, nil, rsa.ErrDecryption},
				{"v15-session-ct-above-n", tooBig, sk, nil, rsa.ErrDecryption},
				{"v15-valid", ctLong, nil, long, nil},
				{"v15-opts-no-session", ctLong, &rsa.PKCS1v15DecryptOptions{}, long, nil},
				{"v15-bad-padding", junk, nil, nil, rsa.ErrDecryption},
			}
			for _, o := range oaep {
				ct, err := rsa.EncryptOAEPWithOptions(rand.Reader, pub, session, o.opts)
				if err != nil {
					t.Fatal(err)
				}
				bad := append([]byte(nil), ct...)
				bad[len(bad)-1] ^= 1
				tests = append(tests,
					struct {
						name    string
						ct      []byte
						opts    crypto.DecrypterOpts
						want    []byte
						wantErr error
					}{"oaep-" + o.name, ct, o.opts, session, nil},
					struct {
						name    string
						ct      []byte
						opts    crypto.DecrypterOpts
						want    []byte
						wantErr error
					}{"oaep-" + o.name + "-tampered", bad, o.opts, nil, rsa.ErrDecryption})
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					// The Go key is the reference: the backend must agree.
					goOut, goErr := fx.rsa.Decrypt(rand.Reader, tc.ct, tc.opts)
					out, err := dec.Decrypt(rand.Reader, tc.ct, tc.opts)
					if tc.wantErr != nil {
						if !errors.Is(err, tc.wantErr) || !errors.Is(goErr, tc.wantErr) {
							t.Fatalf("err = %v (go: %v), want %v", err, goErr, tc.wantErr)
						}
						return
					}
					if err != nil || goErr != nil {
						t.Fatalf("err = %v (go: %v)", err, goErr)
					}
					if tc.want != nil {
						if !bytes.Equal(out, tc.want) || !bytes.Equal(goOut, tc.want) {
							t.Fatalf("got %x (go %x), want %x", out, goOut, tc.want)
						}
						return
					}
					// Implicit rejection: fresh random bytes each time, of the
					// session key length, no error.
					again, err := dec.Decrypt(rand.Reader, tc.ct, tc.opts)
					if err != nil || len(out) != 16 || len(again) != 16 || bytes.Equal(out, again) {
						t.Fatalf("implicit rejection: %x, %x, %v", out, again, err)
					}
					if bytes.Equal(out, long[len(long)-16:]) || bytes.Equal(out, long[:16]) {
						t.Fatal("implicit rejection leaked plaintext")
					}
				})
			}
		})
	}
}

func TestRSASign(t *testing.T) {
	d256 := sha256.Sum256([]byte("message"))
	d384 := sha512.Sum384([]byte("message"))
	tests := []struct {
		name   string
		digest []byte
		opts   crypto.SignerOpts
	}{
		{"v15-sha256", d256[:], crypto.SHA256},
		{"v15-sha384", d384[:], crypto.SHA384},
		{"pss-sha256-equalshash", d256[:], &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash}},
		{"pss-sha256-auto", d256[:], &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthAuto}},
		{"pss-sha384-salt20", d384[:], &rsa.PSSOptions{Hash: crypto.SHA384, SaltLength: 20}},
	}
	for _, b := range fx.backends {
		t.Run(b.Name(), func(t *testing.T) {
			k := load(t, b, fx.rsa)
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					sig, err := k.Sign(rand.Reader, tc.digest, tc.opts)
					if err != nil {
						t.Fatal(err)
					}
					if pss, ok := tc.opts.(*rsa.PSSOptions); ok {
						// Verify with the exact salt length the signer had to use.
						want := *pss
						if want.SaltLength == rsa.PSSSaltLengthAuto {
							want.SaltLength = fx.rsa.Size() - 2 - pss.Hash.Size()
						}
						if err := rsa.VerifyPSS(&fx.rsa.PublicKey, pss.Hash, tc.digest, sig, &want); err != nil {
							t.Fatal(err)
						}
						return
					}
					// PKCS#1 v1.5 is deterministic: byte-identical to Go.
					goSig, _ := fx.rsa.Sign(rand.Reader, tc.digest, tc.opts)
					if !bytes.Equal(sig, goSig) {
						t.Fatal("signature differs from crypto/rsa's")
					}
				})
			}
			// A digest of the wrong length fails everywhere.
			if _, err := k.Sign(rand.Reader, d256[:20], crypto.SHA256); err == nil {
				t.Fatal("short digest signed")
			}
		})
	}
}

func TestEC(t *testing.T) {
	for _, b := range fx.backends {
		for _, kc := range []struct {
			name string
			key  keys.PrivateKey
			hash crypto.Hash
		}{{"p256", fx.p256, crypto.SHA256}, {"p384", fx.p384, crypto.SHA384}} {
			t.Run(b.Name()+"/"+kc.name, func(t *testing.T) {
				k := load(t, b, kc.key)
				pub := kc.key.Public().(*ecdsa.PublicKey)
				h := kc.hash.New()
				h.Write([]byte("message"))
				digest := h.Sum(nil)
				sig, err := k.Sign(rand.Reader, digest, kc.hash)
				if err != nil {
					t.Fatal(err)
				}
				if !ecdsa.VerifyASN1(pub, digest, sig) {
					t.Fatal("ECDSA signature does not verify")
				}

				curve := ecdh.P256()
				other := ecdh.P384()
				if kc.name == "p384" {
					curve, other = other, curve
				}
				peer, _ := curve.GenerateKey(rand.Reader)
				want, err := kc.key.(keys.KeyAgreer).ECDH(peer.PublicKey())
				if err != nil {
					t.Fatal(err)
				}
				agreer, ok := k.(keys.KeyAgreer)
				if !ok {
					t.Fatalf("%T is not a KeyAgreer", k)
				}
				got, err := agreer.ECDH(peer.PublicKey())
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatal("shared secret differs from crypto/ecdh's")
				}
				wrong, _ := other.GenerateKey(rand.Reader)
				if _, err := agreer.ECDH(wrong.PublicKey()); err == nil {
					t.Fatal("ECDH with a key on another curve succeeded")
				}
				if _, ok := k.(crypto.Decrypter); ok {
					t.Fatal("EC key claims to be a Decrypter")
				}
			})
		}
	}
}
