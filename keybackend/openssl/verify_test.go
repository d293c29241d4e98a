//go:build openssl && cgo

package openssl

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"math/big"
	"sync"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// errString makes errors comparable: nil, or the message.
func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i%len(c)] ^= 0x01
	return c
}

// TestVerifyRSAMatchesGo: the Backend's RSA verification gives crypto/rsa's
// result and error for valid, tampered and malformed input, and for keys
// OpenSSL is not given.
func TestVerifyRSAMatchesGo(t *testing.T) {
	b := New()
	k2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	k1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	k3072, _ := rsa.GenerateKey(rand.Reader, 3072)
	odd512 := new(big.Int).SetBit(new(big.Int).Lsh(big.NewInt(1), 511), 0, 1)
	keys := []struct {
		name string
		priv *rsa.PrivateKey // nil: public key only, signatures are random
		pub  *rsa.PublicKey
	}{
		{"2048", k2048, &k2048.PublicKey},
		{"1024", k1024, &k1024.PublicKey},
		{"3072", k3072, &k3072.PublicKey},
		{"512-bit (Go refuses)", nil, &rsa.PublicKey{N: odd512, E: 65537}},
		{"even modulus", nil, &rsa.PublicKey{N: new(big.Int).Add(k2048.N, big.NewInt(1)), E: 65537}},
		{"exponent 2", nil, &rsa.PublicKey{N: k2048.N, E: 2}},
		{"exponent 1<<31+1", nil, &rsa.PublicKey{N: k2048.N, E: 1<<31 + 1}},
		{"exponent 3, another key", nil, &rsa.PublicKey{N: k2048.N, E: 3}},
	}
	d256 := sha256.Sum256([]byte("content"))
	d512 := sha512.Sum512([]byte("content"))
	for _, k := range keys {
		t.Run(k.name, func(t *testing.T) {
			sig := make([]byte, k.pub.Size())
			rand.Read(sig)
			sig[0] = 0 // below n
			pss, pss32, pss512 := sig, sig, sig
			if k.priv != nil {
				sig, _ = rsa.SignPKCS1v15(rand.Reader, k.priv, crypto.SHA256, d256[:])
				pss, _ = rsa.SignPSS(rand.Reader, k.priv, crypto.SHA256, d256[:], nil)
				pss32, _ = rsa.SignPSS(rand.Reader, k.priv, crypto.SHA256, d256[:], &rsa.PSSOptions{SaltLength: 32})
				pss512, _ = rsa.SignPSS(rand.Reader, k.priv, crypto.SHA512, d512[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
			}
			geN := k.pub.N.FillBytes(make([]byte, k.pub.Size()))
			v15 := []struct {
				name   string
				hash   crypto.Hash
				digest []byte
				sig    []byte
			}{
				{"valid", crypto.SHA256, d256[:], sig},
				{"tampered signature", crypto.SHA256, d256[:], flip(sig, 100)},
				{"tampered digest", crypto.SHA256, flip(d256[:], 3), sig},
				{"other hash, same length", crypto.SHA512, append(d256[:], d256[:]...), sig},
				{"digest of another length", crypto.SHA256, d512[:], sig},
				{"short signature", crypto.SHA256, d256[:], sig[1:]},
				{"long signature", crypto.SHA256, d256[:], append([]byte{0}, sig...)},
				{"signature equal to n", crypto.SHA256, d256[:], geN},
				{"zero signature", crypto.SHA256, d256[:], make([]byte, len(sig))},
				{"unhashed input", 0, d256[:], sig},
				{"MD5", crypto.MD5, d256[:16], sig},
			}
			for _, c := range v15 {
				want := errString(rsa.VerifyPKCS1v15(k.pub, c.hash, c.digest, c.sig))
				if got := errString(b.VerifyPKCS1v15(k.pub, c.hash, c.digest, c.sig)); got != want {
					t.Errorf("PKCS#1 v1.5 %s: %s, Go: %s", c.name, got, want)
				}
			}
			psss := []struct {
				name   string
				hash   crypto.Hash
				digest []byte
				sig    []byte
				opts   *rsa.PSSOptions
			}{
				{"valid, auto", crypto.SHA256, d256[:], pss, nil},
				{"valid, auto explicit", crypto.SHA256, d256[:], pss, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}},
				{"maximal salt, expected 32", crypto.SHA256, d256[:], pss, &rsa.PSSOptions{SaltLength: 32}},
				{"salt 32, exact", crypto.SHA256, d256[:], pss32, &rsa.PSSOptions{SaltLength: 32}},
				{"salt 32, equals hash", crypto.SHA256, d256[:], pss32, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}},
				{"salt 32, expected 20", crypto.SHA256, d256[:], pss32, &rsa.PSSOptions{SaltLength: 20}},
				{"salt 32, auto", crypto.SHA256, d256[:], pss32, nil},
				{"SHA-512 equals hash", crypto.SHA512, d512[:], pss512, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}},
				{"SHA-512 verified as SHA-256", crypto.SHA256, d256[:], pss512, nil},
				{"tampered", crypto.SHA256, d256[:], flip(pss, 7), nil},
				{"tampered digest", crypto.SHA256, flip(d256[:], 0), pss, nil},
				{"negative salt length", crypto.SHA256, d256[:], pss, &rsa.PSSOptions{SaltLength: -7}},
				{"huge salt length", crypto.SHA256, d256[:], pss, &rsa.PSSOptions{SaltLength: 4096}},
				{"short signature", crypto.SHA256, d256[:], pss[1:], nil},
				{"signature equal to n", crypto.SHA256, d256[:], geN, nil},
			}
			for _, c := range psss {
				want := errString(rsa.VerifyPSS(k.pub, c.hash, c.digest, c.sig, c.opts))
				if got := errString(b.VerifyPSS(k.pub, c.hash, c.digest, c.sig, c.opts)); got != want {
					t.Errorf("PSS %s: %s, Go: %s", c.name, got, want)
				}
			}
		})
	}
}

