//go:build !(openssl && cgo)

package keybackend

import "fmt"

func openOpenSSL() (Backend, error) {
	return nil, fmt.Errorf("keybackend: openssl: built without OpenSSL support (rebuild with CGO_ENABLED=1 -tags openssl): %w", ErrNotBuiltIn)
}
