//go:build openssl && cgo

package openssl

/*
#cgo LDFLAGS: -lcrypto
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/err.h>
#include <openssl/crypto.h>

#include "md.h"

static EVP_PKEY *sm_load(const unsigned char *der, long len) {
	const unsigned char *p = der;
	EVP_PKEY *k = d2i_AutoPrivateKey(NULL, &p, len);
	ERR_clear_error();
	return k;
}

// sm_peer makes a public key on k's curve from an uncompressed point:
// copying k's parameters avoids OpenSSL 3's slow generic decoders.
static EVP_PKEY *sm_peer(EVP_PKEY *k, const unsigned char *pt, size_t len) {
	EVP_PKEY *p = EVP_PKEY_new();
	if (p == NULL) goto err;
	if (EVP_PKEY_copy_parameters(p, k) <= 0) goto err;
	if (EVP_PKEY_set1_encoded_public_key(p, pt, len) <= 0) goto err;
	ERR_clear_error();
	return p;
err:
	EVP_PKEY_free(p);
	ERR_clear_error();
	return NULL;
}

// sm_rsa_raw_ctx returns a context for raw RSA decryption (in^d mod n)
// with k, or NULL.
static EVP_PKEY_CTX *sm_rsa_raw_ctx(EVP_PKEY *k) {
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k, NULL);
	if (c == NULL) goto err;
	if (EVP_PKEY_decrypt_init(c) <= 0) goto err;
	if (EVP_PKEY_CTX_set_rsa_padding(c, RSA_NO_PADDING) <= 0) goto err;
	ERR_clear_error();
	return c;
err:
	EVP_PKEY_CTX_free(c);
	ERR_clear_error();
	return NULL;
}

// sm_rsa_raw_once decrypts with c (from sm_rsa_raw_ctx) into out
// (outlen bytes, the modulus size) and frees c. Returns 1 on success.
static int sm_rsa_raw_once(EVP_PKEY_CTX *c, const unsigned char *in, size_t inlen, unsigned char *out, size_t outlen) {
	size_t n = outlen;
	int ok = EVP_PKEY_decrypt(c, out, &n, in, inlen) > 0 && n == outlen;
	EVP_PKEY_CTX_free(c);
	ERR_clear_error();
	return ok;
}

// sm_rsa_oaep decrypts RSA-OAEP; returns the plaintext length or -1.
static long sm_rsa_oaep(EVP_PKEY *k, int h, int mgfh, const unsigned char *label, size_t labellen,
		const unsigned char *in, size_t inlen, unsigned char *out, size_t outlen) {
	long ret = -1;
	const EVP_MD *md = sm_md(h), *mgf = sm_md(mgfh);
	EVP_PKEY_CTX *c = NULL;
	if (md == NULL || mgf == NULL) goto end;
	c = EVP_PKEY_CTX_new(k, NULL);
	if (c == NULL) goto end;
	if (EVP_PKEY_decrypt_init(c) <= 0) goto end;
	if (EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) <= 0) goto end;
	if (EVP_PKEY_CTX_set_rsa_oaep_md(c, md) <= 0) goto end;
	if (EVP_PKEY_CTX_set_rsa_mgf1_md(c, mgf) <= 0) goto end;
	if (labellen > 0) {
		// set0 takes ownership of the label.
		unsigned char *l = OPENSSL_memdup(label, labellen);
		if (l == NULL) goto end;
		if (EVP_PKEY_CTX_set0_rsa_oaep_label(c, l, (int)labellen) <= 0) { OPENSSL_free(l); goto end; }
	}
	size_t n = outlen;
	if (EVP_PKEY_decrypt(c, out, &n, in, inlen) <= 0) goto end;
	ret = (long)n;
end:
	EVP_PKEY_CTX_free(c);
	ERR_clear_error();
	return ret;
}

// sm_sign signs a digest. pad: 0 = none (EC), 1 = PKCS#1 v1.5, 2 = PSS.
// h = 0 signs the raw input (PKCS#1 v1.5 without DigestInfo). Returns the
// signature length or -1.
static long sm_sign(EVP_PKEY *k, int pad, int h, int saltlen, const unsigned char *in, size_t inlen,
		unsigned char *out, size_t outlen) {
	long ret = -1;
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k, NULL);
	if (c == NULL) goto end;
	if (EVP_PKEY_sign_init(c) <= 0) goto end;
	if (pad == 1 && EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) <= 0) goto end;
	if (pad == 2) {
		if (EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PSS_PADDING) <= 0) goto end;
		if (EVP_PKEY_CTX_set_rsa_pss_saltlen(c, saltlen) <= 0) goto end;
		if (EVP_PKEY_CTX_set_rsa_mgf1_md(c, sm_md(h)) <= 0) goto end;
	}
	if (h != 0) {
		const EVP_MD *md = sm_md(h);
		if (md == NULL) goto end;
		if (EVP_PKEY_CTX_set_signature_md(c, md) <= 0) goto end;
	}
	size_t n = outlen;
	if (EVP_PKEY_sign(c, out, &n, in, inlen) <= 0) goto end;
	ret = (long)n;
end:
	EVP_PKEY_CTX_free(c);
	ERR_clear_error();
	return ret;
}

// sm_derive runs ECDH with peer; returns the secret length or -1.
static long sm_derive(EVP_PKEY *k, EVP_PKEY *peer, unsigned char *out, size_t outlen) {
	long ret = -1;
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k, NULL);
	if (c == NULL) goto end;
	if (EVP_PKEY_derive_init(c) <= 0) goto end;
	// No second peer validation: crypto/ecdh checked the point is on the
	// curve, and P-256/P-384/P-521 have cofactor 1, so the extra full
	// check (a scalar multiplication by the order) buys nothing.
	if (EVP_PKEY_derive_set_peer_ex(c, peer, 0) <= 0) goto end;
	size_t n = outlen;
	if (EVP_PKEY_derive(c, out, &n) <= 0) goto end;
	ret = (long)n;
end:
	EVP_PKEY_CTX_free(c);
	ERR_clear_error();
	return ret;
}
*/
import "C"

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"unsafe"

	"github.com/secmail/secmail/keybackend/internal/rsapad"
	"github.com/secmail/secmail/keys"
)

