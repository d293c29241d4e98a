package reprocess

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/demopki"
	"github.com/secmail/secmail/handlers"
	"github.com/secmail/secmail/keyring"
	"github.com/secmail/secmail/mailgen"
	"github.com/secmail/secmail/natsembed"
	"github.com/secmail/secmail/pipeline"
)

var (
	worldOnce sync.Once
	world     *mailgen.World
	worldErr  error
)

// testWorld is shared: key generation is the slow part.
func testWorld(t *testing.T) *mailgen.World {
	t.Helper()
	worldOnce.Do(func() { world, worldErr = mailgen.New(demopki.P256) })
	if worldErr != nil {
		t.Fatal(worldErr)
	}
	return world
}

// helpdeskHandler is the real article handler over the helpdesk's keys;
// without names the files are left out (a key not imported yet).
func helpdeskHandler(t *testing.T, w *mailgen.World, without ...string) article.Handler {
	t.Helper()
	var bundles []*keyring.Bundle
	for name, data := range w.OrgFiles {
		skip := false
		for _, n := range without {
			skip = skip || n == name
		}
		if skip {
			continue
		}
		b, err := keyring.Parse(name, data, keyring.Options{})
		if err != nil {
			t.Fatal(err)
		}
		bundles = append(bundles, b)
	}
	keyring.Match(bundles...)
	kr := keyring.New()
	for _, b := range bundles {
		kr.Add(b)
	}
	return handlers.New(kr, handlers.DefaultConfig())
}

