// Package certcheck decides whether an S/MIME certificate may be relied on:
// for verifying a signature (VerifySigner) or for encrypting to a recipient
// (CheckRecipient). It builds the chain to an administrator-added trust
// anchor (there are no built-in roots), checks validity dates, key usage and
// extended key usage, and honours imported CRLs. Outcomes are *reason.Error
// values with codes from package reason.
package certcheck

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"strings"
	"time"

	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/reason"
)

// detailUnusable is the detail for key usage / EKU failures. The reason
// code set is closed; no-certificate ("no usable certificate") is the
// closest honest code for a certificate that exists but may not be used.
const detailUnusable = "certificate not usable for e-mail protection"

// VerifySigner validates a signer certificate at time at (the signing time
// when known, else now): a chain through extra (the message's
// certificates) and trust.Intermediates to trust.Roots, validity of every
// certificate in it, digitalSignature or nonRepudiation key usage when the
// certificate restricts usage, emailProtection (or any, or no) EKU, and
// revocation by the CRLs in trust. It returns the chain, leaf first.
func VerifySigner(cert *x509.Certificate, extra []*x509.Certificate, trust *keys.Trust, at time.Time) ([]*x509.Certificate, error) {
	if cert == nil {
		return nil, reason.New(reason.NoCertificate, "no signer certificate")
	}
	// Dates and trust first, usage last: "untrusted" is the more
	// fundamental answer when both apply.
	chain, err := verify(cert, extra, trust, at)
	if err != nil {
		return nil, err
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return nil, reason.New(reason.NoCertificate, "%s: key usage forbids signing", detailUnusable)
	}
	return chain, nil
}

