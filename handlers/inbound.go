package handlers

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/certcheck"
	"github.com/secmail/secmail/cms"
	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/mimewalk"
	"github.com/secmail/secmail/pgp"
	"github.com/secmail/secmail/reason"
	"github.com/secmail/secmail/result"
)

// CapabilityRecorder is implemented by key stores that remember the
// SMIMECapabilities a correspondent announced in signed mail, so replies to
// them can use AES-GCM.
type CapabilityRecorder interface {
	RecordCapabilities(ctx context.Context, email string, oids []string) error
}

// Inbound detects S/MIME and OpenPGP in raw, decrypts and verifies every
// layer, and returns the security block with the unwrapped message. A
// security failure is part of the outcome; an error means the message
// could not be processed at all (too large, unparseable, store down).
func (h *Handler) Inbound(ctx context.Context, raw []byte) (out *article.Outcome, err error) {
	defer func() {
		// The crypto and MIME libraries recover their own panics; this is
		// the last line so one hostile article can never stop the worker.
		if r := recover(); r != nil {
			out, err = nil, reason.New(reason.Malformed, "panic while processing: %v", r)
		}
	}()
	root, err := mimewalk.Parse(raw, h.cfg.Limits)
	if err != nil {
		return nil, err
	}
	in := &inbound{h: h, ctx: ctx, sec: result.None(), now: h.cfg.Now()}
	in.from = fromAddress(root.Header)

	entity, changed, err := in.unwrap(root)
	if err != nil {
		return nil, err
	}
	out = &article.Outcome{Security: in.sec, Raw: raw}
	if changed && entity != nil {
		out.Raw = mimewalk.Replace(root.Header, entity)
	}
	return out, nil
}

// fromAddress returns the lower-cased address of the first From mailbox.
func fromAddress(h textproto.Header) string {
	mh := mail.Header{Header: message.Header{Header: h}}
	list, err := mh.AddressList("From")
	if err != nil || len(list) == 0 {
		// Fall back to a raw scan: a display name in a broken charset must
		// not hide the address.
		v := h.Get("From")
		if i, j := strings.LastIndexByte(v, '<'), strings.LastIndexByte(v, '>'); i >= 0 && j > i {
			v = v[i+1 : j]
		}
		return strings.ToLower(strings.TrimSpace(v))
	}
	return strings.ToLower(list[0].Address)
}

// inbound is the state of processing one message.
type inbound struct {
	h    *Handler
	ctx  context.Context
	sec  result.Security
	from string
	now  time.Time

	signSeen bool
}

// layer kinds found at one level of the message.
type layerKind int

const (
	layerNone layerKind = iota
	layerSMIMEEnveloped
	layerSMIMEOpaque
	layerSMIMEDetached
	layerPGPEncrypted
	layerPGPSigned
	layerInlinePGP
)

// maxLayers bounds nested security layers (triple wrap is three); more is
// an attack on our CPU, not mail.
const maxLayers = 8

// unwrap peels security layers off p until plain content remains. It
// returns the innermost entity (header + body) and whether anything was
// unwrapped.
func (in *inbound) unwrap(p *mimewalk.Part) (entity []byte, changed bool, err error) {
	entity = p.Raw
	for layers := 0; ; layers++ {
		if layers > maxLayers {
			in.failLayer(result.SMIME, reason.TooComplex)
			return entity, changed, nil
		}
		target, kind, partial := locate(p)
		if kind == layerNone {
			return entity, changed, nil
		}
		if partial {
			in.sec.Warn(reason.PartiallyEncrypted)
		}
		next, err := in.layer(target, kind)
		if err != nil {
			return nil, false, err
		}
		if next == nil {
			// The layer failed: keep what we have (the original) and stop.
			return entity, changed, nil
		}
		entity, changed = next, true
		p, err = mimewalk.Parse(entity, in.h.cfg.Limits)
		if err != nil {
			in.failLayer("", reason.CodeOf(err))
			return nil, false, nil
		}
	}
}

