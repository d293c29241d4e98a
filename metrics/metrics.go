// Package metrics holds the worker's Prometheus series and its HTTP
// endpoints (/metrics, /healthz, /readyz). It uses its own registry, never
// the global default, so tests and several workers in one process do not
// share state.
//
// Label cardinality is bounded: directions, types, outcomes and reason
// codes are closed sets; only the certificate-expiry gauge carries e-mail
// addresses and fingerprints (one series per stored certificate or key).
package metrics

import (
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/secmail/secmail/reason"
	"github.com/secmail/secmail/result"
)

// Outcome label values of secmail_articles_processed_total.
const (
	OutcomeOK     = "ok"     // a security operation succeeded
	OutcomeFailed = "failed" // a security check failed (reason says why)
	OutcomeNone   = "none"   // nothing to do: plain mail, nothing requested
	OutcomeError  = "error"  // the article could not be processed at all
)

// Metrics are the worker's Prometheus series.
type Metrics struct {
	reg        *prometheus.Registry
	version    string
	instance   string
	keyBackend string

	processed   *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	inFlight    *prometheus.GaugeVec
	redelivered *prometheus.CounterVec
	dead        *prometheus.CounterVec
	cache       *prometheus.CounterVec
	lookup      *prometheus.HistogramVec
	expiry      *expiryCollector
}

