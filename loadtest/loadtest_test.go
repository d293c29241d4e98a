package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/secmail/secmail/demopki"
	"github.com/secmail/secmail/internal/gctune"
)

// haveTools reports whether openssl and gpg are installed; in CI their
// absence is a failure, not a skip.
func haveTools(t *testing.T) bool {
	t.Helper()
	for _, tool := range []string{"openssl", "gpg"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is required in CI: %v", tool, err)
			}
			return false
		}
	}
	return true
}

// TestShortRun is the CI load test: a few hundred small articles of the
// default mix through two embedded workers (real store, cache, handlers
// and pipeline), and a small baseline sample through openssl and gpg.
func TestShortRun(t *testing.T) {
	mix, err := parseMix(DefaultMix)
	if err != nil {
		t.Fatal(err)
	}
	sizes, err := parseSizes("2KiB=80,2KiB+16KiB=15,1KiB+1100KiB=5") // the last is claim-checked
	if err != nil {
		t.Fatal(err)
	}
	baseline := haveTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // generous: CI machines are shared
	defer cancel()
	rep, err := run(ctx, Config{
		Workers: 2, Articles: 300, Mix: mix, Sizes: sizes, KeyType: demopki.P256, Distinct: 6, Seed: 7,
		Baseline: baseline, BaselineSample: 12, Timeout: 20 * time.Second, MaxOutstanding: 64,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 1 {
		t.Fatalf("%d runs", len(rep.Runs))
	}
	m := rep.Runs[0]
	if m.Lost != 0 || m.Duplicated != 0 || m.Wrong != 0 || m.Results != 300 {
		t.Errorf("lost %d, duplicated %d, wrong %d (%v), results %d of 300", m.Lost, m.Duplicated, m.Wrong, m.WrongExamples, m.Results)
	}
	if m.Throughput <= 0 || m.CPUSecondsPerArt <= 0 || m.LatencyMS.P50 <= 0 || m.LatencyMS.Max < m.LatencyMS.P99 || m.PeakRSSBytes == 0 {
		t.Errorf("implausible measurement %+v", m)
	}
	// Every kind of the mix was drawn and judged.
	if len(rep.Mix) < 8 {
		t.Errorf("mix %v", rep.Mix)
	}
	if baseline {
		b := rep.Baseline
		if b == nil || b.Articles != 12 || b.Unexpected != 0 || b.Processes == 0 {
			t.Errorf("baseline %+v", b)
		}
		if rep.Ratio <= 0 {
			t.Errorf("ratio %v", rep.Ratio)
		}
	}
	if rep.Failed() {
		t.Error("report says failed")
	}
	var out bytes.Buffer
	printReport(&out, rep)
	if rep.KeyBackend != "go" {
		t.Errorf("key backend %q, want go (the default)", rep.KeyBackend)
	}
	if os.Getenv("GOGC") == "" && rep.GOGC != gctune.Percent {
		t.Errorf("GOGC %d, want the worker's %d", rep.GOGC, gctune.Percent)
	}
	if got := debug.SetGCPercent(-1); got == gctune.Percent && os.Getenv("GOGC") == "" {
		t.Error("the load test left the worker's GOGC in place")
	} else {
		debug.SetGCPercent(got)
	}
	if !strings.Contains(out.String(), "articles/s") || !strings.Contains(out.String(), "key backend: go") ||
		(baseline && !strings.Contains(out.String(), "throughput ratio")) {
		t.Errorf("report:\n%s", &out)
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Error(err)
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--mix", "nonsense=1"}, "unknown kind"},
		{[]string{"--sizes", "4XB=1"}, "--sizes"},
		{[]string{"--sizes", "4KiB=0"}, "no positive shares"},
		{[]string{"--scale", "1,x"}, "not a worker count"},
	} {
		var stdout, stderr bytes.Buffer
		if code := cli(context.Background(), tc.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, &stderr, tc.want)
		}
	}
}

func TestParseSizes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []size
	}{
		{"4KiB=60,32KiB=25", []size{{4 << 10, 0}, {32 << 10, 0}}},
		{"8KiB+3MiB=3", []size{{8 << 10, 3 << 20}}},
		{"100=1, 1k+1M", []size{{100, 0}, {1 << 10, 1 << 20}}},
	} {
		got, err := parseSizes(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%s: %v", tc.in, got)
		}
		for i := range got {
			if got[i].Value != tc.want[i] {
				t.Errorf("%s: %v, want %v", tc.in, got[i].Value, tc.want[i])
			}
		}
	}
	if _, err := parseSizes("65MiB"); err == nil {
		t.Error("65MiB accepted")
	}
}

// TestUnknownKeyBackend: a backend the build does not have fails the run,
// naming the backend.
func TestUnknownKeyBackend(t *testing.T) {
	mix, err := parseMix("plain=1")
	if err != nil {
		t.Fatal(err)
	}
	sizes, err := parseSizes("1KiB=1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = run(context.Background(), Config{
		Workers: 1, Articles: 5, Mix: mix, Sizes: sizes, KeyType: demopki.P256, Distinct: 1,
		KeyBackend: "enigma", Timeout: 5 * time.Second, MaxOutstanding: 4,
	})
	if err == nil || !strings.Contains(err.Error(), "enigma") {
		t.Fatalf("run with key backend enigma: %v", err)
	}
}
