//go:build pkcs11 && cgo

package pkcs11

import (
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"

	p11 "github.com/miekg/pkcs11"

	"github.com/secmail/secmail/keys"
)

// GenerateRSA creates an RSA key pair on the token (public exponent
// 65537), the private key sensitive and never extractable, so its bytes
// exist only inside the token. Both objects get label and CKA_ID = SHA-1
// of the public key, as Import does.
func (t *Token) GenerateRSA(label string, bits int) (keys.PrivateKey, error) {
	if bits < 2048 {
		return nil, fmt.Errorf("keybackend/pkcs11: RSA keys below 2048 bits are not generated")
	}
	pub := []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PUBLIC_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_RSA),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_LABEL, label),
		p11.NewAttribute(p11.CKA_VERIFY, true),
		p11.NewAttribute(p11.CKA_ENCRYPT, true),
		p11.NewAttribute(p11.CKA_MODULUS_BITS, bits),
		p11.NewAttribute(p11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
	}
	priv := append(privateTemplate(label), p11.NewAttribute(p11.CKA_DECRYPT, true))
	return t.generate(p11.CKM_RSA_PKCS_KEY_PAIR_GEN, pub, priv, func(s p11.SessionHandle, pubObj p11.ObjectHandle) ([]byte, error) {
		a, err := t.ctx.GetAttributeValue(s, pubObj, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_MODULUS, nil),
			p11.NewAttribute(p11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return nil, err
		}
		e := new(big.Int).SetBytes(a[1].Value)
		if !e.IsInt64() || e.Int64() > 1<<31-1 {
			return nil, errors.New("RSA public exponent too large")
		}
		id := sha1.Sum(x509.MarshalPKCS1PublicKey(&rsa.PublicKey{N: new(big.Int).SetBytes(a[0].Value), E: int(e.Int64())}))
		return id[:], nil
	})
}

// GenerateEC creates an EC key pair (P-256, P-384 or P-521) on the token,
// usable for ECDSA and ECDH, the private key sensitive and never
// extractable.
func (t *Token) GenerateEC(label string, curve elliptic.Curve) (keys.PrivateKey, error) {
	params, ok := curveParams(curve)
	if !ok {
		return nil, errors.New("keybackend/pkcs11: unsupported EC curve")
	}
	pub := []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PUBLIC_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_EC),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_LABEL, label),
		p11.NewAttribute(p11.CKA_VERIFY, true),
		p11.NewAttribute(p11.CKA_EC_PARAMS, params),
	}
	priv := append(privateTemplate(label), p11.NewAttribute(p11.CKA_DERIVE, true))
	return t.generate(p11.CKM_EC_KEY_PAIR_GEN, pub, priv, func(s p11.SessionHandle, pubObj p11.ObjectHandle) ([]byte, error) {
		a, err := t.ctx.GetAttributeValue(s, pubObj, []*p11.Attribute{p11.NewAttribute(p11.CKA_EC_POINT, nil)})
		if err != nil {
			return nil, err
		}
		id := sha1.Sum(a[0].Value) // the same DER point Import hashes
		return id[:], nil
	})
}

// privateTemplate is the common part of a generated private key.
func privateTemplate(label string) []*p11.Attribute {
	return []*p11.Attribute{
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_LABEL, label),
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
		p11.NewAttribute(p11.CKA_SIGN, true),
	}
}

// generate runs C_GenerateKeyPair, then sets CKA_ID on both objects from
// the public key (the id is unknown before the key exists).
func (t *Token) generate(mech uint, pub, priv []*p11.Attribute, id func(p11.SessionHandle, p11.ObjectHandle) ([]byte, error)) (keys.PrivateKey, error) {
	var out keys.PrivateKey
	err := t.session(func(s p11.SessionHandle) error {
		pubObj, privObj, err := t.ctx.GenerateKeyPair(s, []*p11.Mechanism{p11.NewMechanism(mech, nil)}, pub, priv)
		if err != nil {
			return fmt.Errorf("keybackend/pkcs11: generate: %w", err)
		}
		cleanup := func(err error) error {
			t.ctx.DestroyObject(s, privObj)
			t.ctx.DestroyObject(s, pubObj)
			return fmt.Errorf("keybackend/pkcs11: generate: %w", err)
		}
		kid, err := id(s, pubObj)
		if err != nil {
			return cleanup(err)
		}
		for _, o := range []p11.ObjectHandle{pubObj, privObj} {
			if err := t.ctx.SetAttributeValue(s, o, []*p11.Attribute{p11.NewAttribute(p11.CKA_ID, kid)}); err != nil {
				return cleanup(err)
			}
		}
		out, err = t.keyFromHandle(s, privObj)
		if err != nil {
			return cleanup(err)
		}
		return nil
	})
	return out, err
}
