package k8s

import (
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/secmail/secmail/metrics"
	"github.com/secmail/secmail/pipeline"
	"github.com/secmail/secmail/result"
)

// TestMetricCatalogueMatchesWorker keeps the dashboard's and the rules'
// catalogue (metricLabels) true to what the worker really exports: every
// series is touched once on the worker's own registry and gathered.
func TestMetricCatalogueMatchesWorker(t *testing.T) {
	m := metrics.New("test", "test-0", "go")
	m.ObserveArticle("inbound", &result.Security{}, "", time.Millisecond)
	m.InFlight("inbound", 1)
	m.Redelivered("inbound")
	m.DeadLetter("inbound", "malformed")
	m.CacheResult("memory", "hit")
	m.LookupDuration("cert_by_email", time.Millisecond)
	m.SetExpiries([]metrics.Expiry{{Email: "a@example.org", Fingerprint: "00", Kind: "smime", NotAfter: time.Now()}})

	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string][]string{}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "secmail_") {
			continue
		}
		var names []string
		for _, lp := range f.GetMetric()[0].GetLabel() {
			names = append(names, lp.GetName())
		}
		if f.GetType() == dto.MetricType_HISTOGRAM {
			exported[f.GetName()+"_bucket"] = append(slices.Clone(names), "le")
			exported[f.GetName()+"_sum"] = names
			exported[f.GetName()+"_count"] = names
			continue
		}
		exported[f.GetName()] = names
	}
	for name, want := range metricLabels {
		if !strings.HasPrefix(name, "secmail_") {
			continue
		}
		got, ok := exported[name]
		if !ok {
			t.Errorf("catalogue lists %s, the worker does not export it", name)
			continue
		}
		slices.Sort(got)
		want = slices.Sorted(slices.Values(want))
		if !slices.Equal(got, want) {
			t.Errorf("%s: worker labels %v, catalogue %v", name, got, want)
		}
	}
	for name := range exported {
		if _, ok := metricLabels[name]; !ok {
			t.Errorf("worker exports %s, missing from the dashboard/rules catalogue", name)
		}
	}
}

// TestJetStreamNamesMatchWorker: the stream and durable consumer names that
// the ScaledObject, the alerts and the dashboard select are the worker's.
func TestJetStreamNamesMatchWorker(t *testing.T) {
	cfg := pipeline.Config{}.Defaults()
	if cfg.InputStream != inputStream {
		t.Errorf("worker input stream %q, manifests use %q", cfg.InputStream, inputStream)
	}
	got := []string{cfg.InboundDurable, cfg.OutboundDurable}
	slices.Sort(got)
	if !slices.Equal(got, consumers) {
		t.Errorf("worker consumers %v, manifests use %v", got, consumers)
	}
}
