package reprocess

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/natsembed"
	"github.com/secmail/secmail/pipeline"
)

// Exit codes of RunCLI.
const (
	ExitOK          = 0
	ExitFatal       = 1 // could not run, or results missing (timed out)
	ExitUsage       = 2
	ExitSkipped     = 3 // the run completed, but bad input was skipped
	ExitInterrupted = 130
)

// DefaultNATSURL is the embedded default's address.
const DefaultNATSURL = natsembed.DefaultURL

// RunCLI is `worker reprocess`: it parses args, runs and prints a summary
// to stdout; progress and bad input go to stderr.
func RunCLI(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reprocess", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg        Config
		direction  string
		rateFlag   string
		natsURL    string
		creds      string
		prefix     string
		noProgress bool
	)
	defURL := os.Getenv("SECMAIL_NATS_URL")
	if defURL == "" {
		defURL = DefaultNATSURL
	}
	fs.StringVar(&natsURL, "nats", defURL, "NATS URL (default: the embedded default of `worker run`)")
	fs.StringVar(&creds, "creds", os.Getenv("SECMAIL_NATS_CREDS"), "NATS credentials file")
	fs.StringVar(&cfg.Dir, "dir", "", "directory of .eml files (article id = file name without .eml)")
	fs.StringVar(&cfg.Mbox, "mbox", "", "mboxrd file (article id = hash of the message)")
	fs.StringVar(&cfg.JSONL, "jsonl", "", "JSON Lines export of {article_id, ticket_id, group, raw (base64)}")
	fs.StringVar(&cfg.OnlyFailedWith, "only-failed-with", "", "re-run articles whose latest result failed with this reason (e.g. no-private-key)")
	fs.StringVar(&cfg.Attempt, "attempt", "", "attempt id sent with the articles; --only-failed-with picks a new one (reuse it to resume that retry)")
	fs.StringVar(&direction, "direction", "inbound", "inbound or outbound")
	fs.StringVar(&cfg.Group, "group", "", "group for articles that name none")
	fs.StringVar(&rateFlag, "rate", "0", "publish at most N articles per second (N or N/s; 0 = unlimited)")
	fs.IntVar(&cfg.MaxOutstanding, "max-outstanding", 64, "articles published and waiting for their result at most")
	fs.StringVar(&cfg.Checkpoint, "checkpoint", "", "file of completed article ids; a re-run skips them")
	fs.StringVar(&cfg.Results, "results", "", "append the results as JSON Lines to this file")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "how long to wait for one article's result")
	fs.StringVar(&prefix, "subject-prefix", "article", "first token of the article subjects")
	fs.BoolVar(&noProgress, "no-progress", false, "do not show progress on stderr")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "reprocess: unexpected arguments %q\n", fs.Args())
		return ExitUsage
	}
	inputs := 0
	for _, s := range []string{cfg.Dir, cfg.Mbox, cfg.JSONL, cfg.OnlyFailedWith} {
		if s != "" {
			inputs++
		}
	}
	if inputs != 1 {
		fmt.Fprintln(stderr, "reprocess: give exactly one of --dir, --mbox, --jsonl and --only-failed-with")
		return ExitUsage
	}
	r, err := parseRate(rateFlag)
	if err != nil {
		fmt.Fprintln(stderr, "reprocess: --rate:", err)
		return ExitUsage
	}
	cfg.Rate = r
	cfg.Direction = article.Direction(direction)
	cfg.Pipeline = pipeline.Config{SubjectPrefix: prefix}
	if !noProgress {
		cfg.Progress, cfg.ProgressTTY = stderr, IsTerminal(stderr)
	}
	cfg.BadInput = func(b BadInput) { fmt.Fprintf(stderr, "reprocess: skipped %s\n", b) }

	opts := []nats.Option{nats.Name("secmail reprocess"), nats.MaxReconnects(-1)}
	if creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	nc, err := nats.Connect(natsURL, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "reprocess: connecting to NATS at %s: %v\n", natsURL, err)
		return ExitFatal
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintln(stderr, "reprocess:", err)
		return ExitFatal
	}
	sum, err := Run(ctx, js, cfg)
	PrintSummary(stdout, sum)
	switch {
	case errors.Is(err, ErrInterrupted):
		fmt.Fprintln(stderr, "reprocess: interrupted; run again with the same --checkpoint to resume")
		return ExitInterrupted
	case err != nil:
		fmt.Fprintln(stderr, err)
		return ExitFatal
	case sum.TimedOut > 0:
		fmt.Fprintf(stderr, "reprocess: %d articles got no result within %s\n", sum.TimedOut, cfg.Timeout)
		return ExitFatal
	case len(sum.Bad) > 0:
		return ExitSkipped
	}
	return ExitOK
}

func parseRate(s string) (float64, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "/s")
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || r < 0 {
		return 0, fmt.Errorf("%q is not a rate (N or N/s)", s)
	}
	return r, nil
}

// PrintSummary writes a short human summary.
func PrintSummary(w io.Writer, s *Summary) {
	if s == nil {
		return
	}
	fmt.Fprintf(w, "articles: %d  published: %d  results: %d (already in the stream: %d)  ok: %d  skipped (checkpoint): %d  duplicates: %d  bad input: %d  timed out: %d  in %s\n",
		s.Total, s.Published, s.Completed, s.FromStream, s.OK, s.AlreadyDone, s.Duplicates, len(s.Bad), s.TimedOut, s.Elapsed.Round(time.Millisecond))
	if len(s.Failures) > 0 {
		keys := make([]string, 0, len(s.Failures))
		for k := range s.Failures {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprint(w, "failed:")
		for _, k := range keys {
			fmt.Fprintf(w, " %s=%d", k, s.Failures[k])
		}
		fmt.Fprintln(w)
	}
}
