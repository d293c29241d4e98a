// Package pipeline consumes articles from NATS JetStream, hands them to an
// article.Handler and publishes exactly one result per article.
//
// Per message: decode → load raw (inline or object store) → handle →
// publish the result with a Nats-Msg-Id derived from direction, article id
// and the SHA-256 of the input, and wait for the PubAck → ack the input.
// The result stream's duplicate window makes a redelivered article
// (crashed worker, lost ack) publish no second result. Transient failures
// are nak'ed with a backoff; permanent ones give an error result, a dead
// letter and Term. Nothing is acknowledged before its result is stored.
//
// JetStream layout (defaults; see Config for the reasons behind each):
//
//	stream SECMAIL_ARTICLES  article.inbound, article.outbound   work queue, file
//	stream SECMAIL_RESULTS   article.inbound.result, ...outbound.result   limits, 7 days, dedup window
//	stream SECMAIL_DEAD      article.dead.inbound, article.dead.outbound  limits, 30 days
//	consumers secmail-inbound, secmail-outbound   durable pull, explicit ack,
//	          ack wait 30s (+InProgress), max deliver 5, max ack pending 4096
//	object store secmail_raw   claim checks for mail over the max payload
//
// The result's identity is the exact input payload: publishing the same
// bytes again within the duplicate window yields no new result. To force
// reprocessing sooner, change the payload (unknown fields are ignored,
// e.g. add "reprocess": "<timestamp>").
package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/internal/fastb64"
	"github.com/secmail/secmail/metrics"
	"github.com/secmail/secmail/reason"
	"github.com/secmail/secmail/result"
)

// Headers on dead letters (all) and results (Secmail-Article-Id,
// Secmail-Status, Secmail-Error-Code).
const (
	HeaderStatus     = "Secmail-Status"
	HeaderErrorCode  = "Secmail-Error-Code"
	HeaderError      = "Secmail-Error"
	HeaderDeliveries = "Secmail-Deliveries"
	HeaderDirection  = "Secmail-Direction"
	HeaderArticleID  = "Secmail-Article-Id"
	HeaderSubject    = "Secmail-Subject"
)

// Pipeline consumes both directions with shared durable pull consumers.
type Pipeline struct {
	js  jetstream.JetStream
	nc  *nats.Conn
	h   article.Handler
	cfg Config
	m   *metrics.Metrics
	log *slog.Logger

	cpu   chan struct{} // handler slots shared by both directions
	bound atomic.Bool   // consumers bound and being consumed

	mu   sync.Mutex
	objs map[string]jetstream.ObjectStore
}

// New returns a pipeline; Run starts it. m and log may be nil.
func New(js jetstream.JetStream, nc *nats.Conn, h article.Handler, cfg Config, m *metrics.Metrics, log *slog.Logger) (*Pipeline, error) {
	if js == nil || nc == nil || h == nil {
		return nil, errors.New("pipeline: JetStream, connection and handler are required")
	}
	cfg = cfg.Defaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pipeline{
		js: js, nc: nc, h: h, cfg: cfg, m: m, log: log,
		cpu:  make(chan struct{}, cfg.Concurrency),
		objs: map[string]jetstream.ObjectStore{},
	}, nil
}

// Config is the effective configuration (defaults applied).
func (p *Pipeline) Config() Config { return p.cfg }

// Ready reports whether the pipeline is connected and consuming; for
// /readyz.
func (p *Pipeline) Ready(ctx context.Context) error {
	if !p.nc.IsConnected() {
		return fmt.Errorf("not connected to NATS (%s)", p.nc.Status())
	}
	if !p.bound.Load() {
		return errors.New("consumers not bound")
	}
	return nil
}

