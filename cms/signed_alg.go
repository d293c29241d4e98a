package cms

import (
	"crypto"
	"encoding/asn1"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/secmail/secmail/reason"
)

// Digest and signature algorithm OIDs used in SignerInfos (RFC 5754,
// RFC 4055/4056, RFC 5758, RFC 8419).
var (
	sdOIDMD5    = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5}
	sdOIDSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	sdOIDSHA224 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}
	sdOIDSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	sdOIDSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	sdOIDSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}

	sdOIDRSA          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	sdOIDMD5WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 4}
	sdOIDSHA1WithRSA  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	sdOIDSHA256WithRS = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	sdOIDSHA384WithRS = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	sdOIDSHA512WithRS = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	sdOIDSHA224WithRS = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 14}
	sdOIDRSAPSS       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	sdOIDMGF1         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}

	sdOIDECPublicKey   = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	sdOIDECDSAWithSHA1 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	sdOIDECDSAWithS224 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 1}
	sdOIDECDSAWithS256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	sdOIDECDSAWithS384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	sdOIDECDSAWithS512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}

	sdOIDEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}
)

var sdDigests = []struct {
	oid  asn1.ObjectIdentifier
	hash crypto.Hash
	name string
}{
	{sdOIDSHA1, crypto.SHA1, "sha1"},
	{sdOIDSHA224, crypto.SHA224, "sha224"},
	{sdOIDSHA256, crypto.SHA256, "sha256"},
	{sdOIDSHA384, crypto.SHA384, "sha384"},
	{sdOIDSHA512, crypto.SHA512, "sha512"},
}

// sdDigestByOID maps a digest algorithm OID to a hash.
func sdDigestByOID(oid asn1.ObjectIdentifier) (crypto.Hash, string, error) {
	for _, d := range sdDigests {
		if d.oid.Equal(oid) {
			return d.hash, d.name, nil
		}
	}
	if oid.Equal(sdOIDMD5) {
		return 0, "", reason.New(reason.UnsupportedAlgorithm, "MD5 digest refused")
	}
	return 0, "", reason.New(reason.UnsupportedAlgorithm, "unknown digest algorithm %s", oid)
}

// sdDigestOID maps a hash to its digest algorithm OID.
func sdDigestOID(h crypto.Hash) (asn1.ObjectIdentifier, bool) {
	for _, d := range sdDigests {
		if d.hash == h {
			return d.oid, true
		}
	}
	return nil, false
}

// Signature scheme names reported in SignerInfo.SignatureAlgorithm.
const (
	SigRSAPKCS1 = "rsa-pkcs1v15"
	SigRSAPSS   = "rsa-pss"
	SigECDSA    = "ecdsa"
	SigEd25519  = "ed25519"
)

// sdSigScheme is a parsed signatureAlgorithm.
type sdSigScheme struct {
	name string
	// hash is the digest the OID names (0 when it names none, as
	// rsaEncryption and Ed25519 do).
	hash crypto.Hash
	// For RSA-PSS: the salt length from the parameters.
	saltLength int
}

// sdSigByOID interprets signatureAlgorithm. params is the full DER element
// of the parameters, or nil when absent.
func sdSigByOID(oid asn1.ObjectIdentifier, params []byte) (sdSigScheme, error) {
	switch {
	case oid.Equal(sdOIDRSA):
		return sdSigScheme{name: SigRSAPKCS1}, nil
	case oid.Equal(sdOIDSHA1WithRSA):
		return sdSigScheme{name: SigRSAPKCS1, hash: crypto.SHA1}, nil
	case oid.Equal(sdOIDSHA224WithRS):
		return sdSigScheme{name: SigRSAPKCS1, hash: crypto.SHA224}, nil
	case oid.Equal(sdOIDSHA256WithRS):
		return sdSigScheme{name: SigRSAPKCS1, hash: crypto.SHA256}, nil
	case oid.Equal(sdOIDSHA384WithRS):
		return sdSigScheme{name: SigRSAPKCS1, hash: crypto.SHA384}, nil
	case oid.Equal(sdOIDSHA512WithRS):
		return sdSigScheme{name: SigRSAPKCS1, hash: crypto.SHA512}, nil
	case oid.Equal(sdOIDMD5WithRSA):
		return sdSigScheme{}, reason.New(reason.UnsupportedAlgorithm, "MD5 signature refused")
	case oid.Equal(sdOIDRSAPSS):
		return sdParsePSSParams(params)
	case oid.Equal(sdOIDECPublicKey):
		return sdSigScheme{name: SigECDSA}, nil
	case oid.Equal(sdOIDECDSAWithSHA1):
		return sdSigScheme{name: SigECDSA, hash: crypto.SHA1}, nil
	case oid.Equal(sdOIDECDSAWithS224):
		return sdSigScheme{name: SigECDSA, hash: crypto.SHA224}, nil
	case oid.Equal(sdOIDECDSAWithS256):
		return sdSigScheme{name: SigECDSA, hash: crypto.SHA256}, nil
	case oid.Equal(sdOIDECDSAWithS384):
		return sdSigScheme{name: SigECDSA, hash: crypto.SHA384}, nil
	case oid.Equal(sdOIDECDSAWithS512):
		return sdSigScheme{name: SigECDSA, hash: crypto.SHA512}, nil
	case oid.Equal(sdOIDEd25519):
		return sdSigScheme{name: SigEd25519}, nil
	}
	return sdSigScheme{}, reason.New(reason.UnsupportedAlgorithm, "unknown signature algorithm %s", oid)
}

