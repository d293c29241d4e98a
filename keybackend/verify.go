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

// CBCDecrypter returns the AES-CBC content decrypter b offers for cms, or
// nil when content decryption stays in Go. The openssl backend offers one
// (AES-NI on several blocks at once; Go's amd64 CBC decryption goes block
// by block). Set it as handlers.Config.CBC.
func CBCDecrypter(b Backend) cms.CBCDecrypter {
	if d, ok := b.(cms.CBCDecrypter); ok {
		return d
	}
	return nil
}
