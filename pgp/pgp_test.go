package pgp

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/secmail/secmail/reason"
)

func wantCode(t *testing.T, err error, want reason.Code) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if got := reason.CodeOf(err); got != want {
		t.Fatalf("error %v: code %q, want %q", err, got, want)
	}
}

func TestDecryptGPG(t *testing.T) {
	f := getFixtures(t)
	ctx := context.Background()
	tests := []struct {
		name      string
		msg       string
		code      reason.Code
		recipient string
		cipher    string
		signer    string      // expected verified signer e-mail
		sigCode   reason.Code // expected SignatureErr code
		encrypted bool
	}{
		{name: "rsa", msg: "enc-rsa", recipient: "rsa@example.org", cipher: "aes-256", encrypted: true},
		{name: "curve25519", msg: "enc-cv", recipient: "cv@example.org", cipher: "aes-256", encrypted: true},
		{name: "p256", msg: "enc-p256", recipient: "p256@example.org", cipher: "aes-256", encrypted: true},
		{name: "binary", msg: "enc-bin", recipient: "cv@example.org", cipher: "aes-256", encrypted: true},
		{name: "several recipients", msg: "enc-multi", recipient: "rsa@example.org", cipher: "aes-256", encrypted: true},
		{name: "hidden recipient", msg: "enc-hidden", recipient: "p256@example.org", cipher: "aes-256", encrypted: true},
		{name: "aes-128", msg: "enc-aes128", recipient: "rsa@example.org", cipher: "aes-128", encrypted: true},
		{name: "sign+encrypt", msg: "se-alice-cv", recipient: "cv@example.org", cipher: "aes-256", signer: "alice@example.org", encrypted: true},
		{name: "sign+encrypt binary rsa", msg: "se-alice-rsa-bin", recipient: "rsa@example.org", cipher: "aes-256", signer: "alice@example.org", encrypted: true},
		{name: "sign+encrypt unknown signer", msg: "se-stranger-cv", recipient: "cv@example.org", cipher: "aes-256", sigCode: reason.NoPublicKey, encrypted: true},
		{name: "signed only", msg: "sign-alice", signer: "alice@example.org"},
		{name: "signed only binary", msg: "sign-alice-bin", signer: "alice@example.org"},
		{name: "sign+encrypt revoked signer", msg: "se-rev", recipient: "cv@example.org", cipher: "aes-256", sigCode: reason.Revoked, encrypted: true},
		{name: "sign+encrypt after signer expiry", msg: "se-old-after", recipient: "cv@example.org", cipher: "aes-256", sigCode: reason.Expired, encrypted: true},
		{name: "no key", msg: "enc-stranger", code: reason.NoPrivateKey},
		{name: "locked key", msg: "enc-locked", code: reason.WrongPassphrase},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Decrypt(ctx, f.msg[tc.msg], f.keys, time.Now())
			wantCode(t, err, tc.code)
			if tc.code != "" {
				if d != nil {
					t.Fatalf("got a result with error %v", err)
				}
				return
			}
			if !bytes.Equal(d.Plaintext, f.msg["plain"]) {
				t.Fatalf("plaintext %q", d.Plaintext)
			}
			if d.Encrypted != tc.encrypted {
				t.Fatalf("Encrypted = %v", d.Encrypted)
			}
			if tc.recipient != "" {
				if d.Recipient == nil || fingerprint(d.Recipient) != f.fpr[tc.recipient] {
					t.Fatalf("recipient %v, want %s", d.Recipient, tc.recipient)
				}
			}
			if d.Cipher != tc.cipher {
				t.Fatalf("cipher %q, want %q", d.Cipher, tc.cipher)
			}
			if tc.signer != "" {
				if d.SignatureErr != nil || d.Signature == nil {
					t.Fatalf("signature: %v", d.SignatureErr)
				}
				if d.Signature.Fingerprint != f.fpr[tc.signer] || len(d.Signature.Emails) != 1 || d.Signature.Emails[0] != tc.signer {
					t.Fatalf("signer %+v", d.Signature)
				}
				if d.Signature.Hash == "" || d.Signature.Weak || time.Since(d.Signature.SigningTime) > time.Hour {
					t.Fatalf("signature details %+v", d.Signature)
				}
			} else if tc.sigCode == "" && (d.Signature != nil || d.SignatureErr != nil) {
				t.Fatalf("unexpected signature result %+v %v", d.Signature, d.SignatureErr)
			}
			if tc.sigCode != "" {
				wantCode(t, d.SignatureErr, tc.sigCode)
				if d.Signature != nil {
					t.Fatal("signature set along with an error")
				}
			}
		})
	}
}