// ErrClosed is returned by operations on a key after Close.
var ErrClosed = errors.New("keybackend/openssl: key closed")

// ErrOperation is wrapped by errors of a failed OpenSSL operation other
// than decryption (which fails with rsa.ErrDecryption, as in Go).
var ErrOperation = errors.New("keybackend/openssl: operation failed")

// Backend is the keybackend.Backend for OpenSSL. It also verifies
// signatures (VerifyPKCS1v15, VerifyPSS, VerifyASN1: cms.PublicKeyVerifier),
// decrypts AES-CBC content (DecryptAESCBC: cms.CBCDecrypter) and keeps
// the signers' public keys it was given for that.
type Backend struct {
	pubs pubCache
	cbc  cbcCiphers
}

// New returns the OpenSSL backend. Each private key owns its EVP_PKEY;
// the backend holds only the cache of public keys.
func New() *Backend { return &Backend{} }

// Name returns "openssl".
func (*Backend) Name() string { return "openssl" }

// Close drops the public-key cache (verification keeps working and
// builds it anew); private keys are freed individually.
func (b *Backend) Close() error { b.pubs.reset(); return nil }

// Load converts a Go RSA or ECDSA key into an OpenSSL key. Ed25519 keys and
// keys that are already not Go's (OpenSSL, PKCS#11) come back unchanged.
func (*Backend) Load(k keys.PrivateKey) (keys.PrivateKey, error) { return Load(k) }

