// Package cms implements the parts of the Cryptographic Message Syntax
// (RFC 5652) that S/MIME 4.0 (RFC 8551) needs: SignedData (verify, sign),
// EnvelopedData and AuthEnvelopedData (decrypt, encrypt) with RSA PKCS#1
// v1.5, RSA-OAEP, ECDH key agreement, AES-CBC and AES-GCM.
//
// It does no I/O and keeps no state: bytes and keys in, typed results and
// *reason.Error values out. Primitives come from the standard library and
// golang.org/x/crypto only. Every entry point recovers from panics and
// enforces size limits, because its input is attacker controlled.
package cms

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/secmail/secmail/reason"
)

// Content type OIDs (RFC 5652, RFC 5083).
var (
	OIDData                = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	OIDSignedData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	OIDEnvelopedData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	OIDAuthEnvelopedData   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 23}
	OIDCompressedData      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 9}
	OIDAttrContentType     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	OIDAttrMessageDigest   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	OIDAttrSigningTime     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	OIDAttrSMIMECapability = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 15}
)

// MaxInput is the default upper bound on a CMS blob's size.
const MaxInput = 64 << 20

// ContentInfo is the outer CMS wrapper.
type ContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,optional,tag:0"`
}

// IssuerAndSerial identifies a certificate by issuer and serial number.
type IssuerAndSerial struct {
	Issuer asn1.RawValue // raw DER Name
	Serial *big.Int
}

// RecipientID identifies the certificate a RecipientInfo (or a SignerInfo)
// was made for: either by issuer and serial or by subject key identifier.
type RecipientID struct {
	IssuerAndSerial *IssuerAndSerial
	SKI             []byte
}

// AlgorithmIdentifier is re-exported for readability.
type AlgorithmIdentifier = pkix.AlgorithmIdentifier

// ErrNotCMS is returned (wrapped in a reason.Malformed error) when the input
// is not a CMS ContentInfo.
var ErrNotCMS = errors.New("cms: not a CMS ContentInfo")

// ParseContentInfo parses der (BER definite-length input is accepted where
// encoding/asn1 accepts it) and returns the content type and the raw inner
// content.
func ParseContentInfo(der []byte) (ci ContentInfo, err error) {
	defer Recover(&err)
	if len(der) > MaxInput {
		return ci, reason.New(reason.TooLarge, "CMS object of %d bytes exceeds %d", len(der), MaxInput)
	}
	der, err = normalizeBER(der)
	if err != nil {
		return ci, reason.Wrap(reason.Malformed, err, "CMS encoding")
	}
	rest, err := asn1.Unmarshal(der, &ci)
	if err != nil {
		return ci, reason.Wrap(reason.Malformed, fmt.Errorf("%w: %v", ErrNotCMS, err), "CMS ContentInfo")
	}
	if len(rest) > 0 {
		return ci, reason.New(reason.Malformed, "trailing data after CMS ContentInfo")
	}
	return ci, nil
}

// Sniff returns the content type of a CMS blob without parsing further, or
// nil when der is not CMS.
func Sniff(der []byte) asn1.ObjectIdentifier {
	ci, err := ParseContentInfo(der)
	if err != nil {
		return nil
	}
	return ci.ContentType
}

// Recover turns a panic in parsing code (ours or a dependency's) into a
// reason.Malformed error. Use as `defer cms.Recover(&err)`.
func Recover(err *error) {
	if r := recover(); r != nil {
		*err = reason.New(reason.Malformed, "panic while parsing CMS: %v", r)
	}
}
