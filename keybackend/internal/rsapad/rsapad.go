// Package rsapad holds the few pieces of RSA encoding that a backend
// computing only the raw RSA primitive (OpenSSL 3.0 without implicit
// rejection, a PKCS#11 token with CKM_RSA_X_509) must do on the Go side
// to behave exactly like crypto/rsa. The padding checks are ports of
// crypto/rsa's constant-time code, not new constructions.
package rsapad

import (
	"crypto"
	"crypto/rsa"
	_ "crypto/sha1" // hashes for OAEPUnpad
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/subtle"
	"errors"
)

// check reports in constant time whether em is an EME-PKCS1-v1_5 block
// (00 02 PS 00 M, |PS| >= 8); index is where M starts (0 when invalid).
// The same code as crypto/rsa's decryptPKCS1v15.
func check(em []byte) (valid, index int) {
	if len(em) < 11 {
		return 0, 0
	}
	firstByteIsZero := subtle.ConstantTimeByteEq(em[0], 0)
	secondByteIsTwo := subtle.ConstantTimeByteEq(em[1], 2)
	// The remainder of the plaintext must be a string of non-zero random
	// octets, followed by a 0, followed by the message. lookingForIndex
	// is 1 until the first zero byte is found.
	lookingForIndex := 1
	for i := 2; i < len(em); i++ {
		equals0 := subtle.ConstantTimeByteEq(em[i], 0)
		index = subtle.ConstantTimeSelect(lookingForIndex&equals0, i, index)
		lookingForIndex = subtle.ConstantTimeSelect(equals0, 0, lookingForIndex)
	}
	// The PS padding must be at least 8 bytes long, and it starts two
	// bytes into em.
	validPS := subtle.ConstantTimeLessOrEq(2+8, index)
	valid = firstByteIsZero & secondByteIsTwo & (^lookingForIndex & 1) & validPS
	index = subtle.ConstantTimeSelect(valid, index+1, 0)
	return valid, index
}

// LeftPad returns b left-padded with zeros to k bytes (raw RSA output of
// some tokens drops leading zeros; crypto/rsa accepts ciphertexts shorter
// than the modulus); nil when b is longer than k.
func LeftPad(b []byte, k int) []byte {
	if len(b) == k {
		return b
	}
	if len(b) > k {
		return nil
	}
	out := make([]byte, k)
	copy(out[k-len(b):], b)
	return out
}

// SessionKey is rsa.DecryptPKCS1v15SessionKey after the raw RSA
// operation: em is the k-byte result of c^d mod n. key must already hold
// random bytes; it is overwritten, in constant time, only when em carries
// a valid block whose message is exactly len(key) bytes. It fails (with
// rsa.ErrDecryption) only for reasons that do not depend on the
// ciphertext's content, as crypto/rsa does.
func SessionKey(em, key []byte, k int) error {
	if k-(len(key)+3+8) < 0 || len(em) != k {
		return rsa.ErrDecryption
	}
	valid, index := check(em)
	valid &= subtle.ConstantTimeEq(int32(len(em)-index), int32(len(key)))
	subtle.ConstantTimeCopy(valid, key, em[len(em)-len(key):])
	return nil
}

// Unpad is rsa.DecryptPKCS1v15 after the raw RSA operation: it returns
// the message or rsa.ErrDecryption.
func Unpad(em []byte, k int) ([]byte, error) {
	if len(em) != k {
		return nil, rsa.ErrDecryption
	}
	valid, index := check(em)
	if valid == 0 {
		return nil, rsa.ErrDecryption
	}
	return append([]byte(nil), em[index:]...), nil
}

