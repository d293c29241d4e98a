package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/secmail/secmail/demopki"
	"github.com/secmail/secmail/keybackend"
	"github.com/secmail/secmail/mailgen"
)

// TestMain lets the scripts run `worker` as a real command.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"worker": func() {
			os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
		},
	})
}

// TestScripts runs the CLI as a user would (testdata/script/*.txtar).
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// mkworld DIR: a keyring directory with the demo world's files and
			// one .eml per sample kind in DIR/mail.
			"mkworld": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: mkworld DIR")
				}
				w, err := mailgen.New(demopki.P256)
				ts.Check(err)
				dir := ts.MkAbs(args[0])
				ts.Check(os.MkdirAll(filepath.Join(dir, "keyring"), 0o755))
				ts.Check(os.MkdirAll(filepath.Join(dir, "mail"), 0o755))
				for name, data := range w.OrgFiles {
					ts.Check(os.WriteFile(filepath.Join(dir, "keyring", name), data, 0o600))
				}
				for _, kind := range mailgen.Kinds {
					s, err := w.Make(kind, mailgen.Options{})
					ts.Check(err)
					ts.Check(os.WriteFile(filepath.Join(dir, "mail", kind+".eml"), s.Raw, 0o644))
				}
			},
		},
		Setup: func(env *testscript.Env) error {
			env.Setenv("CI", os.Getenv("CI"))
			return nil
		},
		// [openssl]: the worker was built with the openssl key backend.
		Condition: func(cond string) (bool, error) {
			if cond != "openssl" {
				return false, fmt.Errorf("unknown condition %q", cond)
			}
			b, err := keybackend.Open("openssl", keybackend.Config{})
			if err != nil {
				return false, nil
			}
			return true, b.Close()
		},
	})
}
