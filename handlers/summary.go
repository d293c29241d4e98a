package handlers

import (
	"crypto/x509"
	"sync"

	"github.com/secmail/secmail/result"
)

// summaryCache remembers the certificate summaries inbound results carry
// (subject and issuer as strings, serial, SHA-256 fingerprint): formatting
// the names and hashing cost several microseconds per certificate, and
// the same certificates recur, as the same pointers: our own keys' and
// the signers' from the handler's certificate cache. A summary is a
// function of the certificate, and certificates are never modified, so a
// hit is what Summarize would return; every caller gets its own copy.
// Bounded: the map is reset when full.
type summaryCache struct {
	mu sync.Mutex
	m  map[*x509.Certificate]result.Certificate
}

// maxSummaries bounds the summaries a Handler keeps.
const maxSummaries = 1024

// summarize is result.Summarize through the cache.
func (c *summaryCache) summarize(cert *x509.Certificate) *result.Certificate {
	if cert == nil {
		return nil
	}
	c.mu.Lock()
	s, ok := c.m[cert]
	c.mu.Unlock()
	if !ok {
		s = *result.Summarize(cert)
		c.mu.Lock()
		if c.m == nil || len(c.m) >= maxSummaries {
			c.m = make(map[*x509.Certificate]result.Certificate)
		}
		c.m[cert] = s
		c.mu.Unlock()
	}
	return &s
}
