// Package openssl runs RSA, ECDSA and ECDH private-key operations in the
// system's OpenSSL 3 libcrypto through its EVP API (cgo, build tag
// openssl). A key is decoded once into an EVP_PKEY when loaded and freed
// by Close or, failing that, when the Go object is collected.
//
// Behaviour matches crypto/rsa, crypto/ecdsa and crypto/ecdh: PKCS#1 v1.5
// decryption is done as a raw RSA operation in OpenSSL followed by
// crypto/rsa's constant-time padding check, so implicit rejection
// (SessionKeyLen) works on OpenSSL 3.0, which lacks it; failures come
// back as rsa.ErrDecryption and similar, never as bare OpenSSL strings.
//
// Backend also verifies RSA and ECDSA signatures (VerifyPKCS1v15,
// VerifyPSS, VerifyASN1, a cms.PublicKeyVerifier) in libcrypto with
// exactly crypto/rsa's and crypto/ecdsa's results; see verify.go for why
// they are identical, and decrypts AES-CBC content (DecryptAESCBC, a
// cms.CBCDecrypter; the caller keeps the padding check).
//
// Without the openssl build tag this package is empty.
package openssl