// Run sets up (or verifies) JetStream and consumes both directions until
// ctx is cancelled; then it stops fetching, lets in-flight work finish
// within ShutdownGrace (nak'ing what does not), and returns nil. It
// returns an error when set-up fails or the connection is closed.
func (p *Pipeline) Run(ctx context.Context) error {
	if p.cfg.ManageStreams {
		if err := Setup(ctx, p.js, p.cfg); err != nil {
			return err
		}
	} else if err := verify(ctx, p.js, p.cfg); err != nil {
		return err
	}
	cons := make(map[article.Direction]jetstream.Consumer, len(directions))
	for _, dir := range directions {
		c, err := p.js.Consumer(ctx, p.cfg.InputStream, p.cfg.durable(dir))
		if err != nil {
			return fmt.Errorf("pipeline: bind consumer %s: %w", p.cfg.durable(dir), err)
		}
		cons[dir] = c
	}

	// fetchCtx stops fetching: on cancellation or on a fatal error of one
	// direction. workCtx lets in-flight work run ShutdownGrace longer.
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	go func() {
		<-fetchCtx.Done()
		t := time.NewTimer(p.cfg.ShutdownGrace)
		defer t.Stop()
		select {
		case <-t.C:
			stopWork()
		case <-workCtx.Done():
		}
	}()

	for _, dir := range directions {
		sub, err := p.watchMaxDeliveries(workCtx, dir)
		if err != nil {
			return err
		}
		defer func() { _ = sub.Unsubscribe() }()
	}

	p.bound.Store(true)
	defer p.bound.Store(false)
	p.log.Info("pipeline consuming", "inbound", p.cfg.InputSubject(article.Inbound),
		"outbound", p.cfg.InputSubject(article.Outbound), "concurrency", p.cfg.Concurrency)

	var (
		workers sync.WaitGroup
		loops   sync.WaitGroup
		errMu   sync.Mutex
		runErr  error
	)
	for _, dir := range directions {
		loops.Add(1)
		go func() {
			defer loops.Done()
			if err := p.consume(fetchCtx, workCtx, dir, cons[dir], &workers); err != nil {
				errMu.Lock()
				runErr = errors.Join(runErr, err)
				errMu.Unlock()
				stopFetch()
			}
		}()
	}
	loops.Wait()
	workers.Wait()
	if !p.nc.IsClosed() {
		// Acks and naks are fire-and-forget: make sure the server has
		// them before the caller drains or closes the connection.
		if err := p.nc.FlushTimeout(5 * time.Second); err != nil {
			p.log.Warn("flush at shutdown failed; unacknowledged articles will be redelivered", "err", err)
		}
	}
	if runErr != nil {
		return runErr
	}
	p.log.Info("pipeline stopped")
	return nil
}

// fetchWait bounds one pull request. Bounded pull requests (Fetch) rather
// than the long-lived Messages iterator: under CPU starvation we saw the
// iterator stop issuing pull requests (consumer: pending > 0, waiting
// pulls 0) and never recover; a Fetch that loses its request simply
// expires and the next one is made.
const fetchWait = time.Second

// handBackDelay is how long an article handed back at shutdown waits
// before redelivery: longer than our last pull request can live.
const handBackDelay = fetchWait + 100*time.Millisecond

