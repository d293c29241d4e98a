// Package gctune sets the Go garbage collector for the worker.
//
// A worker allocates ~130 KiB per 4 KiB article (the handler ~40 KiB; the
// embedded server, the NATS client and the envelope the rest) against a
// small live heap, so at the runtime's default GOGC=100 it collects
// several times a second and the collector takes a share of the CPU that
// the handlers need. GOGC=400 collects a quarter as often: the pipeline
// kept 3–8 points more of the handler's throughput than at GOGC=100 in 4
// of 4 alternating pairs (BenchmarkPipeline in package pipeline). The
// price is a larger heap between collections, so a soft memory limit
// keeps the collector working before a container's limit is reached.
//
// The environment always wins: GOGC and GOMEMLIMIT, when set, are left to
// the runtime, which reads them itself.
package gctune

import (
	"io/fs"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// Percent is the GOGC the worker uses when the environment sets none.
const Percent = 400

// limitShare is the part of a cgroup memory limit that becomes the soft
// memory limit, leaving room for memory the Go runtime does not manage
// (cgo, thread stacks, the page cache charged to the container).
const limitShare = 0.9

// Settings is what Apply chose.
type Settings struct {
	// GCPercent is the GOGC in effect; Default says the worker chose it.
	GCPercent int
	Default   bool
	// MemoryLimit is the soft memory limit in bytes Apply set from the
	// cgroup (0: none set by Apply).
	MemoryLimit int64
}

// Apply sets GOGC to Percent unless getenv("GOGC") is set, and, unless
// getenv("GOMEMLIMIT") is set, a soft memory limit of 90% of the memory
// limit of the cgroup found in cgroupFS (the root of /sys/fs/cgroup; nil
// for none). restore puts the previous settings back (for tests and
// benchmarks).
func Apply(getenv func(string) string, cgroupFS fs.FS) (s Settings, restore func()) {
	prevPercent := debug.SetGCPercent(-1)
	debug.SetGCPercent(prevPercent)
	prevLimit := debug.SetMemoryLimit(-1)
	s.GCPercent = prevPercent
	if getenv("GOGC") == "" {
		debug.SetGCPercent(Percent)
		s.GCPercent, s.Default = Percent, true
	}
	if getenv("GOMEMLIMIT") == "" && cgroupFS != nil {
		if limit, ok := cgroupLimit(cgroupFS); ok {
			s.MemoryLimit = int64(float64(limit) * limitShare)
			debug.SetMemoryLimit(s.MemoryLimit)
		}
	}
	return s, func() {
		debug.SetGCPercent(prevPercent)
		debug.SetMemoryLimit(prevLimit)
	}
}

// cgroupLimit reads the memory limit of cgroup v2 (memory.max) or v1
// (memory/memory.limit_in_bytes); ok is false when there is none.
func cgroupLimit(root fs.FS) (int64, bool) {
	for _, name := range []string{"memory.max", "memory/memory.limit_in_bytes"} {
		b, err := fs.ReadFile(root, name)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		// cgroup v1 spells "no limit" as a page-rounded MaxInt64.
		if err != nil || n <= 0 || n > math.MaxInt64/2 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}
