package handlers

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/cms"
	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/mimewalk"
	"github.com/secmail/secmail/pgp"
	"github.com/secmail/secmail/reason"
	"github.com/secmail/secmail/result"
)

// GroupDefaults are one helpdesk group's outbound defaults. A nil field
// falls back to the global default.
type GroupDefaults struct {
	Sign    *bool  `json:"sign,omitempty"`
	Encrypt *bool  `json:"encrypt,omitempty"`
	Type    string `json:"type,omitempty"` // "S/MIME" or "PGP"
}

// GroupSource is implemented by key stores that also hold group defaults
// (the KV store does); it takes precedence over OutboundConfig.Groups.
type GroupSource interface {
	GroupDefaults(ctx context.Context, group string) (*GroupDefaults, bool, error)
}

// OutboundConfig holds the outbound choices an operator may change.
type OutboundConfig struct {
	Groups map[string]GroupDefaults `json:"groups"`
	// Sign and Encrypt are the global defaults; nil means "whenever the
	// certificates exist" (Zammad's behaviour).
	Sign    *bool `json:"sign,omitempty"`
	Encrypt *bool `json:"encrypt,omitempty"`
	// Prefer is the type used when both are possible.
	Prefer result.Type `json:"prefer,omitempty"`
	// EncryptToSelf adds the sending address so the sent article stays
	// readable in the helpdesk.
	EncryptToSelf bool `json:"encrypt_to_self"`
	// Cipher is the S/MIME content cipher; "" means AES-256-CBC, upgraded
	// to AES-256-GCM when every recipient announced GCM.
	Cipher cms.Cipher `json:"cipher,omitempty"`
	OAEP   bool       `json:"oaep,omitempty"`
	PSS    bool       `json:"pss,omitempty"`
	// Opaque signs as application/pkcs7-mime signed-data instead of the
	// default detached multipart/signed.
	Opaque bool        `json:"opaque,omitempty"`
	Hash   crypto.Hash `json:"-"`
}

// DefaultOutboundConfig returns the production defaults.
func DefaultOutboundConfig() OutboundConfig {
	return OutboundConfig{Prefer: result.SMIME, EncryptToSelf: true, Hash: crypto.SHA256}
}

// mode is a resolved per-article wish: required, off, or automatic
// (do it when the keys exist).
type mode int

const (
	modeAuto mode = iota
	modeOn
	modeOff
)

func modeOf(b *bool) mode {
	switch {
	case b == nil:
		return modeAuto
	case *b:
		return modeOn
	}
	return modeOff
}

// wishes resolves options over group defaults over global defaults.
func (h *Handler) wishes(ctx context.Context, group string, o article.Options) (sign, enc mode, typ result.Type, err error) {
	oc := h.cfg.Outbound
	g, ok := oc.Groups[group]
	if gs, isGS := h.src.(GroupSource); isGS && group != "" {
		sg, found, err := gs.GroupDefaults(ctx, group)
		if err != nil {
			return 0, 0, "", transient(err, "loading group defaults")
		}
		if found {
			g, ok = *sg, true
		}
	}
	pick := func(opt, grp, global *bool) *bool {
		if opt != nil {
			return opt
		}
		if ok && grp != nil {
			return grp
		}
		return global
	}
	sign = modeOf(pick(o.Sign, g.Sign, oc.Sign))
	enc = modeOf(pick(o.Encrypt, g.Encrypt, oc.Encrypt))
	if o.Type != nil && *o.Type != "" {
		typ, err = parseType(*o.Type)
	} else if ok && g.Type != "" {
		typ, err = parseType(g.Type)
	}
	return sign, enc, typ, err
}

// parseType accepts "S/MIME", "smime", "PGP", "pgp".
func parseType(s string) (result.Type, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "s/mime", "smime":
		return result.SMIME, nil
	case "pgp", "openpgp":
		return result.PGP, nil
	}
	return "", reason.New(reason.Malformed, "unknown security type %q (want S/MIME or PGP)", s)
}

// addresses of an outbound message.
type addresses struct {
	from         string
	to, cc, bcc  []string
	encryptTo    []string // to+cc (+from), de-duplicated
	parseProblem error
}