// digestInfoPrefix are the DER prefixes of DigestInfo (RFC 8017 §9.2
// note 1), as in crypto/rsa, for tokens that sign with bare CKM_RSA_PKCS.
var digestInfoPrefix = map[crypto.Hash][]byte{
	crypto.SHA1:   {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14},
	crypto.SHA224: {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c},
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

// ErrUnsupportedHash is returned for a signature hash without a
// DigestInfo encoding here.
var ErrUnsupportedHash = errors.New("rsapad: unsupported hash function")

// DigestInfo returns the DER DigestInfo for digest, or digest itself for
// hash 0 (crypto/rsa's "sign the raw input" convention). Like crypto/rsa
// it rejects a digest whose length does not match hash.
func DigestInfo(hash crypto.Hash, digest []byte) ([]byte, error) {
	if hash == 0 {
		return digest, nil
	}
	prefix, ok := digestInfoPrefix[hash]
	if !ok {
		return nil, ErrUnsupportedHash
	}
	if len(digest) != hash.Size() {
		return nil, errors.New("crypto/rsa: input must be hashed message")
	}
	return append(append([]byte(nil), prefix...), digest...), nil
}

// PSSSaltLength resolves rsa.PSSOptions.SaltLength for signing with a
// key of modulus bitLen, as crypto/rsa does: Auto means as large as
// possible, EqualsHash the hash size.
func PSSSaltLength(opts *rsa.PSSOptions, hash crypto.Hash, bitLen int) (int, error) {
	s := opts.SaltLength
	switch s {
	case rsa.PSSSaltLengthAuto:
		s = (bitLen-1+7)/8 - 2 - hash.Size()
		if s < 0 {
			return 0, rsa.ErrMessageTooLong
		}
	case rsa.PSSSaltLengthEqualsHash:
		s = hash.Size()
	default:
		if s <= 0 {
			return 0, errors.New("crypto/rsa: invalid PSS salt length")
		}
	}
	return s, nil
}

// OAEPUnpad is rsa.DecryptOAEP after the raw RSA operation, for tokens
// whose CKM_RSA_PKCS_OAEP lacks a hash (SoftHSM2 2.6 accepts only SHA-1).
// A port of crypto/internal/fips140/rsa's constant-time decoding.
func OAEPUnpad(em []byte, k int, hash, mgfHash crypto.Hash, label []byte) ([]byte, error) {
	if !hash.Available() || !mgfHash.Available() {
		return nil, ErrUnsupportedHash
	}
	hLen := hash.Size()
	if len(em) != k || k < 2*hLen+2 {
		return nil, rsa.ErrDecryption
	}
	h := hash.New()
	h.Write(label)
	lHash := h.Sum(nil)

	em = append([]byte(nil), em...)
	firstByteIsZero := subtle.ConstantTimeByteEq(em[0], 0)
	seed := em[1 : hLen+1]
	db := em[hLen+1:]
	mgf1XOR(seed, mgfHash, db)
	mgf1XOR(db, mgfHash, seed)
	lHash2Good := subtle.ConstantTimeCompare(lHash, db[:hLen])

	// The rest must be zero or more 0x00, then 0x01, then the message.
	// lookingForIndex is 1 until the 0x01; invalid is set by a non-zero
	// byte before it.
	lookingForIndex, index, invalid := 1, 0, 0
	rest := db[hLen:]
	for i := 0; i < len(rest); i++ {
		equals0 := subtle.ConstantTimeByteEq(rest[i], 0)
		equals1 := subtle.ConstantTimeByteEq(rest[i], 1)
		index = subtle.ConstantTimeSelect(lookingForIndex&equals1, i, index)
		lookingForIndex = subtle.ConstantTimeSelect(equals1, 0, lookingForIndex)
		invalid = subtle.ConstantTimeSelect(lookingForIndex&^equals0, 1, invalid)
	}
	if firstByteIsZero&lHash2Good&^invalid&^lookingForIndex != 1 {
		return nil, rsa.ErrDecryption
	}
	return rest[index+1:], nil
}

// mgf1XOR XORs out with MGF1(seed) (RFC 8017 B.2.1).
func mgf1XOR(out []byte, hash crypto.Hash, seed []byte) {
	h := hash.New()
	var counter [4]byte
	var digest []byte
	done := 0
	for done < len(out) {
		h.Reset()
		h.Write(seed)
		h.Write(counter[:])
		digest = h.Sum(digest[:0])
		for i := 0; i < len(digest) && done < len(out); i++ {
			out[done] ^= digest[i]
			done++
		}
		for i := 3; i >= 0; i-- {
			counter[i]++
			if counter[i] != 0 {
				break
			}
		}
	}
}
