//go:build openssl && cgo

package cms

import "github.com/secmail/secmail/keybackend/openssl"

// extraVerifiers: with -tags openssl the verification suites also run
// with OpenSSL's verifier.
func extraVerifiers() []struct {
	name string
	v    PublicKeyVerifier
} {
	return []struct {
		name string
		v    PublicKeyVerifier
	}{{"openssl", openssl.New()}}
}

// extraCBC: with -tags openssl the decryption suites also run with
// OpenSSL's AES-CBC decrypter.
func extraCBC() []cbcVariant { return []cbcVariant{{"openssl-cbc", openssl.New()}} }
