package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/demopki"
	"github.com/secmail/secmail/internal/syncbuf"
	"github.com/secmail/secmail/mailgen"
	"github.com/secmail/secmail/natsembed"
	"github.com/secmail/secmail/pipeline"
)

// TestWorkerProcessKilled: a `worker run` process is killed (SIGKILL: no
// graceful shutdown, no flush of acks) in the middle of a batch, and a
// new process finishes it: every article has exactly one result, and the
// right one. The NATS server lives in the test, as a cluster outlives a
// worker; the workers are this test binary run as `worker`.
func TestWorkerProcessKilled(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "worker") // testscript.Main runs a binary named so as the command
	if err := os.Symlink(exe, bin); err != nil {
		t.Fatal(err)
	}
	srv, err := natsembed.Start(natsembed.Options{Listen: "127.0.0.1:-1", DataDir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	keyFile := filepath.Join(dir, "master.key")
	if _, err := ensureLocalMasterKey(keyFile); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Streams, store and the organisation's keys, set up once as an
	// operator would; the workers only verify them. The consumers get a
	// short ack wait so the killed worker's articles come back quickly.
	world, err := mailgen.New(demopki.RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	setup := runFlags{natsURL: srv.URL(), masterKeyFile: keyFile, instance: "setup", backend: backendFlags{name: "go"},
		subjectPrefix: "article", lang: "en", replicas: 1, manageStreams: true, concurrency: 1, shutdownGrace: time.Second}
	s, err := start(ctx, &setup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	importOrgKeys(ctx, t, s, world)
	cfg := s.pipe.Config()
	s.close()
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	cfg.AckWait = 2 * time.Second
	if err := pipeline.Setup(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}

	const n = 300
	sample, err := world.Make(mailgen.KindSMIMESignedEncrypted, mailgen.Options{BodySize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		req := &article.Request{ArticleID: fmt.Sprintf("kill-%d", i), Raw: sample.Raw, Options: sample.Options}
		if _, err := pipeline.Submit(ctx, js, cfg, article.Inbound, req); err != nil {
			t.Fatal(err)
		}
	}
	results := make(chan pipeline.Result, 2*n)
	rc, err := js.OrderedConsumer(ctx, cfg.ResultStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := rc.Consume(func(m jetstream.Msg) {
		var r pipeline.Result
		if err := json.Unmarshal(m.Data(), &r); err != nil {
			t.Errorf("result: %v", err)
		}
		results <- r
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()

	worker := func(instance string) (*exec.Cmd, *syncbuf.Buffer) {
		var logs syncbuf.Buffer
		cmd := exec.CommandContext(ctx, bin, "run", "--nats", srv.URL(), "--master-key-file", keyFile,
			"--manage-streams=false", "--metrics-addr", "", "--instance", instance, "--concurrency", "1")
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &logs
	}
	seen := map[string]int{}
	take := func(r pipeline.Result) {
		seen[r.ArticleID]++
		if r.Status != pipeline.StatusDone || r.Security == nil {
			t.Errorf("%s: status %s, error %+v", r.ArticleID, r.Status, r.Error)
		} else if diff := sample.Expect.Check(*r.Security); diff != "" {
			t.Errorf("%s: %s", r.ArticleID, diff)
		}
	}
	wait := func(what string, until func() bool, logs *syncbuf.Buffer) {
		deadline := time.After(90 * time.Second)
		for !until() {
			select {
			case r := <-results:
				take(r)
			case <-deadline:
				t.Fatalf("%s: %d of %d articles have results; worker log:\n%s", what, len(seen), n, logs.String())
			}
		}
	}

	first, logs1 := worker("w1")
	wait("first worker", func() bool { return len(seen) >= 30 }, logs1)
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	if len(seen) >= n {
		t.Fatalf("the first worker finished all %d articles before it was killed: nothing was tested", n)
	}
	t.Logf("killed the first worker after %d results", len(seen))

	second, logs2 := worker("w2")
	defer func() {
		_ = second.Process.Signal(os.Interrupt)
		_ = second.Wait()
	}()
	wait("second worker", func() bool { return len(seen) == n }, logs2)
	// The killed worker's unacknowledged articles come back after the
	// ack wait; give any second result time to show before counting.
	settle := time.After(2*cfg.AckWait + time.Second)
	for done := false; !done; {
		select {
		case r := <-results:
			take(r)
		case <-settle:
			done = true
		}
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s has %d results", id, c)
		}
	}
	if left, err := js.Stream(ctx, cfg.InputStream); err != nil || left.CachedInfo().State.Msgs != 0 {
		t.Errorf("input stream not drained: %v %+v", err, left.CachedInfo().State)
	}
	// The kill left articles in flight, which the second worker got
	// again: the consumer delivered more often than there are articles.
	if c, err := js.Consumer(ctx, cfg.InputStream, cfg.InboundDurable); err != nil {
		t.Error(err)
	} else if d := c.CachedInfo().Delivered.Consumer; d <= n {
		t.Errorf("%d deliveries for %d articles: nothing was in flight at the kill", d, n)
	} else {
		t.Logf("%d deliveries for %d articles", d, n)
	}
}