// Load converts k; see Backend.Load.
func Load(k keys.PrivateKey) (keys.PrivateKey, error) {
	if k == nil {
		return nil, errors.New("keybackend/openssl: nil key")
	}
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return k, nil // not a Go key
		}
		der, err := x509.MarshalPKCS8PrivateKey(rk)
		if err != nil {
			return nil, fmt.Errorf("keybackend/openssl: %w", err)
		}
		defer clear(der) // no stray copy of the key bytes
		return LoadPKCS8(der)
	case *ecdsa.PublicKey:
		// keys.Wrap's EC key hides its *ecdsa.PrivateKey but promotes its
		// Bytes method (the raw scalar).
		b, ok := k.(interface{ Bytes() ([]byte, error) })
		if !ok {
			return k, nil
		}
		raw, err := b.Bytes()
		if err != nil {
			return nil, fmt.Errorf("keybackend/openssl: EC key: %w", err)
		}
		ek, err := ecdsa.ParseRawPrivateKey(pub.Curve, raw)
		if err != nil {
			return nil, fmt.Errorf("keybackend/openssl: EC key: %w", err)
		}
		clear(raw)
		der, err := x509.MarshalPKCS8PrivateKey(ek)
		if err != nil {
			return nil, fmt.Errorf("keybackend/openssl: %w", err)
		}
		defer clear(der)
		return LoadPKCS8(der)
	case ed25519.PublicKey:
		return k, nil
	default:
		return nil, fmt.Errorf("keybackend/openssl: unsupported key type %T", pub)
	}
}

// LoadPKCS8 decodes an unencrypted PKCS#8 RSA or EC (P-256, P-384,
// P-521) private key into an OpenSSL key. The result is *RSAKey or
// *ECKey.
func LoadPKCS8(der []byte) (keys.PrivateKey, error) {
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("keybackend/openssl: %w", err)
	}
	if len(der) == 0 {
		return nil, errors.New("keybackend/openssl: empty key")
	}
	p := C.sm_load((*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)))
	if p == nil {
		return nil, fmt.Errorf("keybackend/openssl: OpenSSL cannot decode the key: %w", ErrOperation)
	}
	h := newHandle(p)
	switch k := parsed.(type) {
	case *rsa.PrivateKey:
		r := &RSAKey{h: h, pub: &k.PublicKey}
		runtime.AddCleanup(r, func(h *handle) { h.free() }, h)
		return r, nil
	case *ecdsa.PrivateKey:
		dh, err := k.PublicKey.ECDH()
		if err != nil {
			h.free()
			return nil, fmt.Errorf("keybackend/openssl: %w", err)
		}
		e := &ECKey{h: h, pub: &k.PublicKey, dhCurve: dh.Curve()}
		runtime.AddCleanup(e, func(h *handle) { h.free() }, h)
		return e, nil
	}
	h.free()
	return nil, fmt.Errorf("keybackend/openssl: unsupported key type %T", parsed)
}

// handle owns one EVP_PKEY. Operations hold the read lock, so Close
// waits for them instead of freeing a key in use.
type handle struct {
	mu sync.RWMutex
	p  *C.EVP_PKEY
	// raw is an initialised raw-decryption context, copied for each
	// decryption (a context must not be shared between threads): copying
	// skips OpenSSL 3.0's algorithm fetch of a fresh one, a few percent
	// of an RSA-2048 decryption. rawMu serialises the copying; created on
	// first use, freed with p.
	rawMu sync.Mutex
	raw   *C.EVP_PKEY_CTX
}

func newHandle(p *C.EVP_PKEY) *handle { return &handle{p: p} }

func (h *handle) free() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.raw != nil {
		C.EVP_PKEY_CTX_free(h.raw)
		h.raw = nil
	}
	if h.p != nil {
		C.EVP_PKEY_free(h.p)
		h.p = nil
	}
}

// rawCtx returns a fresh copy of the raw-decryption context for p (the
// live key, read lock held), or nil.
func (h *handle) rawCtx(p *C.EVP_PKEY) *C.EVP_PKEY_CTX {
	h.rawMu.Lock()
	defer h.rawMu.Unlock()
	if h.raw == nil {
		if h.raw = C.sm_rsa_raw_ctx(p); h.raw == nil {
			return nil
		}
	}
	return C.EVP_PKEY_CTX_dup(h.raw)
}

// with runs f with the live EVP_PKEY.
func (h *handle) with(f func(*C.EVP_PKEY) error) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.p == nil {
		return ErrClosed
	}
	return f(h.p)
}

