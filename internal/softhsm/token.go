//go:build pkcs11 && cgo

package softhsm

import (
	"errors"
	"os"
	"testing"

	"github.com/secmail/secmail/keybackend/pkcs11"
)

// OpenToken initialises a token in a temporary directory and opens it
// through the pkcs11 backend until the test ends. Without softhsm2 the
// test is skipped, or fails when CI is set.
func OpenToken(t testing.TB) *pkcs11.Token {
	t.Helper()
	mod, err := Setup(t.TempDir())
	if errors.Is(err, ErrMissing) {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pkcs11.Open(pkcs11.Config{Module: mod, TokenLabel: Label, PIN: PIN})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tok.Close() })
	return tok
}
