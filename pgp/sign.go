package pgp

import (
	"bytes"
	"crypto"
	"fmt"
	"sort"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/secmail/secmail/reason"
	"github.com/secmail/secmail/result"
)

// micalgs are the RFC 3156 names of the hashes we sign with; weaker ones
// are refused for output.
var micalgs = map[crypto.Hash]string{
	crypto.SHA256: "pgp-sha256",
	crypto.SHA384: "pgp-sha384",
	crypto.SHA512: "pgp-sha512",
}

// writeConfig is the go-crypto configuration for output: AES-256 and the
// requested hash explicitly (go-crypto defaults to AES-128), no compression
// (it adds nothing to mail bodies that are mostly compressed already and is
// a length side channel), SEIPDv1 with MDC because gpg 2.2 does not read
// SEIPDv2.
func writeConfig(h crypto.Hash, now time.Time) *packet.Config {
	return &packet.Config{
		DefaultHash:            h,
		DefaultCipher:          packet.CipherAES256,
		DefaultCompressionAlgo: packet.CompressionNone,
		Time:                   func() time.Time { return now },
	}
}

// SignDetached makes an armored detached signature over data, which the
// caller has canonicalised (RFC 3156). It is a text-mode signature (type
// 0x01, as mutt and Enigmail make for PGP/MIME) so that a line-ending change
// in transit does not break it. micalg names the hash actually used, which
// go-crypto may raise for keys that require a larger one (P-521).
func SignDetached(data []byte, signer *openpgp.Entity, h crypto.Hash) (armoredSig []byte, micalg string, err error) {
	defer recoverTo(&err)
	if _, ok := micalgs[h]; !ok {
		return nil, "", reason.New(reason.UnsupportedAlgorithm, "signing hash %s not offered (use SHA-256, SHA-384 or SHA-512)", hashName(h))
	}
	now := time.Now()
	if err := CanSign(signer, now); err != nil {
		return nil, "", err
	}
	var bin bytes.Buffer
	if err := openpgp.DetachSignText(&bin, signer, bytes.NewReader(data), writeConfig(h, now)); err != nil {
		return nil, "", fmt.Errorf("pgp: signing: %w", err)
	}
	p, err := packet.Read(bytes.NewReader(bin.Bytes()))
	if err != nil {
		return nil, "", fmt.Errorf("pgp: reading back our signature: %w", err)
	}
	sig, ok := p.(*packet.Signature)
	if !ok {
		return nil, "", fmt.Errorf("pgp: signing produced %T", p)
	}
	micalg, ok = micalgs[sig.Hash]
	if !ok {
		return nil, "", reason.New(reason.UnsupportedAlgorithm, "key requires hash %s", hashName(sig.Hash))
	}
	armored, err := armoredSignature(bin.Bytes())
	if err != nil {
		return nil, "", fmt.Errorf("pgp: armoring signature: %w", err)
	}
	return armored, micalg, nil
}

