// Package pgp decrypts, verifies, signs and encrypts OpenPGP messages on
// github.com/ProtonMail/go-crypto (v1 API). It works on bytes: finding the
// parts of a PGP/MIME message and canonicalising them (RFC 3156) is the
// caller's job. Every security outcome is a *reason.Error; every entry point
// recovers panics from the parser and reports them as reason.Malformed.
//
// Signature validity follows RFC 9580 rather than "is the key usable now":
// a signature is judged by the state of the signer's key at the signature's
// creation time (expired then → reason.Expired), while revocations are taken
// from what is known at the reference time `at`. A hard revocation (no reason,
// or "key compromised") invalidates every signature; a soft one ("superseded",
// "retired") only signatures made after it.
package pgp

import (
	"bytes"
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/reason"
)

// Limits on attacker-controlled input. The input limit leaves room for a
// 50 MiB message after armoring; the plaintext limit bounds decompression.
const (
	// MaxMessageSize is the largest armored or binary message, signature or
	// clearsigned text accepted.
	MaxMessageSize = 96 << 20
	// MaxPlaintextSize is the largest plaintext (after decompression) that
	// Decrypt returns; beyond it the result is reason.TooLarge.
	MaxPlaintextSize = 128 << 20
	// maxSigPackets bounds how many packets a detached signature may hold.
	maxSigPackets = 32
)

const (
	armorMessage   = "-----BEGIN PGP MESSAGE-----"
	armorClearsign = "-----BEGIN PGP SIGNED MESSAGE-----"
)

// Keys is what this package needs from a key store (keys.Source satisfies it).
type Keys interface {
	PGPSecretKeys(ctx context.Context) (openpgp.EntityList, error)
	PGPKeysByID(ctx context.Context, id uint64) (openpgp.EntityList, error)
}

var _ Keys = keys.Source(nil)

// Verification describes a good signature.
type Verification struct {
	Entity      *openpgp.Entity
	KeyID       uint64 // the (sub)key that made the signature
	Fingerprint string // hex upper of the primary key
	Emails      []string
	SigningTime time.Time
	Hash        string // "sha256"
	Weak        bool   // SHA-1 / MD5-era hash
}

// Decrypted is the outcome of Decrypt.
type Decrypted struct {
	Plaintext []byte
	// Encrypted is false when the message was only signed (or plain literal
	// data); Recipient and Cipher are then empty.
	Encrypted bool
	Recipient *openpgp.Entity // which of our keys opened it
	Cipher    string          // "aes-256", "aes-128", ... ("-ocb"/"-gcm"/"-eax" appended for AEAD)
	// Signature is set when the message was signed and the signature
	// verified; SignatureErr (a *reason.Error) when it was signed and
	// verification failed. Both nil: not signed.
	Signature    *Verification
	SignatureErr error
}

// IsArmoredMessage reports whether b contains an armored OpenPGP message.
func IsArmoredMessage(b []byte) bool { return hasArmorLine(b, armorMessage) }

// IsClearsigned reports whether b contains a cleartext-signed message.
func IsClearsigned(b []byte) bool { return hasArmorLine(b, armorClearsign) }

// hasArmorLine looks for marker at the start of a line (inline PGP in a text
// part may have text before it).
func hasArmorLine(b []byte, marker string) bool {
	for len(b) > 0 {
		i := bytes.Index(b, []byte(marker))
		if i < 0 {
			return false
		}
		if i == 0 || b[i-1] == '\n' {
			return true
		}
		b = b[i+len(marker):]
	}
	return false
}

// recoverTo turns a panic in go-crypto into reason.Malformed.
func recoverTo(err *error) {
	if r := recover(); r != nil {
		*err = reason.New(reason.Malformed, "openpgp: panic while parsing: %v", r)
	}
}

// keyRing adapts Keys to openpgp.KeyRing: our secret keys for decryption,
// look-ups through the store (merged with our secret keys, which also carry
// our public keys) for signature verification. go-crypto's interface has no
// context and no error, so the context is captured and the first look-up
// error is kept for the caller to report.
type keyRing struct {
	ctx    context.Context
	src    Keys
	secret openpgp.EntityList
	err    error
	cache  map[uint64]openpgp.EntityList
}

func newKeyRing(ctx context.Context, src Keys, secret openpgp.EntityList) *keyRing {
	return &keyRing{ctx: ctx, src: src, secret: secret}
}

func (r *keyRing) public(id uint64) openpgp.EntityList {
	if el, ok := r.cache[id]; ok {
		return el
	}
	var el openpgp.EntityList
	if r.src != nil {
		var err error
		el, err = r.src.PGPKeysByID(r.ctx, id)
		if err != nil && !errors.Is(err, keys.ErrNotFound) {
			if r.err == nil {
				r.err = fmt.Errorf("pgp: looking up key %016X: %w", id, err)
			}
			el = nil
		}
	}
	if r.cache == nil {
		r.cache = map[uint64]openpgp.EntityList{}
	}
	r.cache[id] = el
	return el
}

