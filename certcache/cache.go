// Package certcache is the worker's read path to the certificate store:
// a bounded in-process LRU, then Redis shared by all replicas (public
// material and negative look-ups only), then the JetStream KV store. A KV
// watch invalidates every replica's entries and the affected Redis keys as
// soon as the store changes.
//
// Private keys and passphrases never leave the process: unsealed keys are
// held in memory only, and rebuilt after any change to keys or
// certificates. Keys attached in a PKCS#11 token are never in memory at
// all: the cache holds the backend's handles to them (Options.TokenKeys). Redis being down makes look-ups fall back to KV (counted);
// NATS being briefly down leaves the cached entries serving.
package certcache

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/secmail/secmail/keybackend"
	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/store"
)

var _ keys.Source = (*Cache)(nil)

// Metrics receives cache outcomes; the pipeline implements it with
// Prometheus. Tiers are "lru", "redis" and "kv"; results "hit", "miss",
// "error", and "bypass" (Redis skipped for a moment after an error). A
// cached negative answer is a hit of its tier; at the KV tier "miss" means
// the store has nothing for the key. Ops are cert_by_email,
// cert_by_issuer_serial, cert_by_ski, capabilities, pgp_by_id and
// pgp_by_email.
type Metrics interface {
	CacheResult(tier, result string)
	LookupDuration(op string, d time.Duration)
}

// Options configure New. Zero values select the defaults.
type Options struct {
	// Redis is the shared tier; nil disables it.
	Redis redis.UniversalClient
	// RedisPrefix namespaces and versions the Redis keys
	// (default "secmail:v1:"); the bucket name follows.
	RedisPrefix string
	// LRUSize bounds the in-process tier (default 10000 entries; negative
	// disables it).
	LRUSize int
	// TTL of positive Redis entries (default 1h) and NegativeTTL of
	// negative ones (default 5m): a backstop, invalidation is by watch.
	TTL, NegativeTTL time.Duration
	// RedisBackoff is how long Redis is bypassed after an error (default 1s).
	RedisBackoff time.Duration
	// KVTimeout bounds one KV look-up (default 2s).
	KVTimeout time.Duration
	Metrics   Metrics
	Logger    *slog.Logger
	// LoadKey, when set, hands every unsealed private key to a key backend
	// once (keybackend.Backend.Load), before it is cached in process.
	LoadKey func(keys.PrivateKey) (keys.PrivateKey, error)
	// TokenKeys resolves private keys that live only in a PKCS#11 token
	// (records attached with `worker certs attach`): the key the record
	// names, used only if its public key is the certificate's. Nil: such
	// certificates have no usable key (logged once), and the handlers
	// report no-private-key for them.
	TokenKeys keybackend.TokenKeys
	// TokenLabel is the label of the token TokenKeys opened (required with
	// TokenKeys). A record naming another token is skipped with a warning.
	TokenLabel string
}

// ErrTokenKeyMismatch is logged when the token key a certificate's record
// names has a different public key: that key is refused for the
// certificate.
var ErrTokenKeyMismatch = errors.New("certcache: the token key's public key is not the certificate's")

// Stats are cumulative counters.
type Stats struct {
	LRUHits, LRUMisses                  uint64
	RedisHits, RedisMisses, RedisErrors uint64
	KVHits, KVMisses, KVErrors          uint64
	// RedisFallbacks counts look-ups answered from KV because Redis
	// failed or was being bypassed after a failure.
	RedisFallbacks uint64
	Invalidations  uint64
	LRUEntries     int
}

type counters struct {
	lruHit, lruMiss             atomic.Uint64
	redisHit, redisMiss, redisE atomic.Uint64
	kvHit, kvMiss, kvE          atomic.Uint64
	fallback, invalidations     atomic.Uint64
}

// Cache implements keys.Source over a store.Store.
type Cache struct {
	st    *store.Store
	opts  Options
	log   *slog.Logger
	lru   *lru
	rpfx  string
	cnt   counters
	epoch atomic.Uint64 // bumped by every invalidation

	redisDownUntil atomic.Int64 // unix nanos

	mu         sync.Mutex
	smime      []keys.SMIMEKey // nil: not loaded
	smimeOK    bool
	pgpSecret  openpgp.EntityList
	pgpOK      bool
	trust      *keys.Trust
	lastTrust  *keys.Trust     // served while the store is unreachable
	pendingDel map[string]bool // Redis deletes that failed; retried

	cancel  context.CancelFunc
	done    chan struct{}
	noKey   sync.Once
	noToken sync.Once
}

