package cms

import (
	"bytes"
	"crypto"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/reason"
)

// envMaxRecipients bounds the RecipientInfos (and RecipientEncryptedKeys)
// read from one message; real messages have a handful.
const envMaxRecipients = 1024

// envMaxKeyOps bounds the private-key operations one message can cause:
// a hostile message repeating our identifier must not make us spend
// seconds of RSA time on it.
const envMaxKeyOps = 16

// DecryptOptions tune Decrypt. The zero value refuses 3DES; callers that
// follow the product default set AllowLegacy3DES.
type DecryptOptions struct {
	// AllowLegacy3DES lets 3DES content decrypt, reported with Weak set.
	AllowLegacy3DES bool
	// CBC, when set, decrypts AES-CBC content instead of crypto/cipher.
	CBC CBCDecrypter
}

// CBCDecrypter decrypts AES-CBC content for Decrypt in place of
// crypto/cipher, whose CBC decryption on amd64 runs one block per call.
// Decrypt still chooses the key, checks and strips the padding (in
// constant time) itself, so an implementation only has to give exactly
// the bytes crypto/cipher's CBC decrypter would. keybackend/openssl's
// Backend is one; keybackend.Offload returns it.
type CBCDecrypter interface {
	// DecryptAESCBC decrypts buf in place with key (16, 24 or 32 bytes)
	// and the 16-byte iv; len(buf) is a multiple of 16. Padding is left
	// in place.
	DecryptAESCBC(key, iv, buf []byte) error
}

// Decrypted is the outcome of a successful Decrypt.
type Decrypted struct {
	Plaintext []byte
	// Cipher is the content algorithm actually used.
	Cipher Cipher
	// KeyAlgorithm names the key management: "rsa-pkcs1v15",
	// "rsa-oaep-sha1", "rsa-oaep-sha256", "ecdh-p256-sha256-kdf" ...
	KeyAlgorithm string
	// Recipient is the one of our keys that opened the message (points
	// into the slice given to Decrypt).
	Recipient *keys.SMIMEKey
	// Weak is set for legacy 3DES content.
	Weak bool
	// Authenticated is set for AuthEnvelopedData (AES-GCM).
	Authenticated bool
}

// envMsg is the parsed outer structure of an (Auth)EnvelopedData.
type envMsg struct {
	auth   bool
	ris    []byte // RecipientInfos SET, DER
	alg    AlgorithmIdentifier
	chunks [][]byte // encrypted content, as views of the input
	total  int
	aad    []byte // DER of authAttrs with a SET OF tag, or nil
	mac    []byte
}

// IsEnveloped reports whether der is EnvelopedData or AuthEnvelopedData.
// It reads only the outer content type, so it is cheap on large input.
func IsEnveloped(der []byte) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	class, constructed, tag, hdr, _, _, err := envHeader(der)
	if err != nil || class != envUniversal || !constructed || tag != 16 {
		return false
	}
	e, _, err := envNext(der[hdr:], 1)
	if err != nil || !e.is(envUniversal, false, 6) {
		return false
	}
	var oid asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(e.full, &oid); err != nil {
		return false
	}
	return oid.Equal(OIDEnvelopedData) || oid.Equal(OIDAuthEnvelopedData)
}

func envMalformed(err error, detail string) error {
	var re *reason.Error
	if errors.As(err, &re) {
		return err
	}
	return reason.Wrap(reason.Malformed, err, detail)
}