// TestDecryptInline covers armored messages as they arrive in a mail body:
// CRLF line endings, text around the block.
func TestDecryptInline(t *testing.T) {
	f := getFixtures(t)
	crlf := bytes.ReplaceAll(f.msg["enc-cv"], []byte("\n"), []byte("\r\n"))
	for name, msg := range map[string][]byte{
		"crlf":             crlf,
		"text around":      append(append([]byte("Hello,\r\n\r\n"), crlf...), "\r\nBye\r\n"...),
		"signed only crlf": bytes.ReplaceAll(f.msg["sign-alice"], []byte("\n"), []byte("\r\n")),
	} {
		t.Run(name, func(t *testing.T) {
			d, err := Decrypt(context.Background(), msg, f.keys, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(d.Plaintext, f.msg["plain"]) {
				t.Fatalf("plaintext %q", d.Plaintext)
			}
		})
	}
}

func TestDecryptErrorDetails(t *testing.T) {
	f := getFixtures(t)
	_, err := Decrypt(context.Background(), f.msg["enc-stranger"], f.keys, time.Now())
	var re *reason.Error
	if !errors.As(err, &re) {
		t.Fatalf("error %T", err)
	}
	sub := f.pub["stranger@example.org"].Subkeys[0].PublicKey.KeyId
	if !strings.Contains(re.Detail, keyIDString(sub)) {
		t.Fatalf("detail %q does not name key %s", re.Detail, keyIDString(sub))
	}
}

// tamper flips one byte at offset off from the end of a binary message.
func tamper(b []byte, fromEnd int) []byte {
	c := bytes.Clone(b)
	c[len(c)-fromEnd] ^= 0x01
	return c
}

func TestDecryptTampered(t *testing.T) {
	f := getFixtures(t)
	bin := f.msg["enc-bin"]
	sebin := f.msg["se-alice-rsa-bin"]
	tests := []struct {
		name string
		msg  []byte
		code reason.Code
	}{
		// The last 22 bytes are the encrypted MDC packet.
		{"mdc", tamper(bin, 3), reason.Malformed},
		{"body end", tamper(bin, 30), reason.Malformed},
		{"body middle", tamper(bin, len(bin)/4), reason.Malformed},
		{"signed body", tamper(sebin, 60), reason.Malformed},
		{"truncated", bin[:len(bin)-10], reason.Malformed},
		{"truncated header", bin[:5], reason.Malformed},
		{"garbage", []byte("\x85\x01\x0cnot openpgp at all"), reason.Malformed},
		{"text", []byte("hello"), reason.Malformed},
		{"empty", nil, reason.Malformed},
		{"armor without body", []byte("-----BEGIN PGP MESSAGE-----\n\n-----END PGP MESSAGE-----\n"), reason.Malformed},
		{"wrong armor type", f.msg["det-alice"], reason.Malformed},
		{"too large", make([]byte, MaxMessageSize+1), reason.TooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Decrypt(context.Background(), tc.msg, f.keys, time.Now())
			wantCode(t, err, tc.code)
			if d != nil {
				t.Fatalf("partial result %q", d.Plaintext)
			}
		})
	}
}

