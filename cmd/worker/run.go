package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/redis/go-redis/v9"

	"github.com/secmail/secmail/certcache"
	"github.com/secmail/secmail/certsvc"
	"github.com/secmail/secmail/handlers"
	"github.com/secmail/secmail/internal/gctune"
	"github.com/secmail/secmail/keybackend"
	"github.com/secmail/secmail/metrics"
	"github.com/secmail/secmail/natsembed"
	"github.com/secmail/secmail/pipeline"
	"github.com/secmail/secmail/store"
)

// runFlags are the flags of `worker run` and `worker demo`. Each has an
// environment equivalent (see the README's configuration table).
type runFlags struct {
	natsURL        string
	natsCreds      string
	natsNKey       string
	redisURL       string
	masterKeyFile  string
	metricsAddr    string
	concurrency    int
	prefetch       int
	lang           string
	logFormat      string
	logLevel       string
	shutdownGrace  time.Duration
	backend        backendFlags
	subjectPrefix  string
	dataDir        string
	embeddedListen string
	config         string
	instance       string
	replicas       int
	manageStreams  bool
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

func envDuration(k string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

func envBool(k string, def bool) bool {
	if v, err := strconv.ParseBool(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

func (f *runFlags) register(fs *flag.FlagSet, metricsDefault string) {
	host, _ := os.Hostname()
	fs.StringVar(&f.natsURL, "nats", os.Getenv("SECMAIL_NATS_URL"), "NATS URL; empty starts an embedded NATS server with JetStream")
	fs.StringVar(&f.natsCreds, "nats-creds", os.Getenv("SECMAIL_NATS_CREDS"), "NATS credentials file")
	fs.StringVar(&f.natsNKey, "nats-nkey", os.Getenv("SECMAIL_NATS_NKEY"), "NATS nkey seed file")
	fs.StringVar(&f.redisURL, "redis", os.Getenv("SECMAIL_REDIS_URL"), "Redis URL for the shared cache tier; empty uses only the in-process cache")
	fs.StringVar(&f.masterKeyFile, "master-key-file", os.Getenv("SECMAIL_MASTER_KEY_FILE"), "file with the 32-byte master key that seals private keys (or SECMAIL_MASTER_KEY, base64)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", envOr("SECMAIL_METRICS_ADDR", metricsDefault), "address of /metrics, /healthz and /readyz; empty disables")
	fs.IntVar(&f.concurrency, "concurrency", envInt("SECMAIL_CONCURRENCY", 0), "articles processed at once (default GOMAXPROCS)")
	fs.IntVar(&f.prefetch, "prefetch", envInt("SECMAIL_PREFETCH", 0), "articles fetched ahead per direction (default 4 × concurrency; more hides NATS round trips, costs memory)")
	fs.StringVar(&f.lang, "lang", envOr("SECMAIL_LANG", "en"), "language of comments: en, de, tr")
	fs.StringVar(&f.logFormat, "log-format", envOr("SECMAIL_LOG_FORMAT", ""), "json or text (default: text on a terminal, json otherwise)")
	fs.StringVar(&f.logLevel, "log-level", envOr("SECMAIL_LOG_LEVEL", "info"), "debug, info, warn or error")
	fs.DurationVar(&f.shutdownGrace, "shutdown-grace", envDuration("SECMAIL_SHUTDOWN_GRACE", 25*time.Second), "how long in-flight articles may finish after SIGTERM")
	f.backend.register(fs)
	fs.StringVar(&f.subjectPrefix, "subject-prefix", envOr("SECMAIL_SUBJECT_PREFIX", "article"), "first token of the article subjects")
	fs.StringVar(&f.dataDir, "data", envOr("SECMAIL_DATA", "data"), "data directory of the embedded NATS server")
	fs.StringVar(&f.embeddedListen, "embedded-listen", envOr("SECMAIL_EMBEDDED_LISTEN", "127.0.0.1:4322"), "listen address of the embedded NATS server")
	fs.StringVar(&f.config, "config", os.Getenv("SECMAIL_CONFIG"), "JSON configuration file (group defaults, outbound choices)")
	fs.StringVar(&f.instance, "instance", envOr("SECMAIL_INSTANCE", host), "instance name reported in results")
	fs.IntVar(&f.replicas, "replicas", envInt("SECMAIL_REPLICAS", 1), "JetStream replicas for streams, consumers and buckets (3 on a cluster)")
	fs.BoolVar(&f.manageStreams, "manage-streams", envBool("SECMAIL_MANAGE_STREAMS", true), "create streams and consumers at start-up (false: only verify them)")
}

func (f *runFlags) logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(f.logLevel))
	opts := &slog.HandlerOptions{Level: level}
	format := f.logFormat
	if format == "" {
		format = "json"
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// service is a running worker: NATS (maybe embedded), store, cache,
// management service, handlers and pipeline.
type service struct {
	log      *slog.Logger
	embedded *natsembed.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	store    *store.Store
	cache    *certcache.Cache
	redis    *redis.Client
	handler  *handlers.Handler
	pipe     *pipeline.Pipeline
	metrics  *metrics.Metrics
	services []micro.Service
	backend  keybackend.Backend
	url      string
	hasKey   bool
}

// start assembles a worker from flags. The caller runs s.pipe.Run and then
// calls s.close.
func start(ctx context.Context, f *runFlags, log *slog.Logger) (s *service, err error) {
	s = &service{log: log}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	gc, _ := gctune.Apply(os.Getenv, os.DirFS("/sys/fs/cgroup"))
	log.Info("garbage collector", "gogc", gc.GCPercent, "gogc_default", gc.Default, "memory_limit_from_cgroup", gc.MemoryLimit)
	if s.backend, err = f.backend.open(); err != nil {
		return nil, err
	}
	s.url = f.natsURL
	masterFile := f.masterKeyFile
	if s.url == "" {
		if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
			return nil, err
		}
		s.embedded, err = natsembed.Start(natsembed.Options{Listen: f.embeddedListen, DataDir: filepath.Join(f.dataDir, "nats"), Logger: log})
		if err != nil {
			return nil, fmt.Errorf("starting the embedded NATS server: %w", err)
		}
		s.url = s.embedded.URL()
		log.Info("embedded NATS server with JetStream started", "url", s.url, "data", f.dataDir)
		if masterFile == "" && os.Getenv(store.MasterKeyEnv) == "" {
			// The embedded default is for trying secmail out: keep a
			// master key next to the data so private keys work at once.
			if masterFile, err = ensureLocalMasterKey(filepath.Join(f.dataDir, "master.key")); err != nil {
				return nil, err
			}
		}
	}
	opts := []nats.Option{nats.Name("secmail-worker " + f.instance), nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond)}
	if f.natsCreds != "" {
		opts = append(opts, nats.UserCredentials(f.natsCreds))
	}
	if s.embedded != nil {
		opts = append(opts, s.embedded.InProcess())
	}
	if f.natsNKey != "" {
		o, err := nats.NkeyOptionFromSeed(f.natsNKey)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	if s.nc, err = nats.Connect(s.url, opts...); err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %w", s.url, err)
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		return nil, err
	}
	mk, err := store.LoadMasterKey(masterFile)
	if err != nil {
		return nil, err
	}
	s.hasKey = mk != nil
	// Keys in a PKCS#11 token need no master key (only keys sealed in the
	// store do), so with a token backend it is optional.
	tokenKeys, hasToken := s.backend.(keybackend.TokenKeys)
	switch {
	case !s.hasKey && hasToken:
		log.Info("no master key configured: only private keys in the PKCS#11 token are usable, not keys sealed in the store")
	case !s.hasKey:
		log.Warn("no master key configured: the worker cannot decrypt or sign until one is set (SECMAIL_MASTER_KEY or --master-key-file)")
	}
	if s.store, err = store.Open(ctx, s.nc, store.Config{MasterKey: mk, Replicas: f.replicas, Logger: log}); err != nil {
		return nil, fmt.Errorf("opening the key store: %w", err)
	}
	s.metrics = metrics.New(version, f.instance, s.backend.Name())
	copts := certcache.Options{Metrics: s.metrics, Logger: log, LoadKey: s.backend.Load}
	if hasToken {
		// Certificates attached with `worker certs attach` use the token's
		// key directly; no key bytes are in the store.
		copts.TokenKeys, copts.TokenLabel = tokenKeys, f.backend.pkcs11Token
	}
	if f.redisURL != "" {
		ro, err := redis.ParseURL(f.redisURL)
		if err != nil {
			return nil, fmt.Errorf("--redis: %w", err)
		}
		if pw := os.Getenv("SECMAIL_REDIS_PASSWORD"); pw != "" && ro.Password == "" {
			ro.Password = pw
		}
		s.redis = redis.NewClient(ro)
		copts.Redis = s.redis
	}
	if s.cache, err = certcache.New(ctx, s.store, copts); err != nil {
		return nil, err
	}
	cfg, err := loadConfig(f.config, f.lang)
	if err != nil {
		return nil, err
	}
	// The openssl backend also checks signatures and decrypts AES-CBC
	// content (same results as Go's).
	cfg.Verifier, cfg.CBC = keybackend.Offload(s.backend)
	s.handler = handlers.New(newStoreKeys(s.cache, s.store), cfg)
	pcfg := pipeline.Config{
		SubjectPrefix: f.subjectPrefix, Concurrency: f.concurrency, Prefetch: f.prefetch, Replicas: f.replicas,
		ManageStreams: f.manageStreams, ShutdownGrace: f.shutdownGrace, Instance: f.instance, Version: version,
	}
	if f.manageStreams {
		if err := pipeline.Setup(ctx, s.js, pcfg); err != nil {
			return nil, fmt.Errorf("setting up streams: %w", err)
		}
	}
	if s.pipe, err = pipeline.New(s.js, s.nc, s.handler, pcfg, s.metrics, log); err != nil {
		return nil, err
	}
	pf, err := pipeline.ServePreflight(s.nc, s.preflight)
	if err != nil {
		return nil, err
	}
	s.services = append(s.services, pf)
	cs, err := certsvc.Start(ctx, s.nc, s.store, log)
	if err != nil {
		return nil, err
	}
	s.services = append(s.services, cs)
	go s.watchExpiry(ctx)
	return s, nil
}

// ensureLocalMasterKey returns path, creating a random key there first
// when it does not exist.
func ensureLocalMasterKey(path string) (string, error) {
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(raw)+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, nil
}

// preflight serves secmail.preflight.
func (s *service) preflight(ctx context.Context, req json.RawMessage) (any, error) {
	var r handlers.PreflightRequest
	if err := decodeStrict(req, &r); err != nil {
		return nil, err
	}
	return s.handler.Preflight(ctx, r)
}

// ready reports the readiness checks of /readyz.
func (s *service) ready(ctx context.Context) map[string]error {
	checks := map[string]error{}
	if s.nc == nil || !s.nc.IsConnected() {
		checks["nats"] = errors.New("not connected")
	} else {
		checks["nats"] = nil
	}
	checks["consumers"] = s.pipe.Ready(ctx)
	_, err := s.store.KV().Status(ctx)
	checks["store"] = err
	_, hasToken := s.backend.(keybackend.TokenKeys)
	switch {
	case s.hasKey:
		checks["master_key"] = nil
	case !hasToken:
		checks["master_key"] = store.ErrNoMasterKey
	}
	// With a token backend and no master key the check is left out: the
	// token's keys work, and /readyz names the backend (key_backend).
	return checks
}

// watchExpiry refreshes the certificate expiry gauge.
func (s *service) watchExpiry(ctx context.Context) {
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		if ex, err := s.store.Expiries(ctx); err == nil {
			out := make([]metrics.Expiry, 0, len(ex))
			for _, e := range ex {
				out = append(out, metrics.Expiry{Email: e.Email, Fingerprint: e.Fingerprint, Kind: e.Kind, NotAfter: e.NotAfter})
			}
			s.metrics.SetExpiries(out)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *service) close() {
	for _, svc := range s.services {
		_ = svc.Stop()
	}
	if s.cache != nil {
		_ = s.cache.Close()
	}
	if s.redis != nil {
		_ = s.redis.Close()
	}
	if s.nc != nil {
		_ = s.nc.Drain()
		for i := 0; i < 50 && s.nc.IsDraining(); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		s.nc.Close()
	}
	if s.embedded != nil {
		s.embedded.Shutdown()
	}
	if s.backend != nil {
		_ = s.backend.Close()
	}
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f runFlags
	f.register(fs, ":8080")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := f.logger(stderr)
	s, err := start(ctx, &f, log)
	if err != nil {
		log.Error("start-up failed", "err", err)
		return 1
	}
	defer s.close()
	if s.embedded != nil {
		fmt.Fprintf(stdout, "secmail worker running; embedded NATS at %s\n", s.url)
	}
	return s.serve(ctx, f.metricsAddr)
}

// serve runs the metrics server and the pipeline until ctx ends.
func (s *service) serve(ctx context.Context, metricsAddr string) int {
	if metricsAddr != "" {
		go func() {
			if err := metrics.Serve(ctx, metricsAddr, s.metrics, s.ready); err != nil && !errors.Is(err, context.Canceled) {
				s.log.Error("metrics server stopped", "err", err)
			}
		}()
	}
	if err := s.pipe.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		s.log.Error("pipeline stopped", "err", err)
		return 1
	}
	s.log.Info("shut down cleanly")
	return 0
}
