//go:build pkcs11 && cgo

package keybackend

import "github.com/secmail/secmail/keybackend/pkcs11"

func openPKCS11(c PKCS11Config) (Backend, error) {
	t, err := pkcs11.Open(pkcs11.Config{Module: c.Module, TokenLabel: c.TokenLabel, PIN: c.PIN})
	if err != nil {
		return nil, err
	}
	return t, nil
}

var _ TokenKeys = (*pkcs11.Token)(nil)
