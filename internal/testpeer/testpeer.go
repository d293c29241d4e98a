// Package testpeer is shared by the interop tests: the real peers they run
// (openssl, gpg, redis-server) must exist in CI, where a missing one is a
// failure rather than a silent skip.
package testpeer

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
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

// ReadPEM returns the DER bytes of the first PEM block in the file at path
// (the files the peers write).
func ReadPEM(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	return blk.Bytes, nil
}

// ReadCert parses the first certificate in the PEM file at path.
func ReadCert(path string) (*x509.Certificate, error) {
	der, err := ReadPEM(path)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
