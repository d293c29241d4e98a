// Package reason defines secmail's stable reason codes and the typed error
// that carries one. Codes are a public contract: they appear in results on
// the wire and never change meaning.
package reason

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable reason for a security outcome.
type Code string

// The reason codes. The set is closed: handlers and libraries use only these.
const (
	NoPrivateKey         Code = "no-private-key"
	WrongPassphrase      Code = "wrong-passphrase"
	NoCertificate        Code = "no-certificate"
	NoPublicKey          Code = "no-public-key"
	UntrustedIssuer      Code = "untrusted-issuer"
	Expired              Code = "expired"
	NotYetValid          Code = "not-yet-valid"
	Revoked              Code = "revoked"
	BadSignature         Code = "bad-signature"
	SignerMismatch       Code = "signer-mismatch"
	Malformed            Code = "malformed"
	UnsupportedAlgorithm Code = "unsupported-algorithm"
	WeakAlgorithm        Code = "weak-algorithm"
	PartiallyEncrypted   Code = "partially-encrypted"
	TooLarge             Code = "too-large"
	TooComplex           Code = "too-complex"
)

// All lists every code, in documentation order.
var All = []Code{
	NoPrivateKey, WrongPassphrase, NoCertificate, NoPublicKey, UntrustedIssuer,
	Expired, NotYetValid, Revoked, BadSignature, SignerMismatch, Malformed,
	UnsupportedAlgorithm, WeakAlgorithm, PartiallyEncrypted, TooLarge, TooComplex,
}

// Valid reports whether c is one of the defined codes.
func (c Code) Valid() bool {
	for _, k := range All {
		if k == c {
			return true
		}
	}
	return false
}

// Error is an error that carries a reason code. Libraries (cms, pgp,
// mimewalk, certcheck) return it so callers can branch with errors.As
// instead of matching strings.
type Error struct {
	Code Code
	// Detail is a short technical explanation for logs and the result's
	// comment suffix; it never contains key material.
	Detail string
	Err    error
}

func (e *Error) Error() string {
	switch {
	case e.Detail != "" && e.Err != nil:
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Detail, e.Err)
	case e.Detail != "":
		return fmt.Sprintf("%s: %s", e.Code, e.Detail)
	case e.Err != nil:
		return fmt.Sprintf("%s: %v", e.Code, e.Err)
	}
	return string(e.Code)
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, reason.Malformed.Err()) style comparisons work by code.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code && t.Detail == "" && t.Err == nil
	}
	return false
}

// Err returns a bare error for code c, usable as a sentinel with errors.Is.
func (c Code) Err() error { return &Error{Code: c} }

// New returns an error with code c and a detail message.
func New(c Code, format string, args ...any) error {
	return &Error{Code: c, Detail: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with code c wrapping err.
func Wrap(c Code, err error, detail string) error {
	return &Error{Code: c, Detail: detail, Err: err}
}

// CodeOf returns the reason code carried by err, or "" when it has none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
