package reprocess

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// Snapshot is what a progress display shows.
type Snapshot struct {
	Done     int
	Total    int
	Failures map[string]int
}

// ShowProgress draws progress on w until the returned stop is called
// (which draws a last line). On a terminal (tty) one line is redrawn
// five times a second; otherwise a plain line is written every every, so
// logs stay readable. The load generator uses it too.
func ShowProgress(w io.Writer, tty bool, every time.Duration, snap func() Snapshot) (stop func()) {
	if w == nil {
		return func() {}
	}
	if tty {
		every = 200 * time.Millisecond
	}
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	draw := func(final bool) {
		line := progressLine(snap(), time.Since(start))
		switch {
		case tty && final:
			fmt.Fprintf(w, "\r\033[K%s\n", line)
		case tty:
			fmt.Fprintf(w, "\r\033[K%s", line)
		default:
			fmt.Fprintln(w, line)
		}
	}
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				draw(true)
				return
			case <-t.C:
				draw(false)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

func progressLine(s Snapshot, elapsed time.Duration) string {
	var b strings.Builder
	const width = 24
	if s.Total > 0 {
		filled := min(width, s.Done*width/s.Total)
		fmt.Fprintf(&b, "[%s%s] %d/%d %3d%%", strings.Repeat("#", filled), strings.Repeat(".", width-filled),
			s.Done, s.Total, s.Done*100/s.Total)
	} else {
		fmt.Fprintf(&b, "%d done", s.Done)
	}
	rate := 0.0
	if secs := elapsed.Seconds(); secs > 0 {
		rate = float64(s.Done) / secs
	}
	fmt.Fprintf(&b, "  %.1f/s", rate)
	if rate > 0 && s.Total > s.Done {
		eta := time.Duration(float64(s.Total-s.Done) / rate * float64(time.Second))
		fmt.Fprintf(&b, "  ETA %s", eta.Round(time.Second))
	}
	if len(s.Failures) > 0 {
		keys := make([]string, 0, len(s.Failures))
		for k := range s.Failures {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("  failed:")
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%d", k, s.Failures[k])
		}
	}
	return b.String()
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (r *runner) startProgress() func() {
	return ShowProgress(r.cfg.Progress, r.cfg.ProgressTTY, r.cfg.ProgressEvery, func() Snapshot {
		r.mu.Lock()
		defer r.mu.Unlock()
		f := make(map[string]int, len(r.sum.Failures)+1)
		for k, v := range r.sum.Failures {
			f[k] = v
		}
		if r.sum.TimedOut > 0 {
			f["timed-out"] = r.sum.TimedOut
		}
		if n := len(r.sum.Bad); n > 0 {
			f["bad-input"] = n
		}
		return Snapshot{Done: r.sum.Completed + r.sum.AlreadyDone + r.sum.TimedOut, Total: r.sum.Total, Failures: f}
	})
}
