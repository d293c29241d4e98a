// Package reprocess republishes stored articles to the secmail pipeline
// in bulk — after a missing private key was imported, after a migration
// from another helpdesk, after a trust-store change — and collects their
// results. It is `worker reprocess`.
//
// Inputs are a directory of .eml files (article id = file name without
// ".eml"), an mboxrd file (article id = "mbox-" + a hash of the message),
// a JSON Lines export of {article_id, ticket_id, group, raw} (raw in
// base64), or the result stream itself (OnlyFailedWith). Ids are stable,
// so a re-run publishes the same articles and finds the same results.
//
// Flow control: a token-bucket rate limit on publishing, and a bound on
// outstanding articles — an article is outstanding from its publication
// until its result arrives on the result subject. The results are read by
// an ordered consumer created before anything is published, starting one
// duplicate window (the result stream's) in the past: the pipeline
// deduplicates results of identical input within that window, so a result
// already there is the answer and the article is not published again.
// This makes resuming cheap (articles published by an interrupted run
// whose results arrived after it stopped are not processed twice); the
// flip side is that re-running an identical article within the window
// (default about five minutes) returns its stored result.
//
// A checkpoint file lists, one per line, the ids whose results have been
// received; a run skips them, so an interrupted run (Ctrl-C) resumes
// where it stopped.
package reprocess

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/pipeline"
	"github.com/secmail/secmail/result"
)

// Config configures Run. Exactly one of Dir, Mbox, JSONL and
// OnlyFailedWith selects the input.
type Config struct {
	Dir   string
	Mbox  string
	JSONL string
	// OnlyFailedWith re-runs the articles of Direction whose latest result
	// in the result stream failed with this reason code (encryption or
	// signature), e.g. "no-private-key" after the key was imported.
	//
	// A result carries the processed message, not the input. When the
	// outermost layer failed, that is the original: an inbound message
	// that could not be decrypted is returned as received, and so is
	// signed mail whose signature failed when it was not encrypted. Those
	// are republished. Results whose message is not the original (a
	// signature failure inside a decrypted message, outbound mail that
	// was not sent) are reported as skipped: re-run them from the
	// helpdesk's own export (JSONL).
	OnlyFailedWith string
	// Attempt is sent with every article and only results carrying it
	// count. A retry (OnlyFailedWith) needs one, or the pipeline would
	// answer with the stored failure (results are deduplicated by input);
	// Run then picks "retry-<time>". Pass the same value again to resume
	// an interrupted retry.
	Attempt string

	// Direction to publish to; default inbound.
	Direction article.Direction
	// Group is used for articles that do not name one.
	Group string
	// Rate limits publishing, articles per second; 0 is unlimited.
	Rate float64
	// MaxOutstanding bounds articles published and without a result;
	// default 64.
	MaxOutstanding int
	// Checkpoint is the file of completed article ids; empty disables
	// resuming.
	Checkpoint string
	// Results is the JSON Lines file the results are appended to (the
	// result messages as published); empty writes none.
	Results string
	// Timeout is how long to wait for one article's result; an article
	// without one is counted as timed out and not checkpointed. Default
	// 5 minutes.
	Timeout time.Duration
	// Pipeline names subjects, streams and the claim-check bucket (its
	// defaults apply).
	Pipeline pipeline.Config
	// MaxMessageBytes bounds one input message; default the pipeline's.
	MaxMessageBytes int64

	// Progress receives the progress display; nil shows none. On a
	// terminal (ProgressTTY) one line is redrawn, otherwise a plain line
	// is written every ProgressEvery (default 5s).
	Progress      io.Writer
	ProgressTTY   bool
	ProgressEvery time.Duration
	// BadInput is called for every skipped input (may be nil).
	BadInput func(BadInput)
}

// Summary is what a run did.
type Summary struct {
	Total       int            // articles in the input (unique ids)
	AlreadyDone int            // skipped: in the checkpoint
	Duplicates  int            // skipped: the same id appeared before in the input
	Published   int            // published to the pipeline
	FromStream  int            // completed by a result already in the stream
	Completed   int            // results received (including FromStream)
	OK          int            // results without a failure
	Failures    map[string]int // results with a failure, by reason (error results: "error:<code>")
	TimedOut    int            // published, no result within Timeout
	Bad         []BadInput     // skipped inputs
	Interrupted bool
	Elapsed     time.Duration
}