func parseAddresses(h textproto.Header, self bool) addresses {
	mh := mail.Header{Header: message.Header{Header: h}}
	var a addresses
	list := func(k string) []string {
		l, err := mh.AddressList(k)
		if err != nil && a.parseProblem == nil {
			a.parseProblem = fmt.Errorf("%s: %w", k, err)
		}
		var out []string
		for _, x := range l {
			out = append(out, strings.ToLower(x.Address))
		}
		return out
	}
	if f := list("From"); len(f) > 0 {
		a.from = f[0]
	}
	a.to, a.cc, a.bcc = list("To"), list("Cc"), list("Bcc")
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			a.encryptTo = append(a.encryptTo, s)
		}
	}
	for _, s := range append(append([]string{}, a.to...), a.cc...) {
		add(s)
	}
	if self {
		add(a.from)
	}
	return a
}

// Outbound signs and/or encrypts the article. When encryption was required
// and is impossible for any recipient, nothing is returned to send: the
// result is failed and lists each recipient with its reason.
func (h *Handler) Outbound(ctx context.Context, req *article.Request) (*article.Outcome, error) {
	msg, err := mimewalk.Parse(req.Raw, h.cfg.Limits)
	if err != nil {
		return nil, err
	}
	sign, enc, typ, err := h.wishes(ctx, req.Group, req.Options)
	if err != nil {
		return nil, err
	}
	addrs := parseAddresses(msg.Header, h.cfg.Outbound.EncryptToSelf)
	ob := &outbound{h: h, ctx: ctx, now: h.cfg.Now(), lang: h.cfg.Lang, msg: msg, addrs: addrs, sec: result.None()}
	return ob.run(sign, enc, typ)
}

type outbound struct {
	h     *Handler
	ctx   context.Context
	now   time.Time
	lang  reason.Lang
	msg   *mimewalk.Part
	addrs addresses
	sec   result.Security
	plans map[result.Type]*plan // memo: preflight and choosePlan ask twice
}

// plan is what is possible for one type.
type plan struct {
	typ        result.Type
	signErr    reason.Code // "" when a signing key exists
	smimeKey   *keys.SMIMEKey
	pgpKey     *openpgp.Entity
	recipients []recipientChoice
	bcc        []recipientChoice
	encErr     reason.Code // "" when every recipient has a key
}

func (ob *outbound) plan(t result.Type) (*plan, error) {
	if p, ok := ob.plans[t]; ok {
		return p, nil
	}
	p := &plan{typ: t}
	if ob.plans == nil {
		ob.plans = map[result.Type]*plan{}
	}
	ob.plans[t] = p
	var err error
	if ob.addrs.from == "" {
		p.signErr = reason.Malformed
	} else if t == result.SMIME {
		p.smimeKey, p.signErr, err = ob.h.chooseSMIMESigner(ob.ctx, ob.addrs.from, ob.now)
	} else {
		p.pgpKey, p.signErr, err = ob.h.choosePGPSigner(ob.ctx, ob.addrs.from, ob.now)
	}
	if err != nil {
		return nil, err
	}
	var trust *keys.Trust
	if t == result.SMIME {
		if trust, err = ob.h.src.Trust(ob.ctx); err != nil {
			return nil, transient(err, "loading the trust store")
		}
	}
	choose := func(addr string) (recipientChoice, error) {
		if t == result.SMIME {
			if addr == ob.addrs.from {
				// Our own copy: our certificate need not chain to a
				// trust anchor we hold.
				if rc, ok := ob.ownCertificate(addr); ok {
					return rc, nil
				}
			}
			return ob.h.chooseSMIMERecipient(ob.ctx, addr, trust, ob.now)
		}
		if addr == ob.addrs.from {
			if rc, ok := ob.ownPGPKey(addr); ok {
				return rc, nil
			}
		}
		return ob.h.choosePGPRecipient(ob.ctx, addr, ob.now)
	}
	for _, a := range ob.addrs.encryptTo {
		rc, err := choose(a)
		if err != nil {
			return nil, err
		}
		if rc.rcpt.Status != StatusFound && a == ob.addrs.from && !ob.isRecipient(a) {
			// Our own copy is a convenience: without our own certificate
			// the recipients are still protected.
			continue
		}
		if rc.rcpt.Status != StatusFound && p.encErr == "" {
			p.encErr = *rc.rcpt.Reason
		}
		p.recipients = append(p.recipients, rc)
	}
	for _, a := range ob.addrs.bcc {
		rc, err := choose(a)
		if err != nil {
			return nil, err
		}
		rc.rcpt.Bcc = true
		if rc.rcpt.Status != StatusFound && p.encErr == "" {
			p.encErr = *rc.rcpt.Reason
		}
		p.bcc = append(p.bcc, rc)
	}
	if len(ob.addrs.to)+len(ob.addrs.cc)+len(ob.addrs.bcc) == 0 && p.encErr == "" {
		p.encErr = missingCode(t)
	}
	return p, nil
}