// envParse walks ContentInfo → (Auth)EnvelopedData without copying the
// encrypted content.
func envParse(der []byte) (*envMsg, error) {
	ci, rest, err := envNext(der, 0)
	if err != nil {
		return nil, envMalformed(err, "CMS ContentInfo")
	}
	if len(rest) != 0 {
		return nil, reason.New(reason.Malformed, "trailing data after CMS ContentInfo")
	}
	if !ci.is(envUniversal, true, 16) {
		return nil, reason.Wrap(reason.Malformed, ErrNotCMS, "CMS ContentInfo")
	}
	parts, err := envChildren(ci, 0, 2)
	if err != nil || len(parts) != 2 || !parts[0].is(envUniversal, false, 6) || !parts[1].is(envContext, true, 0) {
		return nil, reason.Wrap(reason.Malformed, ErrNotCMS, "CMS ContentInfo")
	}
	var ct asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(parts[0].full, &ct); err != nil {
		return nil, reason.Wrap(reason.Malformed, err, "CMS content type")
	}
	m := &envMsg{}
	switch {
	case ct.Equal(OIDEnvelopedData):
	case ct.Equal(OIDAuthEnvelopedData):
		m.auth = true
	default:
		return nil, reason.New(reason.Malformed, "CMS content type %s is not (Auth)EnvelopedData", ct)
	}
	inner, err := envChildren(parts[1], 1, 1)
	if err != nil || len(inner) != 1 || !inner[0].is(envUniversal, true, 16) {
		return nil, envMalformed(errEnvBER, "EnvelopedData")
	}
	fields, err := envChildren(inner[0], 2, 8)
	if err != nil {
		return nil, envMalformed(err, "EnvelopedData")
	}
	i := 0
	next := func() (envElem, bool) {
		if i >= len(fields) {
			return envElem{}, false
		}
		i++
		return fields[i-1], true
	}
	peek := func(class byte, constructed bool, tag int) bool {
		return i < len(fields) && fields[i].is(class, constructed, tag)
	}
	if f, ok := next(); !ok || !f.is(envUniversal, false, 2) {
		return nil, reason.New(reason.Malformed, "EnvelopedData version")
	}
	if peek(envContext, true, 0) {
		next() // originatorInfo: certificates for static-static ECDH; unused
	}
	f, ok := next()
	if !ok || !f.is(envUniversal, true, 17) {
		return nil, reason.New(reason.Malformed, "EnvelopedData recipientInfos")
	}
	if m.ris, err = normalizeBER(f.full); err != nil {
		return nil, envMalformed(err, "recipientInfos")
	}
	f, ok = next()
	if !ok || !f.is(envUniversal, true, 16) {
		return nil, reason.New(reason.Malformed, "EnvelopedData encryptedContentInfo")
	}
	eci, err := envChildren(f, 3, 3)
	if err != nil || len(eci) < 2 || !eci[0].is(envUniversal, false, 6) || !eci[1].is(envUniversal, true, 16) {
		return nil, reason.New(reason.Malformed, "EnvelopedData encryptedContentInfo")
	}
	algDER, err := normalizeBER(eci[1].full)
	if err != nil {
		return nil, envMalformed(err, "content encryption algorithm")
	}
	if rest, err := asn1.Unmarshal(algDER, &m.alg); err != nil || len(rest) != 0 {
		return nil, reason.New(reason.Malformed, "content encryption algorithm")
	}
	if len(eci) != 3 || eci[2].class != envContext || eci[2].tag != 0 {
		return nil, reason.New(reason.Malformed, "EnvelopedData without encrypted content (detached content is not supported)")
	}
	if m.chunks, err = envOctets(eci[2], 4, nil); err != nil {
		return nil, envMalformed(err, "encrypted content")
	}
	for _, c := range m.chunks {
		m.total += len(c)
	}
	if m.auth {
		if peek(envContext, true, 1) {
			f, _ := next()
			aad, err := normalizeBER(f.full)
			if err != nil {
				return nil, envMalformed(err, "authAttrs")
			}
			// RFC 5083 §2.2: the MAC covers the DER SET OF encoding,
			// not the IMPLICIT [1] tag.
			aad = append([]byte{}, aad...)
			aad[0] = 0x31
			m.aad = aad
		}
		f, ok := next()
		if !ok || f.class != envUniversal || f.tag != 4 {
			return nil, reason.New(reason.Malformed, "AuthEnvelopedData without mac")
		}
		chunks, err := envOctets(f, 3, nil)
		if err != nil {
			return nil, envMalformed(err, "mac")
		}
		m.mac = bytes.Join(chunks, nil)
		if peek(envContext, true, 2) {
			next()
		}
	} else if peek(envContext, true, 1) {
		next() // unprotectedAttrs
	}
	if i != len(fields) {
		return nil, reason.New(reason.Malformed, "unexpected field in EnvelopedData")
	}
	return m, nil
}