// consume pulls messages of one direction while slots are free.
func (p *Pipeline) consume(fetchCtx, workCtx context.Context, dir article.Direction, c jetstream.Consumer, workers *sync.WaitGroup) error {
	// The window: articles fetched whose handler has not finished. Its
	// Prefetch places beyond Concurrency keep an article ready for every
	// handler that frees up.
	limit := p.cfg.Concurrency + p.cfg.Prefetch
	slots := make(chan struct{}, limit)
	// Articles past their handler wait on I/O only (PubAck, ack) and move
	// to places of their own, so the window refills while they wait:
	// when they kept their place, a third of the time had a handler
	// slot without an article to start (the server's replies wait for a
	// core while handlers hold both). Per direction at most
	// Concurrency+2×Prefetch articles are in memory.
	finishing := make(chan struct{}, p.cfg.Prefetch)
	release := func(n int) {
		for range n {
			<-slots
		}
	}
	// Pull in batches of at least half the window: every pull request
	// costs a subscription, a request and an unsubscription on both
	// ends, which one article per request pays in full. Pull at once,
	// though, when no article is left waiting for a handler slot: then a
	// handler would idle for the round trip.
	minPull := max(1, limit/2)
	bl := newBacklog()
	// One long-lived goroutine per slot rather than one per article: a
	// handler needs a deep stack (MIME, CMS, big-number arithmetic), and a
	// fresh goroutine grows and copies its stack on every article.
	jobs := make(chan jetstream.Msg)
	defer close(jobs)
	for range limit + p.cfg.Prefetch {
		workers.Go(func() {
			pl := &place{window: slots, finishing: finishing}
			handled := pl.leaveWindow // one func value per worker, not per article
			for msg := range jobs {
				p.work(fetchCtx, workCtx, dir, msg, bl, handled)
				pl.release()
			}
		})
	}
	var fatal error
	for fetchCtx.Err() == nil {
		// Wait for one free slot, then take every other free one: the
		// pull request asks for as many articles as can start now.
		select {
		case slots <- struct{}{}:
		case <-fetchCtx.Done():
			continue
		}
		n := 1
	more:
		for n < limit {
			if n >= minPull || bl.n.Load() == 0 {
				select {
				case slots <- struct{}{}:
					n++
				default:
					break more
				}
				continue
			}
			select {
			case slots <- struct{}{}:
				n++
			case <-bl.empty: // a stale signal only costs one more look
			case <-fetchCtx.Done():
				break more
			}
		}
		if fetchCtx.Err() != nil {
			release(n) // stopping: pull nothing more
			continue
		}
		batch, err := c.Fetch(n, jetstream.FetchMaxWait(fetchWait))
		if err != nil {
			release(n)
			if fetchCtx.Err() != nil {
				break
			}
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, nats.ErrConnectionClosed) || p.nc.IsClosed() {
				fatal = fmt.Errorf("pipeline: consume %s: %w", dir, err)
				break
			}
			p.log.Warn("pipeline: pull failed", "direction", dir, "err", err)
			select { // do not spin on a persistent error
			case <-time.After(100 * time.Millisecond):
			case <-fetchCtx.Done():
			}
			continue
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			bl.n.Add(1)
			jobs <- msg // workers outnumber window and finishing places: one is free
		}
		release(n - got)
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, nats.ErrConnectionClosed) || p.nc.IsClosed() {
				fatal = fmt.Errorf("pipeline: consume %s: %w", dir, err)
				break
			}
			if got == 0 {
				p.log.Warn("pipeline: pull failed", "direction", dir, "err", err)
				select {
				case <-time.After(100 * time.Millisecond):
				case <-fetchCtx.Done():
				}
			}
		}
	}
	return fatal
}

// place is where one worker's article stands: in the fetch window until
// its handler is done, then among the finishing articles.
type place struct {
	window, finishing chan struct{}
	moved             bool
}

// leaveWindow moves the article from the window to the finishing places;
// it waits while all of those are taken.
func (pl *place) leaveWindow() {
	pl.finishing <- struct{}{}
	<-pl.window
	pl.moved = true
}

// release frees the article's place once it is acked, termed or nak'ed.
func (pl *place) release() {
	if pl.moved {
		<-pl.finishing
	} else {
		<-pl.window
	}
	pl.moved = false
}

// backlog counts one direction's articles that have arrived but wait for
// a handler slot, and signals when none is left.
type backlog struct {
	n     atomic.Int32
	empty chan struct{} // capacity 1
}

func newBacklog() *backlog { return &backlog{empty: make(chan struct{}, 1)} }

// started takes one article off the backlog.
func (b *backlog) started() {
	if b.n.Add(-1) == 0 {
		select {
		case b.empty <- struct{}{}:
		default:
		}
	}
}

