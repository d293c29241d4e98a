package pipeline

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/natsembed"
	"github.com/secmail/secmail/reason"
	"github.com/secmail/secmail/result"
)

// env is one embedded JetStream server per test.
type env struct {
	t   testing.TB
	srv *natsembed.Server
	cfg Config
}

func newEnv(t testing.TB, maxPayload int32) *env {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Options{Listen: "127.0.0.1:-1", DataDir: t.TempDir(), MaxPayload: maxPayload})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return &env{t: t, srv: srv, cfg: testConfig()}
}

func testConfig() Config {
	return Config{
		ManageStreams: true,
		Concurrency:   4,
		AckWait:       time.Second,
		MaxDeliver:    3,
		Backoff:       []time.Duration{20 * time.Millisecond},
		ShutdownGrace: 5 * time.Second,
		Version:       "test",
		Instance:      "test-1",
	}.Defaults()
}

func (e *env) connect() (*nats.Conn, jetstream.JetStream) {
	e.t.Helper()
	// In process, as `worker run` on the embedded default connects.
	nc, err := nats.Connect("", e.srv.InProcess(), nats.MaxReconnects(0))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		e.t.Fatal(err)
	}
	return nc, js
}

// setup creates the streams so tests can publish before a pipeline runs.
func (e *env) setup(js jetstream.JetStream) {
	e.t.Helper()
	if err := Setup(context.Background(), js, e.cfg); err != nil {
		e.t.Fatal(err)
	}
}

// running is a pipeline running in the background.
type running struct {
	p      *Pipeline
	cancel context.CancelFunc
	done   chan error
}

func (e *env) run(h article.Handler, cfg Config) *running {
	e.t.Helper()
	nc, js := e.connect()
	return e.runOn(nc, js, h, cfg)
}

func (e *env) runOn(nc *nats.Conn, js jetstream.JetStream, h article.Handler, cfg Config) *running {
	e.t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	p, err := New(js, nc, h, cfg, nil, log)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	e.t.Cleanup(func() { r.stop() })
	return r
}

// stop cancels and waits for Run's error.
func (r *running) stop() error {
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // keep it for a second stop
		return err
	case <-time.After(20 * time.Second):
		return errors.New("Run did not return within 20s")
	}
}

// testHandler is a small real handler. Markers in the body choose the
// behaviour; otherwise it upper-cases the body.
type testHandler struct {
	mu      sync.Mutex
	calls   map[string]int
	flaky   int           // FLAKY articles fail transiently this many times
	delay   time.Duration // per article
	started chan string   // SLOW articles announce themselves here
	release chan struct{} // and wait for this
}

func newTestHandler() *testHandler {
	return &testHandler{calls: map[string]int{}, flaky: 2, started: make(chan string, 100), release: make(chan struct{})}
}

func (h *testHandler) count(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[id]
}