// ecdsaSig encodes r and s as an ASN.1 ECDSA-Sig-Value.
func ecdsaSig(r, s *big.Int) []byte {
	var bld cryptobyte.Builder
	bld.AddASN1(cbasn1.SEQUENCE, func(c *cryptobyte.Builder) {
		c.AddASN1BigInt(r)
		c.AddASN1BigInt(s)
	})
	return bld.BytesOrPanic()
}

// TestVerifyECDSAMatchesGo: as TestVerifyRSAMatchesGo for ECDSA, including
// signature encodings that are not DER and out-of-range values.
func TestVerifyECDSAMatchesGo(t *testing.T) {
	b := New()
	d := sha512.Sum512([]byte("content"))
	for _, curve := range []elliptic.Curve{elliptic.P224(), elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		t.Run(curve.Params().Name, func(t *testing.T) {
			k, err := ecdsa.GenerateKey(curve, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			n := curve.Params().N
			digest := d[:min((curve.Params().BitSize+7)/8, len(d))]
			sig := ecdsaSigFor(t, k, digest)
			var r, s big.Int
			in := cryptobyte.String(sig)
			var seq cryptobyte.String
			if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Integer(&r) || !seq.ReadASN1Integer(&s) {
				t.Fatal("cannot parse own signature")
			}
			// The same SEQUENCE with a non-minimal (long form) length.
			long := append([]byte{0x30, 0x81, byte(len(sig) - 2)}, sig[2:]...)
			// r with a superfluous leading zero byte.
			rb := append([]byte{0}, r.Bytes()...)
			if rb[1]&0x80 == 0 {
				rb = append([]byte{0}, rb...)
			}
			var padded cryptobyte.Builder
			padded.AddASN1(cbasn1.SEQUENCE, func(c *cryptobyte.Builder) {
				c.AddASN1(cbasn1.INTEGER, func(c *cryptobyte.Builder) { c.AddBytes(rb) })
				c.AddASN1BigInt(&s)
			})
			other, _ := ecdsa.GenerateKey(curve, rand.Reader)
			cases := []struct {
				name   string
				pub    *ecdsa.PublicKey
				digest []byte
				sig    []byte
			}{
				{"valid", &k.PublicKey, digest, sig},
				{"other key", &other.PublicKey, digest, sig},
				{"tampered signature", &k.PublicKey, digest, flip(sig, len(sig)-2)},
				{"tampered digest", &k.PublicKey, flip(digest, 1), sig},
				{"longer digest (truncated)", &k.PublicKey, d[:], ecdsaSigFor(t, k, d[:])},
				{"short digest", &k.PublicKey, d[:8], ecdsaSigFor(t, k, d[:8])},
				{"empty digest", &k.PublicKey, nil, ecdsaSigFor(t, k, nil)},
				{"high s", &k.PublicKey, digest, ecdsaSig(&r, new(big.Int).Sub(n, &s))},
				{"r = 0", &k.PublicKey, digest, ecdsaSig(big.NewInt(0), &s)},
				{"s = n", &k.PublicKey, digest, ecdsaSig(&r, n)},
				{"r + n", &k.PublicKey, digest, ecdsaSig(new(big.Int).Add(&r, n), &s)},
				{"negative r", &k.PublicKey, digest, ecdsaSig(new(big.Int).Neg(&r), &s)},
				{"non-minimal r", &k.PublicKey, digest, padded.BytesOrPanic()},
				{"trailing byte", &k.PublicKey, digest, append(append([]byte(nil), sig...), 0)},
				{"long-form length", &k.PublicKey, digest, long},
				{"empty signature", &k.PublicKey, digest, nil},
			}
			for _, c := range cases {
				want := ecdsa.VerifyASN1(c.pub, c.digest, c.sig)
				if got := b.VerifyASN1(c.pub, c.digest, c.sig); got != want {
					t.Errorf("%s: %v, Go: %v", c.name, got, want)
				}
			}
		})
	}
}

func ecdsaSigFor(t *testing.T, k *ecdsa.PrivateKey, digest []byte) []byte {
	t.Helper()
	sig, err := ecdsa.SignASN1(rand.Reader, k, digest)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// TestVerifyInOpenSSL checks the OpenSSL path itself, without Go's second
// opinion: valid signatures verify there, tampered ones do not, keys are
// cached by value and prepared contexts are reused, within their bound.
func TestVerifyInOpenSSL(t *testing.T) {
	b := New()
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	d := sha256.Sum256([]byte("x"))
	v15, _ := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, d[:])
	pss, _ := rsa.SignPSS(rand.Reader, rk, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: 32})
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es, _ := ecdsa.SignASN1(rand.Reader, ek, d[:])
	k, ekey := b.rsaKey(&rk.PublicKey), b.ecKey(&ek.PublicKey)
	if k == nil || ekey == nil {
		t.Fatal("OpenSSL refused a valid key")
	}
	if !ekey.verify(0, 0, 0, d[:], es) || ekey.verify(0, 0, 0, d[:], flip(es, len(es)-1)) {
		t.Error("ECDSA in OpenSSL: valid signature rejected or tampered one accepted")
	}
	if b.ecKey(&ecdsa.PublicKey{Curve: elliptic.P224(), X: ek.X, Y: ek.Y}) != nil {
		t.Error("a P-224 key went to OpenSSL")
	}
	if b.rsaKey(&rsa.PublicKey{N: new(big.Int).Set(rk.N), E: rk.E}) != k {
		t.Error("the same RSA key by value is not served from the cache")
	}
	cases := []struct {
		name string
		pad  int
		salt int
		sig  []byte
		want bool
	}{
		{"v1.5", 1, 0, v15, true},
		{"v1.5 again", 1, 0, v15, true},
		{"v1.5 tampered", 1, 0, flip(v15, 9), false},
		{"PSS auto", 2, -2, pss, true},
		{"PSS exact", 2, 32, pss, true},
		{"PSS wrong length", 2, 20, pss, false},
		{"PSS equals hash", 2, -1, pss, true},
		{"PSS beyond the template bound", 2, 31, pss, false},
		{"v1.5 after the bound", 1, 0, v15, true},
	}
	for _, c := range cases {
		if got := k.verify(c.pad, int(crypto.SHA256), c.salt, d[:], c.sig); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if n := len(k.st.templates); n != maxTemplates {
		t.Errorf("%d prepared contexts, want the bound %d", n, maxTemplates)
	}
	if b.rsaKey(&rsa.PublicKey{N: rk.N, E: 2}) != nil {
		t.Error("an even exponent went to OpenSSL")
	}
}

// TestPubCacheBound: the cache never holds more than two generations, and
// the latest key is always in it.
func TestPubCacheBound(t *testing.T) {
	b := New()
	rk, _ := rsa.GenerateKey(rand.Reader, 1024)
	for i := 0; i < 3*maxPubCache; i++ {
		// Distinct keys by value: another (odd) exponent each.
		if b.rsaKey(&rsa.PublicKey{N: rk.N, E: 3 + 2*i}) == nil {
			t.Fatal("key refused")
		}
		if n := len(b.pubs.cur) + len(b.pubs.old); n > 2*maxPubCache {
			t.Fatalf("%d keys cached, bound %d", n, 2*maxPubCache)
		}
	}
	last := &rsa.PublicKey{N: rk.N, E: 3 + 2*(3*maxPubCache-1)}
	if k := b.rsaKey(last); k == nil || len(b.pubs.cur) == 0 || b.pubs.cur[string(pubID(last))] != k {
		t.Fatal("the latest key is not cached")
	}
	b.Close()
	if b.pubs.cur != nil || b.pubs.old != nil {
		t.Fatal("Close kept the cache")
	}
}

// TestVerifyConcurrent shares one Backend between goroutines (run with
// -race): one cache, prepared contexts copied concurrently, the cache
// dropped by Close meanwhile.
func TestVerifyConcurrent(t *testing.T) {
	b := New()
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := sha256.Sum256([]byte("concurrent"))
	v15, _ := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, d[:])
	pss, _ := rsa.SignPSS(rand.Reader, rk, crypto.SHA256, d[:], nil)
	es, _ := ecdsa.SignASN1(rand.Reader, ek, d[:])
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				if g == 0 && i == 20 {
					b.Close()
				}
				if b.VerifyPKCS1v15(&rk.PublicKey, crypto.SHA256, d[:], v15) != nil ||
					b.VerifyPSS(&rk.PublicKey, crypto.SHA256, d[:], pss, nil) != nil ||
					!b.VerifyASN1(&ek.PublicKey, d[:], es) {
					errs <- "valid signature rejected"
					return
				}
				if b.VerifyPKCS1v15(&rk.PublicKey, crypto.SHA256, d[:], flip(v15, i)) == nil {
					errs <- "tampered signature accepted"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
