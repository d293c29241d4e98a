package keyring

// Encrypted PKCS#8 (RFC 5958 EncryptedPrivateKeyInfo with RFC 8018 PBES2).
// The standard library cannot open it. Rather than add a dependency for it,
// this file only reads the ASN.1 parameters; every primitive (PBKDF2,
// scrypt, AES, 3DES, CBC) comes from the standard library and
// golang.org/x/crypto, both already required.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"hash"

	"golang.org/x/crypto/scrypt"

	"github.com/secmail/secmail/reason"
)

var (
	oidPBES2         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}
	oidHMACSHA1      = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA224    = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACSHA256    = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384    = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512    = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3CBC    = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
	errBadPassphrase = errors.New("keyring: wrong passphrase")
)

// Limits on attacker-chosen scrypt cost (PBKDF2 uses maxKDFIterations).
// OpenSSL's defaults are scrypt N=16384, r=8, p=1.
const (
	maxScryptMemory = 256 << 20 // 128*N*r bytes
	maxScryptP      = 64
)

type encryptedPKCS8 struct {
	Algo pkix.AlgorithmIdentifier
	Data []byte
}

type pbes2Params struct {
	KDF pkix.AlgorithmIdentifier
	Enc pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt      []byte
	Iter      int
	KeyLength int                      `asn1:"optional"`
	PRF       pkix.AlgorithmIdentifier `asn1:"optional"`
}

type scryptParams struct {
	Salt      []byte
	N         int
	R         int
	P         int
	KeyLength int `asn1:"optional"`
}

// encKey is a parsed EncryptedPrivateKeyInfo ready to be tried with passphrases.
type encKey struct {
	data   []byte
	derive func(pass string, keyLen int) ([]byte, error)
	block  func(key []byte) (cipher.Block, error)
	keyLen int
	iv     []byte
}

