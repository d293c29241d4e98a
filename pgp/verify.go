package pgp

import (
	"bytes"
	"context"
	"crypto"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/reason"
)

// VerifyDetached verifies a detached signature (armored or binary) over
// signed, which the caller has already canonicalised (RFC 3156: CRLF).
func VerifyDetached(ctx context.Context, signed, sig []byte, k Keys, at time.Time) (v *Verification, err error) {
	defer recoverTo(&err)
	if len(signed) > MaxMessageSize {
		return nil, reason.New(reason.TooLarge, "signed data of %d bytes exceeds %d", len(signed), MaxMessageSize)
	}
	r, err := dearmor(sig, openpgp.SignatureType)
	if err != nil {
		return nil, err
	}
	kr := newKeyRing(ctx, k, nil)
	return verifyDetached(kr, signed, r, at, nil)
}

// VerifyClearsigned verifies a cleartext-signed message (RFC 9580 §7) and
// returns the signed text. A "Hash:" armor header that does not name the
// signature's hash is a bad signature (it is meant to bind the two).
func VerifyClearsigned(ctx context.Context, armored []byte, k Keys, at time.Time) (v *Verification, plaintext []byte, err error) {
	defer recoverTo(&err)
	if len(armored) > MaxMessageSize {
		return nil, nil, reason.New(reason.TooLarge, "clearsigned message of %d bytes exceeds %d", len(armored), MaxMessageSize)
	}
	b, _ := clearsign.Decode(armored)
	if b == nil || b.ArmoredSignature == nil {
		return nil, nil, reason.New(reason.Malformed, "no complete cleartext-signed block")
	}
	if b.ArmoredSignature.Type != openpgp.SignatureType {
		return nil, nil, reason.New(reason.Malformed, "clearsigned block ends in %q, want a signature", b.ArmoredSignature.Type)
	}
	var allowed []crypto.Hash
	for _, hv := range b.Headers.Values("Hash") {
		for _, name := range strings.Split(hv, ",") {
			h, ok := clearsignHashes[strings.ToUpper(strings.TrimSpace(name))]
			if !ok {
				return nil, nil, reason.New(reason.UnsupportedAlgorithm, "clearsign Hash header %q", name)
			}
			allowed = append(allowed, h)
		}
	}
	kr := newKeyRing(ctx, k, nil)
	v, err = verifyDetached(kr, b.Bytes, b.ArmoredSignature.Body, at, allowed)
	if err != nil {
		return nil, nil, err
	}
	return v, b.Plaintext, nil
}

var clearsignHashes = map[string]crypto.Hash{
	"MD5": crypto.MD5, "SHA1": crypto.SHA1, "RIPEMD160": crypto.RIPEMD160,
	"SHA224": crypto.SHA224, "SHA256": crypto.SHA256, "SHA384": crypto.SHA384,
	"SHA512": crypto.SHA512, "SHA3-256": crypto.SHA3_256, "SHA3-512": crypto.SHA3_512,
}

// verifyDetached reads signature packets from sigr and verifies the first
// one whose signer is known. allowed, when non-empty, restricts the hash.
func verifyDetached(kr *keyRing, signed []byte, sigr io.Reader, at time.Time, allowed []crypto.Hash) (*Verification, error) {
	packets := packet.NewReader(sigr)
	var unknown []string
	var sigs int
	for n := 0; ; n++ {
		if n >= maxSigPackets {
			return nil, reason.New(reason.TooComplex, "more than %d packets in a detached signature", maxSigPackets)
		}
		p, err := packets.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, classify(err, reason.Malformed, "reading signature packets")
		}
		sig, ok := p.(*packet.Signature)
		if !ok {
			return nil, reason.New(reason.Malformed, "non-signature packet %T in a detached signature", p)
		}
		sigs++
		id, ok := issuerID(sig)
		if !ok {
			return nil, reason.New(reason.Malformed, "signature without issuer")
		}
		candidates := kr.KeysByIdUsage(id, packet.KeyFlagSign)
		if kr.err != nil {
			return nil, kr.err
		}
		if len(candidates) == 0 {
			unknown = append(unknown, keyIDString(id))
			continue
		}
		if len(allowed) > 0 && !containsHash(allowed, sig.Hash) {
			return nil, reason.New(reason.BadSignature, "signature hash %s not announced in the Hash header", hashName(sig.Hash))
		}
		return checkSignature(candidates, sig, signed, at)
	}
	if sigs == 0 {
		return nil, reason.New(reason.Malformed, "no signature packet")
	}
	return nil, reason.New(reason.NoPublicKey, "signer key %s not found", strings.Join(unknown, ", "))
}

func containsHash(hs []crypto.Hash, h crypto.Hash) bool {
	for _, x := range hs {
		if x == h {
			return true
		}
	}
	return false
}

// issuerID returns the signature's issuer key id, from the issuer subpacket
// or the v4 issuer fingerprint (whose low 64 bits are the key id).
func issuerID(sig *packet.Signature) (uint64, bool) {
	if sig.IssuerKeyId != nil && *sig.IssuerKeyId != 0 {
		return *sig.IssuerKeyId, true
	}
	if fp := sig.IssuerFingerprint; len(fp) == 20 {
		var id uint64
		for _, b := range fp[12:] {
			id = id<<8 | uint64(b)
		}
		return id, true
	}
	if fp := sig.IssuerFingerprint; len(fp) == 32 {
		var id uint64
		for _, b := range fp[:8] {
			id = id<<8 | uint64(b)
		}
		return id, true
	}
	return 0, false
}

