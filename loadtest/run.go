package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/certcache"
	"github.com/secmail/secmail/demopki"
	"github.com/secmail/secmail/handlers"
	"github.com/secmail/secmail/internal/gctune"
	"github.com/secmail/secmail/keybackend"
	"github.com/secmail/secmail/mailgen"
	"github.com/secmail/secmail/natsembed"
	"github.com/secmail/secmail/pipeline"
	"github.com/secmail/secmail/reprocess"
	"github.com/secmail/secmail/result"
	"github.com/secmail/secmail/store"
)

// Config is one load test.
type Config struct {
	// NATS is the server to publish to; empty starts an embedded one with
	// Workers in-process workers.
	NATS    string
	Workers int
	// Concurrency per worker (pipeline default: GOMAXPROCS).
	Concurrency int
	// KeyBackend is where the embedded workers' private-key operations
	// (and, for openssl, signature checks and AES-CBC) run, as
	// `worker run --key-backend`: "go" (default) or "openssl" (a build
	// with -tags openssl).
	KeyBackend string
	Articles   int
	// Rate is articles per second; 0 publishes as fast as the bound on
	// outstanding articles allows.
	Rate           float64
	MaxOutstanding int
	Mix            []share[string]
	Sizes          []share[size]
	KeyType        demopki.KeyType
	// Distinct bounds the distinct samples generated per kind and size.
	Distinct int
	Seed     uint64
	// Baseline measures the per-message openssl/gpg processes on
	// BaselineSample of the articles.
	Baseline       bool
	BaselineSample int
	// Scale runs the same articles with each number of workers
	// (embedded only) instead of once with Workers.
	Scale []int
	// Storage of the embedded server's streams: "file" (what `worker
	// run` creates) or "memory".
	Storage string
	// Warmup articles are run through first and not measured: the first
	// run in a process pays for heap growth and first-use set-up, which
	// would make it look dearer than the ones after it.
	Warmup int
	// Timeout is how long to wait without any result before giving up.
	Timeout time.Duration

	Progress    io.Writer
	ProgressTTY bool
	Log         *slog.Logger
}

// Measurement is one run of the article set through the workers.
type Measurement struct {
	Workers           int                `json:"workers"`
	Articles          int                `json:"articles"`
	Seconds           float64            `json:"seconds"`
	Throughput        float64            `json:"articles_per_second"`
	LatencyMS         Percentiles        `json:"latency_ms"`
	CPUSecondsPerArt  float64            `json:"cpu_seconds_per_article"`
	CPUSeconds        float64            `json:"cpu_seconds"`
	PeakHeapBytes     uint64             `json:"peak_heap_bytes"`
	HeapBeforeBytes   uint64             `json:"heap_before_bytes"` // the generated articles, held by the load test
	PeakRSSBytes      uint64             `json:"peak_rss_bytes"`
	Results           int                `json:"results"`
	Lost              int                `json:"lost"`
	Duplicated        int                `json:"duplicated"`
	Wrong             int                `json:"wrong"`
	WrongExamples     []string           `json:"wrong_examples,omitempty"`
	Outcomes          map[string]int     `json:"outcomes"`
	PerKindLatencyP50 map[string]float64 `json:"per_kind_latency_p50_ms,omitempty"`
}

// Percentiles of a latency distribution in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Report is the output of a load test.
type Report struct {
	Machine     Machine        `json:"machine"`
	Embedded    bool           `json:"embedded"`
	Articles    int            `json:"articles"`
	Mix         map[string]int `json:"mix"`
	Sizes       map[string]int `json:"sizes"`
	KeyType     string         `json:"key_type"`
	KeyBackend  string         `json:"key_backend,omitempty"` // embedded workers only
	GOGC        int            `json:"gogc,omitempty"`        // embedded workers only
	Runs        []Measurement  `json:"runs"`
	Baseline    *Baseline      `json:"baseline,omitempty"`
	Ratio       float64        `json:"throughput_ratio,omitempty"`
	CPURatio    float64        `json:"cpu_ratio,omitempty"`
	ScaleSpread float64        `json:"cpu_per_article_spread,omitempty"`
}

// Machine describes where the numbers were measured.
type Machine struct {
	CPUs      int    `json:"cpus"`
	Model     string `json:"cpu_model"`
	GoVersion string `json:"go"`
}

// Failed reports whether any run lost, duplicated or misjudged articles.
func (r *Report) Failed() bool {
	for _, m := range r.Runs {
		if m.Lost > 0 || m.Duplicated > 0 || m.Wrong > 0 {
			return true
		}
	}
	return r.Baseline != nil && r.Baseline.Unexpected > 0
}

