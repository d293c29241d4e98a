package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	_ "crypto/sha1" // SHA-1 signatures still verify (flagged weak)
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/secmail/secmail/reason"
)

// Limits on counts inside one SignedData; real messages carry a handful.
const (
	sdMaxSigners = 16
	sdMaxCerts   = 64
)

var (
	sdTagCerts       = cbasn1.Tag(0).Constructed().ContextSpecific()
	sdTagCRLs        = cbasn1.Tag(1).Constructed().ContextSpecific()
	sdTagEContent    = cbasn1.Tag(0).Constructed().ContextSpecific()
	sdTagSignedAttrs = cbasn1.Tag(0).Constructed().ContextSpecific()
	sdTagUnsigned    = cbasn1.Tag(1).Constructed().ContextSpecific()
	sdTagSKI         = cbasn1.Tag(0).ContextSpecific()
)

// SignedData is a parsed CMS SignedData (RFC 5652 §5). Parsing checks only
// the structure; Verify checks the signatures.
type SignedData struct {
	contentType asn1.ObjectIdentifier
	content     []byte // nil when detached
	certs       []*x509.Certificate
	certErr     error // first certificate that failed to parse
	signers     []sdSigner
	verifier    PublicKeyVerifier
}

// sdSigner is a SignerInfo as parsed, not yet verified.
type sdSigner struct {
	sid          RecipientID
	digestOID    asn1.ObjectIdentifier
	signedAttrs  []byte // full [0] IMPLICIT element, nil when absent
	attrs        []sdAttribute
	sigOID       asn1.ObjectIdentifier
	sigParams    []byte
	signature    []byte
	hasSignedAtt bool
}

// SignerInfo describes one verified signer.
type SignerInfo struct {
	Cert               *x509.Certificate
	SID                RecipientID
	DigestAlgorithm    string // "sha256" ...
	SignatureAlgorithm string // SigRSAPKCS1, SigRSAPSS, SigECDSA, SigEd25519
	// Hash is the digest algorithm as a crypto.Hash.
	Hash        crypto.Hash
	SigningTime *time.Time
	// Capabilities holds the SMIMECapabilities OIDs (dotted) from the
	// signed attributes, in the signer's order of preference.
	Capabilities []string
	// Weak is true when the digest is SHA-1: the signature verified, but
	// the caller should warn (reason.WeakAlgorithm).
	Weak bool
}

// ParseSignedData parses a ContentInfo holding SignedData. BER as written
// by streaming encoders is accepted. The result refers to der (content,
// signatures): der must not change while it is in use.
func ParseSignedData(der []byte) (sd *SignedData, err error) {
	return ParseSignedDataWith(der, SignedDataOptions{})
}

// ParseSignedDataWith is ParseSignedData with a certificate cache and a
// signature verifier for the result's Verify.
func ParseSignedDataWith(der []byte, opts SignedDataOptions) (sd *SignedData, err error) {
	defer Recover(&err)
	ci, err := ParseContentInfo(der)
	if err != nil {
		return nil, err
	}
	if !ci.ContentType.Equal(OIDSignedData) {
		return nil, reason.New(reason.Malformed, "content type %s is not SignedData", ci.ContentType)
	}
	sd, err = sdParse(ci.Content.Bytes, opts.Certs) // Bytes: the element inside the [0] EXPLICIT tag
	if err != nil {
		return nil, err
	}
	sd.verifier = opts.Verifier
	if sd.verifier == nil {
		sd.verifier = GoVerifier{}
	}
	return sd, nil
}