// envRecipient is one parsed RecipientInfo: a key transport one (ktri),
// one RecipientEncryptedKey of a key agreement one (kari), or another kind
// we only describe.
type envRecipient struct {
	rid    RecipientID
	kari   *envKari
	keyAlg AlgorithmIdentifier // ktri only
	encKey []byte
	other  string // kekri, pwri, ori: never ours
}

func envParseRecipients(set []byte) ([]envRecipient, error) {
	s := cryptobyte.String(set)
	var body cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SET) || !s.Empty() {
		return nil, reason.New(reason.Malformed, "recipientInfos")
	}
	var out []envRecipient
	for n := 0; !body.Empty(); n++ {
		if n >= envMaxRecipients {
			return nil, reason.New(reason.TooComplex, "more than %d RecipientInfos", envMaxRecipients)
		}
		var ri cryptobyte.String
		var tag cbasn1.Tag
		if !body.ReadAnyASN1(&ri, &tag) {
			return nil, reason.New(reason.Malformed, "RecipientInfo")
		}
		switch tag {
		case cbasn1.SEQUENCE:
			r, err := envParseKtri(ri)
			if err != nil {
				return nil, envMalformed(err, "KeyTransRecipientInfo")
			}
			out = append(out, r)
		case cbasn1.Tag(1).Constructed().ContextSpecific():
			k, err := envParseKari(ri)
			if err != nil {
				return nil, envMalformed(err, "KeyAgreeRecipientInfo")
			}
			for _, rek := range k.keys {
				out = append(out, envRecipient{rid: rek.rid, kari: k, encKey: rek.encKey})
			}
		case cbasn1.Tag(2).Constructed().ContextSpecific():
			out = append(out, envRecipient{other: "a symmetric key (KEKRecipientInfo)"})
		case cbasn1.Tag(3).Constructed().ContextSpecific():
			out = append(out, envRecipient{other: "a password (PasswordRecipientInfo)"})
		default:
			out = append(out, envRecipient{other: "another recipient type"})
		}
	}
	return out, nil
}

func envParseKtri(s cryptobyte.String) (envRecipient, error) {
	var r envRecipient
	var version int
	var rid cryptobyte.String
	var ridTag cbasn1.Tag
	if !s.ReadASN1Integer(&version) || (version != 0 && version != 2) || !s.ReadAnyASN1Element(&rid, &ridTag) {
		return r, errors.New("bad header")
	}
	switch ridTag {
	case cbasn1.SEQUENCE:
		ias, err := envParseIssuerAndSerial(rid)
		if err != nil {
			return r, err
		}
		r.rid.IssuerAndSerial = ias
	case cbasn1.Tag(0).ContextSpecific():
		var ski cryptobyte.String
		if !rid.ReadASN1(&ski, ridTag) {
			return r, errors.New("bad subjectKeyIdentifier")
		}
		r.rid.SKI = ski
	default:
		return r, errors.New("bad RecipientIdentifier")
	}
	var alg cryptobyte.String
	if !s.ReadASN1Element(&alg, cbasn1.SEQUENCE) {
		return r, errors.New("bad keyEncryptionAlgorithm")
	}
	if rest, err := asn1.Unmarshal(alg, &r.keyAlg); err != nil || len(rest) != 0 {
		return r, errors.New("bad keyEncryptionAlgorithm")
	}
	if !s.ReadASN1Bytes(&r.encKey, cbasn1.OCTET_STRING) || !s.Empty() {
		return r, errors.New("bad encryptedKey")
	}
	return r, nil
}

// envParseIssuerAndSerial parses a full IssuerAndSerialNumber element.
func envParseIssuerAndSerial(el cryptobyte.String) (*IssuerAndSerial, error) {
	var seq, name cryptobyte.String
	ias := &IssuerAndSerial{}
	if !el.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Element(&name, cbasn1.SEQUENCE) {
		return nil, errors.New("bad IssuerAndSerialNumber")
	}
	serial := new(big.Int)
	if !seq.ReadASN1Integer(serial) || !seq.Empty() {
		return nil, errors.New("bad IssuerAndSerialNumber serial")
	}
	if _, err := asn1.Unmarshal(name, &ias.Issuer); err != nil {
		return nil, errors.New("bad IssuerAndSerialNumber issuer")
	}
	ias.Serial = serial
	return ias, nil
}

