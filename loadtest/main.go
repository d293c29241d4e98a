// Command loadtest generates a realistic article mix with its own test
// PKI and OpenPGP keys, runs it through secmail workers — an embedded
// NATS server with N in-process workers, or a cluster given by --nats —
// and reports throughput, end-to-end latency, CPU per article, peak
// memory and correctness (every article exactly one result, with the
// expected outcome). With --baseline (the default) it also processes a
// sample of the same articles the way Zammad and RT do, one openssl/gpg
// process per message, and prints the ratio. See README.md.
//
//	go run ./loadtest --articles 2000 --workers 2
//	go run ./loadtest --scale 1,2,4 --baseline=false
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/secmail/secmail/demopki"
	"github.com/secmail/secmail/reprocess"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(cli(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// cli runs the command line and returns the exit code: 0 all correct,
// 1 lost, duplicated or wrong articles (or a broken baseline), 2 usage,
// 3 the test could not run.
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg        Config
		mix, sizes string
		scale      string
		keyType    string
		asJSON     bool
		noProgress bool
		verbose    bool
		cpuProfile string
		memProfile string
		traceFile  string
	)
	fs.StringVar(&cfg.NATS, "nats", "", "NATS URL of running workers; empty starts an embedded server with --workers in-process workers")
	fs.IntVar(&cfg.Workers, "workers", 2, "in-process workers sharing the consumers (embedded only)")
	fs.StringVar(&cfg.Storage, "storage", "file", "storage of the embedded server's streams: file (as `worker run`) or memory")
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, "articles at once per worker (default GOMAXPROCS)")
	fs.StringVar(&cfg.KeyBackend, "key-backend", "go", "private-key backend of the embedded workers: go, or openssl (build with -tags openssl)")
	fs.IntVar(&cfg.Articles, "articles", 1000, "articles to publish")
	fs.Float64Var(&cfg.Rate, "rate", 0, "articles per second; 0 = as fast as possible")
	fs.IntVar(&cfg.MaxOutstanding, "max-outstanding", 256, "articles published and without a result at most")
	fs.StringVar(&mix, "mix", DefaultMix, "shares of mailgen kinds, KIND=SHARE,...")
	fs.StringVar(&sizes, "sizes", DefaultSizes, "shares of sizes, BODY[+ATTACHMENT]=SHARE,... (e.g. 4KiB=90,8KiB+2MiB=10)")
	fs.StringVar(&keyType, "key", string(demopki.RSA2048), "S/MIME key type of the test PKI: rsa2048 or p256")
	fs.IntVar(&cfg.Distinct, "distinct", 64, "distinct generated messages per kind and size (articles reuse them)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the article draw")
	fs.BoolVar(&cfg.Baseline, "baseline", true, "also measure one openssl/gpg process per message on a sample")
	fs.IntVar(&cfg.BaselineSample, "baseline-sample", 200, "articles the baseline processes")
	fs.StringVar(&scale, "scale", "", "run the same articles with each number of workers, e.g. 1,2,4 (embedded only)")
	fs.IntVar(&cfg.Warmup, "warmup", 200, "articles run first and not measured (0: none)")
	fs.DurationVar(&cfg.Timeout, "timeout", time.Minute, "give up after this long without a result")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fs.BoolVar(&noProgress, "no-progress", false, "no progress display on stderr")
	fs.BoolVar(&verbose, "v", false, "log the workers' warnings to stderr")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.StringVar(&memProfile, "memprofile", "", "write a heap profile taken at the run's peak heap to this file (attributes memory to workers, server and load test)")
	fs.StringVar(&traceFile, "trace", "", "write an execution trace of the whole run to this file (go tool trace)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if cfg.Mix, err = parseMix(mix); err != nil {
		fmt.Fprintln(stderr, "loadtest: --mix:", err)
		return 2
	}
	if cfg.Sizes, err = parseSizes(sizes); err != nil {
		fmt.Fprintln(stderr, "loadtest: --sizes:", err)
		return 2
	}
	cfg.KeyType = demopki.KeyType(keyType)
	if scale != "" {
		for _, f := range strings.Split(scale, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				fmt.Fprintf(stderr, "loadtest: --scale: %q is not a worker count\n", f)
				return 2
			}
			cfg.Scale = append(cfg.Scale, n)
		}
	}
	if !noProgress {
		cfg.Progress, cfg.ProgressTTY = stderr, reprocess.IsTerminal(stderr)
	}
	if verbose {
		cfg.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "loadtest:", err)
			return 3
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "loadtest:", err)
			return 3
		}
		defer pprof.StopCPUProfile()
	}
	if memProfile != "" {
		stop := peakHeapProfile(memProfile, 2*time.Second)
		defer stop()
	}
	if traceFile != "" {
		f, err := os.Create(traceFile)
		if err != nil {
			fmt.Fprintln(stderr, "loadtest:", err)
			return 3
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			fmt.Fprintln(stderr, "loadtest:", err)
			return 3
		}
		defer trace.Stop()
	}
	rep, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 3
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		printReport(stdout, rep)
	}
	if rep.Failed() {
		fmt.Fprintln(stderr, "loadtest: FAILED: lost, duplicated or wrong articles (or the baseline tools failed)")
		return 1
	}
	return 0
}

