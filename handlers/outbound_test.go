package handlers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/cms"
	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/mimewalk"
	"github.com/secmail/secmail/reason"
	"github.com/secmail/secmail/result"
)

// A reply as a helpdesk composes it: UTF-8, 8-bit, a long line and
// trailing spaces, all of which relays like to change.
const reply = "From: Support <support@helpdesk.example>\r\n" +
	"To: Alice <alice@customer.example>\r\n" +
	"Subject: Re: Interop test\r\n" +
	"Date: Wed, 25 Nov 2026 11:00:00 +0000\r\n" +
	"Message-ID: <reply@helpdesk.example>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: 8bit\r\n\r\n" +
	"Hallo Alice, Grüße aus dem Helpdesk.   \r\n" +
	"This line is long on purpose, well beyond seventy-six characters, so that relays would wrap it if it were not encoded.\r\n"

func withRecipients(msg, to, cc, bcc string) []byte {
	out := strings.Replace(msg, "To: Alice <alice@customer.example>\r\n", "To: "+to+"\r\n", 1)
	if cc != "" {
		out = strings.Replace(out, "Subject:", "Cc: "+cc+"\r\nSubject:", 1)
	}
	if bcc != "" {
		out = strings.Replace(out, "Subject:", "Bcc: "+bcc+"\r\nSubject:", 1)
	}
	return []byte(out)
}

func boolp(b bool) *bool    { return &b }
func strp(s string) *string { return &s }

