package certcache_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/secmail/secmail/certcache"
	"github.com/secmail/secmail/internal/syncbuf"
	"github.com/secmail/secmail/store"
	"github.com/secmail/secmail/store/storetest"
)

// textLogger logs to w, which collects the cache goroutines' output.
func textLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// TestTokenKeysWithoutBackend: without a token backend, certificates whose
// key is in a token are skipped (logged once, however often the keys are
// rebuilt) while sealed keys keep working; a worker with only token keys
// needs no master key and does not complain about one.
func TestTokenKeysWithoutBackend(t *testing.T) {
	fx := storetest.Fx(t)
	n := storetest.StartNATS(t, "")
	ctx := context.Background()
	nc := n.Connect()
	s := openStore(t, nc, "tokens", mk(t), true)
	importFiles(t, s, fx, "chain.pem", "bob.pem", "bob.key")
	if _, err := s.AttachTokenKey(ctx, storetest.FP(fx.Alice), store.TokenRef{Token: "hsm", Key: "alice"}); err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	c, err := certcache.New(ctx, s, certcache.Options{Logger: textLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 2; i++ {
		ks, err := c.SMIMEKeys(ctx)
		if err != nil || len(ks) != 1 || !ks[0].Cert.Equal(fx.Bob) {
			t.Fatalf("round %d: %v %+v", i, err, ks)
		}
		c.Purge() // rebuild from the store next time
	}
	if got := strings.Count(logs.String(), "no token key backend configured"); got != 1 {
		t.Errorf("logged %d times, want once:\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), storetest.FP(fx.Alice)) {
		t.Errorf("the log does not name the certificate:\n%s", logs.String())
	}

	// Token keys only, no master key: no error, and no master-key alarm.
	s2 := openStore(t, nc, "tokens-only", nil, true)
	importFiles(t, s2, fx, "chain.pem")
	if _, err := s2.AttachTokenKey(ctx, storetest.FP(fx.Alice), store.TokenRef{Token: "hsm", Key: "alice"}); err != nil {
		t.Fatal(err)
	}
	var logs2 syncbuf.Buffer
	c2, err := certcache.New(ctx, s2, certcache.Options{Logger: textLogger(&logs2)})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if ks, err := c2.SMIMEKeys(ctx); err != nil || len(ks) != 0 {
		t.Fatalf("token keys without backend and master key: %v %d", err, len(ks))
	}
	if strings.Contains(logs2.String(), "no master key") {
		t.Errorf("a store without sealed keys complains about the master key:\n%s", logs2.String())
	}
}
