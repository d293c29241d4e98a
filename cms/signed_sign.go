package cms

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/secmail/secmail/reason"
)

// SignOptions controls Sign.
type SignOptions struct {
	// Detached leaves the content out of the SignedData, as S/MIME
	// multipart/signed needs; false produces opaque (encapsulated) data.
	Detached bool
	// Hash is the digest; 0 picks SignatureHash's default.
	Hash crypto.Hash
	// PSS signs RSA keys with RSASSA-PSS (RFC 4056) instead of PKCS#1 v1.5.
	PSS bool
	// SigningTime goes into the signing-time attribute; zero means now.
	SigningTime time.Time
	// Capabilities are advertised in SMIMECapabilities; nil means
	// DefaultCapabilities, an empty non-nil slice omits the attribute.
	Capabilities []asn1.ObjectIdentifier
}

// SignatureHash returns the digest Sign uses for a key and a requested hash
// (0 = default): SHA-256, except SHA-384 for P-384, SHA-512 for P-521, and
// always SHA-512 for Ed25519 (RFC 8419 §3.1). Use it to compute micalg.
func SignatureHash(pub crypto.PublicKey, requested crypto.Hash) (crypto.Hash, error) {
	if ed, ok := pub.(ed25519.PublicKey); ok && ed != nil {
		if requested != 0 && requested != crypto.SHA512 {
			return 0, reason.New(reason.UnsupportedAlgorithm, "Ed25519 requires SHA-512, not %v", requested)
		}
		return crypto.SHA512, nil
	}
	if requested != 0 {
		if _, ok := sdDigestOID(requested); !ok || requested == crypto.SHA1 || requested == crypto.SHA224 {
			return 0, reason.New(reason.UnsupportedAlgorithm, "signing with %v is not supported", requested)
		}
		return requested, nil
	}
	if k, ok := pub.(*ecdsa.PublicKey); ok {
		switch k.Curve {
		case elliptic.P384():
			return crypto.SHA384, nil
		case elliptic.P521():
			return crypto.SHA512, nil
		}
	}
	return crypto.SHA256, nil
}