// TestDecryptNoMDC builds a session key for our key followed by a legacy
// symmetrically encrypted packet (type 9, no integrity protection).
func TestDecryptNoMDC(t *testing.T) {
	f := getFixtures(t)
	var buf bytes.Buffer
	key := bytes.Repeat([]byte{7}, 32)
	enc, ok := f.pub["cv@example.org"].EncryptionKey(time.Now())
	if !ok {
		t.Fatal("no encryption key")
	}
	if err := packet.SerializeEncryptedKey(&buf, enc.PublicKey, packet.CipherAES256, key, nil); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte{0x42}, 40)
	buf.Write([]byte{0xc0 | 9, byte(len(body))}) // new-format tag 9
	buf.Write(body)
	_, err := Decrypt(context.Background(), buf.Bytes(), f.keys, time.Now())
	wantCode(t, err, reason.UnsupportedAlgorithm)
}

func TestDecryptStoreError(t *testing.T) {
	f := getFixtures(t)
	k := &memKeys{secret: f.keys.secret, fail: errors.New("redis down")}
	_, err := Decrypt(context.Background(), f.msg["se-alice-cv"], k, time.Now())
	if err == nil || reason.CodeOf(err) != "" || !strings.Contains(err.Error(), "redis down") {
		t.Fatalf("store failure should be a plain error, got %v", err)
	}
}

func TestVerifyDetachedGPG(t *testing.T) {
	f := getFixtures(t)
	otherText := bytes.Replace(f.canon, []byte("1234"), []byte("1235"), 1)
	otherText = bytes.Replace(otherText, []byte("Alice"), []byte("Alicf"), 1)
	lf := bytes.ReplaceAll(f.canon, []byte("\r\n"), []byte("\n"))
	tests := []struct {
		name   string
		data   []byte
		sig    string
		at     time.Time
		code   reason.Code
		signer string
		hash   string
		weak   bool
	}{
		{name: "ed25519 binary mode", data: f.canon, sig: "det-alice", signer: "alice@example.org", hash: "sha256"},
		{name: "ed25519 text mode", data: f.canon, sig: "det-alice-text", signer: "alice@example.org", hash: "sha256"},
		{name: "text mode survives LF", data: lf, sig: "det-alice-text", signer: "alice@example.org", hash: "sha256"},
		{name: "binary mode breaks on LF", data: lf, sig: "det-alice", code: reason.BadSignature},
		{name: "rsa", data: f.canon, sig: "det-rsa", signer: "rsa@example.org"},
		{name: "p256 binary signature", data: f.canon, sig: "det-p256", signer: "p256@example.org", hash: "sha256"},
		{name: "sha1 is weak", data: f.canon, sig: "det-sha1", signer: "rsa@example.org", hash: "sha1", weak: true},
		{name: "tampered", data: otherText, sig: "det-rsa", code: reason.BadSignature},
		{name: "tampered ed25519", data: otherText, sig: "det-alice", code: reason.BadSignature},
		{name: "unknown signer", data: f.canon, sig: "det-stranger", code: reason.NoPublicKey},
		{name: "revoked signer", data: f.canon, sig: "det-rev", code: reason.Revoked},
		{name: "made after the key expired", data: f.canon, sig: "det-old-after", code: reason.Expired},
		{name: "made while the key was valid", data: f.canon, sig: "det-old-before", signer: "old@example.org", hash: "sha256"},
		{name: "garbage signature", data: f.canon, sig: "plain", code: reason.Malformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			at := tc.at
			if at.IsZero() {
				at = time.Now()
			}
			v, err := VerifyDetached(context.Background(), tc.data, f.msg[tc.sig], f.keys, at)
			wantCode(t, err, tc.code)
			if tc.code != "" {
				if v != nil {
					t.Fatal("verification along with an error")
				}
				return
			}
			if v.Fingerprint != f.fpr[tc.signer] || v.Emails[0] != tc.signer || (tc.hash != "" && v.Hash != tc.hash) || v.Weak != tc.weak {
				t.Fatalf("verification %+v", v)
			}
		})
	}
}

