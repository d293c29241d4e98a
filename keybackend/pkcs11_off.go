//go:build !(pkcs11 && cgo)

package keybackend

import "fmt"

func openPKCS11(PKCS11Config) (Backend, error) {
	return nil, fmt.Errorf("keybackend: pkcs11: built without PKCS#11 support (rebuild with CGO_ENABLED=1 -tags pkcs11): %w", ErrNotBuiltIn)
}