func (w *world) write(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// opensslVerify verifies a signed S/MIME message with the real openssl
// against our test root and returns the signed content.
func (w *world) opensslVerify(t testing.TB, msg []byte) []byte {
	t.Helper()
	return w.cms(t, msg, "-verify", "-CAfile", filepath.Join(w.dir, "root.pem"), "-purpose", "smimesign")
}

func (w *world) opensslDecrypt(t testing.TB, msg []byte, who string) []byte {
	t.Helper()
	return w.cms(t, msg, "-decrypt", "-recip", w.cert(who), "-inkey", w.key(who))
}

func secure(t *testing.T, h *Handler, raw []byte, o article.Options) *article.Outcome {
	t.Helper()
	out, err := h.Outbound(bg, &article.Request{Raw: raw, Options: o})
	if err != nil {
		t.Fatalf("Outbound: %v", err)
	}
	return out
}

func TestOutboundSMIMEInterop(t *testing.T) {
	w := getWorld(t)
	kr := w.keyring(t, w.dir)
	smime := strp("S/MIME")

	t.Run("signed verifies with openssl after LF conversion", func(t *testing.T) {
		out := secure(t, New(kr, DefaultConfig()), []byte(reply), article.Options{Type: smime, Sign: boolp(true), Encrypt: boolp(false)})
		assertSecurity(t, out.Security, result.SMIME, none, ok, nil)
		if !bytes.Contains(out.Raw, []byte("micalg=\"sha-256\"")) {
			t.Errorf("micalg missing:\n%.600s", out.Raw)
		}
		content := w.opensslVerify(t, out.Raw)
		if !bytes.Contains(content, []byte("Gr=C3=BC=C3=9Fe")) {
			t.Errorf("content not re-encoded quoted-printable: %s", content)
		}
		// An MTA converting line endings must not break the signature.
		w.opensslVerify(t, bytes.ReplaceAll(out.Raw, []byte("\r\n"), []byte("\n")))
		// And our own inbound path agrees.
		in := inboundAs(t, kr, out.Raw)
		assertSecurity(t, in.Security, result.SMIME, none, ok, nil)
	})

	t.Run("opaque PSS signature", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Outbound.Opaque, cfg.Outbound.PSS = true, true
		out := secure(t, New(kr, cfg), []byte(reply), article.Options{Type: smime, Sign: boolp(true), Encrypt: boolp(false)})
		assertSecurity(t, out.Security, result.SMIME, none, ok, nil)
		w.opensslVerify(t, out.Raw)
	})

	for _, tc := range []struct {
		name   string
		cipher cms.Cipher
		oaep   bool
		alg    string
	}{
		{"AES-256-CBC default", "", false, "aes-256-cbc"},
		{"AES-256-GCM", cms.AES256GCM, false, "aes-256-gcm"},
		{"AES-128-GCM with OAEP", cms.AES128GCM, true, "aes-128-gcm"},
	} {
		t.Run("signed and encrypted to RSA, EC and ourselves, "+tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Outbound.Cipher, cfg.Outbound.OAEP = tc.cipher, tc.oaep
			raw := withRecipients(reply, "Alice <alice@customer.example>", "bob@customer.example", "")
			out := secure(t, New(kr, cfg), raw, article.Options{Type: smime})
			assertSecurity(t, out.Security, result.SMIME, ok, ok, nil)
			if out.Security.Encryption.Algorithm != tc.alg {
				t.Errorf("algorithm = %s, want %s", out.Security.Encryption.Algorithm, tc.alg)
			}
			if len(out.Recipients) != 3 {
				t.Errorf("recipients = %+v, want alice, bob and support", out.Recipients)
			}
			// Our own copy goes to our longest-valid certificate, RSA or EC.
			own := "ours"
			if _, err := w.tool(out.Raw, "openssl", "cms", "-decrypt", "-recip", w.cert(own), "-inkey", w.key(own)); err != nil {
				own = "oursEC"
			}
			for _, who := range []string{"alice", "bob", own} {
				inner := w.opensslDecrypt(t, out.Raw, who)
				content := w.opensslVerify(t, inner)
				if !bytes.Contains(content, []byte("This line is long")) {
					t.Errorf("%s: decrypted content wrong: %s", who, content)
				}
			}
			w.cmsMustFail(t, out.Raw, "carol")
			in := inboundAs(t, kr, out.Raw)
			assertSecurity(t, in.Security, result.SMIME, ok, ok, nil)
			if !bytes.Contains(in.Raw, []byte("Subject: Re: Interop test")) {
				t.Errorf("headers lost")
			}
		})
	}

	t.Run("Bcc gets a separate copy", func(t *testing.T) {
		raw := withRecipients(reply, "alice@customer.example", "", "bob@customer.example")
		out := secure(t, New(kr, DefaultConfig()), raw, article.Options{Type: smime, Encrypt: boolp(true)})
		assertSecurity(t, out.Security, result.SMIME, ok, ok, nil)
		if bytes.Contains(out.Raw, []byte("bob@customer.example")) {
			t.Errorf("main message reveals the Bcc recipient")
		}
		w.cmsMustFail(t, out.Raw, "bob")
		if len(out.Copies) != 1 || out.Copies[0].Recipients[0] != "bob@customer.example" {
			t.Fatalf("copies = %+v", out.Copies)
		}
		w.opensslVerify(t, w.opensslDecrypt(t, out.Copies[0].Raw, "bob"))
		w.cmsMustFail(t, out.Copies[0].Raw, "alice")
	})

	for _, tc := range []struct {
		name   string
		to     string
		status string
		code   reason.Code
	}{
		{"unknown recipient", "carol@customer.example", StatusMissing, reason.NoCertificate},
		{"expired recipient", "old@customer.example", StatusExpired, reason.Expired},
		{"revoked recipient", "gone@customer.example", StatusRevoked, reason.Revoked},
		{"not yet valid recipient", "early@customer.example", StatusNotYetValid, reason.NotYetValid},
		{"untrusted recipient", "stranger@customer.example", StatusUntrusted, reason.UntrustedIssuer},
	} {
		t.Run("required encryption fails for "+tc.name, func(t *testing.T) {
			raw := withRecipients(reply, "alice@customer.example, "+tc.to, "", "")
			out := secure(t, New(kr, DefaultConfig()), raw, article.Options{Type: smime, Encrypt: boolp(true)})
			if out.Raw != nil {
				t.Fatalf("a message was produced although encryption was impossible")
			}
			if out.Security.Encryption.Status != result.StatusFailed || *out.Security.Encryption.Reason != tc.code {
				js, _ := json.Marshal(out.Security)
				t.Fatalf("security = %s, want failed %s", js, tc.code)
			}
			var found bool
			for _, r := range out.Recipients {
				if r.Address == tc.to {
					found = true
					if r.Status != tc.status {
						t.Errorf("status = %s, want %s", r.Status, tc.status)
					}
				}
			}
			if !found {
				t.Errorf("recipient %s not listed: %+v", tc.to, out.Recipients)
			}
		})
	}

	t.Run("automatic mode signs but does not encrypt when a certificate is missing", func(t *testing.T) {
		raw := withRecipients(reply, "carol@customer.example", "", "")
		out := secure(t, New(kr, DefaultConfig()), raw, article.Options{Type: smime})
		assertSecurity(t, out.Security, result.SMIME, none, ok, nil)
		w.opensslVerify(t, out.Raw)
	})

	t.Run("missing From", func(t *testing.T) {
		raw := bytes.Replace([]byte(reply), []byte("From: Support <support@helpdesk.example>\r\n"), nil, 1)
		out := secure(t, New(kr, DefaultConfig()), raw, article.Options{Sign: boolp(true)})
		if out.Raw != nil || out.Security.Sign.Status != result.StatusFailed {
			t.Fatalf("want failed sign and no message, got %+v", out.Security)
		}
	})

	t.Run("group defaults and per-article override", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Outbound.Groups = map[string]GroupDefaults{"sales": {Sign: boolp(false), Encrypt: boolp(false)}}
		h := New(kr, cfg)
		out, err := h.Outbound(bg, &article.Request{Raw: []byte(reply), Group: "sales"})
		if err != nil {
			t.Fatal(err)
		}
		assertSecurity(t, out.Security, "", none, none, nil)
		if !bytes.Equal(out.Raw, []byte(reply)) {
			t.Errorf("unsecured message changed")
		}
		out, err = h.Outbound(bg, &article.Request{Raw: []byte(reply), Group: "sales", Options: article.Options{Sign: boolp(true)}})
		if err != nil {
			t.Fatal(err)
		}
		assertSecurity(t, out.Security, result.SMIME, none, ok, nil)
	})
}