// isRecipient reports whether addr is also a To or Cc recipient.
func (ob *outbound) isRecipient(addr string) bool {
	for _, a := range append(append([]string{}, ob.addrs.to...), ob.addrs.cc...) {
		if a == addr {
			return true
		}
	}
	return false
}

// ownCertificate returns our signing certificate for addr as an encryption
// recipient (encrypt-to-self).
func (ob *outbound) ownCertificate(addr string) (recipientChoice, bool) {
	ks, err := ob.h.src.SMIMEKeysByEmail(ob.ctx, addr)
	if err != nil {
		return recipientChoice{}, false
	}
	var best *keys.SMIMEKey
	for i := range ks {
		k := &ks[i]
		if k.Cert == nil || ob.now.After(k.Cert.NotAfter) || ob.now.Before(k.Cert.NotBefore) {
			continue
		}
		if best == nil || k.Cert.NotAfter.After(best.Cert.NotAfter) {
			best = k
		}
	}
	if best == nil {
		return recipientChoice{}, false
	}
	return recipientChoice{cert: best.Cert, rcpt: article.Recipient{
		Address: addr, Status: StatusFound, Certificate: result.Summarize(best.Cert),
		Comment: reason.Text(ob.lang, reason.MsgCertFound, addr),
	}}, true
}

func (ob *outbound) ownPGPKey(addr string) (recipientChoice, bool) {
	ents, err := ob.h.src.PGPSecretKeys(ob.ctx)
	if err != nil {
		return recipientChoice{}, false
	}
	for _, e := range ents {
		if keys.AddressMatches(keys.EntityEmails(e), addr) && pgp.CanEncrypt(e, ob.now) == nil {
			return recipientChoice{entity: e, rcpt: article.Recipient{
				Address: addr, Status: StatusFound, Key: pgp.Summarize(e),
				Comment: reason.Text(ob.lang, reason.MsgCertFound, addr),
			}}, true
		}
	}
	return recipientChoice{}, false
}

// choosePlan picks the type: the requested one, else the preferred one when
// it can do everything wished for, else the other one when it can.
func (ob *outbound) choosePlan(sign, enc mode, typ result.Type) (*plan, error) {
	if typ != "" {
		return ob.plan(typ)
	}
	prefer := ob.h.cfg.Outbound.Prefer
	if prefer == "" {
		prefer = result.SMIME
	}
	other := result.PGP
	if prefer == result.PGP {
		other = result.SMIME
	}
	first, err := ob.plan(prefer)
	if err != nil {
		return nil, err
	}
	if first.satisfies(sign, enc) {
		return first, nil
	}
	second, err := ob.plan(other)
	if err != nil {
		return nil, err
	}
	if second.satisfies(sign, enc) || second.score() > first.score() {
		return second, nil
	}
	return first, nil
}

// satisfies reports whether the plan can do every required operation and
// every automatic one.
func (p *plan) satisfies(sign, enc mode) bool {
	return (sign == modeOff || p.signErr == "") && (enc == modeOff || p.encErr == "")
}

func (p *plan) score() int {
	s := 0
	if p.signErr == "" {
		s++
	}
	if p.encErr == "" {
		s += 2
	}
	return s
}

