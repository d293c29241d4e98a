package cms

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/subtle"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/secmail/secmail/reason"
)

// Cipher names a content-encryption algorithm, in openssl's spelling.
type Cipher string

// Content-encryption algorithms. 3DES is read only (with Weak set).
const (
	AES128CBC Cipher = "aes-128-cbc"
	AES192CBC Cipher = "aes-192-cbc"
	AES256CBC Cipher = "aes-256-cbc"
	AES128GCM Cipher = "aes-128-gcm"
	AES192GCM Cipher = "aes-192-gcm"
	AES256GCM Cipher = "aes-256-gcm"
	DES3CBC   Cipher = "des-ede3-cbc"
)

// Content-encryption algorithm OIDs (RFC 3565, RFC 5084, RFC 3370, RFC 8018).
var (
	envOIDAES128CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	envOIDAES192CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	envOIDAES256CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	envOIDAES128GCM = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 6}
	envOIDAES192GCM = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 26}
	envOIDAES256GCM = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}
	envOIDDES3CBC   = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
	envOIDDESCBC    = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 7}
	envOIDRC2CBC    = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 2}
)

// envCipherSpec describes one supported content cipher.
type envCipherSpec struct {
	name   Cipher
	oid    asn1.ObjectIdentifier
	keyLen int
	gcm    bool
	weak   bool
}

var envCiphers = []envCipherSpec{
	{AES128CBC, envOIDAES128CBC, 16, false, false},
	{AES192CBC, envOIDAES192CBC, 24, false, false},
	{AES256CBC, envOIDAES256CBC, 32, false, false},
	{AES128GCM, envOIDAES128GCM, 16, true, false},
	{AES192GCM, envOIDAES192GCM, 24, true, false},
	{AES256GCM, envOIDAES256GCM, 32, true, false},
	{DES3CBC, envOIDDES3CBC, 24, false, true},
}

// OID returns the algorithm identifier of c, or nil for an unknown cipher.
func (c Cipher) OID() asn1.ObjectIdentifier {
	if s, ok := envCipherByName(c); ok {
		return s.oid
	}
	return nil
}

// CipherByOID returns the cipher for a dotted OID (as harvested from
// SMIMECapabilities), or "" when secmail does not know it.
func CipherByOID(oid string) Cipher {
	for _, s := range envCiphers {
		if s.oid.String() == oid {
			return s.name
		}
	}
	return ""
}

func envCipherByName(c Cipher) (envCipherSpec, bool) {
	for _, s := range envCiphers {
		if s.name == c {
			return s, true
		}
	}
	return envCipherSpec{}, false
}

// envContentAlg is a parsed contentEncryptionAlgorithm.
type envContentAlg struct {
	spec   envCipherSpec
	iv     []byte // CBC IV or GCM nonce
	tagLen int    // GCM only
}

// envGCMParams is GCMParameters (RFC 5084). The ICV length defaults to 12.
type envGCMParams struct {
	Nonce  []byte
	ICVLen int `asn1:"optional,default:12"`
}

// envParseContentAlg maps an AlgorithmIdentifier to a cipher, refusing
// what we do not read.
func envParseContentAlg(alg AlgorithmIdentifier, allow3DES bool) (envContentAlg, error) {
	var spec envCipherSpec
	found := false
	for _, s := range envCiphers {
		if s.oid.Equal(alg.Algorithm) {
			spec, found = s, true
			break
		}
	}
	if !found {
		name := alg.Algorithm.String()
		switch {
		case alg.Algorithm.Equal(envOIDDESCBC):
			name = "des-cbc"
		case alg.Algorithm.Equal(envOIDRC2CBC):
			name = "rc2-cbc"
		}
		return envContentAlg{}, reason.New(reason.UnsupportedAlgorithm, "content encryption algorithm %s is not supported", name)
	}
	if spec.weak && !allow3DES {
		return envContentAlg{}, reason.New(reason.UnsupportedAlgorithm, "content encryption algorithm %s is refused by configuration", spec.name)
	}
	ca := envContentAlg{spec: spec}
	if spec.gcm {
		var p envGCMParams
		rest, err := asn1.Unmarshal(alg.Parameters.FullBytes, &p)
		if err != nil || len(rest) != 0 {
			return ca, reason.New(reason.Malformed, "bad GCM parameters")
		}
		if len(p.Nonce) != 12 {
			return ca, reason.New(reason.UnsupportedAlgorithm, "GCM nonce of %d bytes is not supported", len(p.Nonce))
		}
		if p.ICVLen < 12 || p.ICVLen > 16 {
			return ca, reason.New(reason.Malformed, "GCM tag length %d out of range", p.ICVLen)
		}
		ca.iv, ca.tagLen = p.Nonce, p.ICVLen
		return ca, nil
	}
	var iv []byte
	rest, err := asn1.Unmarshal(alg.Parameters.FullBytes, &iv)
	if err != nil || len(rest) != 0 {
		return ca, reason.New(reason.Malformed, "bad %s IV", spec.name)
	}
	bs := aes.BlockSize
	if spec.weak {
		bs = des.BlockSize
	}
	if len(iv) != bs {
		return ca, reason.New(reason.Malformed, "%s IV of %d bytes", spec.name, len(iv))
	}
	ca.iv = iv
	return ca, nil
}