// sdParsePSSParams reads RSASSA-PSS-params (RFC 4055 §3.1, as RFC 4056 uses
// them in CMS). Every field has a DEFAULT: SHA-1, MGF1 with SHA-1, salt 20,
// trailer 1. Go's rsa.VerifyPSS uses MGF1 with the message hash, so a
// different MGF1 hash is unsupported.
func sdParsePSSParams(params []byte) (sdSigScheme, error) {
	sc := sdSigScheme{name: SigRSAPSS, hash: crypto.SHA1, saltLength: 20}
	mgfHash := crypto.SHA1
	if params == nil {
		return sc, nil
	}
	bad := reason.New(reason.Malformed, "invalid RSASSA-PSS parameters")
	s := cryptobyte.String(params)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
		return sc, bad
	}
	var field cryptobyte.String
	var present bool
	if !seq.ReadOptionalASN1(&field, &present, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return sc, bad
	}
	if present {
		oid, _, ok := sdReadAlgID(&field)
		if !ok || !field.Empty() {
			return sc, bad
		}
		h, _, err := sdDigestByOID(oid)
		if err != nil {
			return sc, err
		}
		sc.hash = h
	}
	if !seq.ReadOptionalASN1(&field, &present, cbasn1.Tag(1).Constructed().ContextSpecific()) {
		return sc, bad
	}
	if present {
		oid, mgfParams, ok := sdReadAlgID(&field)
		if !ok || !field.Empty() {
			return sc, bad
		}
		if !oid.Equal(sdOIDMGF1) {
			return sc, reason.New(reason.UnsupportedAlgorithm, "PSS mask generation %s", oid)
		}
		p := cryptobyte.String(mgfParams)
		hoid, _, ok := sdReadAlgID(&p)
		if !ok || !p.Empty() {
			return sc, bad
		}
		h, _, err := sdDigestByOID(hoid)
		if err != nil {
			return sc, err
		}
		mgfHash = h
	}
	if !seq.ReadOptionalASN1(&field, &present, cbasn1.Tag(2).Constructed().ContextSpecific()) {
		return sc, bad
	}
	if present {
		var salt int64
		if !field.ReadASN1Integer(&salt) || !field.Empty() || salt < 0 || salt > 1024 {
			return sc, bad
		}
		sc.saltLength = int(salt)
	}
	if !seq.ReadOptionalASN1(&field, &present, cbasn1.Tag(3).Constructed().ContextSpecific()) {
		return sc, bad
	}
	if present {
		var trailer int64
		if !field.ReadASN1Integer(&trailer) || !field.Empty() || trailer != 1 {
			return sc, bad
		}
	}
	if !seq.Empty() {
		return sc, bad
	}
	if mgfHash != sc.hash {
		return sc, reason.New(reason.UnsupportedAlgorithm, "PSS with MGF1 hash differing from message hash")
	}
	return sc, nil
}

// sdReadAlgID reads an AlgorithmIdentifier; params is the full DER element
// of the parameters or nil when absent.
func sdReadAlgID(s *cryptobyte.String) (oid asn1.ObjectIdentifier, params []byte, ok bool) {
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1ObjectIdentifier(&oid) {
		return nil, nil, false
	}
	if !seq.Empty() {
		var p cryptobyte.String
		var tag cbasn1.Tag
		if !seq.ReadAnyASN1Element(&p, &tag) || !seq.Empty() {
			return nil, nil, false
		}
		params = p
	}
	return oid, params, true
}

// sdAddAlgID writes an AlgorithmIdentifier; nullParams adds an explicit NULL.
func sdAddAlgID(c *cryptobyte.Builder, oid asn1.ObjectIdentifier, nullParams bool) {
	c.AddASN1(cbasn1.SEQUENCE, func(c *cryptobyte.Builder) {
		c.AddASN1ObjectIdentifier(oid)
		if nullParams {
			c.AddASN1NULL()
		}
	})
}

// MicAlg returns the micalg parameter of multipart/signed (RFC 8551
// §3.5.3.2) for the digest h, or "unknown".
func MicAlg(h crypto.Hash) string {
	switch h {
	case crypto.MD5:
		return "md5"
	case crypto.SHA1:
		return "sha-1"
	case crypto.SHA224:
		return "sha-224"
	case crypto.SHA256:
		return "sha-256"
	case crypto.SHA384:
		return "sha-384"
	case crypto.SHA512:
		return "sha-512"
	}
	return "unknown"
}