// checkSignature verifies sig over data with the first candidate key that
// accepts it, then judges the key's validity at signing time.
func checkSignature(candidates []openpgp.Key, sig *packet.Signature, data []byte, at time.Time) (*Verification, error) {
	if sig.SigType != packet.SigTypeBinary && sig.SigType != packet.SigTypeText {
		return nil, reason.New(reason.BadSignature, "signature type 0x%02x is not a document signature", uint8(sig.SigType))
	}
	var lastErr error
	for _, key := range candidates {
		h, err := sig.PrepareVerify()
		if err != nil {
			return nil, classify(err, reason.UnsupportedAlgorithm, "preparing signature hash")
		}
		var w io.Writer = h
		if sig.SigType == packet.SigTypeText {
			w = openpgp.NewCanonicalTextHash(h)
		}
		if _, err := w.Write(data); err != nil {
			return nil, reason.Wrap(reason.Malformed, err, "hashing signed data")
		}
		if err := key.PublicKey.VerifySignature(h, sig); err != nil {
			lastErr = err
			continue
		}
		if err := checkValidity(key, sig, at); err != nil {
			return nil, err
		}
		return verification(key, sig), nil
	}
	return nil, classify(lastErr, reason.BadSignature, "signature does not verify")
}

func verification(key openpgp.Key, sig *packet.Signature) *Verification {
	return &Verification{
		Entity:      key.Entity,
		KeyID:       key.PublicKey.KeyId,
		Fingerprint: fingerprint(key.Entity),
		Emails:      keys.EntityEmails(key.Entity),
		SigningTime: sig.CreationTime.UTC(),
		Hash:        hashName(sig.Hash),
		Weak:        weakHash(sig.Hash),
	}
}

// checkValidity judges a cryptographically good signature: unknown critical
// notations, revocations known at `at`, and the key's state at signing time.
func checkValidity(key openpgp.Key, sig *packet.Signature, at time.Time) error {
	st := sig.CreationTime
	e := key.Entity
	bySubkey := key.PublicKey != e.PrimaryKey
	for _, n := range sig.Notations {
		if n.IsCritical {
			return reason.New(reason.BadSignature, "unknown critical notation %q", n.Name)
		}
	}
	if revokedAt(e.Revocations, st, at) {
		return reason.New(reason.Revoked, "signer key %s is revoked", fingerprint(e))
	}
	if bySubkey && revokedAt(key.Revocations, st, at) {
		return reason.New(reason.Revoked, "signing subkey %s is revoked", keyIDString(key.PublicKey.KeyId))
	}
	if e.PrimaryKey.CreationTime.After(st) || key.PublicKey.CreationTime.After(st) {
		return reason.New(reason.NotYetValid, "signature made %s, before its key was created", st.UTC().Format(time.RFC3339))
	}
	self, _ := e.PrimarySelfSignature()
	if self == nil {
		return reason.New(reason.Malformed, "signer key %s has no self-signature", fingerprint(e))
	}
	if e.PrimaryKey.KeyExpired(self, st) {
		return reason.New(reason.Expired, "signer key %s had expired when the signature was made (%s)", fingerprint(e), st.UTC().Format(time.RFC3339))
	}
	if bySubkey {
		if key.SelfSignature == nil {
			return reason.New(reason.Malformed, "signing subkey without binding signature")
		}
		if key.PublicKey.KeyExpired(key.SelfSignature, st) || lifetimeOver(key.SelfSignature, st) {
			return reason.New(reason.Expired, "signing subkey %s had expired when the signature was made", keyIDString(key.PublicKey.KeyId))
		}
	}
	if lifetimeOver(sig, at) {
		return reason.New(reason.Expired, "signature expired")
	}
	return nil
}

// lifetimeOver reports whether sig carries a lifetime that has run out at t.
func lifetimeOver(sig *packet.Signature, t time.Time) bool {
	if sig.SigLifetimeSecs == nil || *sig.SigLifetimeSecs == 0 {
		return false
	}
	return t.After(sig.CreationTime.Add(time.Duration(*sig.SigLifetimeSecs) * time.Second))
}

// revokedAt reports whether revs revoke a key for a signature made at st, as
// far as known at `at`. Only reasons "superseded" and "retired" are soft;
// anything else (none, compromised, unknown) revokes retroactively.
func revokedAt(revs []*packet.Signature, st, at time.Time) bool {
	for _, r := range revs {
		if r.CreationTime.After(at) {
			continue
		}
		if r.RevocationReason != nil && (*r.RevocationReason == packet.KeySuperseded || *r.RevocationReason == packet.KeyRetired) {
			if !r.CreationTime.After(st) {
				return true
			}
			continue
		}
		return true
	}
	return false
}

// armoredSignature re-armors a binary signature.
func armoredSignature(bin []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.SignatureType, nil)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(bin); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}