// work processes one message to its end: ack, term or nak. It calls
// handled once the handler is done, before the result is published.
func (p *Pipeline) work(fetchCtx, workCtx context.Context, dir article.Direction, msg jetstream.Msg, bl *backlog, handled func()) {
	start := time.Now()
	d := string(dir)
	p.m.InFlight(d, 1)
	defer p.m.InFlight(d, -1)

	delivered := 1
	if md, err := msg.Metadata(); err == nil {
		delivered = int(md.NumDelivered)
	}
	if delivered > 1 {
		p.m.Redelivered(d)
	}
	stop := p.keepAlive(msg)
	defer stop()

	select {
	case p.cpu <- struct{}{}:
		bl.started()
	case <-fetchCtx.Done():
		bl.started()
		// Not started: let another replica have it — after our own pull
		// request has expired, or it would come straight back to us.
		_ = msg.NakWithDelay(handBackDelay)
		return
	}
	v := p.process(workCtx, dir, msg.Data(), delivered)
	<-p.cpu
	handled()

	log := articleLog{l: p.log, dir: d, id: v.articleID, delivery: delivered}
	if v.retry {
		if workCtx.Err() != nil {
			_ = msg.NakWithDelay(handBackDelay)
			log.info("article returned to the queue at shutdown")
			return
		}
		delay := p.cfg.backoff(delivered)
		log.warn("transient failure, retrying", slog.Any("err", v.err), slog.Duration("delay", delay))
		_ = msg.NakWithDelay(delay)
		return
	}

	if err := p.publishResult(workCtx, dir, v); err != nil {
		p.retryDelivery(msg, delivered, log, "publish result", err)
		return
	}
	if v.res.Error != nil {
		if err := p.publishDead(workCtx, dir, msg, v, delivered); err != nil {
			p.retryDelivery(msg, delivered, log, "publish dead letter", err)
			return
		}
		p.m.DeadLetter(d, v.res.Error.Code)
		if err := msg.Term(); err != nil {
			log.error("term failed; the article will be redelivered and deduplicated", slog.Any("err", err))
		}
		log.warn("article failed", slog.String("outcome", "error"), slog.String("code", v.res.Error.Code), slog.Any("err", v.err))
		p.m.ObserveArticle(d, nil, v.res.Error.Code, time.Since(start))
		return
	}
	// A plain ack, not a confirmed one: the result is already stored, so
	// a lost ack only costs a redelivery whose result the stream drops as
	// a duplicate; Run flushes the connection before it returns.
	if err := msg.Ack(); err != nil {
		log.error("ack failed; the article will be redelivered and deduplicated", slog.Any("err", err))
	}
	_, outcome, why := metrics.Classify(v.res.Security)
	log.info("article processed", slog.String("outcome", outcome), slog.String("reason", why))
	p.m.ObserveArticle(d, v.res.Security, "", time.Since(start))
}

func (p *Pipeline) retryDelivery(msg jetstream.Msg, delivered int, log articleLog, what string, err error) {
	if delivered >= p.cfg.MaxDeliver {
		// The server will not deliver it again: it stays in the work
		// queue until an operator acts. Say so loudly.
		log.error(what+" failed at the last delivery; the article stays in the input stream", slog.Any("err", err))
	} else {
		log.warn(what+" failed, retrying", slog.Any("err", err))
	}
	_ = msg.NakWithDelay(p.cfg.backoff(delivered))
}

// articleLog logs about one article. It adds the article's attributes
// at each call rather than through Logger.With, which copies and formats
// them for every article although most articles log a single line.
type articleLog struct {
	l        *slog.Logger
	dir, id  string
	delivery int
}

func (a articleLog) info(msg string, attrs ...slog.Attr)  { a.log(slog.LevelInfo, msg, attrs) }
func (a articleLog) warn(msg string, attrs ...slog.Attr)  { a.log(slog.LevelWarn, msg, attrs) }
func (a articleLog) error(msg string, attrs ...slog.Attr) { a.log(slog.LevelError, msg, attrs) }

func (a articleLog) log(level slog.Level, msg string, attrs []slog.Attr) {
	ctx := context.Background()
	if !a.l.Enabled(ctx, level) {
		return
	}
	all := make([]slog.Attr, 0, 3+len(attrs))
	all = append(all, slog.String("direction", a.dir), slog.String("article_id", a.id), slog.Int("delivery", a.delivery))
	a.l.LogAttrs(ctx, level, msg, append(all, attrs...)...)
}

// keepAlive sends InProgress so the server does not redeliver an article
// that is waiting for a slot or being worked on. A timer rather than a
// goroutine per article: almost all articles finish long before it fires.
func (p *Pipeline) keepAlive(msg jetstream.Msg) (stop func()) {
	every := max(p.cfg.AckWait/3, 50*time.Millisecond)
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	mu.Lock() // t is read by the callback
	t = time.AfterFunc(every, func() {
		_ = msg.InProgress()
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(every)
		}
	})
	mu.Unlock()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// verdict is the outcome of processing one message.
type verdict struct {
	articleID string
	msgID     string // Nats-Msg-Id of the result
	res       *Result
	retry     bool  // transient failure: nak with backoff
	err       error // the failure, for logs
}

// pipelineError is a permanent failure with its error code.
type pipelineError struct {
	code string
	err  error
}

func (e *pipelineError) Error() string { return e.code + ": " + e.err.Error() }
func (e *pipelineError) Unwrap() error { return e.err }

func permanent(code, format string, args ...any) error {
	return &pipelineError{code: code, err: fmt.Errorf(format, args...)}
}