// New returns the worker's metrics on a fresh registry, including the Go
// runtime and process collectors and secmail_build_info.
func New(version, instance, keyBackend string) *Metrics {
	m := &Metrics{
		reg:        prometheus.NewRegistry(),
		version:    version,
		instance:   instance,
		keyBackend: keyBackend,
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "secmail_articles_processed_total",
			Help: "Articles processed, by direction, security type, outcome (ok, failed, none, error) and reason code.",
		}, []string{"direction", "type", "outcome", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "secmail_processing_duration_seconds",
			Help: "Time from receiving an article to acknowledging it, by direction.",
			// An RSA-2048 private operation is ~1 ms; object-store claim
			// checks and retries reach seconds.
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"direction"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "secmail_articles_in_flight",
			Help: "Articles received and not yet acknowledged, by direction.",
		}, []string{"direction"}),
		redelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "secmail_redeliveries_total",
			Help: "Articles received again after a nak, an ack time-out or a crashed worker.",
		}, []string{"direction"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "secmail_dead_letters_total",
			Help: "Articles moved to the dead-letter subject, by direction and error code.",
		}, []string{"direction", "code"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "secmail_cache_requests_total",
			Help: "Certificate and key cache look-ups by tier (memory, redis, store) and result (hit, miss, error).",
		}, []string{"tier", "result"}),
		lookup: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "secmail_store_lookup_duration_seconds",
			Help:    "Latency of look-ups in the durable key store, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"op"}),
		expiry: &expiryCollector{desc: prometheus.NewDesc(
			"secmail_certificate_expiry_timestamp_seconds",
			"Expiry (not after) of each stored certificate or key as a Unix timestamp.",
			[]string{"email", "fingerprint", "kind"}, nil)},
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "secmail_build_info",
		Help: "Always 1; labels carry the worker version, Go version and private-key backend.",
	}, []string{"version", "goversion", "key_backend"})
	buildInfo.WithLabelValues(version, runtime.Version(), keyBackend).Set(1)
	m.reg.MustRegister(m.processed, m.duration, m.inFlight, m.redelivered, m.dead,
		m.cache, m.lookup, m.expiry, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry the series live in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Version is the worker version given to New.
func (m *Metrics) Version() string { return m.version }

// Instance is the worker instance name given to New.
func (m *Metrics) Instance() string { return m.instance }

// Classify derives the bounded type, outcome and reason labels from a
// security block. A failure dominates a success, and encryption dominates
// signing: an inbound article that could not be decrypted is "failed" with
// the decryption reason even if nothing else went wrong, and its signature
// could not be checked anyway.
func Classify(sec *result.Security) (typ, outcome, why string) {
	typ = "none"
	if sec == nil {
		return typ, OutcomeNone, ""
	}
	if sec.Type != nil {
		switch *sec.Type {
		case result.SMIME:
			typ = "smime"
		case result.PGP:
			typ = "pgp"
		default:
			typ = "other"
		}
	}
	for _, c := range []result.Check{sec.Encryption, sec.Sign} {
		if c.Status == result.StatusFailed {
			return typ, OutcomeFailed, reasonLabel(c.Reason)
		}
	}
	if sec.Encryption.Status == result.StatusOK || sec.Sign.Status == result.StatusOK {
		return typ, OutcomeOK, ""
	}
	return typ, OutcomeNone, ""
}

func reasonLabel(c *reason.Code) string {
	switch {
	case c == nil:
		return ""
	case c.Valid():
		return string(*c)
	}
	return "other"
}

// ObserveArticle counts one processed article and its duration. errCode is
// the result's error code (status "error"), or "" for a processed article
// whose outcome is in sec. errCode must come from a closed set. A zero d
// counts the article without observing a duration.
func (m *Metrics) ObserveArticle(direction string, sec *result.Security, errCode string, d time.Duration) {
	if m == nil {
		return
	}
	if errCode != "" {
		m.processed.WithLabelValues(direction, "none", OutcomeError, errCode).Inc()
	} else {
		typ, outcome, why := Classify(sec)
		m.processed.WithLabelValues(direction, typ, outcome, why).Inc()
	}
	if d > 0 { // 0: not timed (e.g. dead-lettered from an advisory)
		m.duration.WithLabelValues(direction).Observe(d.Seconds())
	}
}

// InFlight adds delta to the in-flight gauge of direction.
func (m *Metrics) InFlight(direction string, delta float64) {
	if m == nil {
		return
	}
	m.inFlight.WithLabelValues(direction).Add(delta)
}

// Redelivered counts a redelivered article.
func (m *Metrics) Redelivered(direction string) {
	if m == nil {
		return
	}
	m.redelivered.WithLabelValues(direction).Inc()
}

// DeadLetter counts an article moved to the dead-letter subject.
func (m *Metrics) DeadLetter(direction, code string) {
	if m == nil {
		return
	}
	m.dead.WithLabelValues(direction, code).Inc()
}

// CacheResult counts one cache look-up in tier with result (hit, miss,
// error). It satisfies the cache's metrics interface.
func (m *Metrics) CacheResult(tier, result string) {
	if m == nil {
		return
	}
	m.cache.WithLabelValues(tier, result).Inc()
}

// LookupDuration observes one store look-up of kind op.
func (m *Metrics) LookupDuration(op string, d time.Duration) {
	if m == nil {
		return
	}
	m.lookup.WithLabelValues(op).Observe(d.Seconds())
}

// Expiry is one stored certificate or key and when it expires.
type Expiry struct {
	Email       string
	Fingerprint string
	Kind        string // e.g. "smime", "pgp"
	NotAfter    time.Time
}

// SetExpiries replaces the whole set of expiry series, so deleted
// certificates disappear from the gauge.
func (m *Metrics) SetExpiries(e []Expiry) {
	if m == nil {
		return
	}
	cp := append([]Expiry(nil), e...)
	m.expiry.mu.Lock()
	m.expiry.set = cp
	m.expiry.mu.Unlock()
}

// expiryCollector emits the expiry set atomically: a scrape never sees a
// half-replaced set, which a Reset-then-Set gauge would allow.
type expiryCollector struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	set  []Expiry
}

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	set := c.set
	c.mu.Unlock()
	seen := make(map[[3]string]bool, len(set))
	for _, e := range set {
		k := [3]string{e.Email, e.Fingerprint, e.Kind}
		if seen[k] { // duplicate label sets would fail the whole scrape
			continue
		}
		seen[k] = true
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue,
			float64(e.NotAfter.Unix()), e.Email, e.Fingerprint, e.Kind)
	}
}