// envMatches reports whether rid names cert.
func envMatches(cert *x509.Certificate, rid RecipientID) bool {
	if cert == nil {
		return false
	}
	switch {
	case rid.IssuerAndSerial != nil:
		ias := rid.IssuerAndSerial
		return ias.Serial != nil && cert.SerialNumber != nil && cert.SerialNumber.Cmp(ias.Serial) == 0 &&
			bytes.Equal(cert.RawIssuer, ias.Issuer.FullBytes)
	case len(rid.SKI) > 0:
		if len(cert.SubjectKeyId) > 0 {
			return bytes.Equal(cert.SubjectKeyId, rid.SKI)
		}
		// No extension: senders derive the SKI as SHA-1 of the key
		// (RFC 5280 §4.2.1.2 method 1), as openssl does.
		return bytes.Equal(envKeySHA1(cert), rid.SKI)
	}
	return false
}

func envKeySHA1(cert *x509.Certificate) []byte {
	s := cryptobyte.String(cert.RawSubjectPublicKeyInfo)
	var spki cryptobyte.String
	var bits asn1.BitString
	if !s.ReadASN1(&spki, cbasn1.SEQUENCE) || !spki.SkipASN1(cbasn1.SEQUENCE) || !spki.ReadASN1BitString(&bits) {
		return nil
	}
	sum := sha1.Sum(bits.Bytes)
	return sum[:]
}

// describe names a recipient for the NoPrivateKey detail.
func (r envRecipient) describe() string {
	if r.other != "" {
		return r.other
	}
	if ias := r.rid.IssuerAndSerial; ias != nil {
		var rdn pkix.RDNSequence
		issuer := "?"
		if _, err := asn1.Unmarshal(ias.Issuer.FullBytes, &rdn); err == nil {
			var n pkix.Name
			n.FillFromRDNSequence(&rdn)
			issuer = n.String()
		}
		return fmt.Sprintf("issuer %q serial %x", issuer, ias.Serial)
	}
	return "subject key identifier " + hex.EncodeToString(r.rid.SKI)
}

// Decrypt opens an EnvelopedData or AuthEnvelopedData with one of our keys.
// It finds our RecipientInfo (key transport by issuer and serial or SKI;
// key agreement with an ephemeral originator key, by issuer and serial or
// rKeyId) across all keys in ours, and tries every matching key before
// giving up, so old and new keys work side by side during rollover.
func Decrypt(der []byte, ours []keys.SMIMEKey, opts DecryptOptions) (d *Decrypted, err error) {
	defer Recover(&err)
	if len(der) > MaxInput {
		return nil, reason.New(reason.TooLarge, "CMS object of %d bytes exceeds %d", len(der), MaxInput)
	}
	m, err := envParse(der)
	if err != nil {
		return nil, err
	}
	ca, err := envParseContentAlg(m.alg, opts.AllowLegacy3DES)
	if err != nil {
		return nil, err
	}
	if ca.spec.gcm != m.auth {
		// GCM needs the mac field of AuthEnvelopedData, and
		// AuthEnvelopedData needs an authenticated cipher.
		kind := "EnvelopedData"
		if m.auth {
			kind = "AuthEnvelopedData"
		}
		return nil, reason.New(reason.UnsupportedAlgorithm, "%s in %s", ca.spec.name, kind)
	}
	if m.auth && len(m.mac) != ca.tagLen {
		return nil, reason.New(reason.Malformed, "GCM tag of %d bytes, expected %d", len(m.mac), ca.tagLen)
	}
	ris, err := envParseRecipients(m.ris)
	if err != nil {
		return nil, err
	}

	// buf holds the ciphertext, then (decrypted in place) the plaintext:
	// together with the caller's input, two times the message size.
	var buf []byte
	fill := func() {
		if buf == nil {
			// bytes.Join does not zero the buffer it then overwrites.
			buf = bytes.Join(append(m.chunks[:len(m.chunks):len(m.chunks)], m.mac), nil)
			return
		}
		buf = buf[:0]
		for _, c := range m.chunks {
			buf = append(buf, c...)
		}
		buf = append(buf, m.mac...)
	}

	var matched, locked bool
	var lastErr error
	ops := 0
	for _, r := range ris {
		if r.other != "" {
			continue
		}
		for ki := range ours {
			k := &ours[ki]
			if !envMatches(k.Cert, r.rid) {
				continue
			}
			matched = true
			if k.Locked || k.Key == nil {
				locked = true
				continue
			}
			if ops++; ops > envMaxKeyOps {
				return nil, reason.New(reason.TooComplex, "more than %d matching recipient keys", envMaxKeyOps)
			}
			cek, keyAlg, err := envUnwrapCEK(r, k, ca.spec.keyLen, ca.spec.weak)
			if err != nil {
				lastErr = err
				continue
			}
			out, err := envDecryptContent(ca, cek, m, fill, &buf, opts.CBC)
			clear(cek)
			if err != nil {
				lastErr = err
				continue
			}
			return &Decrypted{
				Plaintext:     out,
				Cipher:        ca.spec.name,
				KeyAlgorithm:  keyAlg,
				Recipient:     k,
				Weak:          ca.spec.weak,
				Authenticated: m.auth,
			}, nil
		}
	}
	clear(buf)
	switch {
	case !matched:
		var names []string
		for _, r := range ris {
			names = append(names, r.describe())
		}
		if len(names) == 0 {
			return nil, reason.New(reason.NoPrivateKey, "the message has no recipients")
		}
		return nil, reason.New(reason.NoPrivateKey, "the message is addressed to %s", strings.Join(names, "; "))
	case locked:
		return nil, reason.New(reason.WrongPassphrase, "the private key for this message is locked")
	}
	return nil, envMalformed(lastErr, "decryption failed")
}