// ErrInterrupted is returned (wrapped) when ctx ends before the run does.
var ErrInterrupted = errors.New("reprocess: interrupted")

// FailureReason is the reason a result failed, "" when it did not: the
// encryption reason first, then the signature's; error results give
// "error:<code>".
func FailureReason(r *pipeline.Result) string {
	if r.Status == pipeline.StatusError || r.Security == nil {
		if r.Error != nil {
			return "error:" + r.Error.Code
		}
		return "error"
	}
	for _, c := range []result.Check{r.Security.Encryption, r.Security.Sign} {
		if c.Status == result.StatusFailed {
			if c.Reason != nil {
				return string(*c.Reason)
			}
			return "failed"
		}
	}
	return ""
}

// entry is the state of one wanted article.
type entry struct {
	published time.Time
	done      bool
	early     []byte // a result read before the article was published
}

type runner struct {
	cfg  Config
	pcfg pipeline.Config
	js   jetstream.JetStream
	src  source

	mu      sync.Mutex
	wanted  map[string]*entry
	out     int // published, no result yet
	sum     Summary
	slots   chan struct{}
	started time.Time

	results    *os.File
	checkpoint *os.File
	writeErr   error
	// closed is set (under mu) when the output files are closed: a result
	// the consumer still delivers then is not counted, so the summary and
	// the checkpoint agree.
	closed bool
}

// Run republishes the input and waits for the results. Bad input is
// counted in the summary and skipped; the error is non-nil for fatal
// failures and wraps ErrInterrupted when ctx ended first (the checkpoint
// then holds what was completed).
func Run(ctx context.Context, js jetstream.JetStream, cfg Config) (*Summary, error) {
	r := &runner{cfg: cfg, js: js, wanted: map[string]*entry{}, started: time.Now()}
	r.sum.Failures = map[string]int{}
	if err := r.init(ctx); err != nil {
		return &r.sum, err
	}
	err := r.run(ctx)
	// Close first: after it no late result changes the summary.
	if cerr := r.close(); err == nil {
		err = cerr
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sum.Elapsed = time.Since(r.started)
	return &r.sum, err
}

func (r *runner) init(ctx context.Context) error {
	cfg := &r.cfg
	if cfg.Direction == "" {
		cfg.Direction = article.Inbound
	}
	if cfg.Direction != article.Inbound && cfg.Direction != article.Outbound {
		return fmt.Errorf("reprocess: direction %q is not inbound or outbound", cfg.Direction)
	}
	if cfg.MaxOutstanding <= 0 {
		cfg.MaxOutstanding = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 5 * time.Second
	}
	r.pcfg = cfg.Pipeline.Defaults()
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = r.pcfg.MaxMessageBytes
	}
	n := 0
	for _, s := range []string{cfg.Dir, cfg.Mbox, cfg.JSONL, cfg.OnlyFailedWith} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return errors.New("reprocess: exactly one input is required (directory, mbox, JSON Lines export or --only-failed-with)")
	}
	switch {
	case cfg.Dir != "":
		r.src = dirSource{dir: cfg.Dir, maxBytes: cfg.MaxMessageBytes}
	case cfg.Mbox != "":
		r.src = mboxSource{path: cfg.Mbox, maxBytes: cfg.MaxMessageBytes}
	case cfg.JSONL != "":
		r.src = jsonlSource{path: cfg.JSONL, maxBytes: cfg.MaxMessageBytes}
	default:
		if cfg.Attempt == "" {
			cfg.Attempt = "retry-" + time.Now().UTC().Format("20060102T150405.000000000")
		}
		items, err := collectFailed(ctx, r.js, r.pcfg, cfg.Direction, cfg.OnlyFailedWith, r.bad)
		if err != nil {
			return err
		}
		r.src = sliceSource(items)
	}
	r.slots = make(chan struct{}, cfg.MaxOutstanding)
	return nil
}

func (r *runner) bad(b BadInput) {
	r.mu.Lock()
	r.sum.Bad = append(r.sum.Bad, b)
	r.mu.Unlock()
	if r.cfg.BadInput != nil {
		r.cfg.BadInput(b)
	}
}

