package main

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/secmail/secmail/certcache"
	"github.com/secmail/secmail/handlers"
	"github.com/secmail/secmail/store"
)

// storeKeys is the running worker's key source: the cache for look-ups,
// plus the store for what the handlers also need — group defaults, and
// remembering the SMIMECapabilities correspondents announce.
type storeKeys struct {
	*certcache.Cache
	st *store.Store

	mu     sync.Mutex
	groups map[string]groupEntry
}

type groupEntry struct {
	d       *handlers.GroupDefaults
	found   bool
	fetched time.Time
}

// groupTTL bounds how stale group defaults may be; they change rarely and
// are read for every outbound article.
const groupTTL = 10 * time.Second

var (
	_ handlers.GroupSource        = (*storeKeys)(nil)
	_ handlers.CapabilityRecorder = (*storeKeys)(nil)
)

func newStoreKeys(c *certcache.Cache, st *store.Store) *storeKeys {
	return &storeKeys{Cache: c, st: st, groups: map[string]groupEntry{}}
}

// RecordCapabilities writes only changes: most signed mail repeats what
// its sender announced before, and every write invalidates caches.
func (k *storeKeys) RecordCapabilities(ctx context.Context, email string, oids []string) error {
	if old, err := k.Capabilities(ctx, email); err == nil && slices.Equal(old, oids) {
		return nil
	}
	return k.st.SetCapabilities(ctx, email, oids)
}

// GroupDefaults returns the group's defaults from the store.
func (k *storeKeys) GroupDefaults(ctx context.Context, group string) (*handlers.GroupDefaults, bool, error) {
	k.mu.Lock()
	e, ok := k.groups[group]
	k.mu.Unlock()
	if ok && time.Since(e.fetched) < groupTTL {
		return e.d, e.found, nil
	}
	d, found, err := k.st.GroupDefaults(ctx, group)
	if err != nil {
		return nil, false, err
	}
	e = groupEntry{d: &handlers.GroupDefaults{Sign: d.Sign, Encrypt: d.Encrypt, Type: d.Type}, found: found, fetched: time.Now()}
	k.mu.Lock()
	k.groups[group] = e
	k.mu.Unlock()
	return e.d, e.found, nil
}
