package reprocess

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		s       Snapshot
		elapsed time.Duration
		want    []string
	}{
		{Snapshot{Done: 50, Total: 100}, 10 * time.Second, []string{"50/100", " 50%", "5.0/s", "ETA 10s"}},
		{Snapshot{Done: 100, Total: 100, Failures: map[string]int{"no-private-key": 3, "bad-signature": 1}}, time.Second,
			[]string{"100/100", "failed: bad-signature=1 no-private-key=3"}},
		{Snapshot{Done: 7}, time.Second, []string{"7 done"}},
	} {
		got := progressLine(tc.s, tc.elapsed)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%+v: %q lacks %q", tc.s, got, w)
			}
		}
		if tc.s.Done == tc.s.Total && strings.Contains(got, "ETA") {
			t.Errorf("%q: ETA when done", got)
		}
	}
}

func TestShowProgressPlainLines(t *testing.T) {
	var b bytes.Buffer
	stop := ShowProgress(&b, false, time.Hour, func() Snapshot { return Snapshot{Done: 2, Total: 4} })
	stop()
	stop() // idempotent
	if got := b.String(); strings.Contains(got, "\r") || strings.Count(got, "\n") != 1 || !strings.Contains(got, "2/4") {
		t.Errorf("non-terminal progress %q", got)
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"0": 0, "50": 50, "50/s": 50, " 2.5/s ": 2.5} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"-1", "fast", "10/m"} {
		if _, err := parseRate(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--dir", "a", "--mbox", "b", "--nats", "nats://127.0.0.1:1"},
		{"--nats", "nats://127.0.0.1:1"},
		{"--dir", "a", "--rate", "x"},
		{"--dir", "a", "extra"},
	} {
		var stdout, stderr bytes.Buffer
		code := RunCLI(t.Context(), args, &stdout, &stderr)
		if code != ExitUsage {
			t.Errorf("%v: exit %d", args, code)
		}
	}
}
