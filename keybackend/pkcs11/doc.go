// Package pkcs11 runs private-key operations in a PKCS#11 token (an HSM;
// SoftHSM2 in tests) through github.com/miekg/pkcs11 (cgo, build tag
// pkcs11). Keys are addressed by label or id on the token; their bytes
// never enter the process: imported keys are stored CKA_SENSITIVE and
// not CKA_EXTRACTABLE, and RSA decryption, signing and ECDH derivation
// run as C_Decrypt, C_Sign and C_DeriveKey on the token.
//
// Behaviour matches crypto/rsa, crypto/ecdsa and crypto/ecdh, including
// PKCS#1 v1.5 implicit rejection: the token computes the raw RSA
// operation (CKM_RSA_X_509) and the padding is checked in constant time
// on the Go side, so a token error cannot become a padding oracle.
//
// Without the pkcs11 build tag this package is empty.
package pkcs11
