// Package keys defines the narrow read-only view of certificates and keys
// that the crypto handlers need. Two implementations exist: an in-memory
// keyring loaded from a directory (package keyring, for the offline
// commands and tests) and the cached JetStream KV store (package certcache,
// for the running worker).
package keys

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// KeyAgreer is implemented by EC private keys usable for ECDH key agreement
// (RFC 5753). *ecdh.PrivateKey satisfies it.
type KeyAgreer interface {
	ECDH(remote *ecdh.PublicKey) ([]byte, error)
}

// PrivateKey is how secmail uses a private key: always as a crypto.Signer;
// RSA keys also implement crypto.Decrypter, EC keys also KeyAgreer. A
// hardware or OpenSSL backend provides the same interfaces, so nothing above
// this package ever sees raw key types.
type PrivateKey interface {
	crypto.Signer
}

// ecKey makes an ECDSA key usable for both signing and key agreement.
type ecKey struct {
	*ecdsa.PrivateKey
	dh *ecdh.PrivateKey
}

func (k ecKey) ECDH(remote *ecdh.PublicKey) ([]byte, error) { return k.dh.ECDH(remote) }

// Wrap adapts a parsed private key (from x509.ParsePKCS8PrivateKey and
// friends) to PrivateKey.
func Wrap(k crypto.PrivateKey) (PrivateKey, error) {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		dh, err := k.ECDH()
		if err != nil {
			return nil, fmt.Errorf("keys: EC key: %w", err)
		}
		return ecKey{PrivateKey: k, dh: dh}, nil
	case ed25519.PrivateKey:
		return k, nil
	case *ed25519.PrivateKey:
		return *k, nil
	case PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("keys: unsupported private key type %T", k)
}

// SMIMEKey is one of our organisation's certificates with its private key.
type SMIMEKey struct {
	Cert  *x509.Certificate
	Chain []*x509.Certificate // intermediates, leaf excluded
	// Key is nil when the key is passphrase-protected and no configured
	// passphrase opened it; Locked is then true.
	Key    PrivateKey
	Locked bool
}

// ErrNotFound is returned by look-ups that find nothing, where a nil slice
// would be ambiguous. Implementations may also just return an empty slice.
var ErrNotFound = errors.New("keys: not found")

// Trust is the verification context: trust anchors, intermediates known to
// the store and imported CRLs.
type Trust struct {
	Roots         *x509.CertPool
	Intermediates *x509.CertPool
	CRLs          []*x509.RevocationList
}

// Source is the read side of a key store as the handlers need it. Every
// method may be called concurrently. Addresses are compared case-
// insensitively; implementations normalise to lower case.
type Source interface {
	// SMIMEKeys returns all our private keys (for matching RecipientInfos
	// across several addresses and key rollover).
	SMIMEKeys(ctx context.Context) ([]SMIMEKey, error)
	// SMIMEKeysByEmail returns our private keys whose certificate names email.
	SMIMEKeysByEmail(ctx context.Context, email string) ([]SMIMEKey, error)
	// CertsByEmail returns certificates naming email (SAN rfc822Name or
	// subject emailAddress).
	CertsByEmail(ctx context.Context, email string) ([]*x509.Certificate, error)
	// CertsByIssuerSerial returns certificates with that issuer (raw DER
	// Name) and serial.
	CertsByIssuerSerial(ctx context.Context, rawIssuer []byte, serial *big.Int) ([]*x509.Certificate, error)
	// CertsBySKI returns certificates with that subject key identifier.
	CertsBySKI(ctx context.Context, ski []byte) ([]*x509.Certificate, error)
	// Trust returns the current verification context.
	Trust(ctx context.Context) (*Trust, error)
	// Capabilities returns the SMIMECapabilities (algorithm OIDs, in
	// preference order) last harvested from email's signed mail, or nil.
	Capabilities(ctx context.Context, email string) ([]string, error)

	// PGPSecretKeys returns our OpenPGP secret keys. Keys whose passphrase
	// is unknown are returned still encrypted.
	PGPSecretKeys(ctx context.Context) (openpgp.EntityList, error)
	// PGPKeysByID returns public keys (primary or subkey) with that key id.
	PGPKeysByID(ctx context.Context, id uint64) (openpgp.EntityList, error)
	// PGPKeysByEmail returns public keys with a UID naming email, including
	// domain-alias keys (*@domain).
	PGPKeysByEmail(ctx context.Context, email string) (openpgp.EntityList, error)
}

// CertEmails returns the lower-cased e-mail addresses a certificate names:
// SAN rfc822Names and the subject's emailAddress attributes (RFC 8550).
func CertEmails(cert *x509.Certificate) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		s = strings.ToLower(strings.TrimSpace(s))
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, e := range cert.EmailAddresses {
		add(e)
	}
	for _, atv := range cert.Subject.Names {
		if atv.Type.Equal(oidEmailAddress) {
			if s, ok := atv.Value.(string); ok {
				add(s)
			}
		}
	}
	return out
}

var oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

// EntityEmails returns the lower-cased e-mail addresses of an OpenPGP key's
// user IDs (a domain alias appears as "*@domain").
func EntityEmails(e *openpgp.Entity) []string {
	var out []string
	seen := map[string]bool{}
	for _, id := range e.Identities {
		addr := id.UserId.Email
		if addr == "" {
			addr = id.UserId.Name
		}
		addr = strings.ToLower(strings.TrimSpace(addr))
		if strings.Contains(addr, "@") && !seen[addr] {
			seen[addr] = true
			out = append(out, addr)
		}
	}
	return out
}

// AddressMatches reports whether addr is one of names, case-insensitively,
// where a name "*@domain" matches every address of that domain.
func AddressMatches(names []string, addr string) bool {
	addr = strings.ToLower(strings.TrimSpace(addr))
	at := strings.LastIndexByte(addr, '@')
	for _, n := range names {
		if n == addr || (at >= 0 && strings.HasPrefix(n, "*@") && n[1:] == addr[at:]) {
			return true
		}
	}
	return false
}
