package pipeline

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/demopki"
	"github.com/secmail/secmail/handlers"
	"github.com/secmail/secmail/internal/cputime"
	"github.com/secmail/secmail/internal/gctune"
	"github.com/secmail/secmail/mailgen"
)

// benchArticle is what the target is stated for: a 4 KiB
// signed-then-encrypted RSA-2048 S/MIME article through the real inbound
// handler (MIME, CMS, RSA decryption, chain validation, verification).
type benchArticle struct {
	h   article.Handler
	raw []byte
}

var (
	benchOnce sync.Once
	bench     *benchArticle
	benchErr  error
)

func newBenchArticle(tb testing.TB) *benchArticle {
	tb.Helper()
	benchOnce.Do(func() {
		w, err := mailgen.New(demopki.RSA2048)
		if err != nil {
			benchErr = err
			return
		}
		kr, err := w.OrgKeyring()
		if err != nil {
			benchErr = err
			return
		}
		s, err := w.Make(mailgen.KindSMIMESignedEncrypted, mailgen.Options{BodySize: 4096})
		if err != nil {
			benchErr = err
			return
		}
		h := handlers.New(kr, handlers.DefaultConfig())
		out, err := h.Handle(context.Background(), article.Inbound, &article.Request{ArticleID: "check", Raw: s.Raw})
		if err != nil {
			benchErr = err
			return
		}
		if msg := s.Expect.Check(out.Security); msg != "" {
			benchErr = fmt.Errorf("benchmark article: %s", msg)
			return
		}
		bench = &benchArticle{h: h, raw: s.Raw}
	})
	if benchErr != nil {
		tb.Fatal(benchErr)
	}
	return bench
}

// BenchmarkHandlerOnly is the ceiling: the handler alone on GOMAXPROCS
// goroutines, no NATS.
func BenchmarkHandlerOnly(b *testing.B) {
	ba := newBenchArticle(b)
	h, req := ba.h, &article.Request{ArticleID: "x", Raw: ba.raw}
	b.SetParallelism(1)
	start, cpu0 := time.Now(), cputime.Process()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.Handle(context.Background(), article.Inbound, req); err != nil {
				b.Error(err)
			}
		}
	})
	elapsed, cpu := time.Since(start), cputime.Process()-cpu0
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "articles/s")
	b.ReportMetric(cpu.Seconds()/elapsed.Seconds(), "cpu-cores")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/article")
}

