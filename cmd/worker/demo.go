package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/demopki"
	"github.com/secmail/secmail/mailgen"
	"github.com/secmail/secmail/metrics"
	"github.com/secmail/secmail/pipeline"
	"github.com/secmail/secmail/result"
	"github.com/secmail/secmail/store"
)

// cmdDemo runs the worker on the embedded default, fills the store with a
// demo PKI and OpenPGP keys, publishes realistic articles through the real
// pipeline and prints what a helpdesk would show.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f runFlags
	f.register(fs, "127.0.0.1:0")
	exit := fs.Bool("exit", false, "exit after printing the results instead of serving until Ctrl-C")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if !isFlagSet(fs, "log-level") && os.Getenv("SECMAIL_LOG_LEVEL") == "" {
		f.logLevel = "warn" // keep the table readable
	}
	if !isFlagSet(fs, "data") && os.Getenv("SECMAIL_DATA") == "" {
		dir, err := os.MkdirTemp("", "secmail-demo-")
		if err != nil {
			fmt.Fprintln(stderr, "worker demo:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		f.dataDir = dir
	}
	log := f.logger(stderr)
	s, err := start(ctx, &f, log)
	if err != nil && f.natsURL == "" && !isFlagSet(fs, "embedded-listen") {
		// Another worker may hold the default port: take any free one.
		f.embeddedListen = "127.0.0.1:-1"
		s, err = start(ctx, &f, log)
	}
	if err != nil {
		fmt.Fprintln(stderr, "worker demo:", err)
		return 1
	}
	defer s.close()
	fmt.Fprintf(stdout, "secmail demo — NATS JetStream at %s (embedded: %v), cache: in-process", s.url, s.embedded != nil)
	if s.redis != nil {
		fmt.Fprint(stdout, " + Redis")
	}
	fmt.Fprintln(stdout)

	world, err := mailgen.New(demopki.RSA2048)
	if err != nil {
		fmt.Fprintln(stderr, "worker demo:", err)
		return 1
	}
	var inputs []store.Input
	for name, data := range world.OrgFiles {
		inputs = append(inputs, store.Input{Name: name, Data: data})
	}
	rep, err := s.store.Import(store.WithIdentity(ctx, "worker demo"), inputs, store.ImportOptions{})
	if err != nil || rep.Failed() {
		fmt.Fprintf(stderr, "worker demo: importing the demo keys: %v %+v\n", err, rep)
		return 1
	}
	fmt.Fprintf(stdout, "Imported the demo PKI and OpenPGP keys into the store: %v\n\n", rep.Counts())

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	served := make(chan int, 1)
	var ln net.Listener
	if f.metricsAddr != "" {
		if ln, err = net.Listen("tcp", f.metricsAddr); err != nil {
			fmt.Fprintln(stderr, "worker demo:", err)
			return 1
		}
		go func() { _ = metrics.ServeListener(runCtx, ln, s.metrics, s.ready) }()
	}
	go func() { served <- s.serve(runCtx, "") }()

	code := showDemo(runCtx, s, world, stdout)
	if ln != nil {
		fmt.Fprintf(stdout, "\nMetrics: http://%s/metrics   health: /healthz   readiness: /readyz\n", ln.Addr())
	}
	if *exit || code != 0 {
		stopRun()
		<-served
		return code
	}
	fmt.Fprintf(stdout, `
The worker keeps running. Publish more articles, for example:
  worker reprocess --nats %s --dir DIR_OF_EML_FILES
  worker certs list --nats %s
  nats --server %s sub 'article.*.result'
Press Ctrl-C to stop.
`, s.url, s.url, s.url)
	return <-served
}

func isFlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// showDemo publishes one article of every kind and prints the results as a
// helpdesk would show them. It returns 1 when any result is not the
// expected one.
func showDemo(ctx context.Context, s *service, world *mailgen.World, stdout io.Writer) int {
	cfg := s.pipe.Config()
	cons, err := s.js.OrderedConsumer(ctx, cfg.ResultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{cfg.ResultSubject(article.Inbound), cfg.ResultSubject(article.Outbound)},
		DeliverPolicy:  jetstream.DeliverAllPolicy, // ours are picked by article id; a reset must not skip any
	})
	if err != nil {
		fmt.Fprintln(stdout, "demo: subscribing to results:", err)
		return 1
	}
	samples := map[string]mailgen.Sample{}
	run := time.Now().Unix()
	for i, kind := range mailgen.Kinds {
		sm, err := world.Make(kind, mailgen.Options{BodySize: 1024, Seq: i})
		if err != nil {
			fmt.Fprintln(stdout, "demo:", err)
			return 1
		}
		id := fmt.Sprintf("demo-%d-%02d", run, i+1)
		samples[id] = sm
		req := &article.Request{ArticleID: id, TicketID: fmt.Sprintf("T-%d", 1000+i), Group: "support", Raw: sm.Raw, Options: sm.Options}
		if _, err := pipeline.Submit(ctx, s.js, cfg, sm.Direction, req); err != nil {
			fmt.Fprintln(stdout, "demo: publishing:", err)
			return 1
		}
	}
	results := map[string]pipeline.Result{}
	deadline, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for len(results) < len(samples) {
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if deadline.Err() != nil {
				fmt.Fprintf(stdout, "demo: only %d of %d results arrived\n", len(results), len(samples))
				return 1
			}
			continue
		}
		var r pipeline.Result
		if err := json.Unmarshal(msg.Data(), &r); err == nil {
			if _, ours := samples[r.ArticleID]; ours {
				results[r.ArticleID] = r
			}
		}
	}
	return printTable(stdout, samples, results)
}

func printTable(stdout io.Writer, samples map[string]mailgen.Sample, results map[string]pipeline.Result) int {
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ARTICLE\tDIRECTION\tSAMPLE\tTYPE\tENCRYPTION\tSIGNATURE\tEXPECTED")
	code := 0
	ids := make([]string, 0, len(samples))
	for id := range samples {
		ids = append(ids, id)
	}
	sortStrings(ids)
	for _, id := range ids {
		sm, r := samples[id], results[id]
		if r.Security == nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\terror: %v\t\t\t✗\n", id, sm.Direction, sm.Name, r.Error)
			code = 1
			continue
		}
		typ := "-"
		if r.Security.Type != nil {
			typ = string(*r.Security.Type)
		}
		verdict := "✓"
		if diff := sm.Expect.Check(*r.Security); diff != "" {
			verdict, code = "✗ "+diff, 1
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id[strings.LastIndexByte(id, '-')+1:], sm.Direction, sm.Name, typ,
			cell(r.Security.Encryption, "🔒"), cell(r.Security.Sign, "✔"), verdict)
	}
	tw.Flush()
	return code
}

// cell renders one check as a helpdesk shows it.
func cell(c result.Check, icon string) string {
	switch c.Status {
	case result.StatusOK:
		extra := c.Algorithm
		if c.Signer != "" {
			extra = c.Signer
		}
		return icon + " ok " + extra
	case result.StatusFailed:
		return "✗ " + string(*c.Reason)
	}
	return "—"
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// decodeStrict decodes JSON rejecting unknown fields.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New("invalid request: " + err.Error())
	}
	return nil
}