func (r *runner) run(ctx context.Context) error {
	done, err := readCheckpoint(r.cfg.Checkpoint)
	if err != nil {
		return err
	}
	// Counting pass: the ids whose results we wait for.
	err = r.src.scan(ctx, false, func(it Item) error {
		if _, ok := r.wanted[it.ArticleID]; ok {
			return nil
		}
		if done[it.ArticleID] {
			r.sum.AlreadyDone++
			r.wanted[it.ArticleID] = &entry{done: true}
			return nil
		}
		r.wanted[it.ArticleID] = &entry{}
		r.sum.Total++
		return nil
	}, func(BadInput) {})
	if err != nil {
		return r.fatalOrInterrupted(ctx, err)
	}
	r.sum.Total += r.sum.AlreadyDone

	if r.results, err = openAppend(r.cfg.Results); err != nil {
		return err
	}
	if r.checkpoint, err = openAppend(r.cfg.Checkpoint); err != nil {
		return err
	}

	readCtx, stopRead := context.WithCancel(ctx)
	defer stopRead()
	caughtUp := make(chan struct{})
	readErr := make(chan error, 1)
	if err := r.startReader(readCtx, caughtUp, readErr); err != nil {
		return err
	}
	select {
	case <-caughtUp:
	case err := <-readErr:
		return fmt.Errorf("reprocess: reading results: %w", err)
	case <-ctx.Done():
		return r.fatalOrInterrupted(ctx, ctx.Err())
	}

	stopProgress := r.startProgress()
	defer stopProgress()
	stopTimeouts := r.startTimeouts()
	defer stopTimeouts()

	var lim *rate.Limiter
	if r.cfg.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(r.cfg.Rate), max(1, int(r.cfg.Rate/10)))
	}
	seen := map[string]bool{}
	err = r.src.scan(ctx, true, func(it Item) error {
		if seen[it.ArticleID] {
			r.mu.Lock()
			r.sum.Duplicates++
			r.mu.Unlock()
			return nil
		}
		seen[it.ArticleID] = true
		return r.publish(ctx, lim, it)
	}, r.bad)
	if err != nil {
		return r.fatalOrInterrupted(ctx, err)
	}
	// Wait for the outstanding results (or their time-outs).
	for i := 0; i < cap(r.slots); i++ {
		select {
		case r.slots <- struct{}{}:
		case err := <-readErr:
			return fmt.Errorf("reprocess: reading results: %w", err)
		case <-ctx.Done():
			return r.fatalOrInterrupted(ctx, ctx.Err())
		}
	}
	r.mu.Lock()
	werr := r.writeErr
	r.mu.Unlock()
	return werr
}

func (r *runner) fatalOrInterrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		r.mu.Lock()
		r.sum.Interrupted = true
		r.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrInterrupted, ctx.Err())
	}
	return fmt.Errorf("reprocess: %w", err)
}