func (ob *outbound) run(sign, enc mode, typ result.Type) (*article.Outcome, error) {
	lang := ob.lang
	if ob.addrs.parseProblem != nil || ob.addrs.from == "" {
		// Without a sender nothing can be signed, and an unparseable
		// recipient list cannot be encrypted to safely.
		if sign == modeOn || enc == modeOn || ob.addrs.parseProblem != nil {
			ob.sec.Sign = result.Failed(lang, reason.Malformed)
			ob.sec.Encryption = result.Failed(lang, reason.Malformed)
			return &article.Outcome{Security: ob.sec}, nil
		}
	}
	if sign == modeOff && enc == modeOff {
		ob.sec.Sign.Comment = reason.Text(lang, reason.MsgSignNotReq)
		ob.sec.Encryption.Comment = reason.Text(lang, reason.MsgEncryptionNotReq)
		return &article.Outcome{Security: ob.sec, Raw: ob.msg.Raw}, nil
	}
	p, err := ob.choosePlan(sign, enc, typ)
	if err != nil {
		return nil, err
	}
	doSign := sign == modeOn || (sign == modeAuto && p.signErr == "")
	doEnc := enc == modeOn || (enc == modeAuto && p.encErr == "")
	out := &article.Outcome{}
	for _, rc := range append(append([]recipientChoice{}, p.recipients...), p.bcc...) {
		out.Recipients = append(out.Recipients, rc.rcpt)
	}
	if doSign || doEnc {
		ob.sec.SetType(p.typ)
	}
	failed := false
	if doSign && p.signErr != "" {
		ob.sec.Sign = result.Failed(lang, p.signErr)
		failed = true
	}
	if doEnc && p.encErr != "" {
		ob.sec.Encryption = result.Failed(lang, p.encErr)
		ob.sec.Encryption.Comment = ob.missingComment(p)
		failed = true
	}
	if failed {
		// All or nothing: never send unsigned or unencrypted what was
		// required to be signed or encrypted.
		return ob.finish(out), nil
	}
	entity, err := mimewalk.TransportSafe(mimewalk.Entity(ob.msg), ob.h.cfg.Limits)
	if err != nil {
		return nil, err
	}
	if !doSign {
		ob.sec.Sign.Comment = reason.Text(lang, reason.MsgSignNotReq)
	}
	if !doEnc {
		ob.sec.Encryption.Comment = reason.Text(lang, reason.MsgEncryptionNotReq)
	}
	header := withoutBcc(ob.msg.Header)
	switch p.typ {
	case result.SMIME:
		err = ob.smime(p, entity, doSign, doEnc, header, out)
	default:
		err = ob.openpgp(p, entity, doSign, doEnc, header, out)
	}
	if err != nil {
		return nil, err
	}
	return ob.finish(out), nil
}

func (ob *outbound) finish(out *article.Outcome) *article.Outcome {
	out.Security = ob.sec
	return out
}

// missingComment names the recipients without a usable key, as Zammad does.
func (ob *outbound) missingComment(p *plan) string {
	var missing []string
	for _, rc := range append(append([]recipientChoice{}, p.recipients...), p.bcc...) {
		if rc.rcpt.Status != StatusFound {
			missing = append(missing, rc.rcpt.Address)
		}
	}
	if len(missing) == 0 {
		return reason.Text(ob.lang, reason.MsgNoRecipient)
	}
	return reason.Text(ob.lang, reason.MsgCertsNotFound, strings.Join(missing, ", "))
}

func withoutBcc(h textproto.Header) textproto.Header {
	c := h.Copy()
	c.Del("Bcc")
	return c
}

