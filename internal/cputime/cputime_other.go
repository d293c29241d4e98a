//go:build !unix

package cputime

import "time"

// Process returns 0: there is no portable process CPU clock here, and the
// benchmarks that use it then report no CPU metrics.
func Process() time.Duration { return 0 }
