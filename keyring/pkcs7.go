package keyring

// PKCS#7 / CMS certificate bundles (.p7b, .p7c, "PKCS7" PEM blocks): only
// the certificates and CRLs of a SignedData are read. Package cms handles
// messages; this tiny reader keeps the importer independent of it.

import (
	"crypto/x509"
	"encoding/asn1"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/secmail/secmail/reason"
)

var oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}

// isPKCS7 reports whether data is a DER ContentInfo of type SignedData.
func isPKCS7(data []byte) bool {
	s := cryptobyte.String(data)
	var ci cryptobyte.String
	var oid asn1.ObjectIdentifier
	return s.ReadASN1(&ci, cbasn1.SEQUENCE) && ci.ReadASN1ObjectIdentifier(&oid) && oid.Equal(oidSignedData)
}

// asPKCS7 returns data, in DER, when it is a SignedData ContentInfo in
// DER or BER.
func asPKCS7(data []byte) ([]byte, bool) {
	if isPKCS7(data) {
		return data, true
	}
	if len(data) > 0 && data[0] == 0x30 {
		if der, err := berToDER(data); err == nil && isPKCS7(der) {
			return der, true
		}
	}
	return nil, false
}

func (p *parser) parsePKCS7(data []byte) error {
	if der, ok := asPKCS7(data); ok {
		data = der
	}
	s := cryptobyte.String(data)
	var ci, content, sd, skip cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1ObjectIdentifier(&oid) {
		return reason.New(reason.Malformed, "PKCS#7: not a ContentInfo")
	}
	if !oid.Equal(oidSignedData) {
		return reason.New(reason.Malformed, "PKCS#7: content type %v is not SignedData", oid)
	}
	var version int64
	if !ci.ReadASN1(&content, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!content.ReadASN1(&sd, cbasn1.SEQUENCE) ||
		!sd.ReadASN1Int64WithTag(&version, cbasn1.INTEGER) ||
		!sd.ReadASN1(&skip, cbasn1.SET) || // digestAlgorithms
		!sd.ReadASN1(&skip, cbasn1.SEQUENCE) { // encapContentInfo
		return reason.New(reason.Malformed, "PKCS#7: SignedData structure")
	}
	var certs, crls cryptobyte.String
	var hasCerts, hasCRLs bool
	if !sd.ReadOptionalASN1(&certs, &hasCerts, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!sd.ReadOptionalASN1(&crls, &hasCRLs, cbasn1.Tag(1).Constructed().ContextSpecific()) {
		return reason.New(reason.Malformed, "PKCS#7: certificates or CRLs")
	}
	for n := 1; !certs.Empty(); n++ {
		var der cryptobyte.String
		var tag cbasn1.Tag
		if !certs.ReadAnyASN1Element(&der, &tag) {
			return reason.New(reason.Malformed, "PKCS#7: certificate %d", n)
		}
		if tag != cbasn1.SEQUENCE {
			continue // attribute or other certificate formats: not X.509
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return reason.Wrap(reason.Malformed, err, "PKCS#7: certificate")
		}
		p.b.Certs = append(p.b.Certs, c)
	}
	for n := 1; !crls.Empty(); n++ {
		var der cryptobyte.String
		var tag cbasn1.Tag
		if !crls.ReadAnyASN1Element(&der, &tag) {
			return reason.New(reason.Malformed, "PKCS#7: CRL %d", n)
		}
		if tag != cbasn1.SEQUENCE {
			continue // OtherRevocationInfoFormat (e.g. OCSP responses)
		}
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return reason.Wrap(reason.Malformed, err, "PKCS#7: CRL")
		}
		p.b.CRLs = append(p.b.CRLs, crl)
	}
	return nil
}