// New returns a cache over st and starts its invalidation watcher, which
// runs until Close or ctx ends.
func New(ctx context.Context, st *store.Store, opts Options) (*Cache, error) {
	if opts.RedisPrefix == "" {
		opts.RedisPrefix = "secmail:v1:"
	}
	if opts.LRUSize == 0 {
		opts.LRUSize = 10000
	}
	if opts.TTL == 0 {
		opts.TTL = time.Hour
	}
	if opts.NegativeTTL == 0 {
		opts.NegativeTTL = 5 * time.Minute
	}
	if opts.RedisBackoff == 0 {
		opts.RedisBackoff = time.Second
	}
	if opts.KVTimeout == 0 {
		opts.KVTimeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.TokenKeys != nil && opts.TokenLabel == "" {
		return nil, errors.New("certcache: Options.TokenKeys needs Options.TokenLabel")
	}
	c := &Cache{
		st: st, opts: opts, log: opts.Logger, lru: newLRU(opts.LRUSize),
		rpfx: opts.RedisPrefix + st.KV().Bucket() + ":", pendingDel: map[string]bool{},
		done: make(chan struct{}),
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w, err := st.KV().WatchAll(wctx, jetstream.UpdatesOnly(), jetstream.MetaOnly())
	if err != nil {
		cancel()
		return nil, fmt.Errorf("certcache: watching %s: %w", st.KV().Bucket(), err)
	}
	c.cancel = cancel
	go c.watch(wctx, ctx, w)
	return c, nil
}

// Close stops the watcher.
func (c *Cache) Close() error {
	c.cancel()
	<-c.done
	return nil
}

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	return Stats{
		LRUHits: c.cnt.lruHit.Load(), LRUMisses: c.cnt.lruMiss.Load(),
		RedisHits: c.cnt.redisHit.Load(), RedisMisses: c.cnt.redisMiss.Load(), RedisErrors: c.cnt.redisE.Load(),
		KVHits: c.cnt.kvHit.Load(), KVMisses: c.cnt.kvMiss.Load(), KVErrors: c.cnt.kvE.Load(),
		RedisFallbacks: c.cnt.fallback.Load(), Invalidations: c.cnt.invalidations.Load(),
		LRUEntries: c.lru.len(),
	}
}

// Store returns the underlying store.
func (c *Cache) Store() *store.Store { return c.st }

// Purge drops every in-process entry (not Redis).
func (c *Cache) Purge() {
	c.epoch.Add(1)
	c.lru.purge()
	c.mu.Lock()
	c.smime, c.smimeOK, c.pgpSecret, c.pgpOK, c.trust = nil, false, nil, false, nil
	c.mu.Unlock()
}

func (c *Cache) result(tier, res string) {
	if c.opts.Metrics != nil {
		c.opts.Metrics.CacheResult(tier, res)
	}
}

// watch applies invalidations until ctx ends. The watcher is an ordered
// consumer: after a NATS outage it resumes where it stopped, so no change
// is missed; should it ever end, it is re-created and everything local is
// purged.
func (c *Cache) watch(wctx, parent context.Context, w jetstream.KeyWatcher) {
	defer close(c.done)
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-wctx.Done():
			_ = w.Stop()
			return
		case <-parent.Done():
			_ = w.Stop()
			return
		case <-retry.C:
			c.retryPendingDeletes(wctx)
		case e, ok := <-w.Updates():
			if !ok {
				for {
					var err error
					w, err = c.st.KV().WatchAll(wctx, jetstream.UpdatesOnly(), jetstream.MetaOnly())
					if err == nil {
						break
					}
					select {
					case <-wctx.Done():
						return
					case <-time.After(time.Second):
					}
				}
				c.Purge()
				continue
			}
			if e != nil {
				c.invalidate(wctx, e.Key())
			}
		}
	}
}