func sdParse(b []byte, cache *CertCache) (*SignedData, error) {
	bad := func(what string) error { return reason.New(reason.Malformed, "SignedData: invalid %s", what) }
	s := cryptobyte.String(b)
	var body cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, bad("structure")
	}
	var version int64
	if !body.ReadASN1Integer(&version) {
		return nil, bad("version")
	}
	var digestAlgs cryptobyte.String
	if !body.ReadASN1(&digestAlgs, cbasn1.SET) {
		return nil, bad("digestAlgorithms")
	}
	sd := &SignedData{}

	var eci, eContent cryptobyte.String
	var hasContent bool
	if !body.ReadASN1(&eci, cbasn1.SEQUENCE) ||
		!eci.ReadASN1ObjectIdentifier(&sd.contentType) ||
		!eci.ReadOptionalASN1(&eContent, &hasContent, sdTagEContent) || !eci.Empty() {
		return nil, bad("encapContentInfo")
	}
	if hasContent {
		var octets cryptobyte.String
		if !eContent.ReadASN1(&octets, cbasn1.OCTET_STRING) || !eContent.Empty() {
			return nil, bad("eContent")
		}
		// A view, not a copy: the caller's bytes (or normalizeBER's
		// private copy) outlive the SignedData, as the signatures do.
		sd.content = octets
		if sd.content == nil {
			sd.content = []byte{} // present but empty is not detached
		}
	}

	var certs cryptobyte.String
	var hasCerts bool
	if !body.ReadOptionalASN1(&certs, &hasCerts, sdTagCerts) {
		return nil, bad("certificates")
	}
	for !certs.Empty() {
		var el cryptobyte.String
		var tag cbasn1.Tag
		if !certs.ReadAnyASN1Element(&el, &tag) {
			return nil, bad("certificates")
		}
		if tag != cbasn1.SEQUENCE {
			continue // attribute or other certificate formats: not ours to use
		}
		if len(sd.certs) >= sdMaxCerts {
			return nil, reason.New(reason.TooComplex, "more than %d certificates", sdMaxCerts)
		}
		var c *x509.Certificate
		var err error
		if cache != nil {
			c, err = cache.Parse(el)
		} else {
			c, err = x509.ParseCertificate(el)
		}
		if err != nil {
			// Keep going: one odd CA certificate must not hide a good
			// signer certificate. Reported if the signer is not found.
			if sd.certErr == nil {
				sd.certErr = err
			}
			continue
		}
		sd.certs = append(sd.certs, c)
	}
	var crls cryptobyte.String
	if !body.ReadOptionalASN1(&crls, nil, sdTagCRLs) {
		return nil, bad("crls")
	}

	var infos cryptobyte.String
	if !body.ReadASN1(&infos, cbasn1.SET) || !body.Empty() {
		return nil, bad("signerInfos")
	}
	for !infos.Empty() {
		if len(sd.signers) >= sdMaxSigners {
			return nil, reason.New(reason.TooComplex, "more than %d signers", sdMaxSigners)
		}
		si, err := sdParseSignerInfo(&infos)
		if err != nil {
			return nil, err
		}
		sd.signers = append(sd.signers, si)
	}
	return sd, nil
}

func sdParseSignerInfo(s *cryptobyte.String) (sdSigner, error) {
	var si sdSigner
	bad := func(what string) error { return reason.New(reason.Malformed, "SignerInfo: invalid %s", what) }
	var body cryptobyte.String
	var version int64
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1Integer(&version) {
		return si, bad("structure")
	}
	switch {
	case body.PeekASN1Tag(cbasn1.SEQUENCE):
		var ias, issuer cryptobyte.String
		serial := new(big.Int)
		if !body.ReadASN1(&ias, cbasn1.SEQUENCE) ||
			!ias.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
			!ias.ReadASN1Integer(serial) || !ias.Empty() {
			return si, bad("issuerAndSerialNumber")
		}
		si.sid.IssuerAndSerial = &IssuerAndSerial{Issuer: sdRawName(issuer), Serial: serial}
	case body.PeekASN1Tag(sdTagSKI):
		var ski cryptobyte.String
		if !body.ReadASN1(&ski, sdTagSKI) {
			return si, bad("subjectKeyIdentifier")
		}
		si.sid.SKI = append([]byte{}, ski...)
	default:
		return si, bad("signer identifier")
	}
	var params []byte
	var ok bool
	if si.digestOID, _, ok = sdReadAlgID(&body); !ok {
		return si, bad("digestAlgorithm")
	}
	if body.PeekASN1Tag(sdTagSignedAttrs) {
		var el cryptobyte.String
		if !body.ReadASN1Element(&el, sdTagSignedAttrs) {
			return si, bad("signedAttrs")
		}
		si.signedAttrs = el
		si.hasSignedAtt = true
		var inner cryptobyte.String
		if !el.ReadASN1(&inner, sdTagSignedAttrs) {
			return si, bad("signedAttrs")
		}
		attrs, err := sdParseAttributes(inner)
		if err != nil {
			return si, err
		}
		si.attrs = attrs
	}
	if si.sigOID, params, ok = sdReadAlgID(&body); !ok {
		return si, bad("signatureAlgorithm")
	}
	si.sigParams = params
	var sig cryptobyte.String
	if !body.ReadASN1(&sig, cbasn1.OCTET_STRING) {
		return si, bad("signature")
	}
	si.signature = sig
	if !body.ReadOptionalASN1(nil, nil, sdTagUnsigned) || !body.Empty() {
		return si, bad("unsignedAttrs")
	}
	return si, nil
}

// sdRawName wraps a DER Name in the RawValue that IssuerAndSerial uses.
func sdRawName(der []byte) asn1.RawValue {
	var rv asn1.RawValue
	if _, err := asn1.Unmarshal(der, &rv); err != nil {
		return asn1.RawValue{FullBytes: der}
	}
	return rv
}