// CheckRecipient validates a recipient certificate for encryption at now:
// the same chain, validity and revocation checks as VerifySigner, and
// keyEncipherment (RSA) or keyAgreement (EC) key usage when the certificate
// restricts usage.
func CheckRecipient(cert *x509.Certificate, trust *keys.Trust, now time.Time) error {
	if cert == nil {
		return reason.New(reason.NoCertificate, "no recipient certificate")
	}
	var need x509.KeyUsage
	switch cert.PublicKey.(type) {
	case *rsa.PublicKey:
		need = x509.KeyUsageKeyEncipherment
	case *ecdsa.PublicKey:
		need = x509.KeyUsageKeyAgreement
	case ed25519.PublicKey:
		return reason.New(reason.UnsupportedAlgorithm, "Ed25519 keys cannot encrypt")
	default:
		return reason.New(reason.UnsupportedAlgorithm, "cannot encrypt to a %T key", cert.PublicKey)
	}
	if _, err := verify(cert, nil, trust, now); err != nil {
		return err
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&need == 0 {
		return reason.New(reason.NoCertificate, "%s: key usage forbids encryption", detailUnusable)
	}
	return nil
}

// MatchesAddress reports whether cert names addr as an rfc822Name SAN or
// subject emailAddress, case-insensitively (RFC 8550 §3). Unlike PGP domain
// aliases, a wildcard in a certificate never matches.
func MatchesAddress(cert *x509.Certificate, addr string) bool {
	if cert == nil || strings.TrimSpace(addr) == "" {
		return false
	}
	var names []string
	for _, n := range keys.CertEmails(cert) {
		if !strings.Contains(n, "*") {
			names = append(names, n)
		}
	}
	return keys.AddressMatches(names, addr)
}

// validity returns the dated reason for c at time at, or nil.
func validity(c *x509.Certificate, at time.Time, what string) error {
	if at.Before(c.NotBefore) {
		return reason.New(reason.NotYetValid, "%s %q not valid before %s", what, c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339))
	}
	if at.After(c.NotAfter) {
		return reason.New(reason.Expired, "%s %q expired %s", what, c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

func verify(cert *x509.Certificate, extra []*x509.Certificate, trust *keys.Trust, at time.Time) ([]*x509.Certificate, error) {
	if at.IsZero() {
		at = time.Now()
	}
	// Leaf dates first, so the reason is precise rather than whatever path
	// building error crypto/x509 happens to return.
	if err := validity(cert, at, "certificate"); err != nil {
		return nil, err
	}
	// A nil Roots pool would make crypto/x509 fall back to the system roots;
	// secmail trusts only what an administrator added.
	if trust == nil || trust.Roots == nil {
		return nil, reason.New(reason.UntrustedIssuer, "no trust anchors configured")
	}
	inter := x509.NewCertPool()
	if trust.Intermediates != nil {
		inter = trust.Intermediates.Clone()
	}
	for _, c := range extra {
		if c != nil && !c.Equal(cert) {
			inter.AddCert(c)
		}
	}
	chains, err := cert.Verify(x509.VerifyOptions{
		Roots:         trust.Roots,
		Intermediates: inter,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	})
	if err != nil {
		return nil, classify(err, at)
	}
	// Prefer a chain without revoked members; report revocation when every
	// chain has one.
	var revErr error
	for _, chain := range chains {
		if err := checkCRLs(chain, trust.CRLs); err != nil {
			if revErr == nil {
				revErr = err
			}
			continue
		}
		return chain, nil
	}
	return nil, revErr
}

// classify maps a crypto/x509 verification error to a reason code.
func classify(err error, at time.Time) error {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) {
		switch inv.Reason {
		case x509.Expired:
			if inv.Cert != nil {
				if e := validity(inv.Cert, at, "issuer"); e != nil {
					return e
				}
			}
			return reason.Wrap(reason.Expired, err, "certificate chain")
		case x509.IncompatibleUsage:
			return reason.Wrap(reason.NoCertificate, err, detailUnusable)
		case x509.NotAuthorizedToSign, x509.CANotAuthorizedForThisName,
			x509.CANotAuthorizedForExtKeyUsage, x509.TooManyIntermediates,
			x509.NameConstraintsWithoutSANs, x509.NameMismatch:
			return reason.Wrap(reason.UntrustedIssuer, err, "certificate chain")
		}
		return reason.Wrap(reason.UntrustedIssuer, err, "certificate chain")
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return reason.Wrap(reason.UntrustedIssuer, err, "no path to a trust anchor")
	}
	var uce x509.UnhandledCriticalExtension
	if errors.As(err, &uce) {
		return reason.Wrap(reason.UnsupportedAlgorithm, err, "unhandled critical extension")
	}
	var ia x509.InsecureAlgorithmError
	if errors.As(err, &ia) {
		return reason.Wrap(reason.UnsupportedAlgorithm, err, "certificate chain")
	}
	return reason.Wrap(reason.UntrustedIssuer, err, "certificate chain")
}

// checkCRLs reports whether a certificate in chain (leaf first, root last)
// is listed as revoked in a CRL whose signature verifies against the
// certificate's issuer in that chain. CRLs that do not verify are ignored:
// they are no evidence either way. Revocation counts regardless of its
// date, because a signing time is only the signer's own claim.
func checkCRLs(chain []*x509.Certificate, crls []*x509.RevocationList) error {
	if len(crls) == 0 {
		return nil
	}
	for i := 0; i+1 < len(chain); i++ {
		c, issuer := chain[i], chain[i+1]
		for _, crl := range crls {
			if crl == nil || !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
				continue
			}
			if len(crl.AuthorityKeyId) > 0 && len(issuer.SubjectKeyId) > 0 &&
				!bytes.Equal(crl.AuthorityKeyId, issuer.SubjectKeyId) {
				continue
			}
			if crl.CheckSignatureFrom(issuer) != nil {
				continue
			}
			for _, e := range crl.RevokedCertificateEntries {
				if e.SerialNumber != nil && e.SerialNumber.Cmp(c.SerialNumber) == 0 {
					return reason.New(reason.Revoked, "certificate %q (serial %s) revoked on %s",
						c.Subject.CommonName, c.SerialNumber.Text(16), e.RevocationTime.UTC().Format(time.RFC3339))
				}
			}
		}
	}
	return nil
}
