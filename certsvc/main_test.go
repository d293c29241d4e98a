package certsvc_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/secmail/secmail/certsvc"
	"github.com/secmail/secmail/store/storetest"
)

// TestMain lets the scripts run `certs` as a real command, and removes the
// shared openssl/gpg fixtures after the tests.
func TestMain(m *testing.M) {
	code := testscript.RunMain(m, map[string]func() int{
		"certs": func() int {
			return certsvc.RunCLI(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		},
	})
	storetest.RemoveFixtures()
	os.Exit(code)
}

// TestScripts runs testdata/script/*.txtar against a live service.
func TestScripts(t *testing.T) {
	h := start(t)
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("SECMAIL_NATS_URL", h.adminURL)
			env.Setenv("SECMAIL_IDENTITY", "script@example.com")
			for name, path := range h.fx.Files {
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(env.WorkDir, name), data, 0o600); err != nil {
					return err
				}
			}
			return nil
		},
	})
}
