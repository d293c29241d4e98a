package cms

import (
	"bytes"
	"crypto"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"io"
	"sort"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/secmail/secmail/reason"
)

// EncryptOptions tune Encrypt.
type EncryptOptions struct {
	// Cipher is the content cipher; default AES256CBC. GCM ciphers
	// produce AuthEnvelopedData.
	Cipher Cipher
	// OAEP selects RSAES-OAEP instead of PKCS#1 v1.5 for RSA recipients.
	OAEP bool
	// OAEPHash is the OAEP (and MGF1) hash; default SHA-256.
	OAEPHash crypto.Hash
	// Rand is the randomness source; default crypto/rand.
	Rand io.Reader
}

// envMaxEncryptRecipients bounds one Encrypt call.
const envMaxEncryptRecipients = 1000

// Encrypt encrypts plaintext to every recipient certificate and returns a
// DER ContentInfo. RSA recipients get a KeyTransRecipientInfo (PKCS#1 v1.5
// or OAEP), EC P-256/P-384/P-521 recipients a KeyAgreeRecipientInfo
// (ephemeral-static ECDH, X9.63 KDF, AES key wrap). GCM ciphers produce
// AuthEnvelopedData (RFC 5083/5084: 12-byte nonce, 16-byte tag), CBC
// ciphers EnvelopedData.
func Encrypt(plaintext []byte, recipients []*x509.Certificate, opts EncryptOptions) (out []byte, err error) {
	defer Recover(&err)
	if len(recipients) == 0 {
		return nil, reason.New(reason.NoCertificate, "no recipient certificates")
	}
	if len(recipients) > envMaxEncryptRecipients {
		return nil, reason.New(reason.TooComplex, "more than %d recipients", envMaxEncryptRecipients)
	}
	if len(plaintext) > MaxInput {
		return nil, reason.New(reason.TooLarge, "plaintext of %d bytes exceeds %d", len(plaintext), MaxInput)
	}
	name := opts.Cipher
	if name == "" {
		name = AES256CBC
	}
	spec, ok := envCipherByName(name)
	if !ok || spec.weak {
		// 3DES is read for old mail but never written.
		return nil, reason.New(reason.UnsupportedAlgorithm, "content cipher %q cannot be used for encryption", name)
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	cek := make([]byte, spec.keyLen)
	if _, err := io.ReadFull(rnd, cek); err != nil {
		return nil, fmt.Errorf("cms: content key: %w", err)
	}
	defer clear(cek)

	var ris [][]byte
	allV0 := true
	for i, cert := range recipients {
		if cert == nil {
			return nil, fmt.Errorf("cms: recipient %d: nil certificate", i)
		}
		var ri []byte
		switch pub := cert.PublicKey.(type) {
		case *rsa.PublicKey:
			ri, err = envKtriFor(rnd, cert, pub, cek, opts)
		case *ecdsa.PublicKey:
			allV0 = false
			ri, err = envKariFor(rnd, cert, cek)
		default:
			return nil, reason.New(reason.UnsupportedAlgorithm, "recipient %q: %T keys cannot receive encrypted mail", cert.Subject.String(), cert.PublicKey)
		}
		if err != nil {
			return nil, fmt.Errorf("cms: recipient %q: %w", cert.Subject.String(), err)
		}
		ris = append(ris, ri)
	}
	// SET OF must be in DER order.
	sort.Slice(ris, func(i, j int) bool { return bytes.Compare(ris[i], ris[j]) < 0 })

	block, err := (envContentAlg{spec: spec}).block(cek)
	if err != nil {
		return nil, err
	}
	var algParams, ct, tag []byte
	if spec.gcm {
		nonce := make([]byte, 12)
		if _, err := io.ReadFull(rnd, nonce); err != nil {
			return nil, fmt.Errorf("cms: nonce: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		sealed := aead.Seal(nil, nonce, plaintext, nil)
		ct, tag = sealed[:len(plaintext)], sealed[len(plaintext):]
		if algParams, err = asn1.Marshal(envGCMParams{Nonce: nonce, ICVLen: aead.Overhead()}); err != nil {
			return nil, err
		}
	} else {
		iv := make([]byte, block.BlockSize())
		if _, err := io.ReadFull(rnd, iv); err != nil {
			return nil, fmt.Errorf("cms: IV: %w", err)
		}
		ct = envCBCEncrypt(block, iv, plaintext)
		if algParams, err = asn1.Marshal(iv); err != nil {
			return nil, err
		}
	}

	version := int64(0)
	contentType := OIDAuthEnvelopedData
	if !spec.gcm {
		contentType = OIDEnvelopedData
		if !allV0 {
			version = 2 // RFC 5652 §6.1: a kari (version 3) is present
		}
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(contentType)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(version)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					for _, ri := range ris {
						b.AddBytes(ri)
					}
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(OIDData)
					envAddAlgID(b, spec.oid, algParams)
					b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) {
						b.AddBytes(ct)
					})
				})
				if spec.gcm {
					b.AddASN1OctetString(tag)
				}
			})
		})
	})
	return b.Bytes()
}

// envKtriFor builds a KeyTransRecipientInfo (version 0, issuer and serial).
func envKtriFor(rnd io.Reader, cert *x509.Certificate, pub *rsa.PublicKey, cek []byte, opts EncryptOptions) ([]byte, error) {
	var enc, params []byte
	oid := envOIDRSA
	var err error
	if opts.OAEP {
		h := opts.OAEPHash
		if h == 0 {
			h = crypto.SHA256
		}
		hashOID, _, ok := envHashOID(h)
		if !ok || !h.Available() {
			return nil, reason.New(reason.UnsupportedAlgorithm, "OAEP hash %v", h)
		}
		oid = envOIDOAEP
		if enc, err = rsa.EncryptOAEP(h.New(), rnd, pub, cek, nil); err != nil {
			return nil, err
		}
		var pb cryptobyte.Builder
		pb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			if h == crypto.SHA1 {
				return // all defaults: SHA-1, MGF1-SHA-1, empty label
			}
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				envAddAlgID(b, hashOID, nil)
			})
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(envOIDMGF1)
					envAddAlgID(b, hashOID, nil)
				})
			})
		})
		if params, err = pb.Bytes(); err != nil {
			return nil, err
		}
	} else {
		// PKCS#1 v1.5 stays the default for the widest client support
		// (RFC 8551 §2.3 still requires it of receivers).
		if enc, err = rsa.EncryptPKCS1v15(rnd, pub, cek); err != nil {
			return nil, err
		}
		params = []byte{5, 0} // NULL
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0)
		envAddIssuerAndSerial(b, cert)
		envAddAlgID(b, oid, params)
		b.AddASN1OctetString(enc)
	})
	return b.Bytes()
}

// envAddAlgID writes an AlgorithmIdentifier; params is a full DER element
// or nil for absent parameters.
func envAddAlgID(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, params []byte) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if params != nil {
			b.AddBytes(params)
		}
	})
}

func envAddIssuerAndSerial(b *cryptobyte.Builder, cert *x509.Certificate) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(cert.RawIssuer)
		b.AddASN1BigInt(cert.SerialNumber)
	})
}