// hashID maps a crypto.Hash to sm_md's numbering (crypto.Hash's own).
func hashID(h crypto.Hash) (C.int, error) {
	switch h {
	case crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512:
		return C.int(h), nil
	}
	return 0, fmt.Errorf("keybackend/openssl: unsupported hash %v: %w", h, ErrOperation)
}

func ptr(b []byte) *C.uchar {
	if len(b) == 0 {
		return nil
	}
	return (*C.uchar)(unsafe.Pointer(&b[0]))
}

// RSAKey is an RSA private key held by OpenSSL. It implements
// crypto.Signer and crypto.Decrypter like *rsa.PrivateKey.
type RSAKey struct {
	h   *handle
	pub *rsa.PublicKey
}

// Public returns the *rsa.PublicKey.
func (k *RSAKey) Public() crypto.PublicKey { return k.pub }

// Close frees the OpenSSL key; later operations fail with ErrClosed.
func (k *RSAKey) Close() error { k.h.free(); return nil }

// raw computes c^d mod n (k bytes). A ciphertext longer than the modulus
// or not below n fails with rsa.ErrDecryption; a shorter one is a smaller
// number, as in crypto/rsa.
func (k *RSAKey) raw(ct []byte) ([]byte, error) {
	size := k.pub.Size()
	if ct = rsapad.LeftPad(ct, size); ct == nil {
		return nil, rsa.ErrDecryption
	}
	em := make([]byte, size)
	err := k.h.with(func(p *C.EVP_PKEY) error {
		c := k.h.rawCtx(p)
		if c == nil || C.sm_rsa_raw_once(c, ptr(ct), C.size_t(len(ct)), ptr(em), C.size_t(size)) != 1 {
			return rsa.ErrDecryption
		}
		return nil
	})
	runtime.KeepAlive(k)
	return em, err
}