func (p *Pipeline) process(ctx context.Context, dir article.Direction, payload []byte, delivered int) *verdict {
	sum := sha256.Sum256(payload)
	v := &verdict{}
	res := &Result{
		Schema:    SchemaResultV1,
		Direction: dir,
		Worker:    WorkerInfo{Version: p.cfg.Version, Instance: p.cfg.Instance},
	}
	v.res = res

	req, err := p.decode(ctx, payload)
	if req != nil {
		v.articleID = req.ArticleID
		res.ArticleID, res.TicketID, res.Attempt = req.ArticleID, req.TicketID, req.Attempt
	}
	v.msgID = string(dir) + ":" + v.articleID + ":" + hex.EncodeToString(sum[:])
	var out *article.Outcome
	if err == nil {
		out, err = p.handle(ctx, dir, req)
	}
	if err != nil {
		v.err = err
		var pe *pipelineError
		switch {
		case errors.As(err, &pe):
		case article.IsTransient(err) || ctx.Err() != nil:
			if delivered < p.cfg.MaxDeliver || ctx.Err() != nil {
				v.retry = true
				return v
			}
			pe = &pipelineError{code: CodeRetriesExhausted, err: fmt.Errorf("after %d deliveries: %w", delivered, err)}
		default:
			code := CodeInternal
			if c := reason.CodeOf(err); c.Valid() {
				code = string(c)
			}
			pe = &pipelineError{code: code, err: err}
		}
		res.Status = StatusError
		res.Error = &ErrorInfo{Code: pe.code, Message: truncate(pe.err.Error(), 1024)}
		res.ProcessedAt = time.Now().UTC()
		return v
	}
	sec := out.Security
	if sec.Warnings == nil {
		sec.Warnings = []reason.Code{}
	}
	res.Status = StatusDone
	res.Security = &sec
	res.Raw = out.Raw
	if dir == article.Outbound {
		res.Recipients = out.Recipients
		if res.Recipients == nil {
			res.Recipients = []article.Recipient{}
		}
		for _, c := range out.Copies {
			res.Copies = append(res.Copies, ResultCopy{Recipients: c.Recipients, Raw: c.Raw})
		}
	}
	res.ProcessedAt = time.Now().UTC()
	return v
}

// decode parses and checks the input. A non-nil request is returned as far
// as it could be parsed, so error results carry the ids.
func (p *Pipeline) decode(ctx context.Context, payload []byte) (*article.Request, error) {
	env, req, err := parse(payload)
	if err != nil {
		return req, err
	}
	raw, err := p.loadRaw(ctx, env)
	if err != nil {
		return req, err
	}
	req.Raw = raw
	return req, nil
}

// envelope is a decoded Article and its raw field's base64 text, which
// parse takes straight from the payload when it can (see splitRaw).
type envelope struct {
	Article
	raw64 []byte
}

// parse decodes and checks the envelope, without the raw message.
func parse(payload []byte) (*envelope, *article.Request, error) {
	var env envelope
	doc, raw64, split := splitRaw(payload)
	if !split {
		doc = payload
	}
	if err := json.Unmarshal(doc, &env.Article); err != nil {
		return nil, nil, &pipelineError{code: string(reason.Malformed), err: fmt.Errorf("input is not valid JSON: %w", err)}
	}
	env.raw64 = raw64
	if !split && env.Raw != nil {
		env.raw64 = []byte(*env.Raw)
	}
	a := &env.Article
	req := &article.Request{Options: a.Options}
	if ValidID(a.ArticleID) {
		req.ArticleID = a.ArticleID
	}
	if ValidID(a.TicketID) {
		req.TicketID = a.TicketID
	}
	if ValidID(a.Attempt) {
		req.Attempt = a.Attempt
	}
	switch {
	case a.Schema != SchemaArticleV1:
		return &env, req, permanent(CodeUnknownSchema, "unknown schema %q (want %s)", truncate(a.Schema, 64), SchemaArticleV1)
	case a.ArticleID == "":
		return &env, req, permanent(CodeInvalidRequest, "article_id is missing")
	case req.ArticleID == "":
		return &env, req, permanent(CodeInvalidRequest, "article_id is longer than %d bytes or contains control characters", MaxIDLen)
	case a.Attempt != "" && req.Attempt == "":
		return &env, req, permanent(CodeInvalidRequest, "attempt is longer than %d bytes or contains control characters", MaxIDLen)
	case a.TicketID != "" && req.TicketID == "":
		return &env, req, permanent(CodeInvalidRequest, "ticket_id is longer than %d bytes or contains control characters", MaxIDLen)
	case len(a.Group) > MaxIDLen:
		return &env, req, permanent(CodeInvalidRequest, "group is longer than %d bytes", MaxIDLen)
	case (a.Raw == nil) == (a.RawRef == nil):
		return &env, req, permanent(CodeInvalidRequest, "exactly one of raw and raw_ref is required")
	}
	if t := a.Options.Type; t != nil && *t != string(result.SMIME) && *t != string(result.PGP) {
		return &env, req, permanent(CodeInvalidRequest, "options.type %q is not %q or %q", truncate(*t, 32), result.SMIME, result.PGP)
	}
	req.Group = a.Group
	return &env, req, nil
}