func (cfg *Config) defaults() error {
	if cfg.Articles <= 0 {
		return errors.New("articles must be positive")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.MaxOutstanding <= 0 {
		cfg.MaxOutstanding = 256
	}
	if cfg.KeyType == "" {
		cfg.KeyType = demopki.RSA2048
	}
	if cfg.Distinct <= 0 {
		cfg.Distinct = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	var err error
	if cfg.Mix == nil {
		if cfg.Mix, err = parseMix(DefaultMix); err != nil {
			return err
		}
	}
	if cfg.Sizes == nil {
		if cfg.Sizes, err = parseSizes(DefaultSizes); err != nil {
			return err
		}
	}
	if cfg.NATS != "" && len(cfg.Scale) > 0 {
		return errors.New("--scale needs the embedded server (no --nats)")
	}
	return nil
}

// run generates the articles, runs them through the workers (once, or
// once per entry of Scale) and, when asked, through the baseline.
func run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	w, err := mailgen.New(cfg.KeyType)
	if err != nil {
		return nil, err
	}
	set, err := makeArticles(w, cfg.Articles, cfg.Mix, cfg.Sizes, cfg.Distinct, cfg.Seed)
	if err != nil {
		return nil, err
	}
	rep := &Report{Machine: machine(), Embedded: cfg.NATS == "", Articles: cfg.Articles, KeyType: string(cfg.KeyType), KeyBackend: cfg.keyBackend(),
		Mix: map[string]int{}, Sizes: map[string]int{}}
	if rep.Embedded {
		// The workers run in this process: give them the collector
		// settings `worker run` uses.
		gc, restore := gctune.Apply(os.Getenv, os.DirFS("/sys/fs/cgroup"))
		defer restore()
		rep.GOGC = gc.GCPercent
	}
	for _, r := range set.Order {
		rep.Mix[r.Class.Kind]++
		rep.Sizes[r.Class.Size.String()]++
	}
	scale := cfg.Scale
	if len(scale) == 0 {
		scale = []int{cfg.Workers}
	}
	if cfg.Warmup > 0 {
		warm := &articleSet{Samples: set.Samples, Order: set.Order[:min(cfg.Warmup, len(set.Order))]}
		silent := cfg
		silent.Progress = nil
		if _, err := measure(ctx, silent, w, warm, scale[0]); err != nil {
			return rep, fmt.Errorf("warm-up: %w", err)
		}
	}
	for _, n := range scale {
		m, err := measure(ctx, cfg, w, set, n)
		if err != nil {
			return rep, err
		}
		rep.Runs = append(rep.Runs, *m)
	}
	if len(rep.Runs) > 1 {
		lo, hi := rep.Runs[0].CPUSecondsPerArt, rep.Runs[0].CPUSecondsPerArt
		for _, m := range rep.Runs {
			lo, hi = min(lo, m.CPUSecondsPerArt), max(hi, m.CPUSecondsPerArt)
		}
		if lo > 0 {
			rep.ScaleSpread = hi/lo - 1
		}
	}
	if cfg.Baseline {
		b, err := runBaseline(ctx, w, set, cfg.BaselineSample)
		if err != nil {
			return rep, fmt.Errorf("baseline: %w", err)
		}
		rep.Baseline = b
		last := rep.Runs[len(rep.Runs)-1]
		if b.Throughput > 0 {
			rep.Ratio = last.Throughput / b.Throughput
		}
		if last.CPUSecondsPerArt > 0 {
			rep.CPURatio = b.CPUSecondsPerArt / last.CPUSecondsPerArt
		}
	}
	return rep, nil
}

// cluster is what measure runs against: an embedded server with
// in-process workers, or an external NATS.
type cluster struct {
	url   string
	srv   *natsembed.Server
	dir   string
	stops []func()
}

func (c *cluster) close() {
	for i := len(c.stops) - 1; i >= 0; i-- {
		c.stops[i]()
	}
	if c.srv != nil {
		c.srv.Shutdown()
	}
	if c.dir != "" {
		os.RemoveAll(c.dir)
	}
}

// setupStreams creates the pipeline's streams, consumers and bucket, in
// memory when asked: on a small VM the embedded server's file store
// (rewriting message blocks as the work queue is acknowledged) costs more
// than the workers, and a cluster keeps its streams on its own machines.
func setupStreams(ctx context.Context, js jetstream.JetStream, pcfg pipeline.Config, storage string) error {
	if storage != "memory" {
		return pipeline.Setup(ctx, js, pcfg)
	}
	for _, sc := range pcfg.StreamConfigs() {
		sc.Storage = jetstream.MemoryStorage
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("stream %s: %w", sc.Name, err)
		}
	}
	for _, dir := range []article.Direction{article.Inbound, article.Outbound} {
		cc := pcfg.ConsumerConfig(dir)
		cc.MemoryStorage = true
		if _, err := js.CreateOrUpdateConsumer(ctx, pcfg.InputStream, cc); err != nil {
			return fmt.Errorf("consumer %s: %w", cc.Durable, err)
		}
	}
	oc := pcfg.ObjectStoreConfig()
	oc.Storage = jetstream.MemoryStorage
	if _, err := js.CreateOrUpdateObjectStore(ctx, oc); err != nil {
		return fmt.Errorf("object store: %w", err)
	}
	return nil
}

