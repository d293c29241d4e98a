// Command worker is secmail: S/MIME and OpenPGP for helpdesks. It runs the
// JetStream pipeline (run, demo) and offers offline commands that use the
// very same handlers (inspect, secure, preflight), store management
// (certs) and batch reprocessing (reprocess).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `secmail worker — S/MIME and OpenPGP for helpdesks

Usage:
  worker run        [flags]   consume article.inbound / article.outbound from NATS JetStream
  worker demo       [flags]   run on the embedded default and show it working
  worker inspect    --keyring DIR [flags] FILE.eml...   decrypt and verify offline
  worker secure     --keyring DIR [flags] IN.eml        sign and encrypt offline
  worker preflight  --keyring DIR --from ADDR --to ADDR[,ADDR]   what a reply can do
  worker certs      SUBCOMMAND [flags]                  manage the certificate and key store
  worker reprocess  [flags]   republish stored articles
  worker version

Run "worker COMMAND -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches a command line and returns the exit code; tests call it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "inspect":
		return cmdInspect(ctx, rest, stdout, stderr)
	case "secure":
		return cmdSecure(ctx, rest, stdin, stdout, stderr)
	case "preflight":
		return cmdPreflight(ctx, rest, stdout, stderr)
	case "run":
		return cmdRun(ctx, rest, stdout, stderr)
	case "demo":
		return cmdDemo(ctx, rest, stdout, stderr)
	case "certs":
		return cmdCerts(ctx, rest, stdin, stdout, stderr)
	case "reprocess":
		return cmdReprocess(ctx, rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "secmail worker", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "worker: unknown command %q\n\n%s", cmd, usage)
	return 2
}