func (ob *outbound) smime(p *plan, entity []byte, doSign, doEnc bool, header textproto.Header, out *article.Outcome) error {
	oc := ob.h.cfg.Outbound
	body := entity
	if doSign {
		k := p.smimeKey
		opts := cms.SignOptions{Detached: !oc.Opaque, Hash: oc.Hash, PSS: oc.PSS, SigningTime: ob.now}
		if opts.Hash == 0 {
			opts.Hash = crypto.SHA256
		}
		// micalg must name the digest really used, which depends on the key.
		used, err := cms.SignatureHash(k.Cert.PublicKey, opts.Hash)
		if err != nil {
			return fmt.Errorf("signing: %w", err)
		}
		opts.Hash = used
		der, err := cms.Sign(entity, k.Cert, k.Key, k.Chain, opts)
		if err != nil {
			return fmt.Errorf("signing: %w", err)
		}
		if oc.Opaque {
			body = smimePart("signed-data", der)
		} else {
			body = multipartSigned("application/pkcs7-signature", cms.MicAlg(opts.Hash), entity,
				"Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n"+string(mimewalk.Base64Body(der)))
		}
		chk := result.OK(reason.Text(ob.lang, reason.MsgSigned, ob.addrs.from))
		chk.Signer = ob.addrs.from
		chk.Certificate = result.Summarize(k.Cert)
		chk.Algorithm = strings.ToLower(cms.MicAlg(opts.Hash))
		ob.sec.Sign = chk
	}
	if !doEnc {
		out.Raw = mimewalk.Replace(header, body)
		return nil
	}
	main := certsOf(p.recipients)
	cipher := ob.cipherFor(p.recipients)
	raw, err := ob.smimeEncrypt(body, main, cipher)
	if err != nil {
		return err
	}
	out.Raw = mimewalk.Replace(header, raw)
	for _, rc := range p.bcc {
		certs := []*x509.Certificate{rc.cert}
		if self := ob.selfCert(p); self != nil {
			certs = append(certs, self)
		}
		c, err := ob.smimeEncrypt(body, certs, cipher)
		if err != nil {
			return err
		}
		out.Copies = append(out.Copies, article.Copy{Recipients: []string{rc.rcpt.Address}, Raw: mimewalk.Replace(header, c)})
	}
	chk := result.OK(reason.Text(ob.lang, reason.MsgEncrypted, strings.Join(ob.addrs.encryptTo, ", ")))
	chk.Algorithm = string(cipher)
	ob.sec.Encryption = chk
	return nil
}

func (ob *outbound) selfCert(p *plan) *x509.Certificate {
	for _, rc := range p.recipients {
		if rc.rcpt.Address == ob.addrs.from {
			return rc.cert
		}
	}
	return nil
}

func (ob *outbound) smimeEncrypt(body []byte, certs []*x509.Certificate, cipher cms.Cipher) ([]byte, error) {
	der, err := cms.Encrypt(body, certs, cms.EncryptOptions{Cipher: cipher, OAEP: ob.h.cfg.Outbound.OAEP})
	if err != nil {
		return nil, fmt.Errorf("encrypting: %w", err)
	}
	st := "enveloped-data"
	if cipher == cms.AES128GCM || cipher == cms.AES256GCM {
		st = "authEnveloped-data"
	}
	return smimePart(st, der), nil
}

// cipherFor picks AES-256-GCM when configured, or when every recipient
// announced GCM in the SMIMECapabilities of their signed mail.
func (ob *outbound) cipherFor(rcpts []recipientChoice) cms.Cipher {
	if c := ob.h.cfg.Outbound.Cipher; c != "" {
		return c
	}
	for _, rc := range rcpts {
		if rc.rcpt.Address == ob.addrs.from {
			continue // we read GCM ourselves
		}
		caps, err := ob.h.src.Capabilities(ob.ctx, rc.rcpt.Address)
		if err != nil || !hasOID(caps, oidAES256GCM) {
			return cms.AES256CBC
		}
	}
	return cms.AES256GCM
}

const oidAES256GCM = "2.16.840.1.101.3.4.1.46"

func hasOID(list []string, oid string) bool {
	for _, o := range list {
		if o == oid {
			return true
		}
	}
	return false
}

func certsOf(rcs []recipientChoice) []*x509.Certificate {
	var out []*x509.Certificate
	for _, rc := range rcs {
		out = append(out, rc.cert)
	}
	return out
}

func entitiesOf(rcs []recipientChoice) []*openpgp.Entity {
	var out []*openpgp.Entity
	for _, rc := range rcs {
		out = append(out, rc.entity)
	}
	return out
}