func TestVerifyDetachedBeforeRevocationKnown(t *testing.T) {
	f := getFixtures(t)
	// Judged as of a time before the revocation existed, the signature is
	// good: revocations are taken as known at the reference time.
	rev := f.pub["rev@example.org"].Revocations[0].CreationTime
	sig, err := packet.Read(mustDearmor(t, f.msg["det-rev"]))
	if err != nil {
		t.Fatal(err)
	}
	if sig.(*packet.Signature).CreationTime.Before(rev) {
		t.Skip("signature predates the revocation certificate; nothing to test")
	}
	_, err = VerifyDetached(context.Background(), f.canon, f.msg["det-rev"], f.keys, rev.Add(-time.Second))
	// The signature itself postdates that reference time; still, the key
	// was not revoked as far as known then.
	if reason.CodeOf(err) == reason.Revoked {
		t.Fatalf("revocation from the future applied: %v", err)
	}
}

func mustDearmor(t *testing.T, b []byte) *bytes.Reader {
	t.Helper()
	r, err := dearmor(b, openpgp.SignatureType)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

func TestVerifyClearsignedGPG(t *testing.T) {
	f := getFixtures(t)
	good := f.msg["clear-alice"]
	tampered := bytes.Replace(good, []byte("Köln"), []byte("Kiel"), 1)
	if bytes.Equal(tampered, good) {
		t.Fatal("tamper did not change the text")
	}
	hashLie := bytes.Replace(good, []byte("Hash: SHA256"), []byte("Hash: SHA512"), 1)
	withPrefix := append([]byte("Some text before the block.\n\n"), good...)
	crlf := bytes.ReplaceAll(good, []byte("\n"), []byte("\r\n"))
	tests := []struct {
		name   string
		in     []byte
		code   reason.Code
		signer string
	}{
		{"ed25519", good, "", "alice@example.org"},
		{"p256", f.msg["clear-p256"], "", "p256@example.org"},
		{"text before the block", withPrefix, "", "alice@example.org"},
		{"CRLF as in a mail body", crlf, "", "alice@example.org"},
		{"tampered", tampered, reason.BadSignature, ""},
		{"unknown signer", f.msg["clear-stranger"], reason.NoPublicKey, ""},
		{"no block", []byte("just text"), reason.Malformed, ""},
		{"truncated", good[:len(good)/2], reason.Malformed, ""},
	}
	if bytes.Equal(hashLie, good) {
		t.Fatalf("expected a Hash: SHA256 header in gpg's output:\n%s", good)
	}
	tests = append(tests, struct {
		name   string
		in     []byte
		code   reason.Code
		signer string
	}{"hash header lies", hashLie, reason.BadSignature, ""})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, text, err := VerifyClearsigned(context.Background(), tc.in, f.keys, time.Now())
			wantCode(t, err, tc.code)
			if tc.code != "" {
				return
			}
			if v.Fingerprint != f.fpr[tc.signer] {
				t.Fatalf("signer %s", v.Fingerprint)
			}
			if strings.TrimRight(string(text), "\r\n") != strings.TrimRight(f.clearText, "\n") {
				t.Fatalf("text %q", text)
			}
		})
	}
}

func TestIsArmored(t *testing.T) {
	f := getFixtures(t)
	if !IsArmoredMessage(f.msg["enc-rsa"]) || IsArmoredMessage(f.msg["clear-alice"]) || IsArmoredMessage(f.msg["enc-bin"]) {
		t.Fatal("IsArmoredMessage")
	}
	if !IsClearsigned(f.msg["clear-alice"]) || IsClearsigned(f.msg["enc-rsa"]) {
		t.Fatal("IsClearsigned")
	}
	if !IsArmoredMessage(append([]byte("Hi,\r\n"), f.msg["enc-rsa"]...)) {
		t.Fatal("inline after text")
	}
	if IsArmoredMessage([]byte("quoted: -----BEGIN PGP MESSAGE-----")) {
		t.Fatal("marker inside a line")
	}
}

