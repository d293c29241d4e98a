package keybackend

import "github.com/secmail/secmail/cms"

// Verifier returns the signature verifier b offers for cms (RSA and ECDSA
// in the backend's library, with crypto/rsa's and crypto/ecdsa's results),
// or nil when verification stays in Go. The openssl backend offers one;
// go and pkcs11 do not (a token would be slower than Go for public-key
// operations). Set it as handlers.Config.Verifier.
func Verifier(b Backend) cms.PublicKeyVerifier {
	if v, ok := b.(cms.PublicKeyVerifier); ok {
		return v
	}
	return nil
}

// Offload returns what b takes over from the standard library in cms,
// for handlers.Config.Verifier and handlers.Config.CBC; nil for what stays
// in Go. The openssl backend verifies signatures and decrypts AES-CBC
// content (AES-NI on several blocks at once; Go's amd64 CBC decryption
// goes block by block), the latter only when its libcrypto provides
// AES-CBC, so a restricted OpenSSL leaves content decryption to Go rather
// than failing every message. go and pkcs11 offload nothing (a token is
// slower than Go for public-key and bulk work). Every caller configures
// both from this one call, so an addition here reaches all of them.
func Offload(b Backend) (cms.PublicKeyVerifier, cms.CBCDecrypter) {
	var cbc cms.CBCDecrypter
	if d, ok := b.(interface {
		cms.CBCDecrypter
		HasAESCBC() bool
	}); ok && d.HasAESCBC() {
		cbc = d
	}
	return Verifier(b), cbc
}