func (ob *outbound) openpgp(p *plan, entity []byte, doSign, doEnc bool, header textproto.Header, out *article.Outcome) error {
	h := ob.h.cfg.Outbound.Hash
	if h == 0 {
		h = crypto.SHA256
	}
	var signer *openpgp.Entity
	if doSign {
		signer = p.pgpKey
		chk := result.OK(reason.Text(ob.lang, reason.MsgSigned, ob.addrs.from))
		chk.Signer = ob.addrs.from
		chk.Key = pgp.Summarize(signer)
		ob.sec.Sign = chk
	}
	if !doEnc {
		sig, micalg, err := pgp.SignDetached(entity, signer, h)
		if err != nil {
			return fmt.Errorf("signing: %w", err)
		}
		ob.sec.Sign.Algorithm = micalg
		body := multipartSigned("application/pgp-signature", micalg, entity,
			"Content-Type: application/pgp-signature; name=\"signature.asc\"\r\nContent-Description: OpenPGP digital signature\r\nContent-Disposition: attachment; filename=\"signature.asc\"\r\n\r\n"+string(sig))
		out.Raw = mimewalk.Replace(header, body)
		return nil
	}
	// Sign and encrypt in one pass (RFC 3156 6.2).
	enc := func(to []*openpgp.Entity) ([]byte, error) {
		armored, err := pgp.Encrypt(entity, to, signer, h)
		if err != nil {
			return nil, fmt.Errorf("encrypting: %w", err)
		}
		return multipartEncrypted(armored), nil
	}
	body, err := enc(entitiesOf(p.recipients))
	if err != nil {
		return err
	}
	out.Raw = mimewalk.Replace(header, body)
	for _, rc := range p.bcc {
		to := []*openpgp.Entity{rc.entity}
		for _, own := range p.recipients {
			if own.rcpt.Address == ob.addrs.from {
				to = append(to, own.entity)
			}
		}
		c, err := enc(to)
		if err != nil {
			return err
		}
		out.Copies = append(out.Copies, article.Copy{Recipients: []string{rc.rcpt.Address}, Raw: mimewalk.Replace(header, c)})
	}
	chk := result.OK(reason.Text(ob.lang, reason.MsgEncrypted, strings.Join(ob.addrs.encryptTo, ", ")))
	chk.Algorithm = "aes-256"
	ob.sec.Encryption = chk
	return nil
}

// newBoundary returns a random MIME boundary.
func newBoundary() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(errors.New("crypto/rand failed: " + err.Error()))
	}
	return "secmail-" + hex.EncodeToString(b[:])
}

// multipartSigned builds an RFC 1847 multipart/signed entity around the
// exact signed bytes.
func multipartSigned(protocol, micalg string, signed []byte, sigPart string) []byte {
	b := newBoundary()
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "Content-Type: multipart/signed; protocol=\"%s\"; micalg=\"%s\"; boundary=\"%s\"\r\n\r\n", protocol, micalg, b)
	buf.WriteString("This is a cryptographically signed message in MIME format.\r\n\r\n")
	buf.WriteString("--" + b + "\r\n")
	buf.Write(signed)
	buf.WriteString("\r\n--" + b + "\r\n")
	buf.WriteString(sigPart)
	buf.WriteString("\r\n--" + b + "--\r\n")
	return buf.Bytes()
}

// multipartEncrypted builds an RFC 3156 multipart/encrypted entity.
func multipartEncrypted(armored []byte) []byte {
	b := newBoundary()
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"%s\"\r\n\r\n", b)
	buf.WriteString("This is an OpenPGP/MIME encrypted message (RFC 3156).\r\n")
	buf.WriteString("--" + b + "\r\nContent-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n")
	buf.WriteString("\r\n--" + b + "\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\nContent-Description: OpenPGP encrypted message\r\nContent-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n")
	buf.Write(mimewalk.Canonicalize(armored))
	buf.WriteString("\r\n--" + b + "--\r\n")
	return buf.Bytes()
}

// smimePart builds an application/pkcs7-mime entity.
func smimePart(smimeType string, der []byte) []byte {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "Content-Type: application/pkcs7-mime; smime-type=%s; name=\"smime.p7m\"\r\n", smimeType)
	buf.WriteString("Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n")
	buf.Write(mimewalk.Base64Body(der))
	return buf.Bytes()
}