// BenchmarkPipeline pushes articles through the whole pipeline on embedded
// JetStream. "saturated" alternates rounds of the handler alone (on
// GOMAXPROCS goroutines, no NATS) with rounds of the pipeline draining the
// same number of queued articles, so both see the same machine — these
// shared machines change speed from one second to the next — and reports
// the pipeline's throughput and CPU per article as a ratio of the
// handler's (SECMAIL_BENCH_ROUNDS=1 logs every round). "half-rate" publishes at half the pipeline's maximum rate,
// measured first in the same run (or SECMAIL_BENCH_RATE articles/s), and
// reports publish-to-result latency. The in-process server competes with
// the handler for the same cores. GOGC=100 go test ... measures the
// runtime's default collector instead of the worker's.
func BenchmarkPipeline(b *testing.B) {
	ba := newBenchArticle(b)
	h := ba.h
	// The garbage collector as `worker run` sets it (GOGC=400 unless the
	// environment sets GOGC), for the handler's rounds as for the
	// pipeline's: the figures are the worker's.
	_, restore := gctune.Apply(os.Getenv, nil)
	defer restore()
	b.Run("saturated", func(b *testing.B) {
		e, js := benchEnv(b)
		q := newRounds(b, e, js, "b", ba.raw)
		// One pipeline runs throughout, as in production; rounds time it
		// at work, not the start of a worker.
		r := e.run(h, e.cfg)
		defer r.stop()
		const round = 400
		var (
			pipeWall, handWall time.Duration
			pipeCPU, handCPU   time.Duration
			ratios             []float64
			done               int
			pipeAlloc          uint64
			handAlloc          uint64
		)
		b.ResetTimer()
		for done < b.N {
			n := min(round, b.N-done)
			// Each timed round starts on a collected heap, so it pays for
			// its own garbage only, not for the other round's or for the
			// queued articles' encoding.
			runtime.GC()
			a0 := allocated()
			hw, hc := handlerRound(ba, n)
			handAlloc += allocated() - a0
			b.StopTimer()
			q.queue(n)
			runtime.GC()
			b.StartTimer()
			a0 = allocated()
			pw, pc := q.drain(hw)
			pipeAlloc += allocated() - a0
			pipeWall, handWall, pipeCPU, handCPU = pipeWall+pw, handWall+hw, pipeCPU+pc, handCPU+hc
			ratios = append(ratios, float64(hw)/float64(pw))
			if os.Getenv("SECMAIL_BENCH_ROUNDS") != "" {
				b.Logf("round %d: ratio %.3f, cpu/article pipeline %v handler %v", done/round, float64(hw)/float64(pw), pc/time.Duration(n), hc/time.Duration(n))
			}
			done += n
		}
		b.StopTimer()
		if info, err := js.Stream(context.Background(), e.cfg.ResultStream); err != nil || info.CachedInfo().State.Msgs != uint64(b.N) {
			b.Fatalf("results stream: %v %+v", err, info.CachedInfo().State)
		}
		slices.Sort(ratios)
		b.ReportMetric(float64(b.N)/pipeWall.Seconds(), "articles/s")
		b.ReportMetric(float64(b.N)/handWall.Seconds(), "handler-articles/s")
		b.ReportMetric(float64(handWall)/float64(pipeWall), "throughput-ratio")
		b.ReportMetric(ratios[len(ratios)/2], "median-round-ratio")
		b.ReportMetric(float64(pipeAlloc)/1024/float64(b.N), "alloc-KiB/article")
		b.ReportMetric(float64(handAlloc)/1024/float64(b.N), "handler-alloc-KiB/article")
		b.ReportMetric(float64(pipeCPU.Microseconds())/float64(b.N), "cpu-µs/article")
		b.ReportMetric(float64(handCPU.Microseconds())/float64(b.N), "handler-cpu-µs/article")
	})
	b.Run("half-rate", func(b *testing.B) {
		e, js := benchEnv(b)
		results := resultIDs(b, js, e.cfg)
		// The maximum rate is the pipeline's own, measured here: a burst
		// of queued articles drained by the running pipeline.
		const burst, skip = 600, 100
		for i := range burst {
			if _, err := js.PublishAsync(e.cfg.InputSubject(article.Inbound), articleJSON(b, "w"+strconv.Itoa(i), ba.raw)); err != nil {
				b.Fatal(err)
			}
		}
		<-js.PublishAsyncComplete()
		r := e.run(h, e.cfg)
		waitResults(b, results, skip) // start-up and first pulls
		start := time.Now()
		waitResults(b, results, burst-skip)
		maxRate := float64(burst-skip) / time.Since(start).Seconds()
		rate := maxRate / 2
		if r, err := strconv.ParseFloat(os.Getenv("SECMAIL_BENCH_RATE"), 64); err == nil && r > 0 {
			rate = r // a fixed rate compares runs on a noisy machine
		}
		interval := time.Duration(float64(time.Second) / rate)
		var mu sync.Mutex
		sent := make(map[string]time.Time, b.N)
		lat := make([]time.Duration, 0, b.N)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range b.N {
				select {
				case id := <-results:
					mu.Lock()
					lat = append(lat, time.Since(sent[id]))
					mu.Unlock()
				case <-time.After(30 * time.Second):
					return
				}
			}
		}()
		b.ResetTimer()
		start = time.Now()
		next := start
		for i := range b.N {
			id := "h" + strconv.Itoa(i)
			data := articleJSON(b, id, ba.raw)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			next = next.Add(interval)
			mu.Lock()
			sent[id] = time.Now()
			mu.Unlock()
			if _, err := js.PublishAsync(e.cfg.InputSubject(article.Inbound), data); err != nil {
				b.Fatal(err)
			}
		}
		<-done
		elapsed := time.Since(start)
		b.StopTimer()
		_ = r.stop()
		if len(lat) != b.N {
			b.Fatalf("%d of %d results", len(lat), b.N)
		}
		slices.Sort(lat)
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "articles/s")
		b.ReportMetric(rate, "offered/s")
		b.ReportMetric(maxRate, "max/s")
		b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
		b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	})
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// handlerRound handles n articles on GOMAXPROCS goroutines and returns the
// wall and CPU time it took.
func handlerRound(ba *benchArticle, n int) (wall, cpu time.Duration) {
	var next atomic.Int64
	start, cpu0 := time.Now(), cputime.Process()
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				req := &article.Request{ArticleID: "x", Raw: ba.raw}
				if _, err := ba.h.Handle(context.Background(), article.Inbound, req); err != nil {
					panic(err)
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), cputime.Process() - cpu0
}

// allocated is the process's heap allocation so far, in bytes.
func allocated() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// waitResults takes n results off the channel.
func waitResults(b *testing.B, results <-chan string, n int) {
	for range n {
		select {
		case <-results:
		case <-time.After(time.Minute):
			b.Fatal("results stopped arriving")
		}
	}
}

