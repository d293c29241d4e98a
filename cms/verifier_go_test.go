//go:build !(openssl && cgo)

package cms

// extraVerifiers lists the verifiers this build offers besides Go's: none
// without the openssl tag.
func extraVerifiers() []struct {
	name string
	v    PublicKeyVerifier
} {
	return nil
}

// extraCBC lists the AES-CBC decrypters this build offers besides
// crypto/cipher: none without the openssl tag.
func extraCBC() []cbcVariant { return nil }
