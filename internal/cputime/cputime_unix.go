//go:build unix

package cputime

import (
	"syscall"
	"time"
)

// Process returns the process's user+system CPU time, all threads. The
// benchmarks report it per op beside wall time: on a shared, loaded
// machine it is the stable measure of what an operation costs a core.
func Process() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
