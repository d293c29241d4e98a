package cms

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	_ "crypto/sha1" // registered for the sha1kdf scheme openssl uses by default
	_ "crypto/sha256"
	_ "crypto/sha512"

	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/reason"
)

// ECDH key agreement in CMS (RFC 5753 ephemeral-static, SEC1 KDF schemes).

var (
	envOIDECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	envOIDAES128Wrap  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 5}
	envOIDAES192Wrap  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 25}
	envOIDAES256Wrap  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 45}
	envOID3DESWrap    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 3, 6}
)

// envKDFSchemes are the dhSinglePass-stdDH-*kdf-scheme OIDs.
var envKDFSchemes = []struct {
	oid  asn1.ObjectIdentifier
	hash crypto.Hash
	name string
}{
	{asn1.ObjectIdentifier{1, 3, 133, 16, 840, 63, 0, 2}, crypto.SHA1, "sha1"},
	{asn1.ObjectIdentifier{1, 3, 132, 1, 11, 0}, crypto.SHA224, "sha224"},
	{asn1.ObjectIdentifier{1, 3, 132, 1, 11, 1}, crypto.SHA256, "sha256"},
	{asn1.ObjectIdentifier{1, 3, 132, 1, 11, 2}, crypto.SHA384, "sha384"},
	{asn1.ObjectIdentifier{1, 3, 132, 1, 11, 3}, crypto.SHA512, "sha512"},
}

func envWrapKeyLen(oid asn1.ObjectIdentifier) int {
	switch {
	case oid.Equal(envOIDAES128Wrap):
		return 16
	case oid.Equal(envOIDAES192Wrap):
		return 24
	case oid.Equal(envOIDAES256Wrap):
		return 32
	case oid.Equal(envOID3DESWrap):
		return 24
	}
	return 0
}

// envX963KDF is the ANSI X9.63 key derivation function (SEC1 §3.6.1):
// Hash(Z || counter || SharedInfo) for counter = 1, 2, ... A counter
// around the standard library's hash; no primitive of our own.
func envX963KDF(h crypto.Hash, z, sharedInfo []byte, n int) []byte {
	out := make([]byte, 0, n+h.Size())
	var ctr [4]byte
	for i := uint32(1); len(out) < n; i++ {
		d := h.New()
		d.Write(z)
		binary.BigEndian.PutUint32(ctr[:], i)
		d.Write(ctr[:])
		d.Write(sharedInfo)
		out = d.Sum(out)
	}
	return out[:n]
}

// envSharedInfo encodes ECC-CMS-SharedInfo (RFC 5753 §7.2). wrapAlg is the
// full DER AlgorithmIdentifier of the key-wrap algorithm exactly as it
// appears in the message.
func envSharedInfo(wrapAlg, ukm []byte, kekBits int) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(wrapAlg)
		if ukm != nil {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1OctetString(ukm)
			})
		}
		b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			var l [4]byte
			binary.BigEndian.PutUint32(l[:], uint32(kekBits))
			b.AddASN1OctetString(l[:])
		})
	})
	return b.Bytes()
}

// envKari is a parsed KeyAgreeRecipientInfo.
type envKari struct {
	originator []byte // encoded EC point of the ephemeral originator key
	ukm        []byte // nil when absent
	scheme     asn1.ObjectIdentifier
	wrapAlg    []byte // full DER AlgorithmIdentifier
	wrapOID    asn1.ObjectIdentifier
	keys       []envREK
}

// envREK is one RecipientEncryptedKey.
type envREK struct {
	rid    RecipientID
	encKey []byte
}

