package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secmail/secmail/internal/testpeer"
	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/reason"
)

// envBigMessage builds a large encrypted message: with our Encrypt (DER,
// one primitive OCTET STRING) or with openssl -stream (indefinite-length
// BER, the content split into many OCTET STRING segments).
func envBigMessage(tb testing.TB, fx *envFixture, size int, how string) (plain, der []byte) {
	tb.Helper()
	plain = make([]byte, size)
	for i := range plain {
		plain[i] = byte(i * 7)
	}
	var err error
	switch how {
	case "cbc":
		der, err = Encrypt(plain, []*x509.Certificate{fx.ecP256.cert}, EncryptOptions{Cipher: AES256CBC})
	case "gcm":
		der, err = Encrypt(plain, []*x509.Certificate{fx.ecP256.cert}, EncryptOptions{Cipher: AES256GCM})
	case "openssl-stream-cbc", "openssl-stream-gcm":
		testpeer.Need(tb, "openssl")
		c := "-aes256"
		if how == "openssl-stream-gcm" {
			c = "-aes-256-gcm"
		}
		der = envOpenSSLEncrypt(tb, plain, false, c, "-stream", "-recip", fx.certPath(fx.ecP256))
	default:
		tb.Fatalf("unknown message kind %q", how)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return plain, der
}

// TestDecryptMemory bounds what Decrypt allocates for a large message. The
// total bytes allocated during the call (deterministic, unlike a sampled
// peak) plus the caller's input is an upper bound on the peak heap, which
// must stay under 3x the message size. The ratio does not depend on the
// size; 16 MiB keeps the test quick, BenchmarkDecrypt50MiB runs 50 MiB.
func TestDecryptMemory(t *testing.T) {
	fx := envGetFixture(t)
	size := 16 << 20
	if testing.Short() {
		size = 4 << 20
	}
	for _, how := range []string{"cbc", "gcm", "openssl-stream-cbc", "openssl-stream-gcm"} {
		t.Run(how, func(t *testing.T) {
			plain, der := envBigMessage(t, fx, size, how)
			ours := envKeys(fx.ecP256)
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			d, err := Decrypt(der, ours, DecryptOptions{})
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(d.Plaintext, plain) {
				t.Fatal("plaintext mismatch")
			}
			allocated := after.TotalAlloc - before.TotalAlloc
			bound := float64(uint64(len(der))+allocated) / float64(len(der))
			t.Logf("%s: message %d bytes, Decrypt allocated %d bytes: peak heap <= %.2fx the message", how, len(der), allocated, bound)
			if bound >= 3 {
				t.Errorf("peak heap bound %.2fx the message size, want < 3x", bound)
			}
		})
	}
}

// envPeakSampler records the largest live heap seen while running.
type envPeakSampler struct {
	stop chan struct{}
	done sync.WaitGroup
	peak atomic.Uint64
}

func envStartSampler() *envPeakSampler {
	s := &envPeakSampler{stop: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() {
		metrics.Read(sample)
		if v := sample[0].Value.Uint64(); v > s.peak.Load() {
			s.peak.Store(v)
		}
	}
	read()
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				read()
				return
			case <-t.C:
				read()
			}
		}
	}()
	return s
}

func (s *envPeakSampler) finish() uint64 {
	close(s.stop)
	s.done.Wait()
	return s.peak.Load()
}

// BenchmarkDecrypt50MiB reports peak live heap (including the input
// message itself) divided by the message size.
func BenchmarkDecrypt50MiB(b *testing.B) {
	fx := envGetFixture(b)
	for _, how := range []string{"cbc", "gcm", "openssl-stream-cbc", "openssl-stream-gcm"} {
		b.Run(how, func(b *testing.B) {
			_, der := envBigMessage(b, fx, 50<<20, how)
			ours := envKeys(fx.ecP256)
			b.SetBytes(int64(len(der)))
			b.ReportAllocs()
			var worst float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				runtime.GC()
				s := envStartSampler()
				b.StartTimer()
				d, err := Decrypt(der, ours, DecryptOptions{})
				b.StopTimer()
				peak := s.finish()
				if err != nil {
					b.Fatal(err)
				}
				runtime.KeepAlive(d)
				if r := float64(peak) / float64(len(der)); r > worst {
					worst = r
				}
				b.StartTimer()
			}
			b.ReportMetric(worst, "peak/size")
		})
	}
}

