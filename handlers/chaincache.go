package handlers

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"

	"github.com/secmail/secmail/certcheck"
	"github.com/secmail/secmail/keys"
)

// chainCache remembers successful certificate validations. Building and
// verifying a chain costs several signature verifications — more than the
// rest of an article's handling — and the same correspondents write again
// and again. A success stays valid while the trust store is unchanged (a
// new *keys.Trust means a change) and the time in question lies inside the
// chain's common validity window; failures are not cached, so they are
// always reported with their exact, current reason.
type chainCache struct {
	mu      sync.Mutex
	entries map[chainKey]chainEntry
	now     func() time.Time
}

type chainKey struct {
	trust *keys.Trust
	kind  byte // 's' signer, 'r' recipient
	leaf  [32]byte
	extra [32]byte
}

type chainEntry struct {
	chain   []*x509.Certificate
	lo, hi  time.Time // validity window of the whole chain
	expires time.Time // recipients: bound, since their chain is not known
	err     error     // recipients: a failure is reused for failureTTL
}

// maxChainEntries bounds memory; the map is simply reset when full.
const maxChainEntries = 8192

// recipientTTL bounds how long a recipient validation is reused, and
// failureTTL how long a failed one is: preflight asks about the same
// unusable recipients on every keystroke of an agent.
const (
	recipientTTL = 5 * time.Minute
	failureTTL   = time.Minute
)

func newChainCache(now func() time.Time) *chainCache {
	return &chainCache{entries: map[chainKey]chainEntry{}, now: now}
}

func (c *chainCache) get(k chainKey, at time.Time) (chainEntry, bool) {
	c.mu.Lock()
	e, ok := c.entries[k]
	c.mu.Unlock()
	if !ok || at.Before(e.lo) || at.After(e.hi) || (!e.expires.IsZero() && c.now().After(e.expires)) {
		return chainEntry{}, false
	}
	return e, true
}

func (c *chainCache) put(k chainKey, e chainEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxChainEntries {
		c.entries = map[chainKey]chainEntry{}
	}
	c.entries[k] = e
}

// verifySigner is certcheck.VerifySigner with caching.
func (c *chainCache) verifySigner(cert *x509.Certificate, extra []*x509.Certificate, trust *keys.Trust, at time.Time) ([]*x509.Certificate, error) {
	h := sha256.New()
	for _, x := range extra {
		h.Write(x.Raw)
	}
	k := chainKey{trust: trust, kind: 's', leaf: sha256.Sum256(cert.Raw)}
	copy(k.extra[:], h.Sum(nil))
	if e, ok := c.get(k, at); ok {
		return e.chain, nil
	}
	chain, err := certcheck.VerifySigner(cert, extra, trust, at)
	if err != nil {
		return nil, err
	}
	e := chainEntry{chain: chain, lo: cert.NotBefore, hi: cert.NotAfter}
	for _, x := range chain {
		if x.NotBefore.After(e.lo) {
			e.lo = x.NotBefore
		}
		if x.NotAfter.Before(e.hi) {
			e.hi = x.NotAfter
		}
	}
	c.put(k, e)
	return chain, nil
}

// checkRecipient is certcheck.CheckRecipient with caching.
func (c *chainCache) checkRecipient(cert *x509.Certificate, trust *keys.Trust, now time.Time) error {
	k := chainKey{trust: trust, kind: 'r', leaf: sha256.Sum256(cert.Raw)}
	if e, ok := c.get(k, now); ok {
		return e.err
	}
	if err := certcheck.CheckRecipient(cert, trust, now); err != nil {
		c.put(k, chainEntry{lo: now, hi: now.Add(failureTTL), expires: c.now().Add(failureTTL), err: err})
		return err
	}
	c.put(k, chainEntry{lo: cert.NotBefore, hi: cert.NotAfter, expires: c.now().Add(recipientTTL)})
	return nil
}
