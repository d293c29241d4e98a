package main

import (
	"context"
	"io"

	"github.com/secmail/secmail/reprocess"
)

// cmdReprocess is `worker reprocess`; see package reprocess.
func cmdReprocess(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return reprocess.RunCLI(ctx, args, stdout, stderr)
}