// cmsMustFail asserts that who cannot decrypt msg.
func (w *world) cmsMustFail(t testing.TB, msg []byte, who string) {
	t.Helper()
	if _, err := w.tool(msg, "openssl", "cms", "-decrypt", "-recip", w.cert(who), "-inkey", w.key(who)); err == nil {
		t.Errorf("%s could decrypt a message not meant for them", who)
	}
}

func inboundAs(t *testing.T, src keys.Source, raw []byte) *article.Outcome {
	t.Helper()
	h := New(src, DefaultConfig())
	out, err := h.Inbound(bg, raw)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOutboundPGPInterop(t *testing.T) {
	w := getWorld(t)
	kr := w.keyring(t, w.dir)
	pgpType := strp("PGP")

	t.Run("signed verifies with gpg", func(t *testing.T) {
		out := secure(t, New(kr, DefaultConfig()), []byte(reply), article.Options{Type: pgpType, Sign: boolp(true), Encrypt: boolp(false)})
		assertSecurity(t, out.Security, result.PGP, none, ok, nil)
		if !bytes.Contains(out.Raw, []byte("micalg=\"pgp-sha256\"")) {
			t.Errorf("micalg missing:\n%.600s", out.Raw)
		}
		for _, variant := range [][]byte{out.Raw, bytes.ReplaceAll(out.Raw, []byte("\r\n"), []byte("\n"))} {
			p, err := mimewalk.Parse(variant, mimewalk.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			ms := p
			if len(ms.Children) != 2 {
				t.Fatalf("not multipart/signed: %s", p)
			}
			sig, _ := ms.Children[1].Decode()
			data := w.write(t, "data", mimewalk.Canonicalize(ms.Children[0].Raw))
			sigf := w.write(t, "data.asc", sig)
			if _, err := w.gpg(nil, "--verify", sigf, data); err != nil {
				t.Fatalf("gpg --verify: %v", err)
			}
		}
		// Our inbound path knows our own public key.
		in := inboundAs(t, kr, out.Raw)
		assertSecurity(t, in.Security, result.PGP, none, ok, nil)
	})

	t.Run("signed and encrypted decrypts with gpg", func(t *testing.T) {
		out := secure(t, New(kr, DefaultConfig()), []byte(reply), article.Options{Type: pgpType})
		assertSecurity(t, out.Security, result.PGP, ok, ok, nil)
		p, err := mimewalk.Parse(out.Raw, mimewalk.Limits{})
		if err != nil || len(p.Children) != 2 {
			t.Fatalf("not multipart/encrypted: %v %s", err, out.Raw)
		}
		armored, _ := p.Children[1].Decode()
		plain, err := w.tool(armored, "gpg", "--batch", "--status-fd", "1", "--decrypt")
		if err != nil {
			t.Fatalf("gpg --decrypt: %v", err)
		}
		if !bytes.Contains(plain, []byte("GOODSIG")) || !bytes.Contains(plain, []byte("This line is long")) {
			t.Errorf("gpg output lacks a good signature or the text:\n%s", plain)
		}
		// We encrypted to ourselves too, so the helpdesk can read it back.
		in := inboundAs(t, kr, out.Raw)
		if in.Security.Encryption.Status != result.StatusOK {
			t.Errorf("own copy not readable: %+v", in.Security)
		}
	})

	t.Run("required encryption to a recipient without key fails", func(t *testing.T) {
		raw := withRecipients(reply, "nokey@customer.example", "", "")
		out := secure(t, New(kr, DefaultConfig()), raw, article.Options{Type: pgpType, Encrypt: boolp(true)})
		if out.Raw != nil || out.Security.Encryption.Status != result.StatusFailed || *out.Security.Encryption.Reason != reason.NoPublicKey {
			t.Fatalf("want failed no-public-key and no message, got %+v", out.Security)
		}
	})
}

func TestPreflight(t *testing.T) {
	w := getWorld(t)
	kr := w.keyring(t, w.dir)
	for _, lang := range reason.Languages {
		cfg := DefaultConfig()
		cfg.Lang = lang
		h := New(kr, cfg)
		resp, err := h.Preflight(bg, PreflightRequest{
			From: "support@helpdesk.example",
			To:   []string{"alice@customer.example", "carol@customer.example"},
			Cc:   []string{"old@customer.example", "gone@customer.example", "early@customer.example", "stranger@customer.example"},
		})
		if err != nil {
			t.Fatal(err)
		}
		s := resp.SMIME
		if s == nil || !s.Sign.Possible || s.Encryption.Possible {
			t.Fatalf("%s: %+v", lang, s)
		}
		want := map[string]string{
			"alice@customer.example": StatusFound, "carol@customer.example": StatusMissing,
			"old@customer.example": StatusExpired, "gone@customer.example": StatusRevoked,
			"early@customer.example": StatusNotYetValid, "stranger@customer.example": StatusUntrusted,
			"support@helpdesk.example": StatusFound,
		}
		if len(s.Encryption.Recipients) != len(want) {
			t.Errorf("%s: recipients = %+v", lang, s.Encryption.Recipients)
		}
		for _, r := range s.Encryption.Recipients {
			if want[r.Address] != r.Status {
				t.Errorf("%s: %s status = %s, want %s", lang, r.Address, r.Status, want[r.Address])
			}
			if r.Comment == "" {
				t.Errorf("%s: %s has no comment", lang, r.Address)
			}
		}
		wantComment := reason.Text(lang, reason.MsgCertsNotFound, "carol@customer.example, old@customer.example, gone@customer.example, early@customer.example, stranger@customer.example")
		if s.Encryption.Comment != wantComment {
			t.Errorf("%s: comment = %q, want %q", lang, s.Encryption.Comment, wantComment)
		}
		if resp.PGP == nil || !resp.PGP.Sign.Possible {
			t.Errorf("%s: PGP sign should be possible: %+v", lang, resp.PGP)
		}
	}

	h := New(kr, DefaultConfig())
	resp, err := h.Preflight(bg, PreflightRequest{From: "support@helpdesk.example"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.SMIME.Encryption.Possible || resp.SMIME.Encryption.Comment != "There was no recipient found." {
		t.Errorf("no recipients: %+v", resp.SMIME.Encryption)
	}
	resp, err = h.Preflight(bg, PreflightRequest{From: "nobody@helpdesk.example", To: []string{"alice@customer.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.SMIME.Sign.Possible || resp.SMIME.Sign.Comment != "The private key for nobody@helpdesk.example was not found." {
		t.Errorf("unknown sender: %+v", resp.SMIME.Sign)
	}
	if !resp.SMIME.Encryption.Possible {
		t.Errorf("alice only: %+v", resp.SMIME.Encryption)
	}
}

func BenchmarkPreflight10Recipients(b *testing.B) {
	w := getWorld(b)
	h := New(w.keyring(b, w.dir), DefaultConfig())
	req := PreflightRequest{From: "support@helpdesk.example"}
	req.To = []string{"alice@customer.example", "bob@customer.example", "old@customer.example", "gone@customer.example", "early@customer.example"}
	for i := 0; i < 5; i++ {
		req.Cc = append(req.Cc, fmt.Sprintf("unknown%d@customer.example", i))
	}
	if _, err := h.Preflight(bg, req); err != nil { // warm the caches
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := h.Preflight(bg, req); err != nil {
			b.Fatal(err)
		}
	}
}