func (p *Pipeline) loadRaw(ctx context.Context, env *envelope) ([]byte, error) {
	limit := p.cfg.MaxMessageBytes
	if env.Raw != nil {
		if int64(fastb64.DecodedLen(len(env.raw64))) > limit+3 {
			return nil, permanent(string(reason.TooLarge), "raw message exceeds %d bytes", limit)
		}
		raw := make([]byte, fastb64.DecodedLen(len(env.raw64)))
		n, err := fastb64.Decode(raw, env.raw64)
		if err != nil {
			return nil, permanent(string(reason.Malformed), "raw is not valid base64: %v", err)
		}
		raw = raw[:n]
		if int64(len(raw)) > limit {
			return nil, permanent(string(reason.TooLarge), "raw message of %d bytes exceeds %d", len(raw), limit)
		}
		return raw, nil
	}
	ref := env.RawRef
	obs, err := p.objectStore(ctx, ref.Bucket)
	if err != nil {
		if isMissingObject(err) {
			return nil, permanent(CodeMissingObject, "raw_ref bucket %q: %v", truncate(ref.Bucket, 64), err)
		}
		return nil, fmt.Errorf("%w: object store %s: %w", article.ErrTransient, ref.Bucket, err)
	}
	info, err := obs.GetInfo(ctx, ref.Name)
	if err == nil && int64(info.Size) > limit {
		return nil, permanent(string(reason.TooLarge), "raw_ref object of %d bytes exceeds %d", info.Size, limit)
	}
	var raw []byte
	if err == nil {
		raw, err = obs.GetBytes(ctx, ref.Name)
	}
	if err != nil {
		if isMissingObject(err) {
			return nil, permanent(CodeMissingObject, "raw_ref %s/%s: %v", truncate(ref.Bucket, 64), truncate(ref.Name, 256), err)
		}
		return nil, fmt.Errorf("%w: object %s/%s: %w", article.ErrTransient, ref.Bucket, ref.Name, err)
	}
	if int64(len(raw)) > limit {
		return nil, permanent(string(reason.TooLarge), "raw_ref object of %d bytes exceeds %d", len(raw), limit)
	}
	return raw, nil
}

func (p *Pipeline) objectStore(ctx context.Context, bucket string) (jetstream.ObjectStore, error) {
	p.mu.Lock()
	obs, ok := p.objs[bucket]
	p.mu.Unlock()
	if ok {
		return obs, nil
	}
	obs, err := p.js.ObjectStore(ctx, bucket)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if len(p.objs) < 64 { // bucket names come from input: bound the cache
		p.objs[bucket] = obs
	}
	p.mu.Unlock()
	return obs, nil
}

// handle calls the handler, turning a panic into a permanent error.
func (p *Pipeline) handle(ctx context.Context, dir article.Direction, req *article.Request) (out *article.Outcome, err error) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("handler panic", "direction", dir, "article_id", req.ArticleID,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			out, err = nil, permanent(CodeHandlerPanic, "the handler crashed on this article")
		}
	}()
	hctx, cancel := context.WithTimeout(ctx, p.cfg.HandlerTimeout)
	defer cancel()
	out, err = p.h.Handle(hctx, dir, req)
	if err == nil && out == nil {
		err = errors.New("handler returned neither outcome nor error")
	}
	return out, err
}

