//go:build openssl && cgo

package keybackend

import "github.com/secmail/secmail/keybackend/openssl"

func openOpenSSL() (Backend, error) { return openssl.New(), nil }