// TestSignDetachedGPGVerifies signs with each algorithm and checks with
// gpg --verify over the same bytes, and over LF line endings (as an MTA
// might deliver them).
func TestSignDetachedGPGVerifies(t *testing.T) {
	f := getFixtures(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		email string
		h     crypto.Hash
	}{
		{"rsa@example.org", crypto.SHA256},
		{"cv@example.org", crypto.SHA256},
		{"cv@example.org", crypto.SHA512},
		{"p256@example.org", crypto.SHA384},
	} {
		email, h := tc.email, tc.h
		{
			t.Run(email+"/"+hashName(h), func(t *testing.T) {
				sig, micalg, err := SignDetached(f.canon, f.sec[email], h)
				if err != nil {
					t.Fatal(err)
				}
				if micalg != "pgp-"+hashName(h) {
					t.Fatalf("micalg %q", micalg)
				}
				sigFile := filepath.Join(dir, "sig.asc")
				for name, data := range map[string][]byte{"crlf": f.canon, "lf": bytes.ReplaceAll(f.canon, []byte("\r\n"), []byte("\n"))} {
					dataFile := filepath.Join(dir, "data-"+name)
					if err := os.WriteFile(dataFile, data, 0o600); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(sigFile, sig, 0o600); err != nil {
						t.Fatal(err)
					}
					_, stderr, err := f.g.run2(nil, "--status-fd", "2", "--verify", sigFile, dataFile)
					if err != nil || !strings.Contains(string(stderr), "[GNUPG:] GOODSIG") || !validSig(string(stderr), f.fpr[email]) {
						t.Fatalf("gpg --verify (%s): %v\n%s", name, err, stderr)
					}
				}
				// And our own verification.
				if _, err := VerifyDetached(context.Background(), f.canon, sig, f.keys, time.Now()); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestSignDetachedRefuses(t *testing.T) {
	f := getFixtures(t)
	tests := []struct {
		name string
		e    *openpgp.Entity
		h    crypto.Hash
		code reason.Code
	}{
		{"sha1", f.sec["rsa@example.org"], crypto.SHA1, reason.UnsupportedAlgorithm},
		{"public only", f.pub["rsa@example.org"], crypto.SHA256, reason.NoPrivateKey},
		{"locked", f.sec["locked@example.org"], crypto.SHA256, reason.WrongPassphrase},
		{"revoked", f.sec["rev@example.org"], crypto.SHA256, reason.Revoked},
		{"nil", nil, crypto.SHA256, reason.NoPublicKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sig, _, err := SignDetached(f.canon, tc.e, tc.h)
			wantCode(t, err, tc.code)
			if sig != nil {
				t.Fatal("signature despite error")
			}
		})
	}
}

// TestEncryptGPGDecrypts encrypts to RSA, Curve25519 and P-256 keys at once
// and decrypts with gpg as each recipient alone, with and without signing.
func TestEncryptGPGDecrypts(t *testing.T) {
	f := getFixtures(t)
	data := f.msg["plain"]
	to := []*openpgp.Entity{f.pub["rsa@example.org"], f.pub["cv@example.org"], f.pub["p256@example.org"]}
	for _, signer := range []string{"", "cv@example.org", "rsa@example.org"} {
		var se *openpgp.Entity
		if signer != "" {
			se = f.sec[signer]
		}
		armored, err := Encrypt(data, to, se, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if !IsArmoredMessage(armored) {
			t.Fatalf("not armored: %q", armored[:40])
		}
		for _, rcpt := range []string{"rsa@example.org", "cv@example.org", "p256@example.org"} {
			t.Run("signer="+signer+"/"+rcpt, func(t *testing.T) {
				plain, status, err := f.gpgDecryptAs(rcpt, armored)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(plain, data) {
					t.Fatalf("gpg plaintext %q", plain)
				}
				if !strings.Contains(status, "DECRYPTION_OKAY") || !strings.Contains(status, "GOODMDC") {
					t.Fatalf("gpg status:\n%s", status)
				}
				if !strings.Contains(status, "DECRYPTION_INFO 2 9") {
					t.Fatalf("not AES-256 with MDC:\n%s", status)
				}
				if signer != "" && !validSig(status, f.fpr[signer]) {
					t.Fatalf("gpg did not verify the signature:\n%s", status)
				}
			})
		}
		// Our own inbound path reads it too.
		d, err := Decrypt(context.Background(), armored, f.keys, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(d.Plaintext, data) || d.Cipher != "aes-256" {
			t.Fatalf("round trip: %q %s", d.Plaintext, d.Cipher)
		}
		if signer != "" && (d.Signature == nil || d.Signature.Fingerprint != f.fpr[signer]) {
			t.Fatalf("round trip signature: %+v %v", d.Signature, d.SignatureErr)
		}
	}
}

func TestEncryptRefuses(t *testing.T) {
	f := getFixtures(t)
	tests := []struct {
		name   string
		to     []*openpgp.Entity
		signer *openpgp.Entity
		code   reason.Code
	}{
		{"no recipients", nil, nil, reason.NoPublicKey},
		{"revoked recipient", []*openpgp.Entity{f.pub["cv@example.org"], f.pub["rev@example.org"]}, nil, reason.Revoked},
		{"expired recipient", []*openpgp.Entity{f.pub["old@example.org"]}, nil, reason.Expired},
		{"locked signer", []*openpgp.Entity{f.pub["cv@example.org"]}, f.sec["locked@example.org"], reason.WrongPassphrase},
		{"public-only signer", []*openpgp.Entity{f.pub["cv@example.org"]}, f.pub["alice@example.org"], reason.NoPrivateKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Encrypt(f.msg["plain"], tc.to, tc.signer, crypto.SHA256)
			wantCode(t, err, tc.code)
			if out != nil {
				t.Fatal("output despite error")
			}
		})
	}
}

func TestCanEncryptCanSign(t *testing.T) {
	f := getFixtures(t)
	now := time.Now()
	tests := []struct {
		email   string
		secret  bool
		encCode reason.Code
		sigCode reason.Code
	}{
		{"rsa@example.org", true, "", ""},
		{"cv@example.org", true, "", ""},
		{"p256@example.org", false, "", reason.NoPrivateKey},
		{"locked@example.org", true, "", reason.WrongPassphrase},
		{"rev@example.org", false, reason.Revoked, reason.Revoked},
		{"old@example.org", false, reason.Expired, reason.Expired},
	}
	for _, tc := range tests {
		t.Run(tc.email, func(t *testing.T) {
			e := f.pub[tc.email]
			if tc.secret {
				e = f.sec[tc.email]
			}
			wantCode(t, CanEncrypt(e, now), tc.encCode)
			wantCode(t, CanSign(e, now), tc.sigCode)
		})
	}
	// Before its expiry the old key was fine.
	wantCode(t, CanEncrypt(f.pub["old@example.org"], f.expiredAt.Add(-time.Hour)), "")
}

func TestSummarize(t *testing.T) {
	f := getFixtures(t)
	s := Summarize(f.pub["old@example.org"])
	if s.Fingerprint != f.fpr["old@example.org"] || len(s.KeyID) != 16 || !strings.HasSuffix(s.Fingerprint, s.KeyID) {
		t.Fatalf("summary %+v", s)
	}
	if len(s.UIDs) != 1 || s.UIDs[0] != "Old <old@example.org>" {
		t.Fatalf("uids %v", s.UIDs)
	}
	if s.Expires == nil || s.Expires.Before(s.Created) || s.Expires.After(time.Now()) {
		t.Fatalf("expiry %v (created %v)", s.Expires, s.Created)
	}
	if s := Summarize(f.pub["cv@example.org"]); s.Expires != nil {
		t.Fatalf("cv key should not expire: %v", s.Expires)
	}
	if Summarize(nil) != nil {
		t.Fatal("nil entity")
	}
}

// validSig reports whether gpg's status output has a VALIDSIG whose primary
// key fingerprint (the last field) is fpr.
func validSig(status, fpr string) bool {
	for _, l := range strings.Split(status, "\n") {
		if strings.HasPrefix(l, "[GNUPG:] VALIDSIG ") && strings.HasSuffix(strings.TrimSpace(l), " "+fpr) {
			return true
		}
	}
	return false
}

// TestDecryptCompressionBomb checks that decompression is bounded: a highly
// compressible plaintext over the limit is TooLarge, not an allocation.
func TestDecryptCompressionBomb(t *testing.T) {
	f := getFixtures(t)
	e := f.pub["cv@example.org"]
	var buf bytes.Buffer
	cfg := &packet.Config{DefaultCompressionAlgo: packet.CompressionZLIB, DefaultCipher: packet.CipherAES256}
	w, err := openpgp.Encrypt(&buf, []*openpgp.Entity{e}, nil, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for range 4 {
		if _, err := w.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len() > 64<<10 {
		t.Fatalf("bomb of %d bytes is not compressed", buf.Len())
	}
	for _, tc := range []struct {
		limit int64
		code  reason.Code
	}{{1 << 20, reason.TooLarge}, {8 << 20, ""}} {
		d, err := decrypt(context.Background(), buf.Bytes(), f.keys, time.Now(), tc.limit)
		wantCode(t, err, tc.code)
		if tc.code == "" && len(d.Plaintext) != 4<<20 {
			t.Fatalf("plaintext of %d bytes", len(d.Plaintext))
		}
		if tc.code != "" && d != nil {
			t.Fatal("partial result")
		}
	}
}

// TestDecryptBadInnerSignature covers a signature that fails inside an
// intact encryption layer (and inside a signed-only message): the plaintext
// is returned, the signature outcome is BadSignature.
func TestDecryptBadInnerSignature(t *testing.T) {
	f := getFixtures(t)
	signed := bytes.Replace(f.msg["sign-alice-bin"], []byte("1234"), []byte("1235"), 1)
	if bytes.Equal(signed, f.msg["sign-alice-bin"]) {
		t.Fatal("literal data not found in the uncompressed signed message")
	}
	want := bytes.Replace(f.msg["plain"], []byte("1234"), []byte("1235"), 1)

	// Encrypt the tampered signed packets as they are, with a valid MDC.
	var enc bytes.Buffer
	key := make([]byte, 32)
	ek, _ := f.pub["rsa@example.org"].EncryptionKey(time.Now())
	if err := packet.SerializeEncryptedKey(&enc, ek.PublicKey, packet.CipherAES256, key, nil); err != nil {
		t.Fatal(err)
	}
	w, err := packet.SerializeSymmetricallyEncrypted(&enc, packet.CipherAES256, false, packet.CipherSuite{}, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(signed); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	for name, msg := range map[string][]byte{"signed only": signed, "encrypted": enc.Bytes()} {
		t.Run(name, func(t *testing.T) {
			d, err := Decrypt(context.Background(), msg, f.keys, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(d.Plaintext, want) {
				t.Fatalf("plaintext %q", d.Plaintext)
			}
			wantCode(t, d.SignatureErr, reason.BadSignature)
			if d.Signature != nil {
				t.Fatal("good signature reported")
			}
		})
	}
}

func TestEncryptDedupesRecipients(t *testing.T) {
	f := getFixtures(t)
	cv := f.pub["cv@example.org"]
	out, err := Encrypt(f.msg["plain"], []*openpgp.Entity{cv, f.sec["cv@example.org"], cv}, nil, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	r, err := dearmor(out, openpgp.MessageType)
	if err != nil {
		t.Fatal(err)
	}
	packets := packet.NewReader(r)
	n := 0
	for {
		p, err := packets.Next()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := p.(*packet.EncryptedKey); !ok {
			break
		}
		n++
	}
	if n != 1 {
		t.Fatalf("%d session-key packets for one key", n)
	}
}