func (r *runner) publish(ctx context.Context, lim *rate.Limiter, it Item) error {
	r.mu.Lock()
	e := r.wanted[it.ArticleID]
	if e == nil || e.done {
		r.mu.Unlock()
		return nil
	}
	if e.early != nil {
		// The stream already holds this input's result (see the package
		// comment): take it rather than publish again.
		data := e.early
		e.early = nil
		r.sum.FromStream++
		r.completeLocked(it.ArticleID, e, data)
		r.mu.Unlock()
		return nil
	}
	r.mu.Unlock()

	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if lim != nil {
		if err := lim.Wait(ctx); err != nil {
			<-r.slots
			return err
		}
	}
	r.mu.Lock()
	if e.done || e.early != nil {
		// Its result arrived while we waited for a slot.
		if e.early != nil {
			data := e.early
			e.early = nil
			r.sum.FromStream++
			r.completeLocked(it.ArticleID, e, data)
		}
		r.mu.Unlock()
		<-r.slots
		return nil
	}
	e.published = time.Now()
	r.out++
	r.mu.Unlock()

	group := it.Group
	if group == "" {
		group = r.cfg.Group
	}
	req := &article.Request{ArticleID: it.ArticleID, TicketID: it.TicketID, Group: group, Raw: it.Raw, Attempt: r.cfg.Attempt}
	if _, err := pipeline.Submit(ctx, r.js, r.pcfg, r.cfg.Direction, req); err != nil {
		r.mu.Lock()
		if !e.done {
			e.published = time.Time{}
			r.out--
			r.mu.Unlock()
			<-r.slots
		} else {
			r.mu.Unlock()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("publishing %s (%s): %w", it.ArticleID, it.Where, err)
	}
	r.mu.Lock()
	r.sum.Published++
	r.mu.Unlock()
	return nil
}

// startReader starts the ordered consumer on the result subject, one
// duplicate window back, and reads it until ctx ends. caughtUp is closed
// once what was in the stream at the start has been read.
func (r *runner) startReader(ctx context.Context, caughtUp chan struct{}, errc chan<- error) error {
	stream, err := r.js.Stream(ctx, r.pcfg.ResultStream)
	if err != nil {
		return fmt.Errorf("reprocess: result stream %s: %w", r.pcfg.ResultStream, err)
	}
	info := stream.CachedInfo()
	window := info.Config.Duplicates
	if window <= 0 {
		window = 2 * time.Minute
	}
	from := time.Now().Add(-window)
	cons, err := r.js.OrderedConsumer(ctx, r.pcfg.ResultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{r.pcfg.ResultSubject(r.cfg.Direction)},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
	})
	if err != nil {
		return fmt.Errorf("reprocess: result consumer: %w", err)
	}
	var once sync.Once
	signal := func() { once.Do(func() { close(caughtUp) }) }
	if info.State.Msgs == 0 || info.State.LastTime.Before(from) {
		signal()
	}
	go func() {
		failures := 0
		for ctx.Err() == nil {
			batch, err := cons.Fetch(256, jetstream.FetchMaxWait(500*time.Millisecond))
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				// The ordered consumer recreates itself after a
				// reconnect; only a lasting failure ends the run.
				if failures++; failures == 20 {
					errc <- err
					return
				}
				time.Sleep(250 * time.Millisecond)
				continue
			}
			failures = 0
			n := 0
			for msg := range batch.Messages() {
				n++
				r.onResult(msg.Data())
				if md, err := msg.Metadata(); err == nil && md.NumPending == 0 {
					signal()
				}
			}
			if n == 0 {
				signal() // nothing (more) for our subject
			}
		}
	}()
	return nil
}

// onResult handles one result message.
func (r *runner) onResult(data []byte) {
	var head struct {
		ArticleID string `json:"article_id"`
		Attempt   string `json:"attempt"`
	}
	if json.Unmarshal(data, &head) != nil || head.Attempt != r.cfg.Attempt {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.wanted[head.ArticleID]
	if e == nil || e.done || r.closed {
		return
	}
	if e.published.IsZero() {
		e.early = data // the latest one wins
		return
	}
	r.completeLocked(head.ArticleID, e, data)
	r.out--
	<-r.slots
}

// completeLocked records a result; r.mu is held.
func (r *runner) completeLocked(id string, e *entry, data []byte) {
	e.done = true
	var res pipeline.Result
	if err := json.Unmarshal(data, &res); err != nil {
		r.sum.Failures["error:undecodable-result"]++
	} else if why := FailureReason(&res); why != "" {
		r.sum.Failures[why]++
	} else {
		r.sum.OK++
	}
	r.sum.Completed++
	// The result first: a crash between the two writes repeats a result
	// line rather than losing one.
	if r.results != nil && r.writeErr == nil {
		if _, err := r.results.Write(append(data, '\n')); err != nil {
			r.writeErr = fmt.Errorf("reprocess: writing results: %w", err)
		}
	}
	if r.checkpoint != nil && r.writeErr == nil {
		if _, err := r.checkpoint.WriteString(id + "\n"); err != nil {
			r.writeErr = fmt.Errorf("reprocess: writing checkpoint: %w", err)
		}
	}
}

// startTimeouts gives up on articles whose result takes longer than
// Timeout, so one lost article does not hold the run forever.
func (r *runner) startTimeouts() func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(min(time.Second, r.cfg.Timeout/4))
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				r.mu.Lock()
				for _, e := range r.wanted {
					if !e.done && !e.published.IsZero() && now.Sub(e.published) > r.cfg.Timeout {
						e.done = true
						r.sum.TimedOut++
						r.out--
						<-r.slots
					}
				}
				r.mu.Unlock()
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}