// startEmbedded starts a server, imports the world's keys into the store
// and starts n workers, each with its own connection, cache and pipeline,
// sharing the durable consumers — what n worker pods do.
func startEmbedded(ctx context.Context, cfg Config, w *mailgen.World, pcfg pipeline.Config, n int) (_ *cluster, err error) {
	c := &cluster{}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if c.dir, err = os.MkdirTemp("", "secmail-loadtest-"); err != nil {
		return nil, err
	}
	if c.srv, err = natsembed.Start(natsembed.Options{Listen: "127.0.0.1:-1", DataDir: c.dir}); err != nil {
		return nil, err
	}
	c.url = c.srv.URL()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	mk, err := store.NewMasterKey(raw)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(c.url)
	if err != nil {
		return nil, err
	}
	c.stops = append(c.stops, nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	if err := setupStreams(ctx, js, pcfg, cfg.Storage); err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, nc, store.Config{MasterKey: mk, Logger: cfg.Log})
	if err != nil {
		return nil, err
	}
	var in []store.Input
	for name, data := range w.OrgFiles {
		in = append(in, store.Input{Name: name, Data: data})
	}
	irep, err := st.Import(store.WithIdentity(ctx, "loadtest"), in, store.ImportOptions{})
	if err != nil {
		return nil, err
	}
	if irep.Failed() {
		return nil, fmt.Errorf("importing the test keys: %v", irep.Counts())
	}
	for i := range n {
		if err := c.startWorker(ctx, cfg, mk, pcfg, i); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *cluster) startWorker(ctx context.Context, cfg Config, mk *store.MasterKey, pcfg pipeline.Config, i int) error {
	opts := []nats.Option{nats.Name(fmt.Sprintf("loadtest worker %d", i))}
	if c.srv != nil {
		// In-process workers connect as `worker run` does on the embedded
		// default: without TCP.
		opts = append(opts, c.srv.InProcess())
	}
	nc, err := nats.Connect(c.url, opts...)
	if err != nil {
		return err
	}
	c.stops = append(c.stops, nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, nc, store.Config{MasterKey: mk, Logger: cfg.Log})
	if err != nil {
		return err
	}
	be, err := keybackend.Open(cfg.KeyBackend, keybackend.Config{})
	if err != nil {
		return err
	}
	c.stops = append(c.stops, func() { _ = be.Close() })
	cache, err := certcache.New(ctx, st, certcache.Options{Logger: cfg.Log, LoadKey: be.Load})
	if err != nil {
		return err
	}
	c.stops = append(c.stops, func() { _ = cache.Close() })
	hcfg := handlers.DefaultConfig()
	hcfg.Verifier, hcfg.CBC = keybackend.Offload(be)
	h := handlers.New(&storeKeys{Cache: cache, st: st}, hcfg)
	wcfg := pcfg
	wcfg.Instance = fmt.Sprintf("loadtest-%d", i)
	p, err := pipeline.New(js, nc, h, wcfg, nil, cfg.Log)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	c.stops = append(c.stops, func() {
		cancel()
		if err := <-done; err != nil {
			cfg.Log.Warn("worker stopped with an error", "worker", i, "err", err)
		}
	})
	return nil
}

// keyBackend names the embedded workers' key backend for the report;
// empty when the workers are elsewhere.
func (cfg Config) keyBackend() string {
	switch {
	case cfg.NATS != "":
		return ""
	case cfg.KeyBackend == "":
		return "go"
	}
	return cfg.KeyBackend
}

// storeKeys is the key source of a running worker, as cmd/worker builds
// it: the cache for look-ups, the store for recording the capabilities
// correspondents announce (written only when they change).
type storeKeys struct {
	*certcache.Cache
	st *store.Store
}

var _ handlers.CapabilityRecorder = (*storeKeys)(nil)

func (k *storeKeys) RecordCapabilities(ctx context.Context, email string, oids []string) error {
	if old, err := k.Capabilities(ctx, email); err == nil && slices.Equal(old, oids) {
		return nil
	}
	return k.st.SetCapabilities(ctx, email, oids)
}

// resultHead is the part of a result the load test reads (the message
// bodies are skipped).
type resultHead struct {
	ArticleID string              `json:"article_id"`
	Status    string              `json:"status"`
	Security  *result.Security    `json:"security"`
	Error     *pipeline.ErrorInfo `json:"error"`
}

// tracker records publications and results.
type tracker struct {
	mu        sync.Mutex
	sent      []time.Time // by article index
	got       []int       // results per article index
	lat       []time.Duration
	wrong     int
	examples  []string
	outcomes  map[string]int
	results   int
	kindLat   map[string][]time.Duration
	lastSeen  time.Time
	completed int
	slots     chan struct{}
}

func measure(ctx context.Context, cfg Config, w *mailgen.World, set *articleSet, workers int) (*Measurement, error) {
	// The streams are set up by startEmbedded (or exist on the cluster).
	pcfg := pipeline.Config{Concurrency: cfg.Concurrency, Version: "loadtest"}.Defaults()
	url := cfg.NATS
	if url == "" {
		c, err := startEmbedded(ctx, cfg, w, pcfg, workers)
		if err != nil {
			return nil, fmt.Errorf("starting %d embedded workers: %w", workers, err)
		}
		defer c.close()
		url = c.url
	}
	nc, err := nats.Connect(url, nats.Name("loadtest"))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	n := len(set.Order)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	id := func(i int) string { return "lt-" + run + "-" + strconv.Itoa(i) }
	index := func(articleID string) int {
		rest, ok := strings.CutPrefix(articleID, "lt-"+run+"-")
		if !ok {
			return -1
		}
		i, err := strconv.Atoi(rest)
		if err != nil || i < 0 || i >= n {
			return -1
		}
		return i
	}
	tr := &tracker{sent: make([]time.Time, n), got: make([]int, n), outcomes: map[string]int{},
		kindLat: map[string][]time.Duration{}, slots: make(chan struct{}, cfg.MaxOutstanding)}

	// Results are read before anything is published.
	cons, err := js.OrderedConsumer(ctx, pcfg.ResultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{pcfg.ResultSubject(article.Inbound), pcfg.ResultSubject(article.Outbound)},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("result consumer: %w", err)
	}
	onResult := func(data []byte) {
		now := time.Now()
		var r resultHead
		if err := json.Unmarshal(data, &r); err != nil {
			return
		}
		i := index(r.ArticleID)
		if i < 0 {
			return
		}
		s := set.sample(set.Order[i])
		tr.mu.Lock()
		defer tr.mu.Unlock()
		tr.results++
		tr.lastSeen = now
		tr.got[i]++
		if tr.got[i] > 1 {
			return
		}
		tr.completed++
		d := now.Sub(tr.sent[i])
		tr.lat = append(tr.lat, d)
		tr.kindLat[s.Name] = append(tr.kindLat[s.Name], d)
		diff := "error result"
		if r.Security != nil {
			diff = s.Expect.Check(*r.Security)
			tr.outcomes[outcome(r.Security)]++
		} else {
			code := ""
			if r.Error != nil {
				code = r.Error.Code
			}
			tr.outcomes["error:"+code]++
			diff += " " + code
		}
		if diff != "" {
			tr.wrong++
			if len(tr.examples) < 5 {
				tr.examples = append(tr.examples, fmt.Sprintf("%s (%s %s): %s", r.ArticleID, s.Name, set.Order[i].Class.Size, diff))
			}
		}
		select {
		case <-tr.slots:
		default:
		}
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) { onResult(msg.Data()) }, jetstream.PullMaxMessages(512))
	if err != nil {
		return nil, fmt.Errorf("result consumer: %w", err)
	}
	defer cc.Stop()

	stopProgress := reprocess.ShowProgress(cfg.Progress, cfg.ProgressTTY, 5*time.Second, func() reprocess.Snapshot {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		f := map[string]int{}
		if tr.wrong > 0 {
			f["wrong"] = tr.wrong
		}
		return reprocess.Snapshot{Done: tr.completed, Total: n, Failures: f}
	})
	defer stopProgress()

	var ms0 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	peak := startPeakHeap()
	ru0 := rusage(syscall.RUSAGE_SELF)
	start := time.Now()
	tr.mu.Lock()
	tr.lastSeen = start
	tr.mu.Unlock()

	var lim *rate.Limiter
	if cfg.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.Rate), 1)
	}
	// A few publishers: Submit waits for the stream's ack.
	pubCtx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	next := make(chan int)
	var pubErr atomic.Pointer[error]
	var pubs sync.WaitGroup
	for range 4 {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for i := range next {
				s := set.sample(set.Order[i])
				req := &article.Request{ArticleID: id(i), TicketID: "T-" + strconv.Itoa(i%997), Group: "support", Raw: s.Raw, Options: s.Options}
				tr.mu.Lock()
				tr.sent[i] = time.Now()
				tr.mu.Unlock()
				if _, err := pipeline.Submit(pubCtx, js, pcfg, s.Direction, req); err != nil {
					e := fmt.Errorf("publishing %s: %w", req.ArticleID, err)
					pubErr.CompareAndSwap(nil, &e)
					stopPub()
					return
				}
			}
		}()
	}
