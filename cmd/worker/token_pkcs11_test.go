//go:build pkcs11 && cgo

package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secmail/secmail/certsvc"
	"github.com/secmail/secmail/internal/softhsm"
	"github.com/secmail/secmail/internal/testpeer"
	"github.com/secmail/secmail/keybackend/pkcs11"
	"github.com/secmail/secmail/natsembed"
	"github.com/secmail/secmail/result"
	"github.com/secmail/secmail/store"
)

// TestTokenKeyWorker: `worker run` with --key-backend pkcs11 and no master
// key is ready, and a certificate attached with `worker certs attach` to a
// key generated in the token decrypts mail through the worker's handler.
func TestTokenKeyWorker(t *testing.T) {
	testpeer.Need(t, "openssl")
	dir := t.TempDir()
	mod, err := softhsm.Setup(filepath.Join(dir, "hsm"))
	if errors.Is(err, softhsm.ErrMissing) && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsembed.Start(natsembed.Options{Listen: "127.0.0.1:-1", DataDir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	t.Setenv(store.MasterKeyEnv, "")
	t.Setenv("SECMAIL_PKCS11_PIN", softhsm.PIN)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var f runFlags
	f.register(fs, "")
	if err := fs.Parse([]string{"--nats", srv.URL(), "--key-backend", "pkcs11", "--pkcs11-module", mod, "--pkcs11-token", softhsm.Label, "--replicas", "1"}); err != nil {
		t.Fatal(err)
	}
	s, err := start(ctx, &f, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	checks := s.ready(ctx)
	if _, ok := checks["master_key"]; ok || checks["store"] != nil {
		t.Errorf("readiness with a token backend and no master key: %v", checks)
	}

	// The organisation's key pair is generated in the token; only the
	// certificate exists outside it.
	tok := s.backend.(*pkcs11.Token)
	key, err := tok.GenerateRSA("support-2026", 2048)
	if err != nil {
		t.Fatal(err)
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Token Test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafTpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Support"},
		EmailAddresses: []string{"support@helpdesk.example"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(dir, "support.pem")
	pemBytes := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	if err := os.WriteFile(certFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}

	// The administrator's two commands, against the running worker.
	certs := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := certsvc.RunCLI(ctx, append([]string{"certs", "--nats", srv.URL()}, args...), nil, &out, &errb); code != 0 {
			t.Fatalf("worker certs %v: exit %d: %s", args, code, errb.String())
		}
		return out.String()
	}
	certs("import", certFile)
	fp := store.Fingerprint(&x509.Certificate{Raw: leafDER})
	if out := certs("attach", "--token", softhsm.Label, "--key", "support-2026", fp[:16]); !strings.Contains(out, "attached") {
		t.Fatalf("attach: %s", out)
	}

	cmd := exec.Command("openssl", "cms", "-encrypt", "-aes256", certFile)
	cmd.Stdin = strings.NewReader("Content-Type: text/plain\r\n\r\nDecrypted in the token.\r\n")
	msg, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	raw := append([]byte("From: alice@customer.example\r\nTo: support@helpdesk.example\r\nSubject: HSM\r\n"), msg...)
	// The attach reaches the worker's cache through the KV watch.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := s.handler.Inbound(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		if out.Security.Encryption.Status == result.StatusOK {
			if !bytes.Contains(out.Raw, []byte("Decrypted in the token.")) {
				t.Fatalf("decrypted message lacks the body:\n%s", out.Raw)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not decrypted: %+v", out.Security.Encryption)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