// Decrypt decrypts like (*rsa.PrivateKey).Decrypt: opts nil or
// *rsa.PKCS1v15DecryptOptions (with SessionKeyLen: implicit rejection, a
// bad block yields random bytes of that length and no error) or
// *rsa.OAEPOptions.
func (k *RSAKey) Decrypt(random io.Reader, ct []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	if random == nil {
		random = rand.Reader
	}
	switch o := opts.(type) {
	case nil:
		return k.decryptPKCS1v15(ct)
	case *rsa.PKCS1v15DecryptOptions:
		if o.SessionKeyLen <= 0 {
			return k.decryptPKCS1v15(ct)
		}
		key := make([]byte, o.SessionKeyLen)
		if _, err := io.ReadFull(random, key); err != nil {
			return nil, err
		}
		em, err := k.raw(ct)
		if err != nil {
			return nil, err
		}
		if err := rsapad.SessionKey(em, key, k.pub.Size()); err != nil {
			return nil, err
		}
		return key, nil
	case *rsa.OAEPOptions:
		mgf := o.MGFHash
		if mgf == 0 {
			mgf = o.Hash
		}
		h, err := hashID(o.Hash)
		if err != nil {
			return nil, err
		}
		mh, err := hashID(mgf)
		if err != nil {
			return nil, err
		}
		size := k.pub.Size()
		if ct = rsapad.LeftPad(ct, size); ct == nil {
			return nil, rsa.ErrDecryption
		}
		out := make([]byte, size)
		err = k.h.with(func(p *C.EVP_PKEY) error {
			n := C.sm_rsa_oaep(p, h, mh, ptr(o.Label), C.size_t(len(o.Label)), ptr(ct), C.size_t(len(ct)), ptr(out), C.size_t(len(out)))
			if n < 0 {
				return rsa.ErrDecryption
			}
			out = out[:n]
			return nil
		})
		runtime.KeepAlive(k)
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	return nil, errors.New("crypto/rsa: invalid options for Decrypt")
}

func (k *RSAKey) decryptPKCS1v15(ct []byte) ([]byte, error) {
	em, err := k.raw(ct)
	if err != nil {
		return nil, err
	}
	return rsapad.Unpad(em, k.pub.Size())
}

// Sign signs digest like (*rsa.PrivateKey).Sign: PKCS#1 v1.5, or PSS when
// opts is *rsa.PSSOptions (salt length resolved as crypto/rsa does).
func (k *RSAKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	hash := opts.HashFunc()
	pad, salt := C.int(1), C.int(0)
	if pss, ok := opts.(*rsa.PSSOptions); ok {
		if hash == 0 {
			return nil, errors.New("crypto/rsa: PSS requires a hash function")
		}
		s, err := rsapad.PSSSaltLength(pss, hash, k.pub.N.BitLen())
		if err != nil {
			return nil, err
		}
		pad, salt = 2, C.int(s)
	}
	var h C.int
	if hash != 0 {
		var err error
		if h, err = hashID(hash); err != nil {
			return nil, err
		}
		if len(digest) != hash.Size() {
			return nil, errors.New("crypto/rsa: input must be hashed message")
		}
	}
	sig := make([]byte, k.pub.Size())
	err := k.h.with(func(p *C.EVP_PKEY) error {
		n := C.sm_sign(p, pad, h, salt, ptr(digest), C.size_t(len(digest)), ptr(sig), C.size_t(len(sig)))
		if n < 0 {
			return fmt.Errorf("keybackend/openssl: RSA signing: %w", ErrOperation)
		}
		sig = rsapad.LeftPad(sig[:n], k.pub.Size())
		return nil
	})
	runtime.KeepAlive(k)
	if err != nil {
		return nil, err
	}
	return sig, nil
}

// ECKey is an EC private key held by OpenSSL. It implements crypto.Signer
// (ASN.1 DER ECDSA signatures, like *ecdsa.PrivateKey) and
// keys.KeyAgreer.
type ECKey struct {
	h       *handle
	pub     *ecdsa.PublicKey
	dhCurve ecdh.Curve
}

// Public returns the *ecdsa.PublicKey.
func (k *ECKey) Public() crypto.PublicKey { return k.pub }

// Close frees the OpenSSL key; later operations fail with ErrClosed.
func (k *ECKey) Close() error { k.h.free(); return nil }

// Sign returns an ASN.1 DER ECDSA signature of digest.
func (k *ECKey) Sign(_ io.Reader, digest []byte, _ crypto.SignerOpts) ([]byte, error) {
	// 2 INTEGERs of at most the field size + 1 (sign byte) + headers.
	sig := make([]byte, 2*(k.pub.Curve.Params().BitSize+7)/8+16)
	err := k.h.with(func(p *C.EVP_PKEY) error {
		n := C.sm_sign(p, 0, 0, 0, ptr(digest), C.size_t(len(digest)), ptr(sig), C.size_t(len(sig)))
		if n < 0 {
			return fmt.Errorf("keybackend/openssl: ECDSA signing: %w", ErrOperation)
		}
		sig = sig[:n]
		return nil
	})
	runtime.KeepAlive(k)
	if err != nil {
		return nil, err
	}
	return sig, nil
}

// ECDH returns the shared secret with remote (the x coordinate, as
// crypto/ecdh). remote must be on the key's curve.
func (k *ECKey) ECDH(remote *ecdh.PublicKey) ([]byte, error) {
	if remote == nil || remote.Curve() != k.dhCurve {
		return nil, errors.New("crypto/ecdh: private key and public key curves do not match")
	}
	pt := remote.Bytes()
	out := make([]byte, (k.pub.Curve.Params().BitSize+7)/8)
	err := k.h.with(func(p *C.EVP_PKEY) error {
		peer := C.sm_peer(p, ptr(pt), C.size_t(len(pt)))
		if peer == nil {
			return fmt.Errorf("keybackend/openssl: peer key rejected: %w", ErrOperation)
		}
		defer C.EVP_PKEY_free(peer)
		n := C.sm_derive(p, peer, ptr(out), C.size_t(len(out)))
		if n != C.long(len(out)) {
			return fmt.Errorf("keybackend/openssl: ECDH: %w", ErrOperation)
		}
		return nil
	})
	runtime.KeepAlive(k)
	if err != nil {
		return nil, err
	}
	return out, nil
}