func (ca envContentAlg) block(key []byte) (cipher.Block, error) {
	if len(key) != ca.spec.keyLen {
		return nil, fmt.Errorf("cms: %s key of %d bytes", ca.spec.name, len(key))
	}
	if ca.spec.weak {
		return des.NewTripleDESCipher(key)
	}
	return aes.NewCipher(key)
}

var errDecryptFailed = errors.New("decryption failed")

// envPadLen returns the PKCS#7 padding length of the final block, checking
// every padding byte without data-dependent branches, or 0 when the
// padding is invalid.
func envPadLen(last []byte) int {
	bs := len(last)
	p := int(last[bs-1])
	// good is 1 when 1 <= p <= bs.
	good := subtle.ConstantTimeLessOrEq(1, p) & subtle.ConstantTimeLessOrEq(p, bs)
	for i := 0; i < bs; i++ {
		// Byte i (from the end, 1-based i+1) is padding when i < p.
		inPad := subtle.ConstantTimeLessOrEq(i+1, p)
		eq := subtle.ConstantTimeByteEq(last[bs-1-i], byte(p))
		good &= subtle.ConstantTimeSelect(inPad, eq, 1)
	}
	return subtle.ConstantTimeSelect(good, p, 0)
}

// envCBCCheck decrypts only the last block of ct to test whether key
// yields valid padding: a cheap way to choose between candidate keys (key
// rollover, RSA implicit rejection) before decrypting everything.
func envCBCCheck(b cipher.Block, iv, ct []byte) bool {
	bs := b.BlockSize()
	if len(ct) == 0 || len(ct)%bs != 0 {
		return false
	}
	prev := iv
	if len(ct) > bs {
		prev = ct[len(ct)-2*bs : len(ct)-bs]
	}
	last := make([]byte, bs)
	b.Decrypt(last, ct[len(ct)-bs:])
	subtle.XORBytes(last, last, prev)
	return envPadLen(last) != 0
}

// envCBCDecrypt decrypts buf in place and strips the padding. fast, when
// set, decrypts instead of b (AES only; key is b's key).
func envCBCDecrypt(b cipher.Block, fast CBCDecrypter, key, iv, buf []byte) ([]byte, error) {
	bs := b.BlockSize()
	if len(buf) == 0 || len(buf)%bs != 0 {
		return nil, reason.Wrap(reason.Malformed, errDecryptFailed, "ciphertext is not a whole number of blocks")
	}
	if fast == nil {
		cipher.NewCBCDecrypter(b, iv).CryptBlocks(buf, buf)
	} else if err := fast.DecryptAESCBC(key, iv, buf); err != nil {
		clear(buf)
		return nil, reason.Wrap(reason.Malformed, errDecryptFailed, "content decryption failed: "+err.Error())
	}
	p := envPadLen(buf[len(buf)-bs:])
	if p == 0 {
		clear(buf)
		return nil, reason.Wrap(reason.Malformed, errDecryptFailed, "bad padding")
	}
	return buf[:len(buf)-p], nil
}

// envCBCEncrypt pads plaintext and encrypts it into a fresh buffer.
func envCBCEncrypt(b cipher.Block, iv, plaintext []byte) []byte {
	bs := b.BlockSize()
	p := bs - len(plaintext)%bs
	out := make([]byte, len(plaintext)+p)
	copy(out, plaintext)
	for i := len(plaintext); i < len(out); i++ {
		out[i] = byte(p)
	}
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(out, out)
	return out
}
