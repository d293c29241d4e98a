//go:build unix

package cputime

import (
	"testing"
	"time"
)

// TestProcess: spinning moves the clock, sleeping does not.
func TestProcess(t *testing.T) {
	start := Process()
	deadline := time.Now().Add(10 * time.Second)
	for Process()-start < 20*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("10 s of spinning counted %v of CPU", Process()-start)
		}
	}
	start = Process()
	time.Sleep(50 * time.Millisecond)
	if idle := Process() - start; idle > 40*time.Millisecond {
		t.Fatalf("50 ms of sleep counted %v of CPU", idle)
	}
}
