//go:build openssl && cgo

package openssl

/*
#cgo LDFLAGS: -lcrypto
#include <stddef.h>
#include <openssl/evp.h>
#include <openssl/err.h>

// sm_cbc_fetch returns AES-CBC for a key of klen bytes, fetched once from
// the default provider (the legacy EVP_aes_*_cbc getters fetch again on
// every EVP_DecryptInit_ex). NULL for other key sizes.
static EVP_CIPHER *sm_cbc_fetch(int klen) {
	const char *name = klen == 16 ? "AES-128-CBC" : klen == 24 ? "AES-192-CBC" : klen == 32 ? "AES-256-CBC" : NULL;
	EVP_CIPHER *c = name == NULL ? NULL : EVP_CIPHER_fetch(NULL, name, NULL);
	ERR_clear_error();
	return c;
}

// sm_cbc_decrypt decrypts len bytes (a multiple of 16) in place, padding
// left in place. 1 on success.
static int sm_cbc_decrypt(const EVP_CIPHER *c, const unsigned char *key, const unsigned char *iv, unsigned char *buf, size_t len) {
	int ok = 0, n;
	EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
	if (x == NULL) goto end;
	if (EVP_DecryptInit_ex2(x, c, key, iv, NULL) != 1 || EVP_CIPHER_CTX_set_padding(x, 0) != 1) goto end;
	for (size_t off = 0; off < len; off += (size_t)n) {
		size_t chunk = len - off > (1u << 30) ? (1u << 30) : len - off;
		if (EVP_DecryptUpdate(x, buf + off, &n, buf + off, (int)chunk) != 1 || (size_t)n != chunk) goto end;
	}
	ok = 1;
end:
	EVP_CIPHER_CTX_free(x);
	ERR_clear_error();
	return ok;
}
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"
)

// cbcCiphers holds AES-128/192/256-CBC fetched from the default provider,
// once per backend. OpenSSL's method store keeps fetched algorithms for
// the life of the process anyway, so they are not freed.
type cbcCiphers struct {
	once sync.Once
	c    [3]*C.EVP_CIPHER
}

func (cc *cbcCiphers) get(keyLen int) *C.EVP_CIPHER {
	cc.once.Do(func() {
		for i, n := range []int{16, 24, 32} {
			cc.c[i] = C.sm_cbc_fetch(C.int(n))
		}
	})
	switch keyLen {
	case 16:
		return cc.c[0]
	case 24:
		return cc.c[1]
	case 32:
		return cc.c[2]
	}
	return nil
}

// HasAESCBC reports whether this libcrypto provides AES-128/192/256-CBC,
// that is, whether DecryptAESCBC can work (keybackend.Offload asks).
func (b *Backend) HasAESCBC() bool {
	return b.cbc.get(16) != nil && b.cbc.get(24) != nil && b.cbc.get(32) != nil
}

// DecryptAESCBC decrypts buf in place with AES-CBC, padding left in place:
// cms.CBCDecrypter. Go's crypto/cipher decrypts CBC one block per call on
// amd64; OpenSSL's AES-NI code works on several blocks at once.
func (b *Backend) DecryptAESCBC(key, iv, buf []byte) error {
	if len(iv) != 16 || len(buf)%16 != 0 {
		return fmt.Errorf("%w: AES-CBC with a %d-byte IV and %d bytes of content", ErrOperation, len(iv), len(buf))
	}
	c := b.cbc.get(len(key))
	if c == nil {
		return fmt.Errorf("%w: AES-CBC with a %d-byte key", ErrOperation, len(key))
	}
	if len(buf) == 0 {
		return nil
	}
	if C.sm_cbc_decrypt(c, (*C.uchar)(unsafe.Pointer(&key[0])), (*C.uchar)(unsafe.Pointer(&iv[0])),
		(*C.uchar)(unsafe.Pointer(&buf[0])), C.size_t(len(buf))) != 1 {
		return fmt.Errorf("%w: AES-CBC decryption", ErrOperation)
	}
	return nil
}
