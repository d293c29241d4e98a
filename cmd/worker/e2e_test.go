package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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
	"github.com/secmail/secmail/store"
	"github.com/secmail/secmail/store/storetest"
)

// TestEndToEnd runs two complete workers (handlers, KV store, Redis and
// in-process cache, JetStream pipeline) against one NATS server and a real
// Redis, publishes a mixed batch, and checks that every article gets
// exactly one correct result, that both workers share the load, and that
// the workers keep answering correctly with Redis stopped.
func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	srv, err := natsembed.Start(natsembed.Options{Listen: "127.0.0.1:-1", DataDir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	rd := storetest.StartRedis(t)
	keyFile := filepath.Join(dir, "master.key")
	if _, err := ensureLocalMasterKey(keyFile); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	var workers []*service
	done := make(chan int, 2)
	runCtx, stopWorkers := context.WithCancel(ctx)
	for _, name := range []string{"w1", "w2"} {
		f := runFlags{natsURL: srv.URL(), redisURL: "redis://" + rd.Addr, masterKeyFile: keyFile, instance: name,
			backend: backendFlags{name: "go"}, subjectPrefix: "article", lang: "en", replicas: 1, manageStreams: true, concurrency: 2,
			shutdownGrace: 5 * time.Second}
		s, err := start(ctx, &f, log)
		if err != nil {
			t.Fatal(err)
		}
		defer s.close()
		workers = append(workers, s)
		go func() { done <- s.serve(runCtx, "") }()
	}
	// Start-up sets the worker's garbage collector and says so.
	if want := `msg="garbage collector" gogc=400 gogc_default=true`; os.Getenv("GOGC") == "" && !strings.Contains(logs.String(), want) {
		t.Errorf("start-up log lacks %q:\n%s", want, logs.String())
	}

	world, err := mailgen.New(demopki.RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	importOrgKeys(ctx, t, workers[0], world)

	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	cfg := workers[0].pipe.Config()
	results, err := js.OrderedConsumer(ctx, cfg.ResultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{cfg.ResultSubject(article.Inbound), cfg.ResultSubject(article.Outbound)},
	})
	if err != nil {
		t.Fatal(err)
	}

	expect := map[string]mailgen.Sample{}
	publish := func(round int) {
		for i, kind := range mailgen.Kinds {
			s, err := world.Make(kind, mailgen.Options{BodySize: 4096, Seq: round*100 + i})
			if err != nil {
				t.Fatal(err)
			}
			id := fmt.Sprintf("e2e-%d-%d", round, i)
			expect[id] = s
			req := &article.Request{ArticleID: id, TicketID: "T1", Raw: s.Raw, Options: s.Options}
			if _, err := pipeline.Submit(ctx, js, cfg, s.Direction, req); err != nil {
				t.Fatal(err)
			}
		}
	}
	seen := map[string]int{}
	byWorker := map[string]int{}
	collect := func() {
		deadline := time.Now().Add(90 * time.Second)
		for len(seen) < len(expect) {
			if time.Now().After(deadline) {
				t.Fatalf("only %d of %d results", len(seen), len(expect))
			}
			msg, err := results.Next(jetstream.FetchMaxWait(time.Second))
			if err != nil {
				continue
			}
			var r pipeline.Result
			if err := json.Unmarshal(msg.Data(), &r); err != nil {
				t.Fatal(err)
			}
			seen[r.ArticleID]++
			byWorker[r.Worker.Instance]++
			s, ok := expect[r.ArticleID]
			if !ok {
				t.Errorf("result for unknown article %s", r.ArticleID)
				continue
			}
			if r.Status != "done" || r.Security == nil {
				t.Errorf("%s (%s): status %s error %+v", r.ArticleID, s.Name, r.Status, r.Error)
				continue
			}
			if diff := s.Expect.Check(*r.Security); diff != "" {
				t.Errorf("%s (%s): %s", r.ArticleID, s.Name, diff)
			}
		}
	}

	for round := 0; round < 3; round++ {
		publish(round)
	}
	collect()

	// Redis goes away: look-ups fall back to the KV store.
	rd.Stop()
	publish(3)
	collect()

	// Exactly one result each, even after everything settled.
	time.Sleep(500 * time.Millisecond)
	for {
		msg, err := results.Next(jetstream.FetchMaxWait(300 * time.Millisecond))
		if err != nil {
			break
		}
		var r pipeline.Result
		_ = json.Unmarshal(msg.Data(), &r)
		seen[r.ArticleID]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s has %d results", id, n)
		}
	}
	if byWorker["w1"] == 0 || byWorker["w2"] == 0 {
		t.Errorf("load not shared: %v", byWorker)
	}

	// Graceful shutdown: both workers exit cleanly.
	stopWorkers()
	for range workers {
		if code := <-done; code != 0 {
			t.Errorf("worker exited %d", code)
		}
	}
	_ = os.Remove(keyFile)
}

// importOrgKeys puts the world's organisation certificates and keys into
// the worker's store.
func importOrgKeys(ctx context.Context, t *testing.T, s *service, world *mailgen.World) {
	t.Helper()
	var inputs []store.Input
	for name, data := range world.OrgFiles {
		inputs = append(inputs, store.Input{Name: name, Data: data})
	}
	if rep, err := s.store.Import(ctx, inputs, store.ImportOptions{}); err != nil || rep.Failed() {
		t.Fatalf("import: %v %+v", err, rep)
	}
}