// failLayer records a failure that cannot be attributed to a signature,
// which for the helpdesk means "could not decrypt / read".
func (in *inbound) failLayer(t result.Type, c reason.Code) {
	if c == "" {
		c = reason.Malformed
	}
	if in.sec.Type == nil && t != "" {
		in.sec.SetType(t)
	}
	in.sec.Encryption = result.Failed(in.h.cfg.Lang, c)
}

// locate finds the security layer of p. At the top of a multipart/mixed
// (or alternative) it looks one level into the children: a secured part
// next to plain parts is processed alone and flagged partially-encrypted
// (EFAIL: never splice decrypted text into unencrypted surroundings).
func locate(p *mimewalk.Part) (*mimewalk.Part, layerKind, bool) {
	if k := kindOf(p); k != layerNone {
		return p, k, false
	}
	if !strings.HasPrefix(p.MediaType, "multipart/") {
		return nil, layerNone, false
	}
	var found *mimewalk.Part
	var kind layerKind
	others := false
	var visit func(q *mimewalk.Part, depth int)
	visit = func(q *mimewalk.Part, depth int) {
		for _, c := range q.Children {
			if found == nil {
				if k := kindOf(c); k != layerNone {
					found, kind = c, k
					continue
				}
			}
			if strings.HasPrefix(c.MediaType, "multipart/") && depth < 3 {
				visit(c, depth+1)
				continue
			}
			if len(bytes.TrimSpace(c.Body)) > 0 {
				others = true
			}
		}
	}
	visit(p, 0)
	if found == nil {
		return nil, layerNone, false
	}
	// Only encryption makes splicing dangerous; a signed part next to a
	// mailing-list footer is verified but the message is kept whole.
	encrypted := kind == layerSMIMEEnveloped || kind == layerPGPEncrypted || kind == layerInlinePGP
	return found, kind, others && encrypted
}