// parseEncryptedPKCS8 reads the structure and checks the parameters, so
// unsupported schemes are reported before any passphrase is tried.
func parseEncryptedPKCS8(der []byte) (*encKey, error) {
	var epki encryptedPKCS8
	if rest, err := asn1.Unmarshal(der, &epki); err != nil || len(rest) != 0 {
		return nil, reason.New(reason.Malformed, "encrypted private key: not an EncryptedPrivateKeyInfo")
	}
	if !epki.Algo.Algorithm.Equal(oidPBES2) {
		return nil, reason.New(reason.UnsupportedAlgorithm, "encrypted private key: scheme %v (only PBES2 is supported; re-export with openssl pkcs8 -topk8 -v2 aes-256-cbc)", epki.Algo.Algorithm)
	}
	var params pbes2Params
	if rest, err := asn1.Unmarshal(epki.Algo.Parameters.FullBytes, &params); err != nil || len(rest) != 0 {
		return nil, reason.New(reason.Malformed, "encrypted private key: PBES2 parameters")
	}
	k := &encKey{data: epki.Data}

	switch enc := params.Enc.Algorithm; {
	case enc.Equal(oidAES128CBC):
		k.keyLen, k.block = 16, aes.NewCipher
	case enc.Equal(oidAES192CBC):
		k.keyLen, k.block = 24, aes.NewCipher
	case enc.Equal(oidAES256CBC):
		k.keyLen, k.block = 32, aes.NewCipher
	case enc.Equal(oidDESEDE3CBC):
		k.keyLen, k.block = 24, des.NewTripleDESCipher
	default:
		return nil, reason.New(reason.UnsupportedAlgorithm, "encrypted private key: cipher %v", enc)
	}
	if rest, err := asn1.Unmarshal(params.Enc.Parameters.FullBytes, &k.iv); err != nil || len(rest) != 0 {
		return nil, reason.New(reason.Malformed, "encrypted private key: cipher IV")
	}
	bs := 16
	if params.Enc.Algorithm.Equal(oidDESEDE3CBC) {
		bs = 8
	}
	if len(k.iv) != bs || len(k.data) == 0 || len(k.data)%bs != 0 {
		return nil, reason.New(reason.Malformed, "encrypted private key: IV or ciphertext length")
	}

	switch kdf := params.KDF.Algorithm; {
	case kdf.Equal(oidPBKDF2):
		var kp pbkdf2Params
		if rest, err := asn1.Unmarshal(params.KDF.Parameters.FullBytes, &kp); err != nil || len(rest) != 0 {
			return nil, reason.New(reason.Malformed, "encrypted private key: PBKDF2 parameters")
		}
		if !iterOK(int64(kp.Iter)) {
			return nil, reason.New(reason.TooComplex, "encrypted private key: %d PBKDF2 iterations", kp.Iter)
		}
		if kp.KeyLength != 0 && kp.KeyLength != k.keyLen {
			return nil, reason.New(reason.Malformed, "encrypted private key: key length %d", kp.KeyLength)
		}
		var h func() hash.Hash
		switch prf := kp.PRF.Algorithm; {
		case len(prf) == 0 || prf.Equal(oidHMACSHA1):
			h = sha1.New
		case prf.Equal(oidHMACSHA224):
			h = sha256.New224
		case prf.Equal(oidHMACSHA256):
			h = sha256.New
		case prf.Equal(oidHMACSHA384):
			h = sha512.New384
		case prf.Equal(oidHMACSHA512):
			h = sha512.New
		default:
			return nil, reason.New(reason.UnsupportedAlgorithm, "encrypted private key: PBKDF2 PRF %v", prf)
		}
		k.derive = func(pass string, n int) ([]byte, error) {
			return pbkdf2.Key(h, pass, kp.Salt, kp.Iter, n)
		}
	case kdf.Equal(oidScrypt):
		var sp scryptParams
		if rest, err := asn1.Unmarshal(params.KDF.Parameters.FullBytes, &sp); err != nil || len(rest) != 0 {
			return nil, reason.New(reason.Malformed, "encrypted private key: scrypt parameters")
		}
		if sp.N < 2 || sp.R < 1 || sp.P < 1 || sp.P > maxScryptP || int64(sp.N)*int64(sp.R)*128 > maxScryptMemory {
			return nil, reason.New(reason.TooComplex, "encrypted private key: scrypt N=%d r=%d p=%d", sp.N, sp.R, sp.P)
		}
		if sp.KeyLength != 0 && sp.KeyLength != k.keyLen {
			return nil, reason.New(reason.Malformed, "encrypted private key: key length %d", sp.KeyLength)
		}
		k.derive = func(pass string, n int) ([]byte, error) {
			return scrypt.Key([]byte(pass), sp.Salt, sp.N, sp.R, sp.P, n)
		}
	default:
		return nil, reason.New(reason.UnsupportedAlgorithm, "encrypted private key: key derivation %v", kdf)
	}
	return k, nil
}

// decrypt returns the PKCS#8 PrivateKeyInfo, or errBadPassphrase when the
// padding shows the passphrase is wrong.
func (k *encKey) decrypt(pass string) ([]byte, error) {
	key, err := k.derive(pass, k.keyLen)
	if err != nil {
		return nil, reason.Wrap(reason.Malformed, err, "encrypted private key: key derivation")
	}
	b, err := k.block(key)
	if err != nil {
		return nil, reason.Wrap(reason.Malformed, err, "encrypted private key: cipher")
	}
	out := make([]byte, len(k.data))
	cipher.NewCBCDecrypter(b, k.iv).CryptBlocks(out, k.data)
	n := int(out[len(out)-1])
	if n == 0 || n > b.BlockSize() {
		return nil, errBadPassphrase
	}
	for _, c := range out[len(out)-n:] {
		if int(c) != n {
			return nil, errBadPassphrase
		}
	}
	return out[:len(out)-n], nil
}