func (r *runner) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	var errs []error
	for _, f := range []*os.File{r.results, r.checkpoint} {
		if f == nil {
			continue
		}
		if err := f.Sync(); err != nil {
			errs = append(errs, err)
		}
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func openAppend(path string) (*os.File, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("reprocess: %w", err)
	}
	return f, nil
}

// readCheckpoint returns the completed ids; a missing file is an empty
// checkpoint.
func readCheckpoint(path string) (map[string]bool, error) {
	done := map[string]bool{}
	if path == "" {
		return done, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return done, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reprocess: checkpoint: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		if id := strings.TrimSpace(sc.Text()); id != "" {
			done[id] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reprocess: checkpoint %s: %w", path, err)
	}
	return done, nil
}

// collectFailed reads the whole result stream for dir and returns the
// articles whose latest result failed with why, with the message to
// republish (see Config.OnlyFailedWith).
func collectFailed(ctx context.Context, js jetstream.JetStream, pcfg pipeline.Config, dir article.Direction, why string, bad func(BadInput)) ([]Item, error) {
	stream, err := js.Stream(ctx, pcfg.ResultStream)
	if err != nil {
		return nil, fmt.Errorf("reprocess: result stream %s: %w", pcfg.ResultStream, err)
	}
	latest := map[string]*pipeline.Result{}
	var order []string
	if stream.CachedInfo().State.Msgs > 0 {
		cons, err := js.OrderedConsumer(ctx, pcfg.ResultStream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{pcfg.ResultSubject(dir)},
		})
		if err != nil {
			return nil, fmt.Errorf("reprocess: result consumer: %w", err)
		}
	read:
		for {
			batch, err := cons.Fetch(256, jetstream.FetchMaxWait(time.Second))
			if err != nil {
				return nil, fmt.Errorf("reprocess: reading results: %w", err)
			}
			n := 0
			for msg := range batch.Messages() {
				n++
				var res pipeline.Result
				if json.Unmarshal(msg.Data(), &res) == nil && res.ArticleID != "" {
					if FailureReason(&res) == why {
						if _, ok := latest[res.ArticleID]; !ok {
							order = append(order, res.ArticleID)
						}
						latest[res.ArticleID] = &res
					} else {
						delete(latest, res.ArticleID) // a later result supersedes
					}
				}
				if md, err := msg.Metadata(); err == nil && md.NumPending == 0 {
					break read
				}
			}
			if err := batch.Error(); err != nil && !isTimeout(err) {
				return nil, fmt.Errorf("reprocess: reading results: %w", err)
			}
			if n == 0 {
				break
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
	}
	var items []Item
	for _, id := range order {
		res, ok := latest[id]
		if !ok {
			continue
		}
		where := pcfg.ResultStream + ":" + id
		if !isOriginal(res, why) {
			bad(BadInput{File: where, Err: "the result does not carry the original message; re-run it from an export"})
			continue
		}
		raw, err := pipeline.Load(ctx, js, res.Raw, res.RawRef)
		if err != nil {
			bad(BadInput{File: where, Err: err.Error()})
			continue
		}
		items = append(items, Item{ArticleID: id, TicketID: res.TicketID, Raw: raw, Where: where})
	}
	return items, nil
}

// isOriginal reports whether a failed result's message is the message as
// received: the failure was at the outermost layer.
func isOriginal(res *pipeline.Result, why string) bool {
	if res.Security == nil || (res.Raw == nil && res.RawRef == nil) || res.Direction != article.Inbound {
		return false
	}
	enc, sign := res.Security.Encryption, res.Security.Sign
	reasonIs := func(c result.Check) bool {
		return c.Status == result.StatusFailed && c.Reason != nil && string(*c.Reason) == why
	}
	switch {
	case reasonIs(enc):
		return true
	case reasonIs(sign):
		return enc.Status == result.StatusNone
	}
	return false
}

// isTimeout reports whether a fetch ended because nothing (more) came.
func isTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout)
}