// Certificates returns the certificates carried in the message.
func (sd *SignedData) Certificates() []*x509.Certificate { return sd.certs }

// Content returns the encapsulated content, or nil when the signature is
// detached.
func (sd *SignedData) Content() []byte { return sd.content }

// ContentType returns the eContentType (normally id-data).
func (sd *SignedData) ContentType() asn1.ObjectIdentifier { return sd.contentType }

// Detached reports whether the message carries no content of its own.
func (sd *SignedData) Detached() bool { return sd.content == nil }

// SignerIDs returns the identifiers of the signers, without verifying.
func (sd *SignedData) SignerIDs() []RecipientID {
	out := make([]RecipientID, len(sd.signers))
	for i, s := range sd.signers {
		out[i] = s.sid
	}
	return out
}

// Verify checks every signer's signature over detached, or over the
// encapsulated content when detached is nil. lookup (may be nil) is asked
// for the certificate of a signer that the message does not carry.
//
// RSA and ECDSA signatures are checked by the PublicKeyVerifier given to
// ParseSignedDataWith, else by crypto/rsa and crypto/ecdsa.
//
// It checks signatures only; whether the signer certificate is trusted is
// package certcheck's job. On error the returned slice describes the signers
// examined so far, the failing one last (its Cert set when it was found);
// none of them is to be trusted.
func (sd *SignedData) Verify(detached []byte, lookup func(RecipientID) []*x509.Certificate) (infos []SignerInfo, err error) {
	defer Recover(&err)
	content := detached
	if content == nil {
		content = sd.content
	}
	if content == nil {
		return nil, reason.New(reason.Malformed, "detached signature without content")
	}
	if len(content) > MaxInput {
		return nil, reason.New(reason.TooLarge, "signed content of %d bytes exceeds %d", len(content), MaxInput)
	}
	if len(sd.signers) == 0 {
		return nil, reason.New(reason.Malformed, "SignedData without signers")
	}
	digests := map[crypto.Hash][]byte{} // one pass over the content per hash
	for i := range sd.signers {
		info, err := sd.verifyOne(&sd.signers[i], content, digests, lookup)
		infos = append(infos, info)
		if err != nil {
			return infos, err
		}
	}
	return infos, nil
}

func (sd *SignedData) verifyOne(si *sdSigner, content []byte, digests map[crypto.Hash][]byte, lookup func(RecipientID) []*x509.Certificate) (SignerInfo, error) {
	info := SignerInfo{SID: si.sid}
	h, name, err := sdDigestByOID(si.digestOID)
	if err != nil {
		return info, err
	}
	info.DigestAlgorithm, info.Hash, info.Weak = name, h, h == crypto.SHA1
	scheme, err := sdSigByOID(si.sigOID, si.sigParams)
	if err != nil {
		return info, err
	}
	info.SignatureAlgorithm = scheme.name
	if scheme.hash != 0 && scheme.hash != h {
		return info, reason.New(reason.UnsupportedAlgorithm, "signature algorithm %s does not match digest %s", si.sigOID, name)
	}

	candidates := sdMatching(sd.certs, si.sid)
	if len(candidates) == 0 && lookup != nil {
		candidates = sdMatching(lookup(si.sid), si.sid)
	}
	if len(candidates) == 0 {
		if sd.certErr != nil {
			return info, reason.Wrap(reason.Malformed, sd.certErr, "certificate in message could not be parsed")
		}
		return info, reason.New(reason.NoCertificate, "signer certificate not found")
	}
	info.Cert = candidates[0]

	digest, ok := digests[h]
	if !ok {
		hh := h.New()
		hh.Write(content)
		digest = hh.Sum(nil)
		digests[h] = digest
	}

	// What the signature covers: the DER SET OF signed attributes (tag
	// rewritten from [0] IMPLICIT to SET, RFC 5652 §5.4), else the content.
	// Hashed without building that SET: only Ed25519 needs the bytes.
	signed, signedDigest := content, digest
	if si.hasSignedAtt {
		if err := sd.checkAttrs(si, digest, &info); err != nil {
			return info, err
		}
		if scheme.name == SigEd25519 {
			signed = append([]byte{0x31}, si.signedAttrs[1:]...)
		} else {
			hh := h.New()
			hh.Write([]byte{0x31})
			hh.Write(si.signedAttrs[1:])
			signedDigest = hh.Sum(nil)
		}
	} else if !sd.contentType.Equal(OIDData) {
		return info, reason.New(reason.Malformed, "signed attributes missing for content type %s", sd.contentType)
	}

	var lastErr error
	for _, c := range candidates {
		err := sdCheckSignature(sd.verifier, c.PublicKey, scheme, h, signed, signedDigest, si.signature)
		if err == nil {
			info.Cert = c
			return info, nil
		}
		if lastErr == nil {
			lastErr = err
		}
	}
	return info, lastErr
}

