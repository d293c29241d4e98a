package pgp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/reason"
)

// maxKeyPackets bounds the session-key packets read before the encrypted
// data (a message to hundreds of recipients is already absurd).
const maxKeyPackets = 256

// Decrypt decrypts msg (armored or binary) with our secret keys from k and,
// when it was signed inside the encryption, verifies the signature with keys
// looked up through k. at is the reference time for signature checks.
//
// The session key is recovered here rather than inside openpgp.ReadMessage so
// that the private-key operation runs once, the cipher is known, and a
// locked key is reported (reason.WrongPassphrase) instead of prompting. The
// decrypted packet stream is then parsed by openpgp.ReadMessage, read to the
// end, and only then is the integrity check (MDC, or the final AEAD tag)
// evaluated: a failure yields reason.Malformed and never any plaintext.
//
// A message that is not encrypted (signed or literal data only) is accepted
// too: Encrypted is false then.
//
// Symmetrically encrypted data without integrity protection (packet type 9,
// the EFAIL malleability gadget) is refused with reason.UnsupportedAlgorithm:
// the message is well-formed but uses a mode we do not accept, like 3DES-era
// S/MIME ciphers; a SEIPD packet whose MDC is missing or wrong is Malformed.
func Decrypt(ctx context.Context, msg []byte, k Keys, at time.Time) (d *Decrypted, err error) {
	defer recoverTo(&err)
	return decrypt(ctx, msg, k, at, MaxPlaintextSize)
}

// decrypt is Decrypt with the plaintext limit as a parameter (tests use a
// small one).
func decrypt(ctx context.Context, msg []byte, k Keys, at time.Time, maxPlain int64) (*Decrypted, error) {
	body, err := dearmor(msg, openpgp.MessageType)
	if err != nil {
		return nil, err
	}
	cfg := readConfig(at, maxPlain)
	packets := packet.NewReader(body)

	var eks []*packet.EncryptedKey
	var edp packet.EncryptedDataPacket
	var cipherSuffix string
	var v2Cipher packet.CipherFunction
	symmetric := false
Packets:
	for n := 0; ; n++ {
		if n >= maxKeyPackets {
			return nil, reason.New(reason.TooComplex, "more than %d packets before the encrypted data", maxKeyPackets)
		}
		p, err := packets.Next()
		if err == io.EOF {
			return nil, reason.New(reason.Malformed, "no encrypted data or literal data in the message")
		}
		if err != nil {
			return nil, classify(err, reason.Malformed, "reading message packets")
		}
		switch p := p.(type) {
		case *packet.EncryptedKey:
			eks = append(eks, p)
		case *packet.SymmetricKeyEncrypted:
			symmetric = true
		case *packet.SymmetricallyEncrypted:
			if !p.IntegrityProtected {
				return nil, reason.New(reason.UnsupportedAlgorithm, "symmetrically encrypted data without integrity protection (no MDC)")
			}
			if p.Version == 2 {
				v2Cipher, cipherSuffix = p.Cipher, "-"+aeadModeName(p.Mode)
			}
			edp = p
			break Packets
		case *packet.AEADEncrypted:
			edp = p
			cipherSuffix = "-aead"
			break Packets
		case *packet.Compressed, *packet.LiteralData, *packet.OnePassSignature, *packet.Signature:
			if len(eks) > 0 || symmetric {
				return nil, reason.New(reason.Malformed, "session keys not followed by encrypted data")
			}
			return readPlain(ctx, msg, k, at, maxPlain)
		}
	}

	secret, err := k.PGPSecretKeys(ctx)
	if err != nil && !errors.Is(err, keys.ErrNotFound) {
		return nil, fmt.Errorf("pgp: loading our secret keys: %w", err)
	}
	var (
		rc        io.ReadCloser
		recipient *openpgp.Entity
		cipher    packet.CipherFunction
		locked    []string
		recips    []string
		failed    error
	)
FindKey:
	for _, ek := range eks {
		recips = append(recips, keyIDString(ek.KeyId))
		var cands []openpgp.Key
		if ek.KeyId == 0 {
			// Anonymous recipient (gpg --throw-keyids): try every key.
			cands = secret.DecryptionKeys()
		} else {
			cands = secret.KeysById(ek.KeyId)
		}
		for _, key := range cands {
			pk := key.PrivateKey
			if pk == nil || pk.Dummy() || pk.PubKeyAlgo != ek.Algo {
				continue
			}
			if pk.Encrypted {
				locked = append(locked, keyIDString(pk.KeyId))
				continue
			}
			if err := ek.Decrypt(pk, cfg); err != nil {
				failed = err
				continue
			}
			r, err := edp.Decrypt(ek.CipherFunc, ek.Key)
			if err != nil {
				failed = err
				continue
			}
			rc, recipient, cipher = r, key.Entity, ek.CipherFunc
			break FindKey
		}
	}
	if rc == nil {
		switch {
		case len(locked) > 0:
			return nil, reason.New(reason.WrongPassphrase, "our secret key %s is passphrase-protected and locked", strings.Join(locked, ", "))
		case failed != nil:
			return nil, classify(failed, reason.Malformed, "decrypting the session key")
		case len(eks) == 0 && symmetric:
			return nil, reason.New(reason.NoPrivateKey, "message is encrypted with a passphrase only")
		}
		return nil, reason.New(reason.NoPrivateKey, "no secret key for recipients %s", strings.Join(recips, ", "))
	}
	defer rc.Close()
	if v2Cipher != 0 {
		cipher = v2Cipher
	}

	kr := newKeyRing(ctx, k, secret)
	md, err := openpgp.ReadMessage(rc, kr, nil, cfg)
	if err != nil {
		return nil, classify(err, reason.Malformed, "reading decrypted packets")
	}
	plain, err := readBody(md, sizeHint(msg), maxPlain)
	if err != nil {
		return nil, err
	}
	// Drain what follows the inner message, then run the integrity check.
	if _, err := io.Copy(io.Discard, io.LimitReader(rc, MaxMessageSize)); err != nil {
		return nil, classify(err, reason.Malformed, "integrity check failed")
	}
	if err := rc.Close(); err != nil {
		return nil, classify(err, reason.Malformed, "integrity check failed")
	}
	if kr.err != nil {
		return nil, kr.err
	}
	d := &Decrypted{
		Plaintext: plain,
		Encrypted: true,
		Recipient: recipient,
		Cipher:    cipherName(cipher) + cipherSuffix,
	}
	d.Signature, d.SignatureErr = signatureOutcome(md, at)
	return d, nil
}