publish:
	for i := range n {
		select {
		case tr.slots <- struct{}{}:
		case <-pubCtx.Done():
			break publish
		}
		if lim != nil && lim.Wait(pubCtx) != nil {
			break publish
		}
		select {
		case next <- i:
		case <-pubCtx.Done():
			break publish
		}
	}
	close(next)
	pubs.Wait()
	if e := pubErr.Load(); e != nil {
		return nil, *e
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Wait for every result, giving up after Timeout without progress.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var end time.Time
	for {
		tr.mu.Lock()
		complete, idle := tr.completed == n, time.Since(tr.lastSeen)
		last := tr.lastSeen
		tr.mu.Unlock()
		if complete {
			end = last
			break
		}
		if idle > cfg.Timeout {
			end = last
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	ru1 := rusage(syscall.RUSAGE_SELF)
	// Late duplicates would arrive within moments of the originals.
	time.Sleep(300 * time.Millisecond)
	stopProgress()

	tr.mu.Lock()
	defer tr.mu.Unlock()
	m := &Measurement{Workers: workers, Articles: n, Results: tr.results, Wrong: tr.wrong, WrongExamples: tr.examples,
		Outcomes: tr.outcomes, PeakHeapBytes: peak(), HeapBeforeBytes: ms0.HeapInuse, PeakRSSBytes: vmHWM(), PerKindLatencyP50: map[string]float64{}}
	if cfg.NATS != "" {
		m.Workers = 0 // unknown: external workers
	}
	for _, c := range tr.got {
		switch {
		case c == 0:
			m.Lost++
		case c > 1:
			m.Duplicated += c - 1
		}
	}
	m.Seconds = end.Sub(start).Seconds()
	if m.Seconds > 0 {
		m.Throughput = float64(tr.completed) / m.Seconds
	}
	m.CPUSeconds = ru1 - ru0
	if tr.completed > 0 {
		m.CPUSecondsPerArt = m.CPUSeconds / float64(tr.completed)
	}
	m.LatencyMS = percentiles(tr.lat)
	for k, l := range tr.kindLat {
		m.PerKindLatencyP50[k] = percentiles(l).P50
	}
	return m, nil
}

// outcome summarises a security block for the outcome counts.
func outcome(s *result.Security) string {
	typ := "none"
	if s.Type != nil {
		typ = string(*s.Type)
	}
	for _, c := range []result.Check{s.Encryption, s.Sign} {
		if c.Status == result.StatusFailed && c.Reason != nil {
			return typ + " failed:" + string(*c.Reason)
		}
	}
	if s.Encryption.Status == result.StatusOK || s.Sign.Status == result.StatusOK {
		return typ + " ok"
	}
	return typ
}

func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) float64 {
		i := min(len(s)-1, int(q*float64(len(s))))
		return float64(s[i].Microseconds()) / 1000
	}
	return Percentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: float64(s[len(s)-1].Microseconds()) / 1000}
}

// rusage returns user+system CPU seconds of who.
func rusage(who int) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// startPeakHeap samples the Go heap until the returned function is called,
// which returns the largest in-use heap seen.
func startPeakHeap() func() uint64 {
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > peak.Load() {
			peak.Store(ms.HeapInuse)
		}
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				sample()
				return
			case <-t.C:
				sample()
			}
		}
	}()
	var once sync.Once
	return func() uint64 {
		once.Do(func() { close(done); <-finished })
		return peak.Load()
	}
}

// vmHWM is the process's peak resident set size (Linux), 0 elsewhere.
func vmHWM() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.Model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return m
}
