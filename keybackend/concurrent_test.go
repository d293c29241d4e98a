package keybackend_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"sync"
	"testing"
)

// TestConcurrent uses one loaded key from many goroutines at once, as the
// worker does: OpenSSL keys are shared EVP_PKEYs, PKCS#11 keys share the
// token's session pool.
func TestConcurrent(t *testing.T) {
	session := []byte("0123456789abcdef")
	ct, _ := rsa.EncryptPKCS1v15(rand.Reader, &fx.rsa.PublicKey, session)
	d := sha256.Sum256([]byte("concurrent"))
	for _, b := range fx.backends {
		t.Run(b.Name(), func(t *testing.T) {
			rk := load(t, b, fx.rsa).(crypto.Decrypter)
			ek := load(t, b, fx.p256)
			var wg sync.WaitGroup
			errs := make(chan string, 64)
			for g := 0; g < 12; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 10; i++ {
						out, err := rk.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16})
						if err != nil || !bytes.Equal(out, session) {
							errs <- "decrypt"
							return
						}
						sig, err := ek.Sign(rand.Reader, d[:], crypto.SHA256)
						if err != nil || !ecdsa.VerifyASN1(fx.p256.Public().(*ecdsa.PublicKey), d[:], sig) {
							errs <- "sign"
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Errorf("concurrent %s failed", e)
			}
		})
	}
}