// envDecryptContent decrypts the content with cek. For CBC it first checks
// the padding of the last block, so that a wrong key (RSA implicit
// rejection yields a random one) costs nothing and leaves buf intact.
func envDecryptContent(ca envContentAlg, cek []byte, m *envMsg, fill func(), buf *[]byte, fast CBCDecrypter) ([]byte, error) {
	b, err := ca.block(cek)
	if err != nil {
		return nil, reason.Wrap(reason.Malformed, errDecryptFailed, "content key of the wrong size")
	}
	if !ca.spec.gcm {
		if *buf == nil {
			fill()
		}
		if !envCBCCheck(b, ca.iv, *buf) {
			return nil, reason.Wrap(reason.Malformed, errDecryptFailed, "bad padding")
		}
		if ca.spec.weak {
			fast = nil // 3DES stays in Go
		}
		out, err := envCBCDecrypt(b, fast, cek, ca.iv, *buf)
		if err != nil {
			*buf = nil // decrypted in place: a retry must refill
			return nil, err
		}
		*buf = nil // now owned by the result; a retry must not reuse it
		return out, nil
	}
	aead, err := cipher.NewGCMWithTagSize(b, ca.tagLen)
	if err != nil {
		return nil, err
	}
	fill() // refill: a failed Open may have overwritten the buffer
	out, err := aead.Open((*buf)[:0], ca.iv, *buf, m.aad)
	if err != nil {
		clear(*buf)
		return nil, reason.Wrap(reason.Malformed, errDecryptFailed, "GCM authentication tag mismatch")
	}
	*buf = nil
	return out, nil
}

// OIDs of key transport algorithms (RFC 3370, RFC 3560/4055).
var (
	envOIDRSA  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	envOIDOAEP = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
	envOIDMGF1 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	envOIDPSpc = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 9}
)

var envHashes = []struct {
	oid  asn1.ObjectIdentifier
	hash crypto.Hash
	name string
}{
	{asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, crypto.SHA1, "sha1"},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}, crypto.SHA224, "sha224"},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, crypto.SHA256, "sha256"},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, crypto.SHA384, "sha384"},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, crypto.SHA512, "sha512"},
}

func envHashByOID(oid asn1.ObjectIdentifier) (crypto.Hash, string, bool) {
	for _, h := range envHashes {
		if h.oid.Equal(oid) {
			return h.hash, h.name, true
		}
	}
	return 0, "", false
}

func envHashOID(h crypto.Hash) (asn1.ObjectIdentifier, string, bool) {
	for _, e := range envHashes {
		if e.hash == h {
			return e.oid, e.name, true
		}
	}
	return nil, "", false
}

