//go:build openssl && cgo

package openssl

/*
#cgo LDFLAGS: -lcrypto
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/err.h>

#include "md.h"

// sm_rsa_pub makes an RSA public key from the big-endian modulus and the
// exponent. Returns NULL on failure.
static EVP_PKEY *sm_rsa_pub(const unsigned char *n, size_t nlen, unsigned long e) {
	EVP_PKEY *k = NULL;
	EVP_PKEY_CTX *c = NULL;
	OSSL_PARAM_BLD *b = NULL;
	OSSL_PARAM *p = NULL;
	BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL), *be = BN_new();
	if (bn == NULL || be == NULL || !BN_set_word(be, e)) goto end;
	b = OSSL_PARAM_BLD_new();
	if (b == NULL || !OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn) ||
			!OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, be)) goto end;
	p = OSSL_PARAM_BLD_to_param(b);
	if (p == NULL) goto end;
	c = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (c == NULL || EVP_PKEY_fromdata_init(c) <= 0) goto end;
	if (EVP_PKEY_fromdata(c, &k, EVP_PKEY_PUBLIC_KEY, p) <= 0) k = NULL;
end:
	EVP_PKEY_CTX_free(c);
	OSSL_PARAM_free(p);
	OSSL_PARAM_BLD_free(b);
	BN_free(bn);
	BN_free(be);
	ERR_clear_error();
	return k;
}

// sm_ec_pub makes an EC public key on the named group from an uncompressed
// point; OpenSSL checks that the point is on the curve. NULL on failure.
static EVP_PKEY *sm_ec_pub(const char *group, const unsigned char *pt, size_t len) {
	EVP_PKEY *k = NULL;
	OSSL_PARAM p[3];
	p[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0);
	p[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pt, len);
	p[2] = OSSL_PARAM_construct_end();
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (c == NULL || EVP_PKEY_fromdata_init(c) <= 0) goto end;
	if (EVP_PKEY_fromdata(c, &k, EVP_PKEY_PUBLIC_KEY, p) <= 0) k = NULL;
end:
	EVP_PKEY_CTX_free(c);
	ERR_clear_error();
	return k;
}

// sm_verify_ctx returns a context for verifications with k: pad 0 = ECDSA
// over the raw digest (h 0), 1 = RSA PKCS#1 v1.5, 2 = RSA-PSS (saltlen as
// OpenSSL's, MGF1 with the digest); h the digest. NULL on failure.
static EVP_PKEY_CTX *sm_verify_ctx(EVP_PKEY *k, int pad, int h, int saltlen) {
	const EVP_MD *md = sm_md(h);
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k, NULL);
	if (c == NULL || (pad != 0 && md == NULL) || EVP_PKEY_verify_init(c) <= 0) goto err;
	if (pad == 1 && EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) <= 0) goto err;
	if (pad == 2) {
		if (EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PSS_PADDING) <= 0) goto err;
		if (EVP_PKEY_CTX_set_rsa_pss_saltlen(c, saltlen) <= 0) goto err;
		if (EVP_PKEY_CTX_set_rsa_mgf1_md(c, md) <= 0) goto err;
	}
	if (pad != 0 && EVP_PKEY_CTX_set_signature_md(c, md) <= 0) goto err;
	ERR_clear_error();
	return c;
err:
	EVP_PKEY_CTX_free(c);
	ERR_clear_error();
	return NULL;
}

// sm_verify_once verifies with c and frees it. Returns 1 for a valid
// signature.
static int sm_verify_once(EVP_PKEY_CTX *c, const unsigned char *dg, size_t dglen,
		const unsigned char *sig, size_t siglen) {
	int ok = EVP_PKEY_verify(c, sig, siglen, dg, dglen) == 1;
	EVP_PKEY_CTX_free(c);
	ERR_clear_error();
	return ok;
}
*/
import "C"

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/fips140"
	"crypto/rsa"
	"encoding/binary"
	"runtime"
	"sync"
	"unsafe"
)

// Signature verification (public-key operations) for cms.Verify: the
// methods of Backend below have exactly the results of
// crypto/rsa.VerifyPKCS1v15, crypto/rsa.VerifyPSS and
// crypto/ecdsa.VerifyASN1, and run the arithmetic in libcrypto
// (BenchmarkVerify, same run: RSA-2048 and ECDSA P-256 faster than Go,
// figures in keybackend/README.md).
//
// Identical results by construction:
//   - OpenSSL sees only the well-formed cases: RSA keys of 1024 to 8192
//     bits with an odd modulus and an odd exponent 3..2³¹-1 (within
//     crypto/rsa's own limits), digests of SHA-1/SHA-2 size, signatures of
//     the modulus size; ECDSA keys on P-256, P-384, P-521 and non-empty
//     digests. Everything else, and every call in FIPS 140 mode, goes to
//     crypto/rsa or crypto/ecdsa unchanged, with their errors.
//   - A signature OpenSSL rejects is decided by Go again, so a stricter
//     system OpenSSL policy (crypto-policies refusing SHA-1) cannot turn a
//     valid signature into a bad one; a bad signature costs one Go
//     verification more, no more.
//   - A signature OpenSSL accepts is a valid one: verification is
//     deterministic, OpenSSL checks PKCS#1 v1.5 by re-encoding and
//     comparing the whole block as Go does, and accepts ECDSA signatures
//     only in DER (it re-encodes and compares), as Go's parser does.

