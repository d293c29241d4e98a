package certcheck

import (
	"crypto/x509"
	"time"

	"github.com/secmail/secmail/reason"
)

// CheckSigner checks one of our own certificates before we sign with it:
// valid now, and a key usage that allows signing mail. Trust is not
// checked: it is the recipients' business, and our own CA may not be in
// our trust store.
func CheckSigner(cert *x509.Certificate, now time.Time) error {
	switch {
	case now.Before(cert.NotBefore):
		return reason.New(reason.NotYetValid, "certificate valid from %s", cert.NotBefore.UTC().Format(time.RFC3339))
	case now.After(cert.NotAfter):
		return reason.New(reason.Expired, "certificate expired %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return reason.New(reason.NoCertificate, "certificate key usage does not allow signing")
	}
	if !ownCertAllowsEmail(cert) {
		return reason.New(reason.NoCertificate, "certificate extended key usage does not include e-mail protection")
	}
	return nil
}

// ownCertAllowsEmail reports whether cert may protect e-mail: no EKU extension, or
// emailProtection, or anyExtendedKeyUsage.
func ownCertAllowsEmail(cert *x509.Certificate) bool {
	if len(cert.ExtKeyUsage) == 0 && len(cert.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, u := range cert.ExtKeyUsage {
		if u == x509.ExtKeyUsageEmailProtection || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}
