// Package keybackend selects where private-key operations run: in Go's
// standard library ("go", the default and the only one in a pure-Go
// build), in the system's OpenSSL libcrypto ("openssl", build tag
// openssl, cgo) or in a PKCS#11 token ("pkcs11", build tag pkcs11, cgo).
//
// Every backend hands out keys.PrivateKey values with the same
// behaviour as crypto/rsa, crypto/ecdsa and crypto/ecdh (same errors,
// PKCS#1 v1.5 implicit rejection, DER ECDSA signatures), so the CMS code
// above does not know which one runs.
package keybackend

import (
	"crypto"
	"errors"
	"fmt"

	"github.com/secmail/secmail/keys"
)

// Backend turns the keys the key store loaded into keys whose private
// operations run in this backend.
type Backend interface {
	// Name is "go", "openssl" or "pkcs11", for /readyz and metric labels.
	Name() string
	// Load returns k for use through this backend. The openssl backend
	// converts it once into an OpenSSL key object; the pkcs11 backend
	// returns the token key with the same public key. Keys the backend
	// has no use for (Ed25519 in openssl) come back unchanged.
	Load(k keys.PrivateKey) (keys.PrivateKey, error)
	// Close releases the backend (the PKCS#11 session pool and module).
	// Keys it loaded must not be used afterwards.
	Close() error
}

// TokenKeys is implemented by backends whose keys live in a token
// (pkcs11): keys are addressed there instead of loaded from bytes. The
// worker can use it without the pkcs11 build tag:
//
//	if tk, ok := b.(keybackend.TokenKeys); ok { k, err := tk.KeyFor(cert.PublicKey) }
type TokenKeys interface {
	// Key returns the token key with that label, or with that CKA_ID in hex.
	// When no key matches, the error matches keys.ErrNotFound; any other
	// error is the token's (a session or device failure).
	Key(labelOrID string) (keys.PrivateKey, error)
	// KeyFor returns the token key for a certificate's public key (errors
	// as for Key).
	KeyFor(pub crypto.PublicKey) (keys.PrivateKey, error)
	// Import stores a software key on the token, non-extractable.
	Import(label string, k keys.PrivateKey) (keys.PrivateKey, error)
}

// Config configures Open. Only the part of the chosen backend is read.
type Config struct {
	PKCS11 PKCS11Config
}

// PKCS11Config addresses a PKCS#11 token.
type PKCS11Config struct {
	Module     string // path of the PKCS#11 module (.so), e.g. /usr/lib/softhsm/libsofthsm2.so
	TokenLabel string // CKA_LABEL of the token
	PIN        string // user PIN; never logged
}

// ErrNotBuiltIn is wrapped by Open when the backend was not compiled in.
var ErrNotBuiltIn = errors.New("keybackend: backend not compiled into this binary")

// Names lists the backends Open knows (compiled in or not).
var Names = []string{"go", "openssl", "pkcs11"}

// Open returns the backend called name ("" means "go").
func Open(name string, cfg Config) (Backend, error) {
	switch name {
	case "", "go":
		return Go(), nil
	case "openssl":
		return openOpenSSL()
	case "pkcs11":
		return openPKCS11(cfg.PKCS11)
	}
	return nil, fmt.Errorf("keybackend: unknown backend %q (want go, openssl or pkcs11)", name)
}

// Go returns the identity backend: keys stay Go's own.
func Go() Backend { return goBackend{} }

type goBackend struct{}

func (goBackend) Name() string { return "go" }

func (goBackend) Load(k keys.PrivateKey) (keys.PrivateKey, error) {
	if k == nil {
		return nil, errors.New("keybackend: nil key")
	}
	return k, nil
}

func (goBackend) Close() error { return nil }

// CloseKey releases what a backend holds for one loaded key (the OpenSSL
// EVP_PKEY); call it when the key store evicts the key. Keys without
// resources (Go's, PKCS#11 handles) are left alone.
func CloseKey(k keys.PrivateKey) error {
	if c, ok := k.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}
