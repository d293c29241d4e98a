//go:build pkcs11 && cgo

package certcache_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/secmail/secmail/certcache"
	"github.com/secmail/secmail/handlers"
	"github.com/secmail/secmail/internal/softhsm"
	"github.com/secmail/secmail/internal/syncbuf"
	"github.com/secmail/secmail/internal/testpeer"
	"github.com/secmail/secmail/keybackend"
	"github.com/secmail/secmail/keybackend/pkcs11"
	"github.com/secmail/secmail/reason"
	"github.com/secmail/secmail/result"
	"github.com/secmail/secmail/store"
	"github.com/secmail/secmail/store/storetest"
)

var _ keybackend.TokenKeys = (*pkcs11.Token)(nil)

// TestTokenKeysDecrypt: key pairs generated in SoftHSM (their private
// halves never exist outside it), certificates for them imported into a
// store that has no master key, the keys attached by label and by hex
// CKA_ID, and real `openssl cms -encrypt` messages decrypted by the
// inbound handler through the cache. Records naming a key with another
// public key, another token or no key at all are skipped, each logged
// with its certificate.
func TestTokenKeysDecrypt(t *testing.T) {
	testpeer.Need(t, "openssl")
	fx := storetest.Fx(t)
	tok := softhsm.OpenToken(t)
	ctx := context.Background()

	rsaKey, err := tok.GenerateRSA("org-rsa", 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := tok.GenerateEC("org-ec", elliptic.P256())
	if err != nil {
		t.Fatal(err)
	}
	ecID, err := tok.Attribute(ecKey, p11.CKA_ID)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	issue := func(serial int64, email string, pub crypto.PublicKey, usage x509.KeyUsage) (*x509.Certificate, string) {
		t.Helper()
		tpl := storetest.CertTemplate(serial, email)
		tpl.KeyUsage = x509.KeyUsageDigitalSignature | usage
		der, err := x509.CreateCertificate(rand.Reader, tpl, fx.CA, pub, fx.CAKey)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		path := filepath.Join(dir, email+".pem")
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return c, path
	}
	rsaCert, rsaPath := issue(7001, "support@helpdesk.example", rsaKey.Public(), x509.KeyUsageKeyEncipherment)
	ecCert, ecPath := issue(7002, "sales@helpdesk.example", ecKey.Public(), x509.KeyUsageKeyAgreement)
	// Names the RSA token key, but was issued for another key.
	wrongCert, wrongPath := issue(7003, "wrong@helpdesk.example", &stranger.PublicKey, x509.KeyUsageKeyAgreement)
	otherTokenCert, _ := issue(7004, "elsewhere@helpdesk.example", ecKey.Public(), x509.KeyUsageKeyAgreement)
	absentCert, _ := issue(7005, "absent@helpdesk.example", rsaKey.Public(), x509.KeyUsageKeyEncipherment)

	// Only certificates go into the store, which has no master key.
	n := storetest.StartNATS(t, "")
	st := openStore(t, n.Connect(), "hsm", nil, true)
	in := []store.Input{{Name: "ca.pem", Data: fx.Read(t, "ca.pem")}}
	for _, c := range []*x509.Certificate{rsaCert, ecCert, wrongCert, otherTokenCert, absentCert} {
		in = append(in, store.Input{Name: c.Subject.CommonName, Data: c.Raw})
	}
	if rep, err := st.Import(ctx, in, store.ImportOptions{}); err != nil || rep.Failed() {
		t.Fatal(err, rep)
	}
	for _, a := range []struct {
		cert *x509.Certificate
		ref  store.TokenRef
	}{
		{rsaCert, store.TokenRef{Token: softhsm.Label, Key: "org-rsa"}},
		{ecCert, store.TokenRef{Token: softhsm.Label, Key: hex.EncodeToString(ecID)}},
		{wrongCert, store.TokenRef{Token: softhsm.Label, Key: "org-rsa"}},
		{otherTokenCert, store.TokenRef{Token: "other-hsm", Key: "org-ec"}},
		{absentCert, store.TokenRef{Token: softhsm.Label, Key: "no-such-key"}},
	} {
		if _, err := st.AttachTokenKey(ctx, store.Fingerprint(a.cert), a.ref); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := certcache.New(ctx, st, certcache.Options{TokenKeys: tok}); err == nil {
		t.Error("TokenKeys without TokenLabel accepted")
	}
	var logs syncbuf.Buffer
	c, err := certcache.New(ctx, st, certcache.Options{TokenKeys: tok, TokenLabel: softhsm.Label, Logger: textLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	ks, err := c.SMIMEKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, k := range ks {
		got[k.Cert.Subject.CommonName] = true
		switch k.Key.(type) {
		case *pkcs11.RSAKey, *pkcs11.ECKey:
		default:
			t.Errorf("%s: key %T is not a token key", k.Cert.Subject.CommonName, k.Key)
		}
		if len(k.Chain) != 1 || !k.Chain[0].Equal(fx.CA) {
			t.Errorf("%s: chain %v", k.Cert.Subject.CommonName, k.Chain)
		}
	}
	if len(ks) != 2 || !got["support@helpdesk.example"] || !got["sales@helpdesk.example"] {
		t.Fatalf("usable keys %v, want the RSA and EC certificates", got)
	}
	log := logs.String()
	for _, w := range []struct {
		cert *x509.Certificate
		text string
	}{
		{wrongCert, certcache.ErrTokenKeyMismatch.Error()},
		{otherTokenCert, "another token"},
		{absentCert, "token key not found"},
	} {
		if !logLineWith(log, w.text, store.Fingerprint(w.cert)) {
			t.Errorf("no log line with %q naming %s:\n%s", w.text, w.cert.Subject.CommonName, log)
		}
	}

	h := handlers.New(c, handlers.DefaultConfig())
	for _, tc := range []struct {
		name, cert, cipher string
		status             result.Status
		reason             reason.Code
	}{
		{"RSA key by label", rsaPath, "-aes256", result.StatusOK, ""},
		{"EC key by CKA_ID", ecPath, "-aes-256-gcm", result.StatusOK, ""},
		{"refused key", wrongPath, "-aes256", result.StatusFailed, reason.NoPrivateKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const body = "The key never left the token.\r\n"
			cmd := exec.Command("openssl", "cms", "-encrypt", tc.cipher, tc.cert)
			cmd.Stdin = strings.NewReader("Content-Type: text/plain; charset=utf-8\r\n\r\n" + body)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			msg, err := cmd.Output()
			if err != nil {
				t.Fatalf("openssl cms -encrypt: %v: %s", err, stderr.String())
			}
			raw := append([]byte("From: Customer <alice@customer.example>\r\nTo: support@helpdesk.example\r\nSubject: Token test\r\n"), msg...)
			out, err := h.Inbound(ctx, raw)
			if err != nil {
				t.Fatal(err)
			}
			enc := out.Security.Encryption
			if enc.Status != tc.status || (tc.reason != "" && (enc.Reason == nil || *enc.Reason != tc.reason)) {
				t.Fatalf("encryption %+v, want %s %s", enc, tc.status, tc.reason)
			}
			if decrypted := bytes.Contains(out.Raw, []byte(body)); decrypted != (tc.status == result.StatusOK) {
				t.Errorf("plaintext in the result: %v\n%.600s", decrypted, out.Raw)
			}
		})
	}

	// A failing token (here: closed) is an error, so the article is
	// retried, not a certificate without a key.
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}
	c.Purge()
	if ks, err := c.SMIMEKeys(ctx); !errors.Is(err, pkcs11.ErrClosed) {
		t.Fatalf("keys from a closed token: %v %d", err, len(ks))
	}
}

// logLineWith reports whether one line of log contains all of parts.
func logLineWith(log string, parts ...string) bool {
	for _, l := range strings.Split(log, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}
