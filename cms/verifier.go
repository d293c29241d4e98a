package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"sync"
)

// PublicKeyVerifier checks RSA and ECDSA signatures for Verify in place
// of crypto/rsa and crypto/ecdsa. An implementation must give exactly
// their results: nil exactly when rsa.VerifyPKCS1v15 or rsa.VerifyPSS
// would return nil (any error is reported as bad-signature), true exactly
// when ecdsa.VerifyASN1 would. keybackend/openssl's Backend is one (the
// arithmetic in libcrypto); keybackend.Verifier returns it.
type PublicKeyVerifier interface {
	VerifyPKCS1v15(pub *rsa.PublicKey, hash crypto.Hash, hashed, sig []byte) error
	VerifyPSS(pub *rsa.PublicKey, hash crypto.Hash, digest, sig []byte, opts *rsa.PSSOptions) error
	VerifyASN1(pub *ecdsa.PublicKey, digest, sig []byte) bool
}

// GoVerifier is the standard library as a PublicKeyVerifier, the default.
type GoVerifier struct{}

func (GoVerifier) VerifyPKCS1v15(pub *rsa.PublicKey, hash crypto.Hash, hashed, sig []byte) error {
	return rsa.VerifyPKCS1v15(pub, hash, hashed, sig)
}

func (GoVerifier) VerifyPSS(pub *rsa.PublicKey, hash crypto.Hash, digest, sig []byte, opts *rsa.PSSOptions) error {
	return rsa.VerifyPSS(pub, hash, digest, sig, opts)
}

func (GoVerifier) VerifyASN1(pub *ecdsa.PublicKey, digest, sig []byte) bool {
	return ecdsa.VerifyASN1(pub, digest, sig)
}

// SignedDataOptions tune ParseSignedDataWith and the Verify of its
// result. The zero value is ParseSignedData.
type SignedDataOptions struct {
	// Certs, when set, parses the certificates the message carries
	// through the cache, so a sender's certificates are parsed once and
	// not with every message.
	Certs *CertCache
	// Verifier, when set, checks RSA and ECDSA signatures instead of
	// crypto/rsa and crypto/ecdsa.
	Verifier PublicKeyVerifier
}

// CertCache maps certificate DER to the parsed certificate, shared by
// the messages of one worker (one per handler). Customers' mail carries
// the same signer and CA certificates again and again, and parsing one
// costs more than the rest of a SignedData.
//
// Reusing a parse is safe: x509.ParseCertificate is a function of the
// bytes alone, and the cache is keyed by the complete DER (no hash, no
// collision), so a hit returns what parsing would have returned. Failures
// are not cached. The certificate's Raw fields point into a private copy
// of the DER, never into a message, so no message stays alive through
// the cache. Callers share the *x509.Certificate values across messages
// and goroutines and must not modify them (crypto/x509 and secmail only
// read certificates).
//
// The size is bounded: two generations of at most max entries each; a
// certificate used in the current or the previous generation stays, and
// when the current one is full it becomes the previous one.
type CertCache struct {
	max      int
	mu       sync.Mutex
	cur, old map[string]*x509.Certificate
}

// NewCertCache returns a cache holding at most 2*max certificates.
func NewCertCache(max int) *CertCache {
	if max < 1 {
		max = 1
	}
	return &CertCache{max: max}
}

// Parse returns the certificate der encodes, parsed now or earlier.
func (c *CertCache) Parse(der []byte) (*x509.Certificate, error) {
	c.mu.Lock()
	cert, ok := c.cur[string(der)]
	if !ok {
		if cert, ok = c.old[string(der)]; ok {
			c.putLocked(cert)
		}
	}
	c.mu.Unlock()
	if ok {
		return cert, nil
	}
	cert, err := x509.ParseCertificate(bytes.Clone(der))
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.putLocked(cert)
	c.mu.Unlock()
	return cert, nil
}

// putLocked stores cert under its own DER (cert.Raw, the private copy).
func (c *CertCache) putLocked(cert *x509.Certificate) {
	if c.cur == nil || len(c.cur) >= c.max {
		c.old, c.cur = c.cur, make(map[string]*x509.Certificate)
	}
	c.cur[string(cert.Raw)] = cert
}

// Len returns the number of certificates held.
func (c *CertCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.old)
}