func printReport(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "machine: %d CPUs, %s, %s; NATS: %s; S/MIME keys: %s", rep.Machine.CPUs, rep.Machine.Model,
		rep.Machine.GoVersion, map[bool]string{true: "embedded", false: "external"}[rep.Embedded], rep.KeyType)
	if rep.KeyBackend != "" {
		fmt.Fprintf(w, "; key backend: %s", rep.KeyBackend)
	}
	if rep.GOGC != 0 {
		fmt.Fprintf(w, "; GOGC %d", rep.GOGC)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "articles: %d  mix: %s\n                sizes: %s\n\n", rep.Articles, counts(rep.Mix), counts(rep.Sizes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workers\tarticles/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\tCPU ms/article\theap before MiB\tpeak heap MiB\tpeak RSS MiB\tresults\tlost\tdup\twrong\t")
	for _, m := range rep.Runs {
		workers := strconv.Itoa(m.Workers)
		if m.Workers == 0 {
			workers = "external"
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%d\t%d\t\n", workers, m.Throughput,
			m.LatencyMS.P50, m.LatencyMS.P90, m.LatencyMS.P99, m.LatencyMS.Max, m.CPUSecondsPerArt*1000,
			float64(m.HeapBeforeBytes)/(1<<20), float64(m.PeakHeapBytes)/(1<<20), float64(m.PeakRSSBytes)/(1<<20), m.Results, m.Lost, m.Duplicated, m.Wrong)
	}
	if b := rep.Baseline; b != nil {
		fmt.Fprintf(tw, "baseline\t%.1f\t\t\t\t\t%.2f\t\t\t\t%d\t\t\t%d\t\n", b.Throughput, b.CPUSecondsPerArt*1000, b.Articles, b.Unexpected)
	}
	tw.Flush()
	if !rep.Embedded {
		fmt.Fprintln(w, "\n(external workers: CPU and memory are this process's — publisher and result reader — not the workers')")
	}
	for _, m := range rep.Runs {
		for _, ex := range m.WrongExamples {
			fmt.Fprintln(w, "wrong:", ex)
		}
		fmt.Fprintf(w, "\noutcomes (%d workers): %s\n", m.Workers, counts(m.Outcomes))
	}
	if len(rep.Runs) > 1 {
		fmt.Fprintf(w, "CPU per article spread across worker counts: %.1f%% (target: within 10%%)\n", rep.ScaleSpread*100)
	}
	if b := rep.Baseline; b != nil {
		fmt.Fprintf(w, "\nbaseline: %d articles, %d openssl/gpg processes in %.1fs (%d at once)\n", b.Articles, b.Processes, b.Seconds, rep.Machine.CPUs)
		for _, ex := range b.Examples {
			fmt.Fprintln(w, "baseline failure:", ex)
		}
		fmt.Fprintf(w, "throughput ratio secmail/baseline: %.1fx   CPU per article ratio baseline/secmail: %.1fx\n", rep.Ratio, rep.CPURatio)
	}
}

func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// peakHeapProfile samples the heap every interval and keeps, in path, the
// heap profile of the largest in-use heap seen; stop writes nothing more.
func peakHeapProfile(path string, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var peak uint64
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse <= peak {
				continue
			}
			peak = ms.HeapInuse
			if f, err := os.Create(path); err == nil {
				_ = pprof.WriteHeapProfile(f)
				_ = f.Close()
			}
		}
	}()
	return func() { close(done); <-finished }
}