// envParseKari parses the contents of a [1] KeyAgreeRecipientInfo.
func envParseKari(s cryptobyte.String) (*envKari, error) {
	k := &envKari{}
	var version int
	var orig cryptobyte.String
	if !s.ReadASN1Integer(&version) || version != 3 ||
		!s.ReadASN1(&orig, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, errors.New("bad KeyAgreeRecipientInfo header")
	}
	var opk cryptobyte.String
	if orig.PeekASN1Tag(cbasn1.Tag(1).Constructed().ContextSpecific()) {
		var algSeq cryptobyte.String
		var oid asn1.ObjectIdentifier
		var bits asn1.BitString
		if !orig.ReadASN1(&opk, cbasn1.Tag(1).Constructed().ContextSpecific()) ||
			!opk.ReadASN1(&algSeq, cbasn1.SEQUENCE) || !algSeq.ReadASN1ObjectIdentifier(&oid) ||
			!opk.ReadASN1BitString(&bits) || bits.BitLength%8 != 0 {
			return nil, errors.New("bad originator public key")
		}
		if !oid.Equal(envOIDECPublicKey) {
			return nil, reason.New(reason.UnsupportedAlgorithm, "originator key algorithm %s", oid)
		}
		k.originator = bits.Bytes
	}
	// Otherwise the originator is named by certificate (static-static
	// ECDH), which S/MIME agents do not send; k.originator stays nil.
	if s.PeekASN1Tag(cbasn1.Tag(1).Constructed().ContextSpecific()) {
		var ukm cryptobyte.String
		var v []byte
		if !s.ReadASN1(&ukm, cbasn1.Tag(1).Constructed().ContextSpecific()) || !ukm.ReadASN1Bytes(&v, cbasn1.OCTET_STRING) {
			return nil, errors.New("bad ukm")
		}
		k.ukm = append([]byte{}, v...)
	}
	var alg, wrap cryptobyte.String
	if !s.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&k.scheme) {
		return nil, errors.New("bad key agreement algorithm")
	}
	if !alg.ReadASN1Element(&wrap, cbasn1.SEQUENCE) {
		return nil, reason.New(reason.UnsupportedAlgorithm, "key agreement algorithm %s without key wrap parameters", k.scheme)
	}
	k.wrapAlg = wrap
	var wrapSeq cryptobyte.String
	if !wrap.ReadASN1(&wrapSeq, cbasn1.SEQUENCE) || !wrapSeq.ReadASN1ObjectIdentifier(&k.wrapOID) {
		return nil, errors.New("bad key wrap algorithm")
	}
	var reks cryptobyte.String
	if !s.ReadASN1(&reks, cbasn1.SEQUENCE) {
		return nil, errors.New("bad RecipientEncryptedKeys")
	}
	for !reks.Empty() {
		if len(k.keys) >= envMaxRecipients {
			return nil, reason.New(reason.TooComplex, "more than %d recipient keys", envMaxRecipients)
		}
		var rek, rid cryptobyte.String
		var ridTag cbasn1.Tag
		var enc []byte
		if !reks.ReadASN1(&rek, cbasn1.SEQUENCE) || !rek.ReadAnyASN1Element(&rid, &ridTag) ||
			!rek.ReadASN1Bytes(&enc, cbasn1.OCTET_STRING) {
			return nil, errors.New("bad RecipientEncryptedKey")
		}
		r := envREK{encKey: enc}
		switch ridTag {
		case cbasn1.SEQUENCE:
			ias, err := envParseIssuerAndSerial(rid)
			if err != nil {
				return nil, err
			}
			r.rid.IssuerAndSerial = ias
		case cbasn1.Tag(0).Constructed().ContextSpecific():
			// rKeyId [0] IMPLICIT RecipientKeyIdentifier: SKI, date, other.
			var body cryptobyte.String
			var ski []byte
			if !rid.ReadASN1(&body, ridTag) || !body.ReadASN1Bytes(&ski, cbasn1.OCTET_STRING) {
				return nil, errors.New("bad rKeyId")
			}
			r.rid.SKI = ski
		default:
			return nil, errors.New("bad KeyAgreeRecipientIdentifier")
		}
		k.keys = append(k.keys, r)
	}
	return k, nil
}

// envECDHCurve maps our certificate's public key to its ECDH curve.
func envECDHCurve(pub any) (ecdh.Curve, string, bool) {
	p, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, "", false
	}
	switch p.Curve {
	case elliptic.P256():
		return ecdh.P256(), "p256", true
	case elliptic.P384():
		return ecdh.P384(), "p384", true
	case elliptic.P521():
		return ecdh.P521(), "p521", true
	}
	return nil, "", false
}