// readPlain handles a message that is signed or literal data only.
func readPlain(ctx context.Context, msg []byte, k Keys, at time.Time, maxPlain int64) (*Decrypted, error) {
	body, err := dearmor(msg, openpgp.MessageType)
	if err != nil {
		return nil, err
	}
	kr := newKeyRing(ctx, k, nil)
	md, err := openpgp.ReadMessage(body, kr, nil, readConfig(at, maxPlain))
	if err != nil {
		return nil, classify(err, reason.Malformed, "reading message packets")
	}
	plain, err := readBody(md, sizeHint(msg), maxPlain)
	if err != nil {
		return nil, err
	}
	if kr.err != nil {
		return nil, kr.err
	}
	d := &Decrypted{Plaintext: plain}
	d.Signature, d.SignatureErr = signatureOutcome(md, at)
	return d, nil
}

// readBody reads the literal data to the end (which also makes go-crypto
// check the trailing signature) within maxPlain bytes.
func readBody(md *openpgp.MessageDetails, hint int, maxPlain int64) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(int(min(int64(hint), maxPlain)) + bytes.MinRead)
	n, err := io.Copy(&buf, io.LimitReader(md.UnverifiedBody, maxPlain+1))
	if err != nil {
		return nil, classify(err, reason.Malformed, "reading decrypted data")
	}
	if n > maxPlain {
		return nil, reason.New(reason.TooLarge, "plaintext exceeds %d bytes", maxPlain)
	}
	return buf.Bytes(), nil
}

// sizeHint estimates the plaintext size from the message size (armor is
// 4/3 of binary), so the plaintext buffer is allocated once for an
// uncompressed message: peak heap stays near message + plaintext.
func sizeHint(msg []byte) int {
	if len(msg) > 0 && msg[0]&0x80 == 0 {
		return len(msg) / 4 * 3
	}
	return len(msg)
}

// signatureOutcome turns go-crypto's verdict on an inline signature into
// ours. go-crypto judges key validity at the reference time; its expiry and
// revocation verdicts only say the signature itself is good, so validity is
// re-judged at signing time by checkValidity.
func signatureOutcome(md *openpgp.MessageDetails, at time.Time) (*Verification, error) {
	if !md.IsSigned {
		return nil, nil
	}
	if md.SignedBy == nil {
		return nil, reason.New(reason.NoPublicKey, "signer key %s not found", keyIDString(md.SignedByKeyId))
	}
	if md.Signature == nil {
		if md.SignatureError != nil {
			return nil, classify(md.SignatureError, reason.BadSignature, "checking the signature")
		}
		return nil, reason.New(reason.BadSignature, "no signature packet for the one-pass signature")
	}
	if err := md.SignatureError; err != nil &&
		!errors.Is(err, pgperrors.ErrKeyExpired) &&
		!errors.Is(err, pgperrors.ErrSignatureExpired) &&
		!errors.Is(err, pgperrors.ErrKeyRevoked) {
		return nil, classify(err, reason.BadSignature, "signature does not verify")
	}
	if md.Signature.SigType != packet.SigTypeBinary && md.Signature.SigType != packet.SigTypeText {
		return nil, reason.New(reason.BadSignature, "signature type 0x%02x is not a document signature", uint8(md.Signature.SigType))
	}
	if err := checkValidity(*md.SignedBy, md.Signature, at); err != nil {
		return nil, err
	}
	return verification(*md.SignedBy, md.Signature), nil
}
