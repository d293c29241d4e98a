// Package testpeer is shared by the interop tests: the real peers they run
// (openssl, gpg, redis-server) must exist in CI, where a missing one is a
// failure rather than a silent skip.
package testpeer

import (
	"os"
	"os/exec"
	"testing"
)

// Need skips tb when a tool is missing, or fails it when the CI
// environment variable is set.
func Need(tb testing.TB, tools ...string) {
	tb.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				tb.Fatalf("%s is required in CI: %v", tool, err)
			}
			tb.Skipf("%s not installed", tool)
		}
	}
}