// publishResult stores the result, claim-checking large bodies, and waits
// for the PubAck.
func (p *Pipeline) publishResult(ctx context.Context, dir article.Direction, v *verdict) error {
	data, err := encodeResult(v.res)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	var objects []string
	if len(data) > int(p.nc.MaxPayload())-envelopeHeadroom {
		if objects, err = p.claimCheck(ctx, dir, v); err != nil {
			return err
		}
		if data, err = encodeResult(v.res); err != nil {
			return fmt.Errorf("encode result: %w", err)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Headers repeat the ids and status so consumers can route or filter
	// results without parsing the body.
	msg := &nats.Msg{Subject: p.cfg.ResultSubject(dir), Data: data, Header: nats.Header{}}
	msg.Header.Set(HeaderStatus, v.res.Status)
	if v.articleID != "" {
		msg.Header.Set(HeaderArticleID, v.articleID)
	}
	if v.res.Error != nil {
		msg.Header.Set(HeaderErrorCode, v.res.Error.Code)
	}
	ack, err := p.js.PublishMsg(pctx, msg, jetstream.WithMsgID(v.msgID))
	if err != nil {
		return fmt.Errorf("publish result: %w", err)
	}
	if ack.Duplicate {
		// An earlier delivery's result stands; its objects are the ones
		// referenced, ours are orphans.
		p.log.Info("result already published by an earlier delivery", "article_id", v.articleID)
		p.deleteObjects(ctx, objects)
	}
	return nil
}

// claimCheck moves the result's bodies to the object store. Names are
// unique per attempt so a redelivery never overwrites what an earlier,
// already published result points to.
func (p *Pipeline) claimCheck(ctx context.Context, dir article.Direction, v *verdict) ([]string, error) {
	obs, err := p.objectStore(ctx, p.cfg.ObjectStoreBucket)
	if err != nil {
		return nil, fmt.Errorf("claim check: %w", err)
	}
	base := "results/" + string(dir) + "/" + nuid.Next() + "/"
	var names []string
	put := func(name string, b []byte) (*ObjectRef, error) {
		if err := putObject(ctx, obs, name, b, p.nc.MaxPayload()); err != nil {
			p.deleteObjects(ctx, names)
			return nil, fmt.Errorf("claim check %s: %w", name, err)
		}
		names = append(names, name)
		return &ObjectRef{Bucket: p.cfg.ObjectStoreBucket, Name: name}, nil
	}
	if v.res.Raw != nil {
		ref, err := put(base+"raw", v.res.Raw)
		if err != nil {
			return nil, err
		}
		v.res.Raw, v.res.RawRef = nil, ref
	}
	for i := range v.res.Copies {
		c := &v.res.Copies[i]
		ref, err := put(base+"copy-"+strconv.Itoa(i), c.Raw)
		if err != nil {
			return nil, err
		}
		c.Raw, c.RawRef = nil, ref
	}
	return names, nil
}

func (p *Pipeline) deleteObjects(ctx context.Context, names []string) {
	if len(names) == 0 {
		return
	}
	obs, err := p.objectStore(ctx, p.cfg.ObjectStoreBucket)
	if err != nil {
		return
	}
	for _, n := range names {
		if err := obs.Delete(ctx, n); err != nil {
			p.log.Warn("could not delete orphaned object; its TTL will", "name", n, "err", err)
		}
	}
}

// inputMsg is what a dead letter copies from the input.
type inputMsg interface {
	Headers() nats.Header
	Subject() string
	Data() []byte
}

// publishDead stores the original payload on the dead-letter subject.
func (p *Pipeline) publishDead(ctx context.Context, dir article.Direction, in inputMsg, v *verdict, delivered int) error {
	h := nats.Header{}
	for k, vals := range in.Headers() {
		if strings.HasPrefix(k, "Nats-") { // dedup and expectation headers are per stream
			continue
		}
		h[k] = vals
	}
	h.Set(HeaderErrorCode, v.res.Error.Code)
	h.Set(HeaderError, headerSafe(v.res.Error.Message))
	h.Set(HeaderDeliveries, strconv.Itoa(delivered))
	h.Set(HeaderDirection, string(dir))
	h.Set(HeaderSubject, in.Subject())
	if v.articleID != "" {
		h.Set(HeaderArticleID, v.articleID)
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	msg := &nats.Msg{Subject: p.cfg.DeadSubject(dir), Data: in.Data(), Header: h}
	if _, err := p.js.PublishMsg(pctx, msg, jetstream.WithMsgID("dead:"+v.msgID)); err != nil {
		return fmt.Errorf("publish dead letter: %w", err)
	}
	return nil
}

// ValidID reports whether s may be an article, ticket or attempt id: not
// empty, at most MaxIDLen bytes, no control characters (ids end up in
// NATS headers and logs).
func ValidID(s string) bool {
	if s == "" || len(s) > MaxIDLen {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return false
		}
	}
	return true
}

// headerSafe makes s fit a NATS header value (no line breaks).
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, truncate(s, 512))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// maxDeliveriesAdvisory is the part of the server's
// io.nats.jetstream.advisory.v1.max_deliver event the pipeline reads.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// watchMaxDeliveries handles articles the server gave up on: the last
// delivery was neither acked nor terminated because the worker died, hung
// past AckWait or could not publish. Such a message would otherwise sit
// in the work queue forever; it gets its error result and dead letter
// here and is removed. Every replica receives the advisory; the message
// ids make the result and dead letter single, and only one delete wins.
func (p *Pipeline) watchMaxDeliveries(ctx context.Context, dir article.Direction) (*nats.Subscription, error) {
	subject := "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + p.cfg.InputStream + "." + p.cfg.durable(dir)
	sub, err := p.nc.Subscribe(subject, func(m *nats.Msg) {
		var adv maxDeliveriesAdvisory
		if err := json.Unmarshal(m.Data, &adv); err != nil || adv.StreamSeq == 0 {
			return
		}
		if err := p.deadLetterStuck(ctx, dir, adv); err != nil {
			p.log.Error("could not dead-letter an article that exhausted its deliveries",
				"direction", dir, "stream_seq", adv.StreamSeq, "err", err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("pipeline: watch max deliveries: %w", err)
	}
	return sub, nil
}

func (p *Pipeline) deadLetterStuck(ctx context.Context, dir article.Direction, adv maxDeliveriesAdvisory) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := p.js.Stream(ctx, p.cfg.InputStream)
	if err != nil {
		return err
	}
	raw, err := stream.GetMsg(ctx, adv.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // handled by another replica, or terminated meanwhile
	}
	if err != nil {
		return err
	}
	v := &verdict{res: &Result{
		Schema:    SchemaResultV1,
		Direction: dir,
		Status:    StatusError,
		Worker:    WorkerInfo{Version: p.cfg.Version, Instance: p.cfg.Instance},
	}}
	var a Article
	if json.Unmarshal(raw.Data, &a) == nil {
		if ValidID(a.ArticleID) {
			v.articleID = a.ArticleID
		}
		if ValidID(a.TicketID) {
			v.res.TicketID = a.TicketID
		}
		if ValidID(a.Attempt) {
			v.res.Attempt = a.Attempt
		}
	}
	v.res.ArticleID = v.articleID
	sum := sha256.Sum256(raw.Data)
	v.msgID = string(dir) + ":" + v.articleID + ":" + hex.EncodeToString(sum[:])
	v.res.Error = &ErrorInfo{Code: CodeRetriesExhausted,
		Message: fmt.Sprintf("not acknowledged after %d deliveries: the worker crashed, hung or could not publish", adv.Deliveries)}
	v.res.ProcessedAt = time.Now().UTC()
	if err := p.publishResult(ctx, dir, v); err != nil {
		return err
	}
	in := &storedMsg{raw}
	if err := p.publishDead(ctx, dir, in, v, int(adv.Deliveries)); err != nil {
		return err
	}
	if err := stream.DeleteMsg(ctx, adv.StreamSeq); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil // another replica won; it counts and logs
		}
		return err
	}
	p.m.DeadLetter(string(dir), CodeRetriesExhausted)
	p.m.ObserveArticle(string(dir), nil, CodeRetriesExhausted, 0)
	p.log.Warn("article failed", "direction", dir, "article_id", v.articleID, "outcome", "error",
		"code", CodeRetriesExhausted, "deliveries", adv.Deliveries)
	return nil
}

// storedMsg adapts a message read from the stream to what publishDead
// needs.
type storedMsg struct{ m *jetstream.RawStreamMsg }

func (s *storedMsg) Headers() nats.Header { return s.m.Header }
func (s *storedMsg) Subject() string      { return s.m.Subject }
func (s *storedMsg) Data() []byte         { return s.m.Data }