// kindOf classifies a single part.
func kindOf(p *mimewalk.Part) layerKind {
	switch p.MediaType {
	case "application/pkcs7-mime", "application/x-pkcs7-mime":
		st := strings.ToLower(p.Params["smime-type"])
		switch st {
		case "signed-data":
			return layerSMIMEOpaque
		case "enveloped-data", "authenveloped-data":
			return layerSMIMEEnveloped
		}
		return sniffCMS(p)
	case "application/octet-stream":
		name := strings.ToLower(p.Filename())
		if strings.HasSuffix(name, ".p7m") {
			return sniffCMS(p)
		}
	case "multipart/signed":
		if len(p.Children) < 2 {
			return layerNone
		}
		switch strings.ToLower(p.Params["protocol"]) {
		case "application/pkcs7-signature", "application/x-pkcs7-signature":
			return layerSMIMEDetached
		case "application/pgp-signature":
			return layerPGPSigned
		}
	case "multipart/encrypted":
		if strings.EqualFold(p.Params["protocol"], "application/pgp-encrypted") && len(p.Children) >= 2 {
			return layerPGPEncrypted
		}
	case "text/plain", "text/html":
		// Armor lines are ASCII and survive 7bit, 8bit and quoted-printable
		// untouched: only a base64 body has to be decoded to look.
		if !strings.EqualFold(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding")), "base64") &&
			!bytes.Contains(p.Body, []byte("-----BEGIN PGP ")) {
			return layerNone
		}
		body, err := p.Decode()
		if err == nil && (pgp.IsArmoredMessage(body) || pgp.IsClearsigned(body)) {
			return layerInlinePGP
		}
	}
	return layerNone
}

// sniffCMS decides by the CMS content type when smime-type is missing or
// unknown (Outlook's .p7m attachments, old clients).
func sniffCMS(p *mimewalk.Part) layerKind {
	der, err := p.Decode()
	if err != nil {
		return layerSMIMEEnveloped // let the decrypt path report malformed
	}
	ct := cms.Sniff(der)
	switch {
	case ct.Equal(cms.OIDSignedData):
		return layerSMIMEOpaque
	case ct.Equal(cms.OIDEnvelopedData), ct.Equal(cms.OIDAuthEnvelopedData), ct == nil:
		return layerSMIMEEnveloped
	}
	return layerSMIMEEnveloped // compressed-data etc.: decrypt reports unsupported
}

// layer processes one security layer and returns the entity inside it, or
// nil when the layer failed (the failure is recorded in in.sec).
func (in *inbound) layer(p *mimewalk.Part, kind layerKind) ([]byte, error) {
	switch kind {
	case layerSMIMEEnveloped:
		return in.smimeDecrypt(p)
	case layerSMIMEOpaque:
		in.setType(result.SMIME)
		der, err := p.Decode()
		if err != nil {
			in.failSign(reason.CodeOf(err), nil, "")
			return nil, nil
		}
		return in.smimeVerify(der, nil)
	case layerSMIMEDetached:
		in.setType(result.SMIME)
		der, err := p.Children[1].Decode()
		if err != nil {
			in.failSign(reason.CodeOf(err), nil, "")
			return nil, nil
		}
		content := p.Children[0].Raw
		if _, err := in.smimeVerify(der, mimewalk.Canonicalize(content)); err != nil {
			return nil, err
		}
		return content, nil
	case layerPGPEncrypted:
		return in.pgpDecrypt(p.Children[1], false, "")
	case layerPGPSigned:
		in.setType(result.PGP)
		sig, err := p.Children[1].Decode()
		if err != nil {
			in.failSign(reason.CodeOf(err), nil, "")
			return nil, nil
		}
		content := p.Children[0].Raw
		v, err := pgp.VerifyDetached(in.ctx, mimewalk.Canonicalize(content), sig, in.h.src, in.now)
		if err := in.recordPGPSignature(v, err); err != nil {
			return nil, err
		}
		return content, nil
	case layerInlinePGP:
		return in.inlinePGP(p)
	}
	return nil, nil
}

func (in *inbound) setType(t result.Type) {
	if in.sec.Type == nil {
		in.sec.SetType(t)
	}
}

func (in *inbound) smimeDecrypt(p *mimewalk.Part) ([]byte, error) {
	in.setType(result.SMIME)
	der, err := p.Decode()
	if err != nil {
		in.failLayer(result.SMIME, reason.CodeOf(err))
		return nil, nil
	}
	ours, err := in.h.src.SMIMEKeys(in.ctx)
	if err != nil {
		return nil, transient(err, "loading our S/MIME keys")
	}
	dec, err := cms.Decrypt(der, ours, cms.DecryptOptions{AllowLegacy3DES: in.h.cfg.Allow3DES, CBC: in.h.cfg.CBC})
	if err != nil {
		in.failLayer(result.SMIME, codeOr(err, reason.Malformed))
		return nil, nil
	}
	if dec.Weak {
		in.sec.Warn(reason.WeakAlgorithm)
	}
	chk := result.OK(reason.Text(in.h.cfg.Lang, reason.MsgDecrypted))
	chk.Algorithm = string(dec.Cipher)
	if dec.Recipient != nil && dec.Recipient.Cert != nil {
		if emails := keys.CertEmails(dec.Recipient.Cert); len(emails) > 0 {
			chk.Recipient = emails[0]
		}
		chk.Certificate = in.h.summaries.summarize(dec.Recipient.Cert)
	}
	in.sec.Encryption = chk
	return dec.Plaintext, nil
}

// smimeVerify verifies a SignedData (detached when content is non-nil) and
// returns the encapsulated content for opaque signatures. For a detached
// signature it returns content unchanged even when verification failed:
// the helpdesk still shows the message, marked as not verified.
func (in *inbound) smimeVerify(der, detached []byte) ([]byte, error) {
	sd, err := cms.ParseSignedDataWith(der, cms.SignedDataOptions{Certs: in.h.certs, Verifier: in.h.cfg.Verifier})
	if err != nil {
		in.failSign(codeOr(err, reason.Malformed), nil, "")
		return nil, nil
	}
	var lookupErr error
	lookup := func(rid cms.RecipientID) []*x509.Certificate {
		var certs []*x509.Certificate
		var err error
		switch {
		case rid.IssuerAndSerial != nil:
			certs, err = in.h.src.CertsByIssuerSerial(in.ctx, rid.IssuerAndSerial.Issuer.FullBytes, rid.IssuerAndSerial.Serial)
		case len(rid.SKI) > 0:
			certs, err = in.h.src.CertsBySKI(in.ctx, rid.SKI)
		}
		if err != nil && !errors.Is(err, keys.ErrNotFound) {
			lookupErr = err
		}
		return certs
	}
	content := sd.Content()
	signers, err := sd.Verify(detached, lookup)
	if lookupErr != nil {
		return nil, transient(lookupErr, "looking up the signer certificate")
	}
	if err != nil {
		var cert *x509.Certificate
		if len(signers) > 0 {
			cert = signers[0].Cert
		}
		in.failSign(codeOr(err, reason.BadSignature), cert, "")
		return content, nil
	}
	s := signers[0]
	if s.Weak {
		in.sec.Warn(reason.WeakAlgorithm)
	}
	at := in.now
	if s.SigningTime != nil {
		at = *s.SigningTime
	}
	trust, err := in.h.src.Trust(in.ctx)
	if err != nil {
		return nil, transient(err, "loading the trust store")
	}
	signer := signerAddress(keys.CertEmails(s.Cert), in.from)
	if _, err := in.h.chains.verifySigner(s.Cert, sd.Certificates(), trust, at); err != nil {
		in.failSign(codeOr(err, reason.UntrustedIssuer), s.Cert, signer)
		return content, nil
	}
	if !certcheck.MatchesAddress(s.Cert, in.from) {
		in.failSign(reason.SignerMismatch, s.Cert, signer)
		return content, nil
	}
	in.okSign(signer, s.Cert, nil)
	if rec, ok := in.h.src.(CapabilityRecorder); ok && len(s.Capabilities) > 0 {
		// Best effort: a failure to remember capabilities must not fail
		// the article.
		_ = rec.RecordCapabilities(in.ctx, in.from, s.Capabilities)
	}
	return content, nil
}

// signerAddress picks the address to report as the signer: the From
// address when the key names it, else the key's first address.
func signerAddress(emails []string, from string) string {
	if keys.AddressMatches(emails, from) {
		return from
	}
	if len(emails) > 0 {
		return emails[0]
	}
	return ""
}

// failSign records a failed signature. A later layer's failure never
// overwrites an earlier one, and a failure overwrites an earlier success
// (the helpdesk must not show a check mark when any signature failed).
func (in *inbound) failSign(c reason.Code, cert *x509.Certificate, signer string) {
	if c == "" {
		c = reason.Malformed
	}
	if in.signSeen && in.sec.Sign.Status == result.StatusFailed {
		return
	}
	in.signSeen = true
	chk := result.Failed(in.h.cfg.Lang, c)
	chk.Signer = signer
	chk.Certificate = in.h.summaries.summarize(cert)
	in.sec.Sign = chk
}

func (in *inbound) okSign(signer string, cert *x509.Certificate, key *result.PGPKey) {
	if in.signSeen && in.sec.Sign.Status == result.StatusFailed {
		return
	}
	in.signSeen = true
	chk := result.OK(reason.Text(in.h.cfg.Lang, reason.MsgVerified, signer))
	chk.Signer = signer
	chk.Certificate = in.h.summaries.summarize(cert)
	chk.Key = key
	in.sec.Sign = chk
}

// recordPGPSignature turns a PGP verification into the sign check.
func (in *inbound) recordPGPSignature(v *pgp.Verification, err error) error {
	in.setType(result.PGP)
	if err != nil {
		if c := reason.CodeOf(err); c != "" {
			var key *result.PGPKey
			signer := ""
			if v != nil && v.Entity != nil {
				key = pgp.Summarize(v.Entity)
				signer = signerAddress(v.Emails, in.from)
			}
			in.failSign(c, nil, signer)
			in.sec.Sign.Key = key
			return nil
		}
		return transient(err, "verifying the OpenPGP signature")
	}
	if v.Weak {
		in.sec.Warn(reason.WeakAlgorithm)
	}
	signer := signerAddress(v.Emails, in.from)
	if !keys.AddressMatches(v.Emails, in.from) {
		in.failSign(reason.SignerMismatch, nil, signer)
		in.sec.Sign.Key = pgp.Summarize(v.Entity)
		return nil
	}
	in.okSign(signer, nil, pgp.Summarize(v.Entity))
	return nil
}

// pgpDecrypt decrypts an OpenPGP message part. For inline PGP the
// plaintext is text and becomes a text/plain entity in charset.
func (in *inbound) pgpDecrypt(p *mimewalk.Part, inline bool, charset string) ([]byte, error) {
	in.setType(result.PGP)
	msg, err := p.Decode()
	if err != nil {
		in.failLayer(result.PGP, reason.CodeOf(err))
		return nil, nil
	}
	if inline {
		msg = armorBlock(msg, "MESSAGE")
	}
	return in.pgpDecryptBytes(msg, inline, charset)
}

func (in *inbound) pgpDecryptBytes(msg []byte, inline bool, charset string) ([]byte, error) {
	dec, err := pgp.Decrypt(in.ctx, msg, in.h.src, in.now)
	if err != nil {
		if c := reason.CodeOf(err); c != "" {
			in.failLayer(result.PGP, c)
			return nil, nil
		}
		return nil, transient(err, "decrypting OpenPGP")
	}
	if dec.Encrypted {
		// A "PGP MESSAGE" may also be signed-only: then there is nothing to
		// report as decrypted.
		chk := result.OK(reason.Text(in.h.cfg.Lang, reason.MsgDecrypted))
		chk.Algorithm = dec.Cipher
		if dec.Recipient != nil {
			if emails := keys.EntityEmails(dec.Recipient); len(emails) > 0 {
				chk.Recipient = emails[0]
			}
			chk.Key = pgp.Summarize(dec.Recipient)
		}
		in.sec.Encryption = chk
	}
	if dec.Signature != nil || dec.SignatureErr != nil {
		if err := in.recordPGPSignature(dec.Signature, dec.SignatureErr); err != nil {
			return nil, err
		}
	}
	if inline {
		return mimewalk.TextEntity(dec.Plaintext, charset), nil
	}
	return dec.Plaintext, nil
}

// inlinePGP handles armored blocks inside a text part.
func (in *inbound) inlinePGP(p *mimewalk.Part) ([]byte, error) {
	in.setType(result.PGP)
	body, err := p.Decode()
	if err != nil {
		in.failLayer(result.PGP, reason.CodeOf(err))
		return nil, nil
	}
	charset := p.Params["charset"]
	if pgp.IsArmoredMessage(body) {
		block := armorBlock(body, "MESSAGE")
		if len(bytes.TrimSpace(bytes.Replace(body, block, nil, 1))) > 0 {
			// Text around the armored block was not encrypted: drop it.
			in.sec.Warn(reason.PartiallyEncrypted)
		}
		return in.pgpDecryptBytes(block, true, charset)
	}
	block := armorBlock(body, "SIGNED MESSAGE")
	v, text, err := pgp.VerifyClearsigned(in.ctx, block, in.h.src, in.now)
	if err := in.recordPGPSignature(v, err); err != nil {
		return nil, err
	}
	if text == nil {
		return nil, nil
	}
	return mimewalk.TextEntity(text, charset), nil
}

// armorBlock returns the first armored block of the given kind in b,
// including its BEGIN and END lines, or b when there is none.
func armorBlock(b []byte, kind string) []byte {
	begin := []byte("-----BEGIN PGP " + kind + "-----")
	i := bytes.Index(b, begin)
	if i < 0 {
		return b
	}
	endMarker := []byte("-----END PGP " + kind + "-----")
	if kind == "SIGNED MESSAGE" {
		endMarker = []byte("-----END PGP SIGNATURE-----")
	}
	j := bytes.Index(b[i:], endMarker)
	if j < 0 {
		return b[i:]
	}
	end := i + j + len(endMarker)
	return b[i:end]
}

// codeOr returns err's reason code, or def when it has none.
func codeOr(err error, def reason.Code) reason.Code {
	if c := reason.CodeOf(err); c != "" {
		return c
	}
	return def
}