func (h *testHandler) Handle(ctx context.Context, dir article.Direction, req *article.Request) (*article.Outcome, error) {
	h.mu.Lock()
	h.calls[req.ArticleID]++
	n := h.calls[req.ArticleID]
	h.mu.Unlock()
	body := string(req.Raw)
	if h.delay > 0 {
		time.Sleep(h.delay)
	}
	switch {
	case strings.Contains(body, "PANIC"):
		panic("test handler: " + req.ArticleID)
	case strings.Contains(body, "POISON"):
		return nil, fmt.Errorf("%w: store time-out", article.ErrTransient)
	case strings.Contains(body, "FLAKY") && n <= h.flaky:
		return nil, fmt.Errorf("%w: redis time-out", article.ErrTransient)
	case strings.Contains(body, "BROKEN"):
		return nil, reason.New(reason.Malformed, "cms: truncated")
	case strings.Contains(body, "SLOW"):
		h.started <- req.ArticleID
		select {
		case <-h.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	sec := result.None()
	if strings.Contains(body, "SIGNED") {
		sec.SetType(result.SMIME)
		sec.Sign = result.OK("The signature of alice@example.org was verified.")
	}
	if strings.Contains(body, "BADSIG") {
		sec.SetType(result.PGP)
		sec.Sign = result.Failed(reason.EN, reason.BadSignature)
	}
	out := &article.Outcome{Security: sec, Raw: bytes.ToUpper(req.Raw)}
	if dir == article.Outbound {
		out.Recipients = []article.Recipient{{Address: "bob@example.org", Status: "found"}}
		if strings.Contains(body, "BCC") {
			out.Recipients = append(out.Recipients, article.Recipient{Address: "carol@example.org", Status: "found", Bcc: true})
			out.Copies = []article.Copy{{Recipients: []string{"carol@example.org"}, Raw: bytes.ToLower(req.Raw)}}
		}
	}
	return out, nil
}

// publishPlain publishes n plain inbound articles with ids prefix0, prefix1, ...
func (e *env) publishPlain(t testing.TB, js jetstream.JetStream, prefix string, n int) {
	t.Helper()
	for i := range n {
		id := prefix + strconv.Itoa(i)
		publish(t, js, e.cfg.InputSubject(article.Inbound), articleJSON(t, id, mail(id, "plain")))
	}
}

// mail returns a small RFC 5322 message containing marker.
func mail(id, marker string) []byte {
	return []byte("From: alice@example.org\r\nTo: support@example.com\r\nSubject: article " + id +
		"\r\nMessage-ID: <" + id + "@example.org>\r\n\r\nhello " + marker + "\r\n")
}

// articleJSON encodes a valid input article.
func articleJSON(t testing.TB, id string, raw []byte) []byte {
	t.Helper()
	s := base64.StdEncoding.EncodeToString(raw)
	b, err := json.Marshal(Article{Schema: SchemaArticleV1, ArticleID: id, TicketID: "T-" + id, Group: "Support", Raw: &s})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func publish(t testing.TB, js jetstream.JetStream, subject string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, subject, data); err != nil {
		t.Fatal(err)
	}
}

// collected is one message read back from a stream.
type collected struct {
	subject string
	header  nats.Header
	data    []byte
}

// collect reads want messages from stream (from the start) or fails
// after timeout; then it checks the stream holds exactly want messages.
func collect(t *testing.T, js jetstream.JetStream, stream string, want int, timeout time.Duration) []collected {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []collected
	for len(out) < want {
		m, err := c.Next(jetstream.FetchMaxWait(200 * time.Millisecond))
		if ctx.Err() != nil {
			t.Fatalf("stream %s: got %d of %d messages within %s", stream, len(out), want, timeout)
		}
		if err != nil {
			continue
		}
		out = append(out, collected{subject: m.Subject(), header: m.Headers(), data: m.Data()})
	}
	return out
}

// streamMsgs is the number of messages in stream now.
func streamMsgs(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// waitFor polls cond until it holds or fails after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// results decodes and schema-validates results, keyed by article id.
func results(t *testing.T, msgs []collected) map[string]*Result {
	t.Helper()
	out := map[string]*Result{}
	for _, m := range msgs {
		validate(t, "result.v1.schema.json", m.data)
		var r Result
		if err := json.Unmarshal(m.data, &r); err != nil {
			t.Fatal(err)
		}
		if want := "article." + string(r.Direction) + ".result"; m.subject != want {
			t.Errorf("result for %q on %s, want %s", r.ArticleID, m.subject, want)
		}
		if m.header.Get(HeaderArticleID) != r.ArticleID || m.header.Get(HeaderStatus) != r.Status {
			t.Errorf("result headers %v do not match the body", m.header)
		}
		key := string(r.Direction) + "/" + r.ArticleID
		if _, dup := out[key]; dup {
			t.Errorf("two results for %s", key)
		}
		out[key] = &r
	}
	return out
}

var (
	schemaOnce sync.Once
	schemas    map[string]*jsonschema.Schema
	schemaErr  error
)

const schemaBase = "https://secmail.example/schemas/"

// validate checks doc against the named schema from ../schemas.
func validate(t testing.TB, name string, doc []byte) {
	t.Helper()
	schemaOnce.Do(func() {
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		c.AssertContent()
		files, err := filepath.Glob("../schemas/*.json")
		if err != nil || len(files) == 0 {
			schemaErr = fmt.Errorf("no schemas: %v", err)
			return
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				schemaErr = err
				return
			}
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				schemaErr = fmt.Errorf("%s: %w", f, err)
				return
			}
			if err := c.AddResource(schemaBase+filepath.Base(f), v); err != nil {
				schemaErr = err
				return
			}
		}
		schemas = map[string]*jsonschema.Schema{}
		for _, n := range []string{"article.v1.schema.json", "result.v1.schema.json"} {
			s, err := c.Compile(schemaBase + n)
			if err != nil {
				schemaErr = fmt.Errorf("compile %s: %w", n, err)
				return
			}
			schemas[n] = s
		}
	})
	if schemaErr != nil {
		t.Fatal(schemaErr)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := schemas[name].Validate(v); err != nil {
		t.Errorf("%s does not validate: %v\n%s", name, err, doc)
	}
}