// Sign produces a DER ContentInfo with SignedData over content, signed by
// key for cert. chain (intermediates) is included with cert. Signed
// attributes: content-type, signing-time, message-digest, SMIMECapabilities.
func Sign(content []byte, cert *x509.Certificate, key crypto.Signer, chain []*x509.Certificate, opts SignOptions) (out []byte, err error) {
	defer Recover(&err)
	if cert == nil || key == nil {
		return nil, fmt.Errorf("cms: Sign needs a certificate and a key")
	}
	if pk, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pk.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("cms: private key does not belong to certificate %q", cert.Subject)
	}
	h, err := SignatureHash(cert.PublicKey, opts.Hash)
	if err != nil {
		return nil, err
	}
	digestOID, _ := sdDigestOID(h)

	// Signature algorithm identifier and signer options per key type.
	var sigAlg func(*cryptobyte.Builder)
	var signerOpts crypto.SignerOpts = h
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if opts.PSS {
			signerOpts = &rsa.PSSOptions{SaltLength: h.Size(), Hash: h}
			sigAlg = func(c *cryptobyte.Builder) { sdAddPSSAlgID(c, digestOID, h.Size()) }
		} else {
			sigAlg = func(c *cryptobyte.Builder) { sdAddAlgID(c, sdOIDRSA, true) }
		}
	case *ecdsa.PublicKey:
		var oid asn1.ObjectIdentifier
		switch h {
		case crypto.SHA256:
			oid = sdOIDECDSAWithS256
		case crypto.SHA384:
			oid = sdOIDECDSAWithS384
		case crypto.SHA512:
			oid = sdOIDECDSAWithS512
		}
		sigAlg = func(c *cryptobyte.Builder) { sdAddAlgID(c, oid, false) }
	case ed25519.PublicKey:
		signerOpts = crypto.Hash(0) // pure Ed25519 over the attributes
		sigAlg = func(c *cryptobyte.Builder) { sdAddAlgID(c, sdOIDEd25519, false) }
	default:
		return nil, reason.New(reason.UnsupportedAlgorithm, "cannot sign with %T", pub)
	}

	hh := h.New()
	hh.Write(content)
	digest := hh.Sum(nil)

	signingTime := opts.SigningTime
	if signingTime.IsZero() {
		signingTime = time.Now()
	}
	caps := opts.Capabilities
	if caps == nil {
		caps = DefaultCapabilities
	}
	var ab sdAttrBuilder
	errs := []error{
		ab.add(OIDAttrContentType, func(c *cryptobyte.Builder) { c.AddASN1ObjectIdentifier(OIDData) }),
		ab.add(OIDAttrSigningTime, func(c *cryptobyte.Builder) { sdAddTime(c, signingTime) }),
		ab.add(OIDAttrMessageDigest, func(c *cryptobyte.Builder) { c.AddASN1OctetString(digest) }),
	}
	if len(caps) > 0 {
		errs = append(errs, ab.add(OIDAttrSMIMECapability, func(c *cryptobyte.Builder) { sdAddCapabilities(c, caps) }))
	}
	for _, e := range errs {
		if e != nil {
			return nil, fmt.Errorf("cms: encoding signed attributes: %w", e)
		}
	}
	attrSet, err := ab.set()
	if err != nil {
		return nil, fmt.Errorf("cms: encoding signed attributes: %w", err)
	}
	toSign := attrSet
	if signerOpts.HashFunc() != 0 {
		ah := h.New()
		ah.Write(attrSet)
		toSign = ah.Sum(nil)
	}
	sig, err := key.Sign(rand.Reader, toSign, signerOpts)
	if err != nil {
		return nil, fmt.Errorf("cms: signing: %w", err)
	}

	certs := [][]byte{cert.Raw}
	for _, c := range chain {
		if c != nil && !c.Equal(cert) {
			certs = append(certs, c.Raw)
		}
	}
	certs = sdSortDER(certs)

	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
		b.AddASN1ObjectIdentifier(OIDSignedData)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignedData
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { sdAddAlgID(b, digestOID, false) })
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(OIDData)
					if !opts.Detached {
						b.AddASN1(sdTagEContent, func(b *cryptobyte.Builder) { b.AddASN1OctetString(content) })
					}
				})
				b.AddASN1(sdTagCerts, func(b *cryptobyte.Builder) {
					for _, c := range certs {
						b.AddBytes(c)
					}
				})
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignerInfo
						b.AddASN1Int64(1)
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddBytes(cert.RawIssuer)
							b.AddASN1BigInt(cert.SerialNumber)
						})
						sdAddAlgID(b, digestOID, false)
						// The same SET bytes, re-tagged [0] IMPLICIT.
						b.AddBytes(append([]byte{0xa0}, attrSet[1:]...))
						sigAlg(b)
						b.AddASN1OctetString(sig)
					})
				})
			})
		})
	})
	return b.Bytes()
}

// sdAddPSSAlgID writes id-RSASSA-PSS with explicit parameters: hash, MGF1
// with the same hash, and the salt length (RFC 4055 §3.1; the hash
// identifiers carry NULL parameters as crypto/x509 writes them).
func sdAddPSSAlgID(c *cryptobyte.Builder, hashOID asn1.ObjectIdentifier, salt int) {
	c.AddASN1(cbasn1.SEQUENCE, func(c *cryptobyte.Builder) {
		c.AddASN1ObjectIdentifier(sdOIDRSAPSS)
		c.AddASN1(cbasn1.SEQUENCE, func(c *cryptobyte.Builder) {
			c.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(c *cryptobyte.Builder) {
				sdAddAlgID(c, hashOID, true)
			})
			c.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(c *cryptobyte.Builder) {
				c.AddASN1(cbasn1.SEQUENCE, func(c *cryptobyte.Builder) {
					c.AddASN1ObjectIdentifier(sdOIDMGF1)
					sdAddAlgID(c, hashOID, true)
				})
			})
			c.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(c *cryptobyte.Builder) {
				c.AddASN1Int64(int64(salt))
			})
		})
	})
}
