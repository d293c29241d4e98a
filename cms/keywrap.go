package cms

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"slices"
)

// AES key wrap (RFC 3394) as used by ECDH key agreement in CMS (RFC 5753,
// RFC 3565). golang.org/x/crypto has no key wrap, so this is the RFC's
// index-based algorithm on top of the standard library's AES block
// primitive; it is tested against the RFC's vectors.

var envKeyWrapIV = [8]byte{0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6}

var errKeyWrap = errors.New("cms: AES key unwrap failed")

// envKeyWrap wraps key (a multiple of 8 bytes, at least 16) with kek.
func envKeyWrap(kek, key []byte) ([]byte, error) {
	if len(key)%8 != 0 || len(key) < 16 {
		return nil, errors.New("cms: key wrap input must be a multiple of 8 bytes, at least 16")
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(key) / 8
	out := make([]byte, 8+len(key))
	copy(out[8:], key)
	var a [8]byte
	copy(a[:], envKeyWrapIV[:])
	var buf [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			r := out[8*i : 8*i+8]
			copy(buf[:8], a[:])
			copy(buf[8:], r)
			block.Encrypt(buf[:], buf[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(buf[:8])^t)
			copy(r, buf[8:])
		}
	}
	copy(out[:8], a[:])
	return out, nil
}

// envKeyUnwrap reverses envKeyWrap and checks the integrity value in
// constant time.
func envKeyUnwrap(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped)%8 != 0 || len(wrapped) < 24 {
		return nil, errKeyWrap
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(wrapped)/8 - 1
	out := make([]byte, len(wrapped)-8)
	copy(out, wrapped[8:])
	var a [8]byte
	copy(a[:], wrapped[:8])
	var buf [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			r := out[8*(i-1) : 8*i]
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(buf[:8], binary.BigEndian.Uint64(a[:])^t)
			copy(buf[8:], r)
			block.Decrypt(buf[:], buf[:])
			copy(a[:], buf[:8])
			copy(r, buf[8:])
		}
	}
	if subtle.ConstantTimeCompare(a[:], envKeyWrapIV[:]) != 1 {
		clear(out)
		return nil, errKeyWrap
	}
	return out, nil
}

// Triple-DES key wrap (RFC 3217 §3), which openssl uses when 3DES content
// meets ECDH key agreement. Read only: legacy mail, never written.

var envDES3WrapIV = []byte{0x4a, 0xdd, 0xa2, 0x2c, 0x79, 0xe8, 0x21, 0x05}

// envDES3KeyUnwrap unwraps a 24-byte 3DES key wrapped under a 3DES kek.
func envDES3KeyUnwrap(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped) != 40 {
		return nil, errKeyWrap
	}
	block, err := des.NewTripleDESCipher(kek)
	if err != nil {
		return nil, err
	}
	temp := make([]byte, 40)
	cipher.NewCBCDecrypter(block, envDES3WrapIV).CryptBlocks(temp, wrapped)
	slices.Reverse(temp)
	iv, wk := temp[:8], temp[8:]
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(wk, wk)
	key, cks := wk[:24], wk[24:]
	sum := sha1.Sum(key)
	if subtle.ConstantTimeCompare(sum[:8], cks) != 1 {
		clear(temp)
		return nil, errKeyWrap
	}
	return key, nil
}