// maxPubCache bounds each of the public-key cache's two generations.
const maxPubCache = 1024

// maxTemplates bounds the prepared contexts per key (one per padding,
// digest and salt length; senders use one or two).
const maxTemplates = 4

// pubCache holds OpenSSL copies of public keys: the same correspondents
// sign again and again, and importing a key (OSSL_PARAM decoding into a
// provider key) costs as much as a verification. A key used during the
// current or the previous generation stays; when the current generation
// is full it becomes the previous one. Dropped keys are freed by their
// cleanup once no verification uses them any more.
type pubCache struct {
	mu       sync.Mutex
	cur, old map[string]*pubKey
}

// pubKey is one public key in OpenSSL with its prepared verification
// contexts.
type pubKey struct{ st *pubState }

// pubState owns the C objects; a cleanup frees them when the pubKey is
// collected.
type pubState struct {
	p *C.EVP_PKEY
	// templates are initialised contexts by configuration. A context must
	// not be used by two threads, so each verification runs on a copy:
	// EVP_PKEY_CTX_dup of an initialised context skips the algorithm and
	// digest fetches of a fresh one (about a fifth of a verification).
	mu        sync.Mutex
	templates map[verifyConf]*C.EVP_PKEY_CTX
}

type verifyConf struct{ pad, h, salt int }

func newPubKey(p *C.EVP_PKEY) *pubKey {
	st := &pubState{p: p, templates: map[verifyConf]*C.EVP_PKEY_CTX{}}
	k := &pubKey{st: st}
	runtime.AddCleanup(k, func(st *pubState) {
		for _, t := range st.templates {
			C.EVP_PKEY_CTX_free(t)
		}
		C.EVP_PKEY_free(st.p)
	}, st)
	return k
}

// get returns the cached key for id, or makes one with mk (nil when
// OpenSSL refuses the key, which is not cached).
func (c *pubCache) get(id []byte, mk func() *C.EVP_PKEY) *pubKey {
	c.mu.Lock()
	k, ok := c.cur[string(id)]
	if !ok {
		if k, ok = c.old[string(id)]; ok {
			c.putLocked(string(id), k)
		}
	}
	c.mu.Unlock()
	if ok {
		return k
	}
	// Built outside the lock: two goroutines may both build the same key;
	// one copy wins, the other is freed by its cleanup.
	p := mk()
	if p == nil {
		return nil
	}
	k = newPubKey(p)
	c.mu.Lock()
	c.putLocked(string(id), k)
	c.mu.Unlock()
	return k
}

func (c *pubCache) putLocked(id string, k *pubKey) {
	if c.cur == nil || len(c.cur) >= maxPubCache {
		c.old, c.cur = c.cur, make(map[string]*pubKey)
	}
	c.cur[id] = k
}

func (c *pubCache) reset() {
	c.mu.Lock()
	c.cur, c.old = nil, nil
	c.mu.Unlock()
}

// verify checks sig over digest: pad 0 = ECDSA (h 0), 1 = PKCS#1 v1.5,
// 2 = PSS with OpenSSL's salt length; h is the crypto.Hash number. It reports whether
// OpenSSL found the signature valid (false also when OpenSSL failed).
func (k *pubKey) verify(pad, h, salt int, digest, sig []byte) bool {
	st := k.st
	conf := verifyConf{pad, h, salt}
	st.mu.Lock()
	t, ok := st.templates[conf]
	if !ok {
		t = C.sm_verify_ctx(st.p, C.int(pad), C.int(h), C.int(salt))
		if t != nil && len(st.templates) < maxTemplates {
			st.templates[conf] = t
			ok = true
		}
	}
	var c *C.EVP_PKEY_CTX
	if ok {
		c = C.EVP_PKEY_CTX_dup(t)
	} else {
		c = t // not kept: used once, freed by sm_verify_once
	}
	st.mu.Unlock()
	if c == nil {
		return false
	}
	valid := C.sm_verify_once(c, ptr(digest), C.size_t(len(digest)), ptr(sig), C.size_t(len(sig))) == 1
	runtime.KeepAlive(k)
	return valid
}

