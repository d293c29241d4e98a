// Package keyring imports everything an administrator may hand us (PEM with
// any mix of blocks, DER, PKCS#7 bundles, PKCS#12, CRLs, OpenPGP keys) and
// offers an in-memory keys.Source for the offline commands and tests. The
// durable store (package store) uses the same importer.
package keyring

import (
	"crypto/x509"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/secmail/secmail/keys"
)

// Bundle is everything parsed out of one uploaded file.
type Bundle struct {
	Certs []*x509.Certificate
	Keys  []PrivateKey
	PGP   []PGPKey
	CRLs  []*x509.RevocationList
}

// PrivateKey is an S/MIME private key as uploaded.
type PrivateKey struct {
	// Raw is the key exactly as uploaded (a PEM block, DER, or the whole
	// PKCS#12 file), so protected keys stay protected when stored and
	// downloaded.
	Raw []byte
	// Format is one of "pem", "der", "pkcs12".
	Format string
	// Key is the usable key, nil when Locked.
	Key keys.PrivateKey
	// Locked is true when the key is passphrase-protected and none of the
	// given passphrases opened it.
	Locked bool
	// Passphrase is the passphrase that opened the key ("" when the key was
	// not protected). Never log it.
	Passphrase string
	// Cert is the certificate whose public key matches Key, when one was in
	// the same file; the importer of several files matches across files.
	Cert *x509.Certificate
}

// PGPKey is one OpenPGP key (public, or secret with its public part).
type PGPKey struct {
	Entity *openpgp.Entity
	// Raw is the key exactly as uploaded (armored or binary).
	Raw    []byte
	Secret bool
	// Locked is true for a secret key that no passphrase opened.
	Locked     bool
	Passphrase string
}