func envBenchDecrypt(b *testing.B, p *envParty, opts EncryptOptions) {
	plain := make([]byte, 4<<10)
	der, err := Encrypt(plain, []*x509.Certificate{p.cert}, opts)
	if err != nil {
		b.Fatal(err)
	}
	ours := envKeys(p)
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Decrypt(der, ours, DecryptOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecryptRSA2048_4KiB: compare with BenchmarkRSA2048PrivateOp,
// the bare private-key operation it contains.
func BenchmarkDecryptRSA2048_4KiB(b *testing.B) {
	envBenchDecrypt(b, envGetFixture(b).rsaA, EncryptOptions{Cipher: AES256CBC})
}

// BenchmarkDecryptECDH_GCM_4KiB: compare with BenchmarkECDHP256Op.
func BenchmarkDecryptECDH_GCM_4KiB(b *testing.B) {
	envBenchDecrypt(b, envGetFixture(b).ecP256, EncryptOptions{Cipher: AES256GCM})
}

// BenchmarkRSA2048PrivateOp is the bare key operation of
// BenchmarkDecryptRSA2048_4KiB, through the same interface.
func BenchmarkRSA2048PrivateOp(b *testing.B) {
	p := envGetFixture(b).rsaA
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, p.cert.PublicKey.(*rsa.PublicKey), make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	dec := p.smime.Key.(crypto.Decrypter)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := dec.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkECDHP256Op is the bare key agreement of
// BenchmarkDecryptECDH_GCM_4KiB.
func BenchmarkECDHP256Op(b *testing.B) {
	p := envGetFixture(b).ecP256
	eph, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	ka := p.smime.Key.(keys.KeyAgreer)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ka.ECDH(eph.PublicKey()); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecrypt feeds mutated messages to Decrypt: it must never panic
// (even a recovered one is a bug in our parser), and every failure must be
// a typed *reason.Error.
func FuzzDecrypt(f *testing.F) {
	fx := envGetFixture(f)
	ours := envKeys(fx.rsaA, fx.ecP256, fx.ecP384)
	plain := []byte("Content-Type: text/plain\r\n\r\nfuzz seed\r\n")
	for _, tc := range []struct {
		to   []*x509.Certificate
		opts EncryptOptions
	}{
		{[]*x509.Certificate{fx.rsaA.cert}, EncryptOptions{}},
		{[]*x509.Certificate{fx.rsaA.cert}, EncryptOptions{Cipher: AES128GCM, OAEP: true}},
		{[]*x509.Certificate{fx.ecP256.cert}, EncryptOptions{Cipher: AES256GCM}},
		{[]*x509.Certificate{fx.rsaB.cert, fx.ecP384.cert}, EncryptOptions{Cipher: AES128CBC}},
	} {
		der, err := Encrypt(plain, tc.to, tc.opts)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	// openssl's streaming BER output as further seeds, when installed
	// (CI requires it for the other tests).
	if _, err := exec.LookPath("openssl"); err == nil {
		for _, args := range [][]string{
			{"-aes256", "-stream", "-recip", fx.certPath(fx.rsaA)},
			{"-aes-128-gcm", "-stream", "-keyid", "-recip", fx.certPath(fx.ecP256)},
			{"-des3", "-recip", fx.certPath(fx.ecP384), "-keyopt", "ecdh_kdf_md:sha256"},
		} {
			f.Add(envOpenSSLEncrypt(f, plain, false, args...))
		}
	}
	f.Add([]byte{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03, 0xa0, 0x80, 0x30, 0x80, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, der []byte) {
		_ = IsEnveloped(der)
		d, err := Decrypt(der, ours, DecryptOptions{AllowLegacy3DES: true})
		if err != nil {
			var re *reason.Error
			if !errors.As(err, &re) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			if d != nil {
				t.Fatal("result returned with an error")
			}
			if bytes.Contains([]byte(err.Error()), []byte("panic while parsing")) {
				t.Fatalf("parser panicked: %v", err)
			}
			return
		}
		if d.Recipient == nil || d.Cipher == "" || d.KeyAlgorithm == "" {
			t.Fatalf("incomplete result %+v", d)
		}
	})
}
