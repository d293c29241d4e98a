package pipeline

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/secmail/secmail/article"
)

// Config configures the pipeline. The zero value of every field means its
// default; Defaults documents the choices for this workload (a few
// milliseconds of CPU per article, mail up to tens of MiB, results read by
// helpdesks within minutes and by `worker reprocess` within days).
type Config struct {
	// SubjectPrefix is the first subject token: inputs on
	// <prefix>.inbound / <prefix>.outbound, results on
	// <prefix>.<direction>.result, dead letters on <prefix>.dead.<direction>.
	// Default "article".
	SubjectPrefix string

	// InputStream holds the articles to process. Retention is work-queue:
	// a message is removed once acknowledged, so the stream is a queue
	// whose depth is the backlog, and at most one consumer may take each
	// subject. Default "SECMAIL_ARTICLES".
	InputStream string
	// ResultStream holds results with limits retention and ResultMaxAge,
	// so several helpdesks (or `worker reprocess --only-failed-with`) can
	// read them independently, and its duplicate window (DuplicateWindow)
	// is what turns at-least-once processing into exactly one result per
	// article. Default "SECMAIL_RESULTS".
	ResultStream string
	// DeadStream holds dead letters (limits retention, DeadMaxAge) for an
	// operator to inspect and replay. Default "SECMAIL_DEAD".
	DeadStream string
	// InboundDurable and OutboundDurable name the durable pull consumers
	// shared by every replica: replicas pull from the same consumer, so
	// adding a replica adds throughput without any partitioning.
	// Defaults "secmail-inbound" and "secmail-outbound".
	InboundDurable  string
	OutboundDurable string
	// Replicas of the streams, consumers and object store. Default 1,
	// right for the embedded single server; use 3 on a JetStream cluster
	// so an article survives the loss of a server.
	Replicas int

	// Concurrency is how many articles are handled at once per process,
	// across both directions: handling is CPU bound (private-key
	// operations), so the default is GOMAXPROCS.
	Concurrency int
	// Prefetch is how many messages each direction keeps buffered beyond
	// Concurrency, to hide the pull round-trip, and how many articles per
	// direction may wait for their PubAck and ack after their handler,
	// outside that window so it refills meanwhile. Together with
	// Concurrency it bounds memory: at most 2×(Concurrency+2×Prefetch)
	// articles per process, each at most the server's max payload (larger
	// mail is fetched from the object store only once a handler slot is
	// free). Default 4×Concurrency: a deep window lets pulls go out in
	// batches and keeps an article ready for every free handler
	// (measured ~5% more throughput than 1×Concurrency with 4 KiB mail on
	// embedded JetStream).
	Prefetch int
	// MaxAckPending bounds unacknowledged messages per consumer across
	// all replicas. It must exceed replicas×(Concurrency+2×Prefetch), or
	// replicas sit idle; it also bounds how many articles wait AckWait
	// when a replica dies. Default 4096: 28 replicas of 16 cores each
	// with the default prefetch.
	MaxAckPending int
	// AckWait is how long the server waits for an ack before redelivering.
	// Workers send InProgress every AckWait/3 while they work, so long
	// work is never redelivered; AckWait is only the redelivery delay
	// after a crashed worker. Default 30s.
	AckWait time.Duration
	// MaxDeliver bounds deliveries per article. An article still failing
	// transiently at its last delivery is dead-lettered by the worker
	// itself, so nothing lingers undelivered in the work queue.
	// Default 5.
	MaxDeliver int
	// Backoff is the delay before redelivery after a transient failure,
	// indexed by delivery count (the last entry repeats); applied with
	// NakWithDelay rather than the consumer's BackOff, which would also
	// slow redelivery after a crash. Default 1s, 5s, 30s, 2m: a Redis or
	// store blip is retried at once, an outage gets minutes to heal.
	Backoff []time.Duration
	// DuplicateWindow of the result and dead-letter streams: it must cover
	// every delivery of an article, AckWait×MaxDeliver plus the backoff,
	// so that a redelivery never publishes a second result. Default: that
	// sum, at least 2 minutes.
	DuplicateWindow time.Duration
	// ResultMaxAge is how long results (and claim-checked objects) are
	// kept. Default 7 days.
	ResultMaxAge time.Duration
	// DeadMaxAge is how long dead letters are kept. Default 30 days.
	DeadMaxAge time.Duration

	// MaxMessageBytes is the largest raw mail accepted (decoded).
	// Default 50 MiB.
	MaxMessageBytes int64
	// ObjectStoreBucket is the JetStream Object Store bucket for claim
	// checks (mail larger than the server's max payload). Default
	// "secmail_raw".
	ObjectStoreBucket string
	// ManageStreams creates or updates streams, consumers and the bucket
	// at start-up (idempotent). When false they are only verified, for
	// operators who manage JetStream themselves.
	ManageStreams bool
	// HandlerTimeout bounds one handler call; expiry is a transient error
	// and the article is retried. Default 5 minutes.
	HandlerTimeout time.Duration
	// ShutdownGrace is how long in-flight work may continue after Run's
	// context is cancelled; work not finished by then is nak'ed for
	// another replica. Default 20s (inside Kubernetes' default 30s).
	ShutdownGrace time.Duration

	// Instance and Version identify this worker in results.
	Instance string
	Version  string
}