// KeysById returns keys with that id, the store's copy first (it may carry
// newer revocations) and our secret keys after it.
func (r *keyRing) KeysById(id uint64) []openpgp.Key { return r.KeysByIdUsage(id, 0) }

func (r *keyRing) KeysByIdUsage(id uint64, usage byte) []openpgp.Key {
	var out []openpgp.Key
	seen := map[string]bool{}
	for _, el := range []openpgp.EntityList{r.public(id), r.secret} {
		for _, k := range el.KeysByIdUsage(id, usage) {
			fp := string(k.PublicKey.Fingerprint)
			if seen[fp] {
				continue
			}
			seen[fp] = true
			out = append(out, k)
		}
	}
	return out
}

func (r *keyRing) DecryptionKeys() []openpgp.Key { return r.secret.DecryptionKeys() }

// readConfig is the go-crypto configuration for reading: reference time
// `at`; validity is re-judged by checkValidity.
func readConfig(at time.Time, maxPlain int64) *packet.Config {
	limit := maxPlain
	return &packet.Config{
		Time:                       func() time.Time { return at },
		MaxDecompressedMessageSize: &limit,
	}
}

// fingerprint returns the upper-case hex fingerprint of e's primary key.
func fingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
}

func keyIDString(id uint64) string { return fmt.Sprintf("%016X", id) }

var hashNames = map[crypto.Hash]string{
	crypto.MD5:       "md5",
	crypto.RIPEMD160: "ripemd160",
	crypto.SHA1:      "sha1",
	crypto.SHA224:    "sha224",
	crypto.SHA256:    "sha256",
	crypto.SHA384:    "sha384",
	crypto.SHA512:    "sha512",
	crypto.SHA3_256:  "sha3-256",
	crypto.SHA3_512:  "sha3-512",
}

func hashName(h crypto.Hash) string {
	if n, ok := hashNames[h]; ok {
		return n
	}
	return fmt.Sprintf("hash-%d", int(h))
}

func weakHash(h crypto.Hash) bool {
	return h == crypto.MD5 || h == crypto.SHA1 || h == crypto.RIPEMD160
}

func cipherName(c packet.CipherFunction) string {
	switch c {
	case packet.CipherAES128:
		return "aes-128"
	case packet.CipherAES192:
		return "aes-192"
	case packet.CipherAES256:
		return "aes-256"
	case packet.Cipher3DES:
		return "3des"
	case packet.CipherCAST5:
		return "cast5"
	}
	return fmt.Sprintf("cipher-%d", int(c))
}

func aeadModeName(m packet.AEADMode) string {
	switch m {
	case packet.AEADModeEAX:
		return "eax"
	case packet.AEADModeOCB:
		return "ocb"
	case packet.AEADModeGCM:
		return "gcm"
	}
	return fmt.Sprintf("aead-%d", int(m))
}

// classify maps a go-crypto error to a reason code. def is the code for
// errors that carry no more specific meaning (Malformed when parsing,
// BadSignature when checking a signature).
func classify(err error, def reason.Code, detail string) error {
	if err == nil {
		return nil
	}
	var re *reason.Error
	if errors.As(err, &re) {
		return err
	}
	var unsupported pgperrors.UnsupportedError
	switch {
	case errors.Is(err, pgperrors.ErrMessageTooLarge):
		return reason.Wrap(reason.TooLarge, err, detail)
	case errors.As(err, &unsupported):
		return reason.Wrap(reason.UnsupportedAlgorithm, err, detail)
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return reason.Wrap(reason.NoPublicKey, err, detail)
	}
	return reason.Wrap(def, err, detail)
}

// dearmor returns a reader over the binary packets of b: b itself when it is
// binary, the decoded armor body when it is armored with one of types.
func dearmor(b []byte, types ...string) (io.Reader, error) {
	if len(b) > MaxMessageSize {
		return nil, reason.New(reason.TooLarge, "openpgp input of %d bytes exceeds %d", len(b), MaxMessageSize)
	}
	if len(b) == 0 {
		return nil, reason.New(reason.Malformed, "empty openpgp input")
	}
	// Binary OpenPGP always starts with a packet tag (bit 7 set); armor is
	// ASCII, possibly after leading text.
	if b[0]&0x80 != 0 {
		return bytes.NewReader(b), nil
	}
	if !bytes.Contains(b, []byte("-----BEGIN PGP ")) {
		return nil, reason.New(reason.Malformed, "neither binary OpenPGP nor ASCII armor")
	}
	blk, err := armor.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, reason.Wrap(reason.Malformed, err, "reading ASCII armor")
	}
	for _, t := range types {
		if blk.Type == t {
			return blk.Body, nil
		}
	}
	return nil, reason.New(reason.Malformed, "armor type %q, want %s", blk.Type, strings.Join(types, " or "))
}
