package handlers

import (
	"context"
	"crypto/x509"
	"errors"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/certcheck"
	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/pgp"
	"github.com/secmail/secmail/reason"
	"github.com/secmail/secmail/result"
)

// Recipient statuses reported by preflight and outbound.
const (
	StatusFound       = "found"
	StatusMissing     = "missing"
	StatusExpired     = "expired"
	StatusNotYetValid = "not-yet-valid"
	StatusUntrusted   = "untrusted"
	StatusRevoked     = "revoked"
)

// statusOf maps a certificate or key check failure to a recipient status.
func statusOf(c reason.Code) string {
	switch c {
	case "":
		return StatusFound
	case reason.Expired:
		return StatusExpired
	case reason.NotYetValid:
		return StatusNotYetValid
	case reason.Revoked:
		return StatusRevoked
	case reason.UntrustedIssuer:
		return StatusUntrusted
	}
	return StatusMissing
}

// missingCode is the reason for a recipient without any key, per type.
func missingCode(t result.Type) reason.Code {
	if t == result.PGP {
		return reason.NoPublicKey
	}
	return reason.NoCertificate
}

// recipientChoice is the outcome of choosing a key for one address.
type recipientChoice struct {
	rcpt   article.Recipient
	cert   *x509.Certificate
	entity *openpgp.Entity
}

// chooseSMIMERecipient picks the usable certificate for addr that stays
// valid longest; when none is usable it reports the most telling failure.
func (h *Handler) chooseSMIMERecipient(ctx context.Context, addr string, trust *keys.Trust, now time.Time) (recipientChoice, error) {
	rc := recipientChoice{rcpt: article.Recipient{Address: addr}}
	certs, err := h.src.CertsByEmail(ctx, addr)
	if err != nil && !errors.Is(err, keys.ErrNotFound) {
		return rc, transient(err, "looking up recipient certificates")
	}
	var firstErr error
	var failed *x509.Certificate
	for _, c := range certs {
		if c.IsCA {
			continue
		}
		if err := h.chains.checkRecipient(c, trust, now); err != nil {
			if firstErr == nil || betterFailure(err, firstErr) {
				firstErr, failed = err, c
			}
			continue
		}
		if rc.cert == nil || c.NotAfter.After(rc.cert.NotAfter) {
			rc.cert = c
		}
	}
	switch {
	case rc.cert != nil:
		rc.rcpt.Certificate = result.Summarize(rc.cert)
	case firstErr != nil:
		rc.rcpt.Certificate = result.Summarize(failed)
	}
	h.setStatus(&rc.rcpt, rc.cert != nil, firstErr, reason.NoCertificate)
	return rc, nil
}

// setStatus fills a recipient's status, reason and comment: found, the
// most telling failure of its keys, or missing (code when it has none).
func (h *Handler) setStatus(r *article.Recipient, found bool, failure error, missing reason.Code) {
	switch {
	case found:
		r.Status = StatusFound
		r.Comment = reason.Text(h.cfg.Lang, reason.MsgCertFound, r.Address)
	case failure != nil:
		c := codeOr(failure, missing)
		r.Status, r.Reason = statusOf(c), &c
		r.Comment = reason.Comment(h.cfg.Lang, c)
	default:
		c := missing
		r.Status, r.Reason = StatusMissing, &c
		r.Comment = reason.Text(h.cfg.Lang, reason.MsgCertsNotFound, r.Address)
	}
}

// betterFailure prefers reporting "expired" over "untrusted" and so on:
// the more specific reason helps an agent fix the problem.
func betterFailure(a, b error) bool {
	rank := func(c reason.Code) int {
		switch c {
		case reason.Revoked:
			return 4
		case reason.Expired, reason.NotYetValid:
			return 3
		case reason.UntrustedIssuer:
			return 2
		}
		return 1
	}
	return rank(reason.CodeOf(a)) > rank(reason.CodeOf(b))
}

// choosePGPRecipient picks a usable OpenPGP key for addr.
func (h *Handler) choosePGPRecipient(ctx context.Context, addr string, now time.Time) (recipientChoice, error) {
	rc := recipientChoice{rcpt: article.Recipient{Address: addr}}
	ents, err := h.src.PGPKeysByEmail(ctx, addr)
	if err != nil && !errors.Is(err, keys.ErrNotFound) {
		return rc, transient(err, "looking up recipient OpenPGP keys")
	}
	var firstErr error
	for _, e := range ents {
		if err := pgp.CanEncrypt(e, now); err != nil {
			if firstErr == nil || betterFailure(err, firstErr) {
				firstErr = err
			}
			continue
		}
		if rc.entity == nil {
			rc.entity = e
		}
	}
	if rc.entity != nil {
		rc.rcpt.Key = pgp.Summarize(rc.entity)
	}
	h.setStatus(&rc.rcpt, rc.entity != nil, firstErr, reason.NoPublicKey)
	return rc, nil
}

// chooseSMIMESigner picks our usable signing key for from, valid longest.
func (h *Handler) chooseSMIMESigner(ctx context.Context, from string, now time.Time) (*keys.SMIMEKey, reason.Code, error) {
	ks, err := h.src.SMIMEKeysByEmail(ctx, from)
	if err != nil && !errors.Is(err, keys.ErrNotFound) {
		return nil, "", transient(err, "looking up our signing keys")
	}
	var best *keys.SMIMEKey
	code := reason.NoPrivateKey
	for i := range ks {
		k := &ks[i]
		if k.Cert == nil {
			continue
		}
		if k.Locked || k.Key == nil {
			code = reason.WrongPassphrase
			continue
		}
		if err := certcheck.CheckSigner(k.Cert, now); err != nil {
			if code == reason.NoPrivateKey {
				code = codeOr(err, reason.NoPrivateKey)
			}
			continue
		}
		if best == nil || k.Cert.NotAfter.After(best.Cert.NotAfter) {
			best = k
		}
	}
	if best == nil {
		return nil, code, nil
	}
	return best, "", nil
}

// choosePGPSigner picks our unlocked secret key whose UID (or domain alias)
// matches from.
func (h *Handler) choosePGPSigner(ctx context.Context, from string, now time.Time) (*openpgp.Entity, reason.Code, error) {
	ents, err := h.src.PGPSecretKeys(ctx)
	if err != nil && !errors.Is(err, keys.ErrNotFound) {
		return nil, "", transient(err, "loading our OpenPGP keys")
	}
	code := reason.NoPrivateKey
	// Exact UID matches win over domain aliases.
	var alias *openpgp.Entity
	for _, e := range ents {
		emails := keys.EntityEmails(e)
		if !keys.AddressMatches(emails, from) {
			continue
		}
		if e.PrivateKey == nil || e.PrivateKey.Encrypted {
			code = reason.WrongPassphrase
			continue
		}
		if err := pgp.CanSign(e, now); err != nil {
			code = codeOr(err, reason.NoPrivateKey)
			continue
		}
		for _, m := range emails {
			if m == from {
				return e, "", nil
			}
		}
		if alias == nil {
			alias = e
		}
	}
	if alias != nil {
		return alias, "", nil
	}
	return nil, code, nil
}