// env is an embedded server with the pipeline's streams.
type env struct {
	t    *testing.T
	url  string
	js   jetstream.JetStream
	pcfg pipeline.Config
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Options{Listen: "127.0.0.1:-1", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	e := &env{t: t, url: srv.URL(), pcfg: pipeline.Config{
		ManageStreams: true, Concurrency: 2, AckWait: 2 * time.Second, MaxDeliver: 3,
		Backoff: []time.Duration{20 * time.Millisecond}, ShutdownGrace: 2 * time.Second,
		DuplicateWindow: time.Second, Version: "test", Instance: "test",
	}.Defaults()}
	_, e.js = e.connect()
	if err := pipeline.Setup(context.Background(), e.js, e.pcfg); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) connect() (*nats.Conn, jetstream.JetStream) {
	e.t.Helper()
	nc, err := nats.Connect(e.url)
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

// runPipeline runs a worker until the returned stop is called.
func (e *env) runPipeline(h article.Handler) (stop func()) {
	e.t.Helper()
	nc, js := e.connect()
	p, err := pipeline.New(js, nc, h, e.pcfg, nil, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("pipeline: %v", err)
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

func (e *env) config(dir string) Config {
	return Config{
		Pipeline: e.pcfg, Checkpoint: filepath.Join(dir, "checkpoint"), Results: filepath.Join(dir, "results.jsonl"),
		MaxOutstanding: 4, Timeout: 30 * time.Second,
	}
}

// samples makes n inbound articles of a mix of kinds, with their names.
func samples(t *testing.T, w *mailgen.World, n int) []mailgen.Sample {
	t.Helper()
	kinds := []string{mailgen.KindSMIMESignedEncrypted, mailgen.KindSMIMESigned, mailgen.KindPGPSignedEncrypted,
		mailgen.KindPlain, mailgen.KindSMIMEUnknownKey, mailgen.KindSMIMETampered}
	var out []mailgen.Sample
	for i := range n {
		s, err := w.Make(kinds[i%len(kinds)], mailgen.Options{BodySize: 512, Seq: i})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// readResults returns the results file by article id, failing on a
// repeated id.
func readResults(t *testing.T, path string) map[string]pipeline.Result {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string]pipeline.Result{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r pipeline.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("results line: %v", err)
		}
		if _, dup := got[r.ArticleID]; dup {
			t.Errorf("result for %s written twice", r.ArticleID)
		}
		got[r.ArticleID] = r
	}
	return got
}

// checkOutcomes compares every result with its sample's expectation.
func checkOutcomes(t *testing.T, got map[string]pipeline.Result, want map[string]mailgen.Sample) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d results, want %d", len(got), len(want))
	}
	for id, s := range want {
		r, ok := got[id]
		switch {
		case !ok:
			t.Errorf("%s: no result", id)
		case r.Security == nil:
			t.Errorf("%s: error result %+v", id, r.Error)
		default:
			if diff := s.Expect.Check(*r.Security); diff != "" {
				t.Errorf("%s (%s): %s", id, s.Name, diff)
			}
		}
	}
}

func TestDirectory(t *testing.T) {
	w := testWorld(t)
	e := newEnv(t)
	e.runPipeline(helpdeskHandler(t, w))
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[string]mailgen.Sample{}
	for i, s := range samples(t, w, 12) {
		id := fmt.Sprintf("art-%03d", i)
		want[id] = s
		if err := os.WriteFile(filepath.Join(in, id+".eml"), s.Raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Bad input: an empty file and an unreadable one (a dangling link).
	if err := os.WriteFile(filepath.Join(in, "empty.eml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "gone"), filepath.Join(in, "dangling.eml")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(in, "notes.txt"), []byte("not mail"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := RunCLI(context.Background(), []string{"--nats", e.url, "--dir", in, "--no-progress", "--max-outstanding", "3",
		"--rate", "500/s", "--checkpoint", filepath.Join(dir, "ck"), "--results", filepath.Join(dir, "results.jsonl")}, &stdout, &stderr)
	if code != ExitSkipped {
		t.Errorf("exit code %d, want %d (bad input skipped)\nstdout: %s\nstderr: %s", code, ExitSkipped, &stdout, &stderr)
	}
	for _, name := range []string{"empty.eml: empty message", "dangling.eml"} {
		if !strings.Contains(stderr.String(), name) {
			t.Errorf("stderr does not report %q:\n%s", name, &stderr)
		}
	}
	checkOutcomes(t, readResults(t, filepath.Join(dir, "results.jsonl")), want)

	// A second run finds everything in the checkpoint.
	stdout.Reset()
	stderr.Reset()
	code = RunCLI(context.Background(), []string{"--nats", e.url, "--dir", in, "--no-progress",
		"--checkpoint", filepath.Join(dir, "ck"), "--results", filepath.Join(dir, "results.jsonl")}, &stdout, &stderr)
	if code != ExitSkipped || !strings.Contains(stdout.String(), "published: 0") || !strings.Contains(stdout.String(), "skipped (checkpoint): 12") {
		t.Errorf("re-run: exit %d\n%s%s", code, &stdout, &stderr)
	}
	checkOutcomes(t, readResults(t, filepath.Join(dir, "results.jsonl")), want)
}

// mboxrd writes messages as an mboxrd file.
func mboxrd(msgs [][]byte) []byte {
	var b bytes.Buffer
	for _, m := range msgs {
		b.WriteString("From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n")
		for _, line := range bytes.SplitAfter(m, []byte("\n")) {
			if isEscapedFrom(line) || bytes.HasPrefix(line, []byte("From ")) {
				b.WriteByte('>')
			}
			b.Write(line)
		}
		if !bytes.HasSuffix(m, []byte("\n")) {
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func TestMboxInterruptedAndResumed(t *testing.T) {
	w := testWorld(t)
	e := newEnv(t)
	dir := t.TempDir()

	const n = 24
	want := map[string]mailgen.Sample{}
	var msgs [][]byte
	for _, s := range samples(t, w, n) {
		want[hashID("mbox-", s.Raw)] = s
		msgs = append(msgs, s.Raw)
	}
	// A plain message with lines that mboxrd must quote.
	quoted := mailgen.Message(mailgen.Carol, mailgen.Support, "quoting", mailgen.Options{})
	quoted = append(quoted, []byte("From the desk of Carol\r\n>From quoted\r\n")...)
	plain, err := w.Make(mailgen.KindPlain, mailgen.Options{})
	if err != nil {
		t.Fatal(err)
	}
	plain.Raw = quoted
	want[hashID("mbox-", quoted)] = plain
	msgs = append(msgs, quoted)
	box := append([]byte("this line is not an mbox separator\n"), mboxrd(msgs)...)
	box = append(box, "From someone\n\n"...) // an empty message at the end
	path := filepath.Join(dir, "box.mbox")
	if err := os.WriteFile(path, box, 0o644); err != nil {
		t.Fatal(err)
	}

	// The first run is interrupted once the workers have handled 8
	// articles; the workers keep going without it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var handled atomic.Int32
	h := helpdeskHandler(t, w)
	e.runPipeline(handlerFunc(func(hctx context.Context, dir article.Direction, req *article.Request) (*article.Outcome, error) {
		if handled.Add(1) == 8 {
			cancel()
		}
		return h.Handle(hctx, dir, req)
	}))
	cfg := e.config(dir)
	cfg.Mbox = path
	var bad []BadInput
	var badMu sync.Mutex
	cfg.BadInput = func(b BadInput) { badMu.Lock(); bad = append(bad, b); badMu.Unlock() }
	sum, err := Run(ctx, e.js, cfg)
	if !errors.Is(err, ErrInterrupted) || !sum.Interrupted {
		t.Fatalf("first run: err %v, summary %+v; want interrupted", err, sum)
	}
	if sum.Completed >= n+1 || sum.Total != n+1 {
		t.Fatalf("first run completed %d of %d: not interrupted mid-run", sum.Completed, sum.Total)
	}
	first := sum.Completed
	ck, err := os.ReadFile(cfg.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(ck), "\n"); got != first {
		t.Errorf("checkpoint has %d ids, want %d", got, first)
	}

	// The second run resumes.
	sum, err = Run(context.Background(), e.js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.AlreadyDone != first || sum.Completed != n+1-first || sum.TimedOut != 0 {
		t.Errorf("resumed run: %+v, want %d already done and %d completed", sum, first, n+1-first)
	}
	got := readResults(t, cfg.Results)
	checkOutcomes(t, got, want)
	if r, ok := got[hashID("mbox-", quoted)]; ok && !bytes.Contains(r.Raw, []byte("\r\nFrom the desk of Carol\r\n>From quoted\r\n")) {
		t.Errorf("mboxrd quoting not undone:\n%s", r.Raw)
	}
	// Bad input: text before the first separator and the empty message,
	// reported with their lines (the interrupted run may not have reached
	// the second).
	badMu.Lock()
	defer badMu.Unlock()
	lines := strings.Count(string(box), "\n")
	wantBad := map[string]bool{path + ":1": true, fmt.Sprintf("%s:%d", path, lines-1): true}
	seen := map[string]bool{}
	for _, b := range bad {
		at := fmt.Sprintf("%s:%d", b.File, b.Line)
		if !wantBad[at] {
			t.Errorf("unexpected bad input %s", b)
		}
		seen[at] = true
	}
	if len(seen) != len(wantBad) || len(bad) > 2*len(wantBad) {
		t.Errorf("bad input %v, want %v", bad, wantBad)
	}
}

type handlerFunc func(context.Context, article.Direction, *article.Request) (*article.Outcome, error)

func (f handlerFunc) Handle(ctx context.Context, dir article.Direction, req *article.Request) (*article.Outcome, error) {
	return f(ctx, dir, req)
}

func TestJSONLBadLines(t *testing.T) {
	w := testWorld(t)
	e := newEnv(t)
	e.runPipeline(helpdeskHandler(t, w))
	dir := t.TempDir()
	var b bytes.Buffer
	want := map[string]mailgen.Sample{}
	for i, s := range samples(t, w, 5) {
		id := fmt.Sprintf("%d", 100+i)
		want[id] = s
		line, _ := json.Marshal(map[string]string{"article_id": id, "ticket_id": "T-1", "group": "support", "raw": base64.StdEncoding.EncodeToString(s.Raw)})
		b.Write(line)
		b.WriteByte('\n')
		if i == 1 {
			b.WriteString("{not json\n")           // line 3
			b.WriteString(`{"raw":"AAAA"}` + "\n") // line 4: no id
			b.WriteString("\n")                    // blank lines are fine
			b.WriteString(`{"article_id":"x","raw":"%%%"}` + "\n")
		}
	}
	path := filepath.Join(dir, "export.jsonl")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := RunCLI(context.Background(), []string{"--nats", e.url, "--jsonl", path, "--no-progress",
		"--results", filepath.Join(dir, "r.jsonl")}, &stdout, &stderr)
	if code != ExitSkipped {
		t.Errorf("exit %d, want %d\n%s%s", code, ExitSkipped, &stdout, &stderr)
	}
	for _, where := range []string{path + ":3:", path + ":4:", path + ":6:"} {
		if !strings.Contains(stderr.String(), where) {
			t.Errorf("stderr does not name %s:\n%s", where, &stderr)
		}
	}
	if !strings.Contains(stdout.String(), "bad input: 3") {
		t.Errorf("summary: %s", &stdout)
	}
	got := readResults(t, filepath.Join(dir, "r.jsonl"))
	checkOutcomes(t, got, want)
	for id, r := range got {
		if r.TicketID != "T-1" {
			t.Errorf("%s: ticket %q", id, r.TicketID)
		}
	}
}

// TestOnlyFailedWith: mail for a key the helpdesk has not imported fails
// with no-private-key; after the import, only those are re-run.
func TestOnlyFailedWith(t *testing.T) {
	w := testWorld(t)
	e := newEnv(t)
	stop := e.runPipeline(helpdeskHandler(t, w, "support.pem"))
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	encrypted := map[string]bool{}
	for i, s := range samples(t, w, 6) {
		id := fmt.Sprintf("a%d", i)
		if s.Name == mailgen.KindSMIMESignedEncrypted {
			encrypted[id] = true
		}
		if err := os.WriteFile(filepath.Join(in, id+".eml"), s.Raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := e.config(dir)
	cfg.Dir = in
	sum, err := Run(context.Background(), e.js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Signed+encrypted S/MIME for the helpdesk and the one for Carol.
	if sum.Failures["no-private-key"] != 2 {
		t.Fatalf("first run: %+v", sum)
	}
	stop()
	e.runPipeline(helpdeskHandler(t, w))
	// Right away, inside the duplicate window: the retry's attempt id
	// makes it new input, so it gets a new result, not the stored one.

	cfg = e.config(t.TempDir())
	cfg.OnlyFailedWith = "no-private-key"
	sum, err = Run(context.Background(), e.js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Total != 2 || sum.Published != 2 || sum.OK != 1 || sum.Failures["no-private-key"] != 1 {
		t.Errorf("re-run: %+v", sum)
	}
	got := readResults(t, cfg.Results)
	for id := range encrypted {
		if r := got[id]; r.Security == nil || r.Security.Encryption.Status != "ok" {
			t.Errorf("%s after the import: %+v", id, r.Security)
		}
		if r := got[id]; !strings.HasPrefix(r.Attempt, "retry-") {
			t.Errorf("%s: attempt %q not echoed", id, r.Attempt)
		}
	}

	// A reason nothing failed with selects nothing.
	cfg = e.config(t.TempDir())
	cfg.OnlyFailedWith = "unsupported-algorithm"
	if sum, err = Run(context.Background(), e.js, cfg); err != nil || sum.Total != 0 || sum.Published != 0 {
		t.Errorf("nothing to re-run: %+v, %v", sum, err)
	}
}