// benchEnv starts a server with the pipeline's streams.
func benchEnv(b *testing.B) (*env, jetstream.JetStream) {
	e := newEnv(b, 0)
	e.cfg.AckWait = 30 * time.Second
	e.cfg.Concurrency = runtime.GOMAXPROCS(0)
	e.cfg.Prefetch = benchPrefetch(e.cfg.Concurrency)
	_, js := e.connect()
	e.setup(js)
	return e, js
}

// resultIDs returns a channel that receives the article id of every
// result, read with a headers-only consumer (a helpdesk reads result
// bodies in its own process).
func resultIDs(b *testing.B, js jetstream.JetStream, cfg Config) <-chan string {
	results := make(chan string, 1<<16)
	cons, err := js.OrderedConsumer(context.Background(), cfg.ResultStream, jetstream.OrderedConsumerConfig{HeadersOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { results <- m.Headers().Get(HeaderArticleID) })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cc.Stop)
	return results
}

// rounds queues articles for a running pipeline while its inbound
// consumer is paused, then resumes it and times the draining: a round
// measures a pipeline at work, as it is in production, not the start-up
// of a worker.
type rounds struct {
	b      *testing.B
	js     jetstream.JetStream
	cfg    Config
	input  jetstream.Stream
	prefix string
	raw    []byte
	queued int // articles published so far
}

func newRounds(b *testing.B, e *env, js jetstream.JetStream, prefix string, raw []byte) *rounds {
	input, err := js.Stream(context.Background(), e.cfg.InputStream)
	if err != nil {
		b.Fatal(err)
	}
	return &rounds{b: b, js: js, cfg: e.cfg, input: input, prefix: prefix, raw: raw}
}

func (q *rounds) publish() jetstream.PubAckFuture {
	f, err := q.js.PublishAsync(q.cfg.InputSubject(article.Inbound), articleJSON(q.b, q.prefix+strconv.Itoa(q.queued), q.raw))
	if err != nil {
		q.b.Fatal(err)
	}
	q.queued++
	return f
}

// queue pauses the consumer and stores all but the last of n articles.
func (q *rounds) queue(n int) {
	ctx := context.Background()
	if _, err := q.js.PauseConsumer(ctx, q.cfg.InputStream, q.cfg.durable(article.Inbound), time.Now().Add(time.Hour)); err != nil {
		q.b.Fatal(err)
	}
	futures := make([]jetstream.PubAckFuture, 0, n-1)
	for range n - 1 {
		futures = append(futures, q.publish())
	}
	q.wait(futures...)
}

func (q *rounds) wait(futures ...jetstream.PubAckFuture) {
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			q.b.Fatal(err)
		}
	}
}

// drain resumes the consumer, publishes the round's last article — a
// resumed consumer waits for news before it serves the pull requests it
// holds, and a new article is what wakes it in production — and returns
// the wall and CPU time until every article is acknowledged (so its
// result is stored). expect, the handler's time for the round, is how
// long it sleeps before it starts looking.
func (q *rounds) drain(expect time.Duration) (wall, cpu time.Duration) {
	start, cpu0 := time.Now(), cputime.Process()
	if _, err := q.js.ResumeConsumer(context.Background(), q.cfg.InputStream, q.cfg.durable(article.Inbound)); err != nil {
		q.b.Fatal(err)
	}
	q.wait(q.publish())
	time.Sleep(expect * 3 / 4)
	waitDrained(q.b, q.input)
	return time.Since(start), cputime.Process() - cpu0
}

// waitDrained waits until the work-queue input stream is empty. Polling
// the stream state costs the process far less than receiving every result
// would, and only ever makes the pipeline look slower: by up to one
// interval, which is short once only the last few articles are left.
func waitDrained(b *testing.B, input jetstream.Stream) {
	deadline := time.Now().Add(time.Minute)
	for {
		info, err := input.Info(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		left := info.State.Msgs
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d articles still queued", left)
		}
		if left > 8 {
			time.Sleep(2 * time.Millisecond)
		} else {
			time.Sleep(200 * time.Microsecond)
		}
	}
}

// benchPrefetch lets a run try other prefetch depths (SECMAIL_BENCH_PREFETCH
// multiplies Concurrency); the default is the pipeline's own.
func benchPrefetch(concurrency int) int {
	if f, err := strconv.Atoi(os.Getenv("SECMAIL_BENCH_PREFETCH")); err == nil && f > 0 {
		return f * concurrency
	}
	return 0
}
