// Package result defines the security block that secmail reports per
// article. Field names follow Zammad's (type, sign, encryption, success,
// comment) so an integration maps one to one; the JSON is a public contract
// documented in schemas/security.schema.json.
package result

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"time"

	"github.com/secmail/secmail/reason"
)

// Type is the security technology of an article.
type Type string

// Security types as Zammad names them.
const (
	SMIME Type = "S/MIME"
	PGP   Type = "PGP"
)

// Status of one check.
type Status string

// Check statuses.
const (
	StatusOK     Status = "ok"
	StatusFailed Status = "failed"
	StatusNone   Status = "none"
)

// Security is the per-article security block.
type Security struct {
	Type       *Type         `json:"type"`
	Encryption Check         `json:"encryption"`
	Sign       Check         `json:"sign"`
	Warnings   []reason.Code `json:"warnings"`
}

// Check is the outcome of decryption/encryption or verification/signing.
type Check struct {
	Success     bool         `json:"success"`
	Status      Status       `json:"status"`
	Reason      *reason.Code `json:"reason"`
	Comment     string       `json:"comment"`
	Algorithm   string       `json:"algorithm,omitempty"`
	Recipient   string       `json:"recipient,omitempty"`
	Signer      string       `json:"signer,omitempty"`
	Certificate *Certificate `json:"certificate,omitempty"`
	Key         *PGPKey      `json:"key,omitempty"`
}

// Certificate summarises an X.509 certificate.
type Certificate struct {
	Subject           string    `json:"subject"`
	Issuer            string    `json:"issuer"`
	Serial            string    `json:"serial"`
	FingerprintSHA256 string    `json:"fingerprint_sha256"`
	NotBefore         time.Time `json:"not_before"`
	NotAfter          time.Time `json:"not_after"`
}

// PGPKey summarises an OpenPGP key.
type PGPKey struct {
	Fingerprint string     `json:"fingerprint"`
	KeyID       string     `json:"key_id"`
	UIDs        []string   `json:"uids,omitempty"`
	Created     time.Time  `json:"created"`
	Expires     *time.Time `json:"expires,omitempty"`
}

// None returns a Security block that reports no security at all.
func None() Security {
	return Security{
		Encryption: Check{Status: StatusNone},
		Sign:       Check{Status: StatusNone},
		Warnings:   []reason.Code{},
	}
}

// SetType records t as the article's type.
func (s *Security) SetType(t Type) { s.Type = &t }

// Warn adds a warning once.
func (s *Security) Warn(c reason.Code) {
	for _, w := range s.Warnings {
		if w == c {
			return
		}
	}
	s.Warnings = append(s.Warnings, c)
}

// OK returns a successful check with comment.
func OK(comment string) Check {
	return Check{Success: true, Status: StatusOK, Comment: comment}
}

// Failed returns a failed check with code c and its sentence in lang.
func Failed(lang reason.Lang, c reason.Code) Check {
	code := c
	return Check{Status: StatusFailed, Reason: &code, Comment: reason.Comment(lang, c)}
}

// Summarize returns the summary of cert.
func Summarize(cert *x509.Certificate) *Certificate {
	if cert == nil {
		return nil
	}
	sum := sha256.Sum256(cert.Raw)
	return &Certificate{
		Subject:           cert.Subject.String(),
		Issuer:            cert.Issuer.String(),
		Serial:            strings.ToLower(cert.SerialNumber.Text(16)),
		FingerprintSHA256: hex.EncodeToString(sum[:]),
		NotBefore:         cert.NotBefore.UTC(),
		NotAfter:          cert.NotAfter.UTC(),
	}
}