// Encrypt encrypts data to every key in to (the caller includes our own key
// for the sent copy) and, when signer is not nil, signs it in the same pass.
// The output is an armored OpenPGP message with AES-256 (when every
// recipient accepts it; go-crypto falls back to AES-128 otherwise) and a MDC.
func Encrypt(data []byte, to []*openpgp.Entity, signer *openpgp.Entity, h crypto.Hash) (armored []byte, err error) {
	defer recoverTo(&err)
	if len(to) == 0 {
		return nil, reason.New(reason.NoPublicKey, "no recipients")
	}
	now := time.Now()
	// The caller may name one key twice (our own address among the
	// recipients); one session-key packet per key is enough.
	seen := map[string]bool{}
	uniq := make([]*openpgp.Entity, 0, len(to))
	for _, e := range to {
		if err := CanEncrypt(e, now); err != nil {
			return nil, err
		}
		if fp := fingerprint(e); !seen[fp] {
			seen[fp] = true
			uniq = append(uniq, e)
		}
	}
	to = uniq
	if signer != nil {
		if _, ok := micalgs[h]; !ok {
			return nil, reason.New(reason.UnsupportedAlgorithm, "signing hash %s not offered (use SHA-256, SHA-384 or SHA-512)", hashName(h))
		}
		if err := CanSign(signer, now); err != nil {
			return nil, err
		}
	} else if h == 0 {
		h = crypto.SHA256
	}
	var buf bytes.Buffer
	buf.Grow(len(data)*4/3 + 1024)
	aw, err := armor.Encode(&buf, openpgp.MessageType, nil)
	if err != nil {
		return nil, fmt.Errorf("pgp: armor: %w", err)
	}
	pw, err := openpgp.Encrypt(aw, to, signer, &openpgp.FileHints{IsBinary: true}, writeConfig(h, now))
	if err != nil {
		return nil, fmt.Errorf("pgp: encrypting: %w", err)
	}
	if _, err := pw.Write(data); err != nil {
		return nil, fmt.Errorf("pgp: encrypting: %w", err)
	}
	if err := pw.Close(); err != nil {
		return nil, fmt.Errorf("pgp: encrypting: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("pgp: armor: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// Summarize returns the result summary of e.
func Summarize(e *openpgp.Entity) (s *result.PGPKey) {
	defer func() {
		if recover() != nil {
			s = nil
		}
	}()
	if e == nil || e.PrimaryKey == nil {
		return nil
	}
	s = &result.PGPKey{
		Fingerprint: fingerprint(e),
		KeyID:       keyIDString(e.PrimaryKey.KeyId),
		Created:     e.PrimaryKey.CreationTime.UTC(),
	}
	for name := range e.Identities {
		s.UIDs = append(s.UIDs, name)
	}
	sort.Strings(s.UIDs)
	if self, _ := e.PrimarySelfSignature(); self != nil && self.KeyLifetimeSecs != nil && *self.KeyLifetimeSecs != 0 {
		exp := e.PrimaryKey.CreationTime.Add(time.Duration(*self.KeyLifetimeSecs) * time.Second).UTC()
		s.Expires = &exp
	}
	return s
}

// CanEncrypt reports whether e has a valid, non-revoked encryption key at
// now; otherwise a *reason.Error: Revoked, Expired, NotYetValid, or
// NoPublicKey when it has no encryption-capable key at all.
func CanEncrypt(e *openpgp.Entity, now time.Time) (err error) {
	defer recoverTo(&err)
	if e == nil || e.PrimaryKey == nil {
		return reason.New(reason.NoPublicKey, "no key")
	}
	if _, ok := e.EncryptionKey(now); ok {
		return nil
	}
	return whyUnusable(e, now, false)
}

// CanSign reports whether e has a valid signing key at now whose secret part
// is available and unlocked (NoPrivateKey, WrongPassphrase otherwise).
func CanSign(e *openpgp.Entity, now time.Time) (err error) {
	defer recoverTo(&err)
	if e == nil || e.PrimaryKey == nil {
		return reason.New(reason.NoPublicKey, "no key")
	}
	key, ok := e.SigningKey(now)
	if !ok {
		return whyUnusable(e, now, true)
	}
	switch {
	case key.PrivateKey == nil || key.PrivateKey.Dummy():
		return reason.New(reason.NoPrivateKey, "no secret part for signing key %s", keyIDString(key.PublicKey.KeyId))
	case key.PrivateKey.Encrypted:
		return reason.New(reason.WrongPassphrase, "signing key %s is passphrase-protected and locked", keyIDString(key.PublicKey.KeyId))
	}
	return nil
}

// whyUnusable explains why go-crypto found no usable key for the purpose.
func whyUnusable(e *openpgp.Entity, now time.Time, sign bool) error {
	fp := fingerprint(e)
	if revokedAt(e.Revocations, now, now) {
		return reason.New(reason.Revoked, "key %s is revoked", fp)
	}
	self, ident := e.PrimarySelfSignature()
	if self == nil {
		return reason.New(reason.Malformed, "key %s has no valid self-signature", fp)
	}
	if ident != nil && revokedAt(ident.Revocations, now, now) {
		return reason.New(reason.Revoked, "the primary user ID of key %s is revoked", fp)
	}
	if e.PrimaryKey.CreationTime.After(now) {
		return reason.New(reason.NotYetValid, "key %s is created in the future", fp)
	}
	if e.PrimaryKey.KeyExpired(self, now) || lifetimeOver(self, now) {
		return reason.New(reason.Expired, "key %s has expired", fp)
	}
	usable := func(sig *packet.Signature, algo packet.PublicKeyAlgorithm) bool {
		if sig == nil || !sig.FlagsValid {
			return false
		}
		if sign {
			return sig.FlagSign && algo.CanSign()
		}
		return sig.FlagEncryptCommunications && algo.CanEncrypt()
	}
	var revoked, expired, future bool
	check := func(pub *packet.PublicKey, sig *packet.Signature, revs []*packet.Signature) {
		if !usable(sig, pub.PubKeyAlgo) {
			return
		}
		switch {
		case revokedAt(revs, now, now):
			revoked = true
		case pub.CreationTime.After(now) || sig.CreationTime.After(now):
			future = true
		case pub.KeyExpired(sig, now) || lifetimeOver(sig, now):
			expired = true
		}
	}
	check(e.PrimaryKey, self, e.Revocations)
	for _, sk := range e.Subkeys {
		check(sk.PublicKey, sk.Sig, sk.Revocations)
	}
	purpose := "encryption"
	if sign {
		purpose = "signing"
	}
	switch {
	case revoked:
		return reason.New(reason.Revoked, "the %s subkey of %s is revoked", purpose, fp)
	case expired:
		return reason.New(reason.Expired, "the %s subkey of %s has expired", purpose, fp)
	case future:
		return reason.New(reason.NotYetValid, "the %s subkey of %s is not valid yet", purpose, fp)
	}
	return reason.New(reason.NoPublicKey, "key %s has no %s-capable key", fp, purpose)
}
