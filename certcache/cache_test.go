package certcache_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/secmail/secmail/certcache"
	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/store"
	"github.com/secmail/secmail/store/storetest"
)

func mk(t testing.TB) *store.MasterKey {
	t.Helper()
	k, err := store.NewMasterKey(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func openStore(t testing.TB, nc *nats.Conn, bucket string, key *store.MasterKey, mem bool) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), nc, store.Config{Bucket: bucket, MasterKey: key, MemoryStorage: mem})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// recorder is a real certcache.Metrics that just counts.
type recorder struct {
	mu     sync.Mutex
	counts map[string]int
	ops    map[string]int
}

func (r *recorder) CacheResult(tier, result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[tier+"/"+result]++
}

func (r *recorder) LookupDuration(op string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops[op]++
}

func (r *recorder) get(k string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[k]
}

func newCache(t testing.TB, s *store.Store, rc redis.UniversalClient, lruSize int) *certcache.Cache {
	t.Helper()
	return newCacheM(t, s, rc, lruSize, nil)
}

func newCacheM(t testing.TB, s *store.Store, rc redis.UniversalClient, lruSize int, m certcache.Metrics) *certcache.Cache {
	t.Helper()
	c, err := certcache.New(context.Background(), s, certcache.Options{Redis: rc, LRUSize: lruSize, RedisBackoff: 100 * time.Millisecond, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func importFiles(t testing.TB, s *store.Store, fx *storetest.Fixtures, names ...string) {
	t.Helper()
	var in []store.Input
	for _, n := range names {
		in = append(in, store.Input{Name: n, Data: fx.Read(t, n)})
	}
	rep, err := s.Import(context.Background(), in, store.ImportOptions{Passphrases: []string{storetest.Passphrase}})
	if err != nil || rep.Failed() {
		t.Fatalf("import %v: %v %+v", names, err, rep)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTiersAndNoSecretsInRedis(t *testing.T) {
	fx := storetest.Fx(t)
	n := storetest.StartNATS(t, "")
	r := storetest.StartRedis(t)
	rc := r.Client()
	ctx := context.Background()
	s := openStore(t, n.Connect(), "tiers", mk(t), true)
	files := []string{"chain.pem", "alice.key", "bob.p12", "ca.crl"}
	if fx.HavePGP {
		files = append(files, "carol.sec.asc", "alias.pub.asc")
	}
	importFiles(t, s, fx, files...)
	if err := s.SetCapabilities(ctx, "alice@example.com", []string{"2.16.840.1.101.3.4.1.46"}); err != nil {
		t.Fatal(err)
	}

	c1 := newCache(t, s, rc, 100)
	for i := 0; i < 2; i++ {
		got, err := c1.CertsByEmail(ctx, "Alice@Example.com")
		if err != nil || len(got) != 1 || !got[0].Equal(fx.Alice) {
			t.Fatalf("lookup %d: %v %d", i, err, len(got))
		}
		none, err := c1.CertsByEmail(ctx, "nobody@example.com")
		if err != nil || len(none) != 0 {
			t.Fatalf("negative lookup %d: %v %d", i, err, len(none))
		}
	}
	st := c1.Stats()
	if st.KVHits != 1 || st.KVMisses != 1 || st.LRUHits != 2 || st.RedisMisses != 2 {
		t.Fatalf("stats after cold+hot: %+v", st)
	}
	// A second replica finds both answers (positive and negative) in Redis.
	c2 := newCache(t, s, rc, 100)
	if got, err := c2.CertsByEmail(ctx, "alice@example.com"); err != nil || len(got) != 1 {
		t.Fatal(err)
	}
	if got, err := c2.CertsByEmail(ctx, "nobody@example.com"); err != nil || len(got) != 0 {
		t.Fatal(err)
	}
	if st := c2.Stats(); st.RedisHits != 2 || st.KVHits+st.KVMisses != 0 {
		t.Fatalf("warm stats: %+v", st)
	}

	// Every look-up kind.
	if got, err := c2.CertsByIssuerSerial(ctx, fx.Bob.RawIssuer, fx.Bob.SerialNumber); err != nil || len(got) != 1 || !got[0].Equal(fx.Bob) {
		t.Fatalf("issuer+serial: %v %d", err, len(got))
	}
	if got, err := c2.CertsBySKI(ctx, fx.Alice.SubjectKeyId); err != nil || len(got) != 1 || !got[0].Equal(fx.Alice) {
		t.Fatalf("ski: %v %d", err, len(got))
	}
	if caps, err := c2.Capabilities(ctx, "ALICE@example.com"); err != nil || len(caps) != 1 {
		t.Fatalf("caps: %v %v", err, caps)
	}
	ks, err := c2.SMIMEKeysByEmail(ctx, "bob@example.com")
	if err != nil || len(ks) != 1 || ks[0].Key == nil || !ks[0].Cert.Equal(fx.Bob) {
		t.Fatalf("smime keys by email: %v %+v", err, ks)
	}
	if all, err := c2.SMIMEKeys(ctx); err != nil || len(all) != 2 {
		t.Fatalf("smime keys: %v %d", err, len(all))
	}
	tr, err := c2.Trust(ctx)
	if err != nil || len(tr.CRLs) != 1 {
		t.Fatalf("trust: %v", err)
	}
	if _, err := fx.Alice.Verify(x509.VerifyOptions{Roots: tr.Roots, Intermediates: tr.Intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
		t.Fatalf("alice does not chain to the store's CA: %v", err)
	}
	if fx.HavePGP {
		el, err := c2.PGPKeysByEmail(ctx, "carol@example.com")
		if err != nil || len(el) != 1 {
			t.Fatalf("pgp by email: %v %d", err, len(el))
		}
		byID, err := c2.PGPKeysByID(ctx, el[0].Subkeys[0].PublicKey.KeyId)
		if err != nil || len(byID) != 1 {
			t.Fatalf("pgp by subkey id: %v %d", err, len(byID))
		}
		alias, err := c2.PGPKeysByEmail(ctx, "anyone@alias.example")
		if err != nil || len(alias) != 1 {
			t.Fatalf("pgp domain alias: %v %d", err, len(alias))
		}
		sec, err := c2.PGPSecretKeys(ctx)
		if err != nil || len(sec) != 1 || sec[0].PrivateKey == nil || sec[0].PrivateKey.Encrypted {
			t.Fatalf("pgp secret keys: %v %d", err, len(sec))
		}
	}

	// Redis holds public material only: no key, no passphrase.
	secrets := [][]byte{[]byte("PRIVATE"), []byte(storetest.Passphrase), fx.Read(t, "bob.p12")}
	iter := rc.Scan(ctx, 0, "*", 1000).Iterator()
	nkeys := 0
	for iter.Next(ctx) {
		k := iter.Val()
		nkeys++
		if !strings.HasPrefix(k, "secmail:v1:tiers:") {
			t.Errorf("redis key %q outside the namespace", k)
		}
		for _, p := range []string{"cert:", "pgp:", "caps:"} {
			if strings.HasPrefix(k, "secmail:v1:tiers:"+p) {
				goto ok
			}
		}
		t.Errorf("unexpected redis key %q", k)
	ok:
		v, _ := rc.Get(ctx, k).Bytes()
		for _, sec := range secrets {
			if bytes.Contains(v, sec) {
				t.Errorf("redis key %s holds secret material", k)
			}
		}
	}
	if nkeys < 5 {
		t.Errorf("only %d redis keys", nkeys)
	}
}

func TestInvalidationAcrossReplicas(t *testing.T) {
	fx := storetest.Fx(t)
	n := storetest.StartNATS(t, "")
	r := storetest.StartRedis(t)
	ctx := context.Background()
	// Two worker instances: their own NATS connections, stores and caches,
	// one Redis.
	s1 := openStore(t, n.Connect(), "inv", mk(t), true)
	s2 := openStore(t, n.Connect(), "inv", mk(t), true)
	c1 := newCache(t, s1, r.Client(), 100)
	c2 := newCache(t, s2, r.Client(), 100)
	for _, c := range []*certcache.Cache{c1, c2} {
		if got, err := c.CertsByEmail(ctx, "alice@example.com"); err != nil || len(got) != 0 {
			t.Fatal(err, len(got))
		}
		if ks, err := c.SMIMEKeys(ctx); err != nil || len(ks) != 0 {
			t.Fatal(err, len(ks))
		}
		if _, err := c.Trust(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Change through instance 1; instance 2 sees it within a second
	// (negative entries in its LRU and in Redis are dropped).
	importFiles(t, s1, fx, "chain.pem", "alice.key")
	changed := time.Now()
	eventually(t, time.Second, "new certificate visible on the other replica", func() bool {
		got, err := c2.CertsByEmail(ctx, "alice@example.com")
		return err == nil && len(got) == 1
	})
	eventually(t, time.Second, "new private key visible on the other replica", func() bool {
		ks, err := c2.SMIMEKeys(ctx)
		return err == nil && len(ks) == 1
	})
	eventually(t, time.Second, "new CA trusted on the other replica", func() bool {
		tr, err := c2.Trust(ctx)
		if err != nil {
			return false
		}
		_, err = fx.Alice.Verify(x509.VerifyOptions{Roots: tr.Roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err == nil
	})
	t.Logf("visible on the other replica after %v", time.Since(changed))

	// Deletion: both replicas' LRUs and the Redis key are cleared.
	if got, err := c1.CertsByEmail(ctx, "alice@example.com"); err != nil || len(got) != 1 {
		t.Fatal(err)
	}
	if _, err := s1.Delete(ctx, storetest.FP(fx.Alice)); err != nil {
		t.Fatal(err)
	}
	rkey := "secmail:v1:inv:cert:email:" + strings.TrimPrefix(store.EmailIndexKey("alice@example.com"), "idx.email.")
	eventually(t, time.Second, "deleted certificate gone from the other replica and Redis", func() bool {
		got, err := c2.CertsByEmail(ctx, "alice@example.com")
		if err != nil || len(got) != 0 {
			return false
		}
		v, err := r.Client().Get(ctx, rkey).Bytes()
		return err == redis.Nil || string(v) == "[]"
	})
	eventually(t, time.Second, "deleted key gone", func() bool {
		ks, err := c1.SMIMEKeys(ctx)
		return err == nil && len(ks) == 0
	})
}

func TestRedisStoppedMidTest(t *testing.T) {
	fx := storetest.Fx(t)
	n := storetest.StartNATS(t, "")
	r := storetest.StartRedis(t)
	ctx := context.Background()
	s := openStore(t, n.Connect(), "rdown", mk(t), true)
	importFiles(t, s, fx, "chain.pem", "bob.pem")
	rec := &recorder{counts: map[string]int{}, ops: map[string]int{}}
	c := newCacheM(t, s, r.Client(), -1, rec) // no LRU: every look-up reaches Redis
	for i := 0; i < 2; i++ {
		if got, err := c.CertsByEmail(ctx, "bob@example.com"); err != nil || len(got) != 1 {
			t.Fatal(err)
		}
	}
	if st := c.Stats(); st.RedisHits != 1 {
		t.Fatalf("redis not used: %+v", st)
	}
	r.Stop()
	for i := 0; i < 5; i++ {
		got, err := c.CertsByIssuerSerial(ctx, fx.Bob.RawIssuer, fx.Bob.SerialNumber)
		if err != nil || len(got) != 1 {
			t.Fatalf("look-up with Redis down: %v", err)
		}
		if got, err := c.CertsByEmail(ctx, "bob@example.com"); err != nil || len(got) != 1 {
			t.Fatalf("look-up with Redis down: %v", err)
		}
	}
	st := c.Stats()
	if st.RedisErrors == 0 || st.RedisFallbacks < 10 {
		t.Fatalf("fallbacks not counted: %+v", st)
	}
	if rec.get("redis/error") == 0 || rec.get("kv/hit") < 10 || rec.ops["cert_by_email"] == 0 {
		t.Fatalf("metrics not reported: %+v %+v", rec.counts, rec.ops)
	}
	// A change while Redis is down is still seen (KV answers).
	importFiles(t, s, fx, "alice.pem")
	eventually(t, 2*time.Second, "change visible with Redis down", func() bool {
		got, err := c.CertsByEmail(ctx, "alice@example.com")
		return err == nil && len(got) == 1
	})
	// Redis back (empty, as after a restart): used again after the backoff.
	r.Start()
	eventually(t, 5*time.Second, "redis used again", func() bool {
		before := c.Stats().RedisHits
		_, _ = c.CertsByEmail(ctx, "alice@example.com")
		_, _ = c.CertsByEmail(ctx, "alice@example.com")
		return c.Stats().RedisHits > before
	})
}

func TestNATSRestart(t *testing.T) {
	fx := storetest.Fx(t)
	n := storetest.StartNATS(t, "")
	ctx := context.Background()
	s := openStore(t, n.Connect(), "nrestart", mk(t), false) // file storage survives the restart
	importFiles(t, s, fx, "chain.pem", "bob.pem", "bob.key")
	c := newCache(t, s, nil, 100)
	warm := func() error {
		if got, err := c.CertsByEmail(ctx, "alice@example.com"); err != nil || len(got) != 1 {
			return fmt.Errorf("by email: %v %d", err, len(got))
		}
		if ks, err := c.SMIMEKeys(ctx); err != nil || len(ks) != 1 {
			return fmt.Errorf("keys: %v", err)
		}
		if _, err := c.Trust(ctx); err != nil {
			return err
		}
		return nil
	}
	if err := warm(); err != nil {
		t.Fatal(err)
	}
	n.Stop()
	// Cached entries keep serving while NATS is down.
	for i := 0; i < 3; i++ {
		if err := warm(); err != nil {
			t.Fatalf("NATS down: %v", err)
		}
	}
	n.Start()
	// After the reconnect the watch resumes: a change is seen again. Each
	// attempt gets its own time-out, so one request lost in the reconnect
	// does not use up the rest; JetStream recovering its file store on a
	// loaded machine can take many seconds.
	deadline := time.Now().Add(45 * time.Second)
	for {
		importCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := s.Import(importCtx, []store.Input{{Name: "ca", Data: fx.Read(t, "expired.pem")}}, store.ImportOptions{})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("import after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	eventually(t, 5*time.Second, "change after restart reaches the cache", func() bool {
		got, err := c.CertsByEmail(ctx, "expired@example.com")
		return err == nil && len(got) == 1
	})
	if err := warm(); err != nil {
		t.Fatal(err)
	}
}

func TestNoMasterKey(t *testing.T) {
	fx := storetest.Fx(t)
	n := storetest.StartNATS(t, "")
	ctx := context.Background()
	nc := n.Connect()
	importFiles(t, openStore(t, nc, "nomk", mk(t), true), fx, "bob.pem", "bob.key")
	c := newCache(t, openStore(t, nc, "nomk", nil, true), nil, 100)
	if ks, err := c.SMIMEKeys(ctx); err != nil || len(ks) != 0 {
		t.Fatalf("without master key: %v %d", err, len(ks))
	}
	if got, err := c.CertsByEmail(ctx, "bob@example.com"); err != nil || len(got) != 1 {
		t.Fatalf("public look-up without master key: %v", err)
	}
}

// TestLoadKeyHook: every unsealed key passes through Options.LoadKey (the
// key-backend hook) once per (re)load, not per look-up.
func TestLoadKeyHook(t *testing.T) {
	fx := storetest.Fx(t)
	n := storetest.StartNATS(t, "")
	ctx := context.Background()
	s := openStore(t, n.Connect(), "loadkey", mk(t), true)
	importFiles(t, s, fx, "bob.pem", "bob.key", "alice.pem", "alice.key")
	var mu sync.Mutex
	loaded := 0
	c, err := certcache.New(ctx, s, certcache.Options{LoadKey: func(k keys.PrivateKey) (keys.PrivateKey, error) {
		mu.Lock()
		loaded++
		mu.Unlock()
		return k, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 3; i++ {
		if ks, err := c.SMIMEKeys(ctx); err != nil || len(ks) != 2 {
			t.Fatal(err, len(ks))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if loaded != 2 {
		t.Fatalf("LoadKey called %d times, want 2", loaded)
	}
}
