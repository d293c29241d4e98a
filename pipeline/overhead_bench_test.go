package pipeline

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/internal/gctune"
)

// replayHandler returns a recorded outcome, so all that is left of an
// article's cost is the pipeline's and the server's.
type replayHandler struct{ out article.Outcome }

func (h replayHandler) Handle(context.Context, article.Direction, *article.Request) (*article.Outcome, error) {
	o := h.out
	return &o, nil
}

// BenchmarkPipelineOverhead is the pipeline's and the embedded server's
// own cost per article: the benchmark article through a running pipeline
// whose handler replays the real handler's outcome ("4KiB"), and a
// one-line message ("tiny") to tell the cost per message from the cost per
// byte. CPU per article is the figure to read; it is what the handler
// competes with for the cores.
func BenchmarkPipelineOverhead(b *testing.B) {
	ba := newBenchArticle(b)
	out, err := ba.h.Handle(context.Background(), article.Inbound, &article.Request{ArticleID: "x", Raw: ba.raw})
	if err != nil {
		b.Fatal(err)
	}
	_, restore := gctune.Apply(os.Getenv, nil) // the worker's collector, as in BenchmarkPipeline
	defer restore()
	tiny := []byte("From: a@example.com\r\n\r\nhi\r\n")
	for _, bc := range []struct {
		name     string
		raw, out []byte
	}{
		{"4KiB", ba.raw, out.Raw},
		{"tiny", tiny, tiny},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := replayHandler{out: *out}
			h.out.Raw = bc.out
			e, js := benchEnv(b)
			q := newRounds(b, e, js, "o", bc.raw)
			r := e.run(h, e.cfg)
			defer r.stop()
			const round = 2000
			var wall, cpu time.Duration
			b.ResetTimer()
			for done := 0; done < b.N; {
				n := min(round, b.N-done)
				b.StopTimer()
				q.queue(n)
				runtime.GC() // the queued articles' encoding is not the pipeline's
				b.StartTimer()
				w, c := q.drain(0)
				wall, cpu = wall+w, cpu+c
				done += n
			}
			b.ReportMetric(float64(b.N)/wall.Seconds(), "articles/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/article")
		})
	}
}
