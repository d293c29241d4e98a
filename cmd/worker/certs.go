package main

import (
	"context"
	"io"

	"github.com/secmail/secmail/certsvc"
)

// cmdCerts manages the certificate and key store through the management
// service (secmail.certs.*), on the embedded default or a cluster.
func cmdCerts(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return certsvc.RunCLI(ctx, args, stdin, stdout, stderr)
}