// invalidate drops what depends on the changed KV key.
func (c *Cache) invalidate(ctx context.Context, key string) {
	c.cnt.invalidations.Add(1)
	c.epoch.Add(1)
	if rk, ok := c.redisKey(key); ok {
		c.lru.remove(key)
		c.redisDel(ctx, rk)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Certificate records themselves are immutable DER (only metadata
	// changes), so a bulk import of contacts' certificates does not cost
	// a rebuild of our keys or the trust context: those depend on the
	// key records, the key and CA lists (chains come from CAs) and CRLs.
	if strings.HasPrefix(key, "key.") || key == "idx.keys" || key == "idx.ca" {
		c.smime, c.smimeOK = nil, false
	}
	if strings.HasPrefix(key, "crl.") || key == "idx.ca" {
		c.trust = nil
	}
	if strings.HasPrefix(key, "pgp.") || key == "idx.pgpsecret" {
		c.pgpSecret, c.pgpOK = nil, false
	}
}

// redisKey maps a cacheable KV key to its Redis key.
func (c *Cache) redisKey(kvKey string) (string, bool) {
	for _, m := range [...][2]string{
		{"idx.email.", "cert:email:"}, {"idx.is.", "cert:is:"}, {"idx.ski.", "cert:ski:"},
		{"idx.pgpid.", "pgp:id:"}, {"idx.pgpemail.", "pgp:email:"}, {"caps.", "caps:"},
	} {
		if rest, ok := strings.CutPrefix(kvKey, m[0]); ok {
			return c.rpfx + m[1] + rest, true
		}
	}
	return "", false
}

func (c *Cache) redisUsable() bool {
	return c.opts.Redis != nil && time.Now().UnixNano() >= c.redisDownUntil.Load()
}

func (c *Cache) redisFailed(err error) {
	c.cnt.redisE.Add(1)
	c.result("redis", "error")
	c.redisDownUntil.Store(time.Now().Add(c.opts.RedisBackoff).UnixNano())
	c.log.Warn("certcache: redis unavailable, using KV", "err", err)
}

func (c *Cache) redisDel(ctx context.Context, rk string) {
	if c.opts.Redis == nil {
		return
	}
	if err := c.opts.Redis.Del(ctx, rk).Err(); err != nil {
		// Keep it: a Redis that comes back without a restart must not
		// serve the stale entry until its TTL.
		c.mu.Lock()
		if len(c.pendingDel) < 100000 {
			c.pendingDel[rk] = true
		}
		c.mu.Unlock()
	}
}

func (c *Cache) retryPendingDeletes(ctx context.Context) {
	c.mu.Lock()
	if len(c.pendingDel) == 0 || c.opts.Redis == nil {
		c.mu.Unlock()
		return
	}
	ks := make([]string, 0, len(c.pendingDel))
	for k := range c.pendingDel {
		ks = append(ks, k)
	}
	c.mu.Unlock()
	if err := c.opts.Redis.Del(ctx, ks...).Err(); err != nil {
		return
	}
	c.mu.Lock()
	for _, k := range ks {
		delete(c.pendingDel, k)
	}
	c.mu.Unlock()
}

// lookup resolves one cacheable KV key through the tiers. fromKV returns
// the public material as byte strings (DER, OpenPGP packets, OIDs);
// decode turns them into the cached value.
func (c *Cache) lookup(ctx context.Context, op, kvKey string, fromKV func(context.Context) ([][]byte, error), decode func([][]byte) (any, error)) (any, error) {
	start := time.Now()
	defer func() {
		if c.opts.Metrics != nil {
			c.opts.Metrics.LookupDuration(op, time.Since(start))
		}
	}()
	if v, ok := c.lru.get(kvKey); ok {
		c.cnt.lruHit.Add(1)
		c.result("lru", "hit")
		return v, nil
	}
	c.cnt.lruMiss.Add(1)
	c.result("lru", "miss")
	epoch := c.epoch.Load()
	rk, _ := c.redisKey(kvKey)

	if c.redisUsable() {
		b, err := c.opts.Redis.Get(ctx, rk).Bytes()
		switch {
		case err == nil:
			var raw [][]byte
			if jerr := json.Unmarshal(b, &raw); jerr == nil {
				if v, derr := decode(raw); derr == nil {
					c.cnt.redisHit.Add(1)
					c.result("redis", "hit")
					c.fill(epoch, kvKey, v)
					return v, nil
				}
			}
			// A corrupt or foreign entry: ignore it; KV overwrites it.
			c.cnt.redisMiss.Add(1)
			c.result("redis", "miss")
		case errors.Is(err, redis.Nil):
			c.cnt.redisMiss.Add(1)
			c.result("redis", "miss")
		case ctx.Err() != nil:
			// The caller gave up; that says nothing about Redis.
			return nil, ctx.Err()
		default:
			c.redisFailed(err)
			c.cnt.fallback.Add(1)
		}
	} else if c.opts.Redis != nil {
		c.cnt.fallback.Add(1)
		c.result("redis", "bypass")
	}

	kctx, cancel := context.WithTimeout(ctx, c.opts.KVTimeout)
	raw, err := fromKV(kctx)
	cancel()
	if err != nil {
		c.cnt.kvE.Add(1)
		c.result("kv", "error")
		return nil, fmt.Errorf("certcache: %s: %w", op, err)
	}
	v, err := decode(raw)
	if err != nil {
		return nil, fmt.Errorf("certcache: %s: %w", op, err)
	}
	if len(raw) == 0 {
		c.cnt.kvMiss.Add(1)
		c.result("kv", "miss")
	} else {
		c.cnt.kvHit.Add(1)
		c.result("kv", "hit")
	}
	// Only fill when no invalidation raced with the read, so an old
	// answer cannot outlive the change that replaced it.
	if c.epoch.Load() == epoch {
		if c.redisUsable() {
			ttl := c.opts.TTL
			if len(raw) == 0 {
				ttl = c.opts.NegativeTTL
			}
			data, _ := json.Marshal(raw)
			if err := c.opts.Redis.Set(ctx, rk, data, ttl).Err(); err != nil {
				c.redisFailed(err)
			}
		}
		c.fill(epoch, kvKey, v)
	}
	return v, nil
}

func (c *Cache) fill(epoch uint64, key string, v any) {
	if c.epoch.Load() == epoch {
		c.lru.add(key, v)
	}
}

func (c *Cache) certsFromKV(idxKey string) func(context.Context) ([][]byte, error) {
	return func(ctx context.Context) ([][]byte, error) {
		recs, err := c.st.CertsByIndex(ctx, idxKey)
		if err != nil {
			return nil, err
		}
		out := make([][]byte, len(recs))
		for i, r := range recs {
			out[i] = r.DER
		}
		return out, nil
	}
}

func decodeCerts(raw [][]byte) (any, error) {
	out := make([]*x509.Certificate, 0, len(raw))
	for _, der := range raw {
		crt, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		out = append(out, crt)
	}
	return out, nil
}

func (c *Cache) certs(ctx context.Context, op, idxKey string) ([]*x509.Certificate, error) {
	v, err := c.lookup(ctx, op, idxKey, c.certsFromKV(idxKey), decodeCerts)
	if err != nil {
		return nil, err
	}
	// Copy the slice header so callers may append without racing.
	return append([]*x509.Certificate(nil), v.([]*x509.Certificate)...), nil
}

// CertsByEmail implements keys.Source.
func (c *Cache) CertsByEmail(ctx context.Context, email string) ([]*x509.Certificate, error) {
	return c.certs(ctx, "cert_by_email", store.EmailIndexKey(email))
}

// CertsByIssuerSerial implements keys.Source.
func (c *Cache) CertsByIssuerSerial(ctx context.Context, rawIssuer []byte, serial *big.Int) ([]*x509.Certificate, error) {
	return c.certs(ctx, "cert_by_issuer_serial", store.IssuerSerialIndexKey(rawIssuer, serial))
}

// CertsBySKI implements keys.Source.
func (c *Cache) CertsBySKI(ctx context.Context, ski []byte) ([]*x509.Certificate, error) {
	return c.certs(ctx, "cert_by_ski", store.SKIIndexKey(ski))
}

// Capabilities implements keys.Source.
func (c *Cache) Capabilities(ctx context.Context, email string) ([]string, error) {
	v, err := c.lookup(ctx, "capabilities", store.CapsKey(email), func(ctx context.Context) ([][]byte, error) {
		oids, err := c.st.Capabilities(ctx, email)
		out := make([][]byte, len(oids))
		for i, o := range oids {
			out[i] = []byte(o)
		}
		return out, err
	}, func(raw [][]byte) (any, error) {
		var out []string
		for _, b := range raw {
			out = append(out, string(b))
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return append([]string(nil), v.([]string)...), nil
}

func (c *Cache) pgp(ctx context.Context, op, idxKey string) (openpgp.EntityList, error) {
	v, err := c.lookup(ctx, op, idxKey, func(ctx context.Context) ([][]byte, error) {
		recs, err := c.st.PGPByIndex(ctx, idxKey)
		if err != nil {
			return nil, err
		}
		out := make([][]byte, len(recs))
		for i, r := range recs {
			out[i] = r.Public
		}
		return out, nil
	}, func(raw [][]byte) (any, error) {
		var out openpgp.EntityList
		for _, b := range raw {
			el, err := openpgp.ReadKeyRing(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			out = append(out, el...)
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return append(openpgp.EntityList(nil), v.(openpgp.EntityList)...), nil
}

// PGPKeysByID implements keys.Source.
func (c *Cache) PGPKeysByID(ctx context.Context, id uint64) (openpgp.EntityList, error) {
	return c.pgp(ctx, "pgp_by_id", store.PGPIDIndexKey(id))
}

// PGPKeysByEmail implements keys.Source: keys naming the address and
// domain-alias keys (*@domain) of its domain.
func (c *Cache) PGPKeysByEmail(ctx context.Context, email string) (openpgp.EntityList, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	out, err := c.pgp(ctx, "pgp_by_email", store.PGPEmailIndexKey(email))
	if err != nil {
		return nil, err
	}
	if at := strings.LastIndexByte(email, '@'); at >= 0 && !strings.HasPrefix(email, "*@") {
		alias, err := c.pgp(ctx, "pgp_by_email", store.PGPEmailIndexKey("*"+email[at:]))
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for _, e := range out {
			seen[string(e.PrimaryKey.Fingerprint)] = true
		}
		for _, e := range alias {
			if !seen[string(e.PrimaryKey.Fingerprint)] {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// noMasterKey logs once that private keys are unavailable.
func (c *Cache) noMasterKey() {
	c.noKey.Do(func() {
		c.log.Error("certcache: no master key: private keys unavailable, decryption and signing will fail", "env", store.MasterKeyEnv)
	})
}

// SMIMEKeys implements keys.Source: keys sealed in the store, unsealed
// (through LoadKey), and keys in a PKCS#11 token (through TokenKeys).
// Without a master key sealed keys are left out (handlers then report
// no-private-key) and that is logged once; token keys need none. A token
// key that cannot be used is left out and logged, naming the certificate;
// a failing token is an error, so the article is retried.
func (c *Cache) SMIMEKeys(ctx context.Context) ([]keys.SMIMEKey, error) {
	c.mu.Lock()
	if c.smimeOK {
		ks := c.smime
		c.mu.Unlock()
		c.result("lru", "hit")
		return append([]keys.SMIMEKey(nil), ks...), nil
	}
	c.mu.Unlock()
	epoch := c.epoch.Load()
	refs, err := c.st.SMIMEKeyRefs(ctx)
	if err != nil {
		return nil, fmt.Errorf("certcache: private keys: %w", err)
	}
	ks := make([]keys.SMIMEKey, 0, len(refs))
	for _, r := range refs {
		switch {
		case r.NeedsMasterKey:
			c.noMasterKey()
			continue
		case r.Token != nil:
			if r.Key, err = c.tokenKey(r); err != nil {
				return nil, err
			}
			if r.Key == nil {
				continue
			}
		case r.Key != nil && c.opts.LoadKey != nil:
			if r.Key, err = c.opts.LoadKey(r.Key); err != nil {
				return nil, fmt.Errorf("certcache: loading a private key into the key backend: %w", err)
			}
		}
		ks = append(ks, r.SMIMEKey)
	}
	c.mu.Lock()
	if c.epoch.Load() == epoch {
		c.smime, c.smimeOK = ks, true
	}
	c.mu.Unlock()
	return append([]keys.SMIMEKey(nil), ks...), nil
}

// tokenKey finds the key a token record names. It returns nil and no
// error for a record that cannot be used, and logs why: no token backend,
// another token, no such key on the token, or a key that is not the
// certificate's. Only a failing token is an error.
func (c *Cache) tokenKey(r store.KeyRef) (keys.PrivateKey, error) {
	ref := *r.Token
	fp := store.Fingerprint(r.Cert)
	attrs := []any{"fingerprint", fp, "subject", r.Cert.Subject.String(), "token", ref.Token, "key", ref.Key}
	switch {
	case c.opts.TokenKeys == nil:
		c.noToken.Do(func() {
			c.log.Error("certcache: private keys in a PKCS#11 token but no token key backend configured (--key-backend pkcs11): those certificates cannot decrypt or sign", attrs...)
		})
		return nil, nil
	case ref.Token != c.opts.TokenLabel:
		c.log.Warn("certcache: private key in another token than the configured one; certificate skipped", append(attrs, "configured_token", c.opts.TokenLabel)...)
		return nil, nil
	}
	k, err := c.opts.TokenKeys.Key(ref.Key)
	if errors.Is(err, keys.ErrNotFound) {
		c.log.Error("certcache: token key not found; certificate skipped", append(attrs, "err", err)...)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("certcache: %s for certificate %s: %w", ref, fp, err)
	}
	if !samePublicKey(r.Cert, k) {
		err := fmt.Errorf("%w: certificate %s (%s), %s", ErrTokenKeyMismatch, fp, r.Cert.Subject, ref)
		c.log.Error("certcache: token key refused", append(attrs, "err", err)...)
		return nil, nil
	}
	return k, nil
}

// samePublicKey reports whether k is the private half of cert's key.
func samePublicKey(cert *x509.Certificate, k keys.PrivateKey) bool {
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(k.Public())
}

// SMIMEKeysByEmail implements keys.Source.
func (c *Cache) SMIMEKeysByEmail(ctx context.Context, email string) ([]keys.SMIMEKey, error) {
	all, err := c.SMIMEKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []keys.SMIMEKey
	for _, k := range all {
		if keys.AddressMatches(keys.CertEmails(k.Cert), email) {
			out = append(out, k)
		}
	}
	return out, nil
}

// PGPSecretKeys implements keys.Source (empty without a master key).
func (c *Cache) PGPSecretKeys(ctx context.Context) (openpgp.EntityList, error) {
	c.mu.Lock()
	if c.pgpOK {
		el := c.pgpSecret
		c.mu.Unlock()
		return append(openpgp.EntityList(nil), el...), nil
	}
	c.mu.Unlock()
	epoch := c.epoch.Load()
	el, err := c.st.PGPSecretKeys(ctx)
	if errors.Is(err, store.ErrNoMasterKey) {
		c.noMasterKey()
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("certcache: pgp secret keys: %w", err)
	}
	c.mu.Lock()
	if c.epoch.Load() == epoch {
		c.pgpSecret, c.pgpOK = el, true
	}
	c.mu.Unlock()
	return append(openpgp.EntityList(nil), el...), nil
}

// Trust implements keys.Source: every CA certificate in the store is a
// trust anchor (Zammad's behaviour) and an intermediate; CRLs from the
// store. Built once and rebuilt after a change, not per message. When the
// store is unreachable the previous context keeps serving.
func (c *Cache) Trust(ctx context.Context) (*keys.Trust, error) {
	c.mu.Lock()
	t := c.trust
	c.mu.Unlock()
	if t != nil {
		return t, nil
	}
	epoch := c.epoch.Load()
	cas, crls, err := c.st.TrustMaterial(ctx)
	if err != nil {
		c.mu.Lock()
		last := c.lastTrust
		c.mu.Unlock()
		if last != nil {
			c.log.Warn("certcache: store unreachable, using the previous trust context", "err", err)
			return last, nil
		}
		return nil, fmt.Errorf("certcache: trust: %w", err)
	}
	t = &keys.Trust{Roots: x509.NewCertPool(), Intermediates: x509.NewCertPool(), CRLs: crls}
	for _, ca := range cas {
		t.Roots.AddCert(ca)
		t.Intermediates.AddCert(ca)
	}
	c.mu.Lock()
	c.lastTrust = t
	if c.epoch.Load() == epoch {
		c.trust = t
	}
	c.mu.Unlock()
	return t, nil
}
