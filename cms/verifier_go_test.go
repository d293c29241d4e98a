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