// checkAttrs enforces RFC 5652 §5.3/§11: content-type equal to eContentType,
// message-digest equal to the content's digest; it also reads signing-time
// and SMIMECapabilities into info.
func (sd *SignedData) checkAttrs(si *sdSigner, digest []byte, info *SignerInfo) error {
	ct, found, err := sdFindAttr(si.attrs, OIDAttrContentType)
	if err != nil {
		return err
	}
	if !found {
		return reason.New(reason.Malformed, "signed attributes lack content-type")
	}
	var oid asn1.ObjectIdentifier
	s := cryptobyte.String(ct)
	if !s.ReadASN1ObjectIdentifier(&oid) || !s.Empty() {
		return reason.New(reason.Malformed, "invalid content-type attribute")
	}
	if !oid.Equal(sd.contentType) {
		return reason.New(reason.BadSignature, "content-type attribute %s differs from content type %s", oid, sd.contentType)
	}
	md, found, err := sdFindAttr(si.attrs, OIDAttrMessageDigest)
	if err != nil {
		return err
	}
	if !found {
		return reason.New(reason.Malformed, "signed attributes lack message-digest")
	}
	var mdv cryptobyte.String
	s = cryptobyte.String(md)
	if !s.ReadASN1(&mdv, cbasn1.OCTET_STRING) || !s.Empty() {
		return reason.New(reason.Malformed, "invalid message-digest attribute")
	}
	if !bytes.Equal(mdv, digest) {
		return reason.New(reason.BadSignature, "message digest mismatch: content was changed")
	}
	st, found, err := sdFindAttr(si.attrs, OIDAttrSigningTime)
	if err != nil {
		return err
	}
	if found {
		t, err := sdParseTime(st)
		if err != nil {
			return err
		}
		info.SigningTime = &t
	}
	for _, a := range si.attrs {
		if a.Type.Equal(OIDAttrSMIMECapability) && len(a.Values) > 0 {
			info.Capabilities = sdParseCapabilities(a.Values[0])
			break
		}
	}
	return nil
}

// sdCheckSignature verifies sig with pub, RSA and ECDSA through v. digest
// is the hash of signed (unused for Ed25519, which signs the message
// itself, RFC 8419 §3.1).
func sdCheckSignature(v PublicKeyVerifier, pub crypto.PublicKey, scheme sdSigScheme, h crypto.Hash, signed, digest, sig []byte) error {
	badKey := func() error {
		return reason.New(reason.BadSignature, "certificate key %T does not fit signature algorithm %s", pub, scheme.name)
	}
	if pub == nil {
		// crypto/x509 leaves PublicKey nil for key algorithms it does not know.
		return reason.New(reason.UnsupportedAlgorithm, "signer certificate has an unsupported public key algorithm")
	}
	var err error
	switch scheme.name {
	case SigRSAPKCS1:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return badKey()
		}
		err = v.VerifyPKCS1v15(k, h, digest, sig)
	case SigRSAPSS:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return badKey()
		}
		err = v.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: scheme.saltLength, Hash: h})
	case SigECDSA:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return badKey()
		}
		if !v.VerifyASN1(k, digest, sig) {
			err = errors.New("ecdsa: verification error")
		}
	case SigEd25519:
		k, ok := pub.(ed25519.PublicKey)
		if !ok {
			return badKey()
		}
		if !ed25519.Verify(k, signed, sig) {
			err = errors.New("ed25519: verification error")
		}
	default:
		return reason.New(reason.UnsupportedAlgorithm, "signature scheme %s", scheme.name)
	}
	if err != nil {
		return reason.Wrap(reason.BadSignature, err, "signature invalid")
	}
	return nil
}

// sdMatching returns the certificates that id names.
func sdMatching(certs []*x509.Certificate, id RecipientID) []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range certs {
		if c != nil && SignerMatches(c, id) {
			out = append(out, c)
		}
	}
	return out
}

// SignerMatches reports whether cert is the certificate id names (issuer
// and serial number, or subject key identifier).
func SignerMatches(cert *x509.Certificate, id RecipientID) bool {
	switch {
	case id.IssuerAndSerial != nil:
		ias := id.IssuerAndSerial
		return ias.Serial != nil && cert.SerialNumber != nil &&
			cert.SerialNumber.Cmp(ias.Serial) == 0 &&
			bytes.Equal(cert.RawIssuer, ias.Issuer.FullBytes)
	case len(id.SKI) > 0:
		return bytes.Equal(cert.SubjectKeyId, id.SKI)
	}
	return false
}