// unwrap derives the KEK with our key and unwraps the content key.
// allow3DESWrap is set only for (permitted) 3DES content, the one place
// senders use the 3DES key wrap.
func (k *envKari) unwrap(cert *x509.Certificate, agreer keys.KeyAgreer, encKey []byte, allow3DESWrap bool) (cek []byte, alg string, err error) {
	curve, curveName, ok := envECDHCurve(cert.PublicKey)
	if !ok {
		return nil, "", reason.New(reason.UnsupportedAlgorithm, "key agreement with a %T certificate", cert.PublicKey)
	}
	if k.originator == nil {
		return nil, "", reason.New(reason.UnsupportedAlgorithm, "key agreement without an ephemeral originator key")
	}
	var h crypto.Hash
	for _, s := range envKDFSchemes {
		if s.oid.Equal(k.scheme) {
			h = s.hash
			alg = "ecdh-" + curveName + "-" + s.name + "-kdf"
		}
	}
	if h == 0 {
		return nil, "", reason.New(reason.UnsupportedAlgorithm, "key agreement scheme %s", k.scheme)
	}
	kekLen := envWrapKeyLen(k.wrapOID)
	if kekLen == 0 || (k.wrapOID.Equal(envOID3DESWrap) && !allow3DESWrap) {
		return nil, alg, reason.New(reason.UnsupportedAlgorithm, "key wrap algorithm %s", k.wrapOID)
	}
	remote, err := curve.NewPublicKey(k.originator)
	if err != nil {
		return nil, alg, reason.Wrap(reason.Malformed, err, "originator public key")
	}
	z, err := agreer.ECDH(remote)
	if err != nil {
		return nil, alg, fmt.Errorf("ECDH: %w", err)
	}
	si, err := envSharedInfo(k.wrapAlg, k.ukm, kekLen*8)
	if err != nil {
		return nil, alg, err
	}
	kek := envX963KDF(h, z, si, kekLen)
	clear(z)
	if k.wrapOID.Equal(envOID3DESWrap) {
		cek, err = envDES3KeyUnwrap(kek, encKey)
	} else {
		cek, err = envKeyUnwrap(kek, encKey)
	}
	clear(kek)
	if err != nil {
		return nil, alg, err
	}
	return cek, alg, nil
}

// envKariFor builds a KeyAgreeRecipientInfo (the [1] element) for an EC
// recipient: a fresh ephemeral key, the SHA-256 KDF for P-256 and SHA-384
// (SHA-512 for P-521) as RFC 5753 and RFC 6318 pair them, and AES key wrap
// sized to the content key.
func envKariFor(rnd io.Reader, cert *x509.Certificate, cek []byte) ([]byte, error) {
	curve, _, ok := envECDHCurve(cert.PublicKey)
	if !ok {
		return nil, fmt.Errorf("unsupported EC curve")
	}
	pub, err := cert.PublicKey.(*ecdsa.PublicKey).ECDH()
	if err != nil {
		return nil, err
	}
	eph, err := curve.GenerateKey(rnd)
	if err != nil {
		return nil, err
	}
	z, err := eph.ECDH(pub)
	if err != nil {
		return nil, err
	}
	var scheme = envKDFSchemes[2] // sha256
	switch curve {
	case ecdh.P384():
		scheme = envKDFSchemes[3]
	case ecdh.P521():
		scheme = envKDFSchemes[4]
	}
	wrapOID := envOIDAES256Wrap
	kekLen := 32
	switch {
	case len(cek) <= 16:
		wrapOID, kekLen = envOIDAES128Wrap, 16
	case len(cek) <= 24:
		wrapOID, kekLen = envOIDAES192Wrap, 24
	}
	var wb cryptobyte.Builder
	envAddAlgID(&wb, wrapOID, nil)
	wrapAlg, err := wb.Bytes()
	if err != nil {
		return nil, err
	}
	si, err := envSharedInfo(wrapAlg, nil, kekLen*8)
	if err != nil {
		return nil, err
	}
	kek := envX963KDF(scheme.hash, z, si, kekLen)
	clear(z)
	wrapped, err := envKeyWrap(kek, cek)
	clear(kek)
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
		b.AddASN1Int64(3)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				envAddAlgID(b, envOIDECPublicKey, nil)
				b.AddASN1BitString(eph.PublicKey().Bytes())
			})
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(scheme.oid)
			b.AddBytes(wrapAlg)
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				envAddIssuerAndSerial(b, cert)
				b.AddASN1OctetString(wrapped)
			})
		})
	})
	return b.Bytes()
}
