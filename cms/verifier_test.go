package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/secmail/secmail/reason"
)

// countingVerifier counts the signatures it is asked about, so a test can
// tell that Verify used it.
type countingVerifier struct {
	v PublicKeyVerifier
	n *atomic.Int64
}

func (c countingVerifier) VerifyPKCS1v15(pub *rsa.PublicKey, hash crypto.Hash, hashed, sig []byte) error {
	c.n.Add(1)
	return c.v.VerifyPKCS1v15(pub, hash, hashed, sig)
}

func (c countingVerifier) VerifyPSS(pub *rsa.PublicKey, hash crypto.Hash, digest, sig []byte, opts *rsa.PSSOptions) error {
	c.n.Add(1)
	return c.v.VerifyPSS(pub, hash, digest, sig, opts)
}

func (c countingVerifier) VerifyASN1(pub *ecdsa.PublicKey, digest, sig []byte) bool {
	c.n.Add(1)
	return c.v.VerifyASN1(pub, digest, sig)
}

// sdOptionSet is one way to parse and verify: the verification suites run
// every case with each.
type sdOptionSet struct {
	name  string
	opts  SignedDataOptions
	calls func() int64 // signatures the verifier saw; nil for the default
}

// sdOptionSets: the default (crypto/rsa, crypto/ecdsa, no cache), Go's
// functions through the hook with a certificate cache, and every verifier
// the build has (OpenSSL's with -tags openssl, see extraVerifiers).
func sdOptionSets() []sdOptionSet {
	sets := []sdOptionSet{{name: "default"}}
	add := func(name string, v PublicKeyVerifier) {
		n := new(atomic.Int64)
		sets = append(sets, sdOptionSet{
			name:  name,
			opts:  SignedDataOptions{Certs: NewCertCache(4), Verifier: countingVerifier{v: v, n: n}},
			calls: n.Load,
		})
	}
	add("go-hook-cache", GoVerifier{})
	for _, e := range extraVerifiers() {
		add(e.name, e.v)
	}
	return sets
}

// TestCertCache: a hit is the same parse, the cache keeps its own copy of
// the DER, failures are not cached, the size is bounded.
func TestCertCache(t *testing.T) {
	fx := sdGetFixture(t)
	var ders [][]byte
	for _, name := range []string{"rsa", "ec", "p384", "p521", "ed"} {
		ders = append(ders, fx.leaves[name].cert.Raw)
	}
	ders = append(ders, fx.inter.Raw)

	t.Run("hit is the same certificate", func(t *testing.T) {
		c := NewCertCache(8)
		buf := bytes.Clone(ders[0])
		first, err := c.Parse(buf)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := x509.ParseCertificate(ders[0])
		if !first.Equal(want) || first.SerialNumber.Cmp(want.SerialNumber) != 0 {
			t.Fatal("cached parse differs from x509.ParseCertificate")
		}
		clear(buf) // the message buffer is reused: the cache must not see it
		if !bytes.Equal(first.Raw, ders[0]) {
			t.Fatal("cached certificate points into the caller's buffer")
		}
		again, err := c.Parse(ders[0])
		if err != nil || again != first {
			t.Fatalf("second parse: %p %v, want the cached %p", again, err, first)
		}
	})
	t.Run("failure not cached", func(t *testing.T) {
		c := NewCertCache(8)
		bad := []byte{0x30, 0x03, 0x02, 0x01, 0x01}
		_, want := x509.ParseCertificate(bad)
		for i := 0; i < 2; i++ {
			if _, err := c.Parse(bad); err == nil || err.Error() != want.Error() {
				t.Fatalf("error %v, want %v", err, want)
			}
		}
		if c.Len() != 0 {
			t.Fatalf("%d entries after failures", c.Len())
		}
	})
	t.Run("bounded", func(t *testing.T) {
		tests := []struct {
			max, parses, wantMax int
		}{
			{1, 6, 2},
			{2, 6, 4},
			{4, 6, 6},
			{0, 3, 2}, // max < 1 is 1
		}
		for _, tc := range tests {
			c := NewCertCache(tc.max)
			for i := 0; i < tc.parses; i++ {
				if _, err := c.Parse(ders[i%len(ders)]); err != nil {
					t.Fatal(err)
				}
				if c.Len() > tc.wantMax {
					t.Fatalf("max %d: %d entries, bound %d", tc.max, c.Len(), tc.wantMax)
				}
			}
			// The last one parsed is always there.
			last := ders[(tc.parses-1)%len(ders)]
			c.mu.Lock()
			_, ok := c.cur[string(last)]
			c.mu.Unlock()
			if !ok {
				t.Fatalf("max %d: latest certificate evicted", tc.max)
			}
		}
	})
}

// TestParseWithCache: messages parsed through one cache share certificate
// values, and the result is that of parsing without it.
func TestParseWithCache(t *testing.T) {
	fx := sdGetFixture(t)
	der := fx.sign(t, "rsa", sdMessage, "-certfile", "inter.pem")
	cache := NewCertCache(8)
	a, err := ParseSignedDataWith(der, SignedDataOptions{Certs: cache})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseSignedDataWith(bytes.Clone(der), SignedDataOptions{Certs: cache})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := ParseSignedData(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Certificates()) != 2 || len(b.Certificates()) != 2 {
		t.Fatalf("certificates: %d, %d", len(a.Certificates()), len(b.Certificates()))
	}
	for i := range a.Certificates() {
		if a.Certificates()[i] != b.Certificates()[i] {
			t.Errorf("certificate %d parsed twice", i)
		}
		if !a.Certificates()[i].Equal(plain.Certificates()[i]) {
			t.Errorf("certificate %d differs from the uncached parse", i)
		}
	}
	if cache.Len() != 2 {
		t.Errorf("cache holds %d certificates, want 2", cache.Len())
	}
}

// TestVerifierErrorIsBadSignature: whatever a verifier returns for a
// failed signature, Verify reports bad-signature.
func TestVerifierErrorIsBadSignature(t *testing.T) {
	fx := sdGetFixture(t)
	for _, leaf := range []string{"rsa", "ec"} {
		der := fx.sign(t, leaf, sdMessage)
		sd, err := ParseSignedDataWith(der, SignedDataOptions{Verifier: refusingVerifier{}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = sd.Verify(sdMessage, nil)
		if code := reason.CodeOf(err); code != reason.BadSignature {
			t.Errorf("%s: %v (%s), want bad-signature", leaf, err, code)
		}
	}
}

// refusingVerifier rejects every signature.
type refusingVerifier struct{}

func (refusingVerifier) VerifyPKCS1v15(*rsa.PublicKey, crypto.Hash, []byte, []byte) error {
	return errors.New("refused")
}

func (refusingVerifier) VerifyPSS(*rsa.PublicKey, crypto.Hash, []byte, []byte, *rsa.PSSOptions) error {
	return errors.New("refused")
}

func (refusingVerifier) VerifyASN1(*ecdsa.PublicKey, []byte, []byte) bool { return false }