// envOAEPParams is RSAES-OAEP-params (RFC 4055 §4.1).
type envOAEPParams struct {
	Hash    AlgorithmIdentifier `asn1:"explicit,optional,tag:0"`
	MGF     AlgorithmIdentifier `asn1:"explicit,optional,tag:1"`
	PSource AlgorithmIdentifier `asn1:"explicit,optional,tag:2"`
}

// envParseOAEP returns the decrypt options for RSAES-OAEP-params, with
// SHA-1 / MGF1-SHA-1 / empty label as the defaults.
func envParseOAEP(params []byte) (*rsa.OAEPOptions, string, error) {
	opts := &rsa.OAEPOptions{Hash: crypto.SHA1, MGFHash: crypto.SHA1}
	name := "sha1"
	var p envOAEPParams
	if len(params) > 0 && !bytes.Equal(params, []byte{5, 0}) {
		if rest, err := asn1.Unmarshal(params, &p); err != nil || len(rest) != 0 {
			return nil, "", reason.New(reason.Malformed, "bad RSAES-OAEP parameters")
		}
	}
	if len(p.Hash.Algorithm) > 0 {
		h, n, ok := envHashByOID(p.Hash.Algorithm)
		if !ok {
			return nil, "", reason.New(reason.UnsupportedAlgorithm, "OAEP hash %s", p.Hash.Algorithm)
		}
		opts.Hash, opts.MGFHash, name = h, h, n
	}
	if len(p.MGF.Algorithm) > 0 {
		if !p.MGF.Algorithm.Equal(envOIDMGF1) {
			return nil, "", reason.New(reason.UnsupportedAlgorithm, "OAEP mask generation %s", p.MGF.Algorithm)
		}
		var mh AlgorithmIdentifier
		if _, err := asn1.Unmarshal(p.MGF.Parameters.FullBytes, &mh); err != nil {
			return nil, "", reason.New(reason.Malformed, "bad MGF1 parameters")
		}
		h, _, ok := envHashByOID(mh.Algorithm)
		if !ok {
			return nil, "", reason.New(reason.UnsupportedAlgorithm, "MGF1 hash %s", mh.Algorithm)
		}
		opts.MGFHash = h
	}
	if len(p.PSource.Algorithm) > 0 {
		if !p.PSource.Algorithm.Equal(envOIDPSpc) {
			return nil, "", reason.New(reason.UnsupportedAlgorithm, "OAEP label source %s", p.PSource.Algorithm)
		}
		if _, err := asn1.Unmarshal(p.PSource.Parameters.FullBytes, &opts.Label); err != nil {
			return nil, "", reason.New(reason.Malformed, "bad OAEP label")
		}
	}
	return opts, name, nil
}

// envUnwrapCEK recovers the content key for r with our key k.
func envUnwrapCEK(r envRecipient, k *keys.SMIMEKey, keyLen int, legacy bool) ([]byte, string, error) {
	if r.kari != nil {
		agreer, ok := k.Key.(keys.KeyAgreer)
		if !ok {
			return nil, "", reason.New(reason.UnsupportedAlgorithm, "our key %T cannot do key agreement", k.Key)
		}
		return r.kari.unwrap(k.Cert, agreer, r.encKey, legacy)
	}
	dec, ok := k.Key.(crypto.Decrypter)
	if !ok {
		return nil, "", reason.New(reason.UnsupportedAlgorithm, "our key %T cannot decrypt", k.Key)
	}
	switch {
	case r.keyAlg.Algorithm.Equal(envOIDRSA):
		// Implicit rejection (RFC 3218 §2.3.2): a bad padding yields a
		// random key, so the outcome is indistinguishable from a wrong
		// key and no padding oracle exists.
		cek, err := dec.Decrypt(rand.Reader, r.encKey, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: keyLen})
		return cek, "rsa-pkcs1v15", err
	case r.keyAlg.Algorithm.Equal(envOIDOAEP):
		opts, name, err := envParseOAEP(r.keyAlg.Parameters.FullBytes)
		if err != nil {
			return nil, "", err
		}
		cek, err := dec.Decrypt(rand.Reader, r.encKey, opts)
		return cek, "rsa-oaep-" + name, err
	}
	return nil, "", reason.New(reason.UnsupportedAlgorithm, "key encryption algorithm %s", r.keyAlg.Algorithm)
}
