// Package demopki creates throw-away test identities: an X.509 CA with an
// intermediate and S/MIME certificates for e-mail addresses, and OpenPGP
// keys. `worker demo`, the load generator and tests use it so that they
// need no external tools. Nothing it makes is meant for production.
package demopki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/secmail/secmail/keys"
)

// KeyType selects the key algorithm of a certificate.
type KeyType string

// Key types.
const (
	RSA2048 KeyType = "rsa2048"
	P256    KeyType = "p256"
)

// Identity is a certificate with its private key.
type Identity struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// PKI is a root CA and an intermediate CA that issues leaf certificates.
type PKI struct {
	Root         Identity
	Intermediate Identity
	serial       int64
}

// New creates a PKI named name, valid from now-1h for ten years.
func New(name string) (*PKI, error) {
	p := &PKI{serial: time.Now().UnixNano()}
	rootKey, err := newKey(P256)
	if err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Hour)
	root := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name + " Root CA", Organization: []string{name}},
		NotBefore:             now,
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	p.Root, err = p.issue(root, rootKey, nil)
	if err != nil {
		return nil, err
	}
	interKey, err := newKey(P256)
	if err != nil {
		return nil, err
	}
	inter := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name + " Issuing CA", Organization: []string{name}},
		NotBefore:             now,
		NotAfter:              now.AddDate(5, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	p.Intermediate, err = p.issue(inter, interKey, &p.Root)
	return p, err
}

// LeafOptions tune a leaf certificate.
type LeafOptions struct {
	Type      KeyType
	NotBefore time.Time // zero: an hour ago
	NotAfter  time.Time // zero: two years from now
}

// Leaf issues an S/MIME certificate for email from the intermediate.
func (p *PKI) Leaf(email string, o LeafOptions) (Identity, error) {
	if o.Type == "" {
		o.Type = RSA2048
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().AddDate(2, 0, 0)
	}
	key, err := newKey(o.Type)
	if err != nil {
		return Identity{}, err
	}
	ku := x509.KeyUsageDigitalSignature
	if o.Type == RSA2048 {
		ku |= x509.KeyUsageKeyEncipherment
	} else {
		ku |= x509.KeyUsageKeyAgreement
	}
	tmpl := &x509.Certificate{
		Subject:        pkix.Name{CommonName: email},
		EmailAddresses: []string{email},
		NotBefore:      o.NotBefore,
		NotAfter:       o.NotAfter,
		KeyUsage:       ku,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}
	return p.issue(tmpl, key, &p.Intermediate)
}

func (p *PKI) issue(tmpl *x509.Certificate, key crypto.Signer, parent *Identity) (Identity, error) {
	p.serial++
	tmpl.SerialNumber = big.NewInt(p.serial)
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return Identity{}, err
	}
	ski := sha1.Sum(spki)
	tmpl.SubjectKeyId = ski[:]
	parentCert, parentKey := tmpl, key
	if parent != nil {
		parentCert, parentKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), parentKey)
	if err != nil {
		return Identity{}, fmt.Errorf("demopki: creating certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Identity{}, err
	}
	return Identity{Cert: cert, Key: key}, nil
}

func newKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case P256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	return nil, fmt.Errorf("demopki: unknown key type %q", t)
}

// SMIMEKey returns the identity as one of our keys, with chain.
func (p *PKI) SMIMEKey(id Identity) (keys.SMIMEKey, error) {
	k, err := keys.Wrap(id.Key)
	if err != nil {
		return keys.SMIMEKey{}, err
	}
	return keys.SMIMEKey{Cert: id.Cert, Chain: []*x509.Certificate{p.Intermediate.Cert}, Key: k}, nil
}

// CertPEM returns the certificate in PEM.
func (id Identity) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.Cert.Raw})
}

// KeyPEM returns the private key as unencrypted PKCS#8 PEM.
func (id Identity) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(id.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// PGPOptions tune a generated OpenPGP key.
type PGPOptions struct {
	// RSABits selects RSA; zero means Curve25519 (EdDSA + ECDH).
	RSABits int
}

// PGPKey creates an OpenPGP key with one UID for name <email>.
func PGPKey(name, email string, o PGPOptions) (*openpgp.Entity, error) {
	cfg := &packet.Config{
		DefaultHash:   crypto.SHA256,
		DefaultCipher: packet.CipherAES256,
		Algorithm:     packet.PubKeyAlgoEdDSA,
		Curve:         packet.Curve25519,
	}
	if o.RSABits > 0 {
		cfg.Algorithm, cfg.RSABits = packet.PubKeyAlgoRSA, o.RSABits
	}
	e, err := openpgp.NewEntity(name, "", email, cfg)
	if err != nil {
		return nil, fmt.Errorf("demopki: generating OpenPGP key: %w", err)
	}
	return e, nil
}

// ArmorPublic returns e's public key, armored.
func ArmorPublic(e *openpgp.Entity) ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := e.Serialize(w); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ArmorSecret returns e's secret key (unprotected), armored.
func ArmorSecret(e *openpgp.Entity) ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := e.SerializePrivate(w, nil); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