// Defaults returns cfg with every zero field set to its default.
func (cfg Config) Defaults() Config {
	if cfg.SubjectPrefix == "" {
		cfg.SubjectPrefix = "article"
	}
	if cfg.InputStream == "" {
		cfg.InputStream = "SECMAIL_ARTICLES"
	}
	if cfg.ResultStream == "" {
		cfg.ResultStream = "SECMAIL_RESULTS"
	}
	if cfg.DeadStream == "" {
		cfg.DeadStream = "SECMAIL_DEAD"
	}
	if cfg.InboundDurable == "" {
		cfg.InboundDurable = "secmail-inbound"
	}
	if cfg.OutboundDurable == "" {
		cfg.OutboundDurable = "secmail-outbound"
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = runtime.GOMAXPROCS(0)
	}
	if cfg.Prefetch == 0 {
		cfg.Prefetch = 4 * cfg.Concurrency
	}
	if cfg.MaxAckPending == 0 {
		cfg.MaxAckPending = 4096
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.MaxDeliver == 0 {
		cfg.MaxDeliver = 5
	}
	if len(cfg.Backoff) == 0 {
		cfg.Backoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}
	}
	if cfg.DuplicateWindow == 0 {
		w := cfg.AckWait * time.Duration(cfg.MaxDeliver)
		for i := 1; i < cfg.MaxDeliver; i++ {
			w += cfg.backoff(i)
		}
		cfg.DuplicateWindow = max(w, 2*time.Minute)
	}
	if cfg.ResultMaxAge == 0 {
		cfg.ResultMaxAge = 7 * 24 * time.Hour
	}
	if cfg.DeadMaxAge == 0 {
		cfg.DeadMaxAge = 30 * 24 * time.Hour
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = 50 << 20
	}
	if cfg.ObjectStoreBucket == "" {
		cfg.ObjectStoreBucket = "secmail_raw"
	}
	if cfg.HandlerTimeout == 0 {
		cfg.HandlerTimeout = 5 * time.Minute
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 20 * time.Second
	}
	return cfg
}

func (cfg Config) validate() error {
	var errs []error
	if cfg.Concurrency < 1 || cfg.Prefetch < 1 {
		errs = append(errs, errors.New("concurrency and prefetch must be positive"))
	}
	if cfg.MaxDeliver < 1 {
		errs = append(errs, errors.New("max deliver must be positive"))
	}
	if cfg.AckWait < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("ack wait %s is too short", cfg.AckWait))
	}
	if !validPrefix(cfg.SubjectPrefix) {
		errs = append(errs, fmt.Errorf("subject prefix %q must be dot-separated tokens without wildcards or spaces", cfg.SubjectPrefix))
	}
	if cfg.MaxMessageBytes < 1 {
		errs = append(errs, errors.New("max message bytes must be positive"))
	}
	for _, d := range cfg.Backoff {
		if d < 0 {
			errs = append(errs, errors.New("backoff delays must not be negative"))
			break
		}
	}
	return errors.Join(errs...)
}

// backoff is the nak delay after a transient failure at delivery n (1-based).
func (cfg Config) backoff(n int) time.Duration {
	if len(cfg.Backoff) == 0 {
		return 0
	}
	i := min(max(n-1, 0), len(cfg.Backoff)-1)
	return cfg.Backoff[i]
}

// InputSubject is where articles of dir are published.
func (cfg Config) InputSubject(dir article.Direction) string {
	return cfg.prefix() + "." + string(dir)
}

// ResultSubject is where results for dir are published.
func (cfg Config) ResultSubject(dir article.Direction) string {
	return cfg.prefix() + "." + string(dir) + ".result"
}

// DeadSubject is where dead letters for dir are published.
func (cfg Config) DeadSubject(dir article.Direction) string {
	return cfg.prefix() + ".dead." + string(dir)
}

func (cfg Config) prefix() string {
	if cfg.SubjectPrefix == "" {
		return "article"
	}
	return cfg.SubjectPrefix
}

func (cfg Config) durable(dir article.Direction) string {
	if dir == article.Inbound {
		return cfg.InboundDurable
	}
	return cfg.OutboundDurable
}

// directions are the two directions the pipeline consumes.
var directions = [...]article.Direction{article.Inbound, article.Outbound}

func validPrefix(p string) bool {
	if p == "" {
		return false
	}
	for _, tok := range strings.Split(p, ".") {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
			return false
		}
	}
	return true
}
