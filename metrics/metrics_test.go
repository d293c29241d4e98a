package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secmail/secmail/reason"
	"github.com/secmail/secmail/result"
)

func TestClassify(t *testing.T) {
	smime := result.SMIME
	failed := func(c reason.Code) result.Check { return result.Failed(reason.EN, c) }
	bogus := reason.Code("attacker-chosen")
	tests := []struct {
		name                 string
		sec                  *result.Security
		typ, outcome, reason string
	}{
		{"nil", nil, "none", OutcomeNone, ""},
		{"plain", &result.Security{Encryption: result.Check{Status: result.StatusNone}, Sign: result.Check{Status: result.StatusNone}}, "none", OutcomeNone, ""},
		{"verified", &result.Security{Type: &smime, Encryption: result.Check{Status: result.StatusNone}, Sign: result.OK("")}, "smime", OutcomeOK, ""},
		{"decryption failure dominates", &result.Security{Type: &smime, Encryption: failed(reason.NoPrivateKey), Sign: failed(reason.BadSignature)}, "smime", OutcomeFailed, "no-private-key"},
		{"decrypted but bad signature", &result.Security{Type: &smime, Encryption: result.OK(""), Sign: failed(reason.BadSignature)}, "smime", OutcomeFailed, "bad-signature"},
		{"unknown reason is bounded", &result.Security{Sign: result.Check{Status: result.StatusFailed, Reason: &bogus}}, "none", OutcomeFailed, "other"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			typ, outcome, why := Classify(tc.sec)
			if typ != tc.typ || outcome != tc.outcome || why != tc.reason {
				t.Errorf("Classify = %s %s %s, want %s %s %s", typ, outcome, why, tc.typ, tc.outcome, tc.reason)
			}
		})
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestServe(t *testing.T) {
	m := New("1.2.3", "worker-a", "openssl")
	var storeUp atomic.Bool
	ready := func(ctx context.Context) map[string]error {
		var store error
		if !storeUp.Load() {
			store = errors.New("store unreachable")
		}
		return map[string]error{"nats": nil, "store": store}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, m, ready) }()
	base := "http://" + ln.Addr().String()

	if code, body := get(t, base+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz %d %q", code, body)
	}
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d before the store is up", code)
	}
	var rb readyBody
	if err := json.Unmarshal([]byte(body), &rb); err != nil {
		t.Fatal(err)
	}
	if rb.Checks["store"] != "store unreachable" || rb.Checks["nats"] != "ok" || rb.Status != "not ready" || rb.Instance != "worker-a" || rb.KeyBackend != "openssl" {
		t.Errorf("/readyz body %s", body)
	}
	storeUp.Store(true)
	if code, body := get(t, base+"/readyz"); code != 200 || !strings.Contains(body, `"status":"ready"`) {
		t.Errorf("/readyz %d %s once ready", code, body)
	}

	sec := result.None()
	sec.Sign = result.Failed(reason.EN, reason.BadSignature)
	m.ObserveArticle("inbound", &sec, "", 3*time.Millisecond)
	m.ObserveArticle("outbound", nil, "too-large", time.Millisecond)
	m.InFlight("inbound", 1)
	m.Redelivered("inbound")
	m.DeadLetter("outbound", "too-large")
	m.CacheResult("redis", "hit")
	m.LookupDuration("cert_by_email", 2*time.Millisecond)
	m.SetExpiries([]Expiry{
		{Email: "old@example.org", Fingerprint: "aa", Kind: "smime", NotAfter: time.Unix(1000, 0)},
	})
	m.SetExpiries([]Expiry{
		{Email: "alice@example.org", Fingerprint: "bb", Kind: "smime", NotAfter: time.Unix(2000000000, 0)},
		{Email: "alice@example.org", Fingerprint: "bb", Kind: "smime", NotAfter: time.Unix(2000000000, 0)},
	})
	_, text := get(t, base+"/metrics")
	for _, want := range []string{
		`secmail_articles_processed_total{direction="inbound",outcome="failed",reason="bad-signature",type="none"} 1`,
		`secmail_articles_processed_total{direction="outbound",outcome="error",reason="too-large",type="none"} 1`,
		`secmail_processing_duration_seconds_count{direction="inbound"} 1`,
		`secmail_articles_in_flight{direction="inbound"} 1`,
		`secmail_redeliveries_total{direction="inbound"} 1`,
		`secmail_dead_letters_total{code="too-large",direction="outbound"} 1`,
		`secmail_cache_requests_total{result="hit",tier="redis"} 1`,
		`secmail_store_lookup_duration_seconds_count{op="cert_by_email"} 1`,
		`secmail_certificate_expiry_timestamp_seconds{email="alice@example.org",fingerprint="bb",kind="smime"} 2e+09`,
		`secmail_build_info{goversion="go`,
		`key_backend="openssl",version="1.2.3"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, "old@example.org") {
		t.Error("SetExpiries did not replace the set")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeListener: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeListener did not return")
	}
}

func TestServeBadAddress(t *testing.T) {
	if err := Serve(context.Background(), "256.0.0.1:bad", New("", "", ""), nil); err == nil {
		t.Error("Serve on a bad address")
	}
}

// A nil *Metrics is a no-op, so libraries can be used without metrics.
func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.ObserveArticle("inbound", nil, "", time.Second)
	m.InFlight("inbound", 1)
	m.Redelivered("inbound")
	m.DeadLetter("inbound", "x")
	m.CacheResult("lru", "hit")
	m.LookupDuration("x", time.Second)
	m.SetExpiries(nil)
}

// Two instances do not share a registry (no global default registry).
func TestIndependentRegistries(t *testing.T) {
	a, b := New("1", "a", "go"), New("1", "b", "go")
	a.Redelivered("inbound")
	fams, err := b.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "secmail_redeliveries_total" && len(f.GetMetric()) > 0 {
			t.Error("b sees a's series")
		}
	}
}