// rsaKey returns the OpenSSL copy of pub, or nil when pub is outside what
// OpenSSL is given (see above) or OpenSSL refuses it.
func (b *Backend) rsaKey(pub *rsa.PublicKey) *pubKey {
	if fips140.Enabled() || pub == nil || pub.N == nil || pub.N.Bit(0) == 0 ||
		pub.E < 3 || pub.E&1 == 0 || pub.E > 1<<31-1 {
		return nil
	}
	if bits := pub.N.BitLen(); bits < 1024 || bits > 8192 {
		return nil
	}
	id := pubID(pub)
	n := id[4:]
	return b.pubs.get(id, func() *C.EVP_PKEY {
		return C.sm_rsa_pub(ptr(n), C.size_t(len(n)), C.ulong(pub.E))
	})
}

// pubID is pub's cache key: the exponent and the modulus, big-endian.
func pubID(pub *rsa.PublicKey) []byte {
	id := make([]byte, 4+pub.Size())
	binary.BigEndian.PutUint32(id[:4], uint32(pub.E))
	pub.N.FillBytes(id[4:])
	return id
}

// rsaArgs reports whether a verification with these arguments goes to
// OpenSSL, and the hash's sm_md number.
func rsaArgs(pub *rsa.PublicKey, hash crypto.Hash, digest, sig []byte) (int, bool) {
	switch hash {
	case crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512:
	default:
		return 0, false
	}
	if pub == nil || pub.N == nil || len(digest) != hash.Size() || len(sig) != pub.Size() {
		return 0, false
	}
	return int(hash), true
}

// VerifyPKCS1v15 is rsa.VerifyPKCS1v15, the RSA operation in OpenSSL.
func (b *Backend) VerifyPKCS1v15(pub *rsa.PublicKey, hash crypto.Hash, hashed, sig []byte) error {
	if h, ok := rsaArgs(pub, hash, hashed, sig); ok {
		if k := b.rsaKey(pub); k != nil && k.verify(1, h, 0, hashed, sig) {
			return nil
		}
	}
	return rsa.VerifyPKCS1v15(pub, hash, hashed, sig)
}

// VerifyPSS is rsa.VerifyPSS, the RSA operation in OpenSSL. opts.SaltLength
// keeps its meaning (PSSSaltLengthAuto detects the salt length,
// PSSSaltLengthEqualsHash, or an exact length).
func (b *Backend) VerifyPSS(pub *rsa.PublicKey, hash crypto.Hash, digest, sig []byte, opts *rsa.PSSOptions) error {
	// OpenSSL's salt length: RSA_PSS_SALTLEN_AUTO (-2) for Go's
	// PSSSaltLengthAuto (0, also nil opts), RSA_PSS_SALTLEN_DIGEST (-1)
	// for PSSSaltLengthEqualsHash, else the exact length. Other negative
	// lengths are Go's error.
	salt, saltOK := -2, true
	if opts != nil {
		switch s := opts.SaltLength; {
		case s == rsa.PSSSaltLengthEqualsHash:
			salt = -1
		case s > 0:
			salt = s
		case s < 0:
			saltOK = false
		}
	}
	if h, ok := rsaArgs(pub, hash, digest, sig); ok && saltOK {
		if k := b.rsaKey(pub); k != nil && k.verify(2, h, salt, digest, sig) {
			return nil
		}
	}
	return rsa.VerifyPSS(pub, hash, digest, sig, opts)
}

// VerifyASN1 is ecdsa.VerifyASN1, for P-256, P-384 and P-521 keys in
// OpenSSL (other curves in Go).
func (b *Backend) VerifyASN1(pub *ecdsa.PublicKey, digest, sig []byte) bool {
	if len(digest) > 0 {
		if k := b.ecKey(pub); k != nil && k.verify(0, 0, 0, digest, sig) {
			return true
		}
	}
	return ecdsa.VerifyASN1(pub, digest, sig)
}

// ecKey returns the OpenSSL copy of pub, or nil for other curves, invalid
// keys and in FIPS 140 mode.
func (b *Backend) ecKey(pub *ecdsa.PublicKey) *pubKey {
	if fips140.Enabled() || pub == nil {
		return nil
	}
	var group string
	switch pub.Curve {
	case elliptic.P256():
		group = "P-256\x00"
	case elliptic.P384():
		group = "P-384\x00"
	case elliptic.P521():
		group = "P-521\x00"
	default:
		return nil
	}
	pt, err := pub.Bytes()
	if err != nil {
		return nil
	}
	// The key: the NUL-terminated group name, then the point. The name
	// is also what OpenSSL reads.
	id := append([]byte(group), pt...)
	return b.pubs.get(id, func() *C.EVP_PKEY {
		return C.sm_ec_pub((*C.char)(unsafe.Pointer(&id[0])), ptr(pt), C.size_t(len(pt)))
	})
}
