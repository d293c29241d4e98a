package keyring

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secmail/secmail/reason"
)

// loadMixedDir copies fixtures of every format into one directory, as an
// administrator would lay out a --keyring directory.
func loadMixedDir(t *testing.T, f *fixtureSet) *Keyring {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{
		"ca.pem", "inter.pem", "alice.pem", "alice-p8-default.key", "bob-combined.pem",
		"ca.crl", "chain.p7c", "dave-secret.asc", "alias.asc", "both.asc",
		// The same material again in other formats: merged, not doubled.
		"alice.p12", "alice.der", "alice-legacy.key", "alice-signed.p7s", "ca-crl.der", "bob.key", "dave.gpg",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), f.read(t, name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Skipped: dotfiles and directories.
	if err := os.WriteFile(filepath.Join(dir, ".garbage"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A Kubernetes Secret volume: files are symlinks into "..data/".
	data := filepath.Join(dir, "..data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "carol-email.pem"), f.read(t, "carol-email.pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "carol-email.pem"), filepath.Join(dir, "carol-email.pem")); err != nil {
		t.Fatal(err)
	}
	k, err := LoadDir(dir, Options{Passphrases: []string{testPass, testPGPPass}})
	if err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	return k
}

func parseCertFile(t *testing.T, f *fixtureSet, name string) *x509.Certificate {
	t.Helper()
	b, err := Parse(name, f.read(t, name), Options{})
	if err != nil || len(b.Certs) != 1 {
		t.Fatalf("%s: %v", name, err)
	}
	return b.Certs[0]
}

func TestKeyringLookups(t *testing.T) {
	f := fixtures(t)
	k := loadMixedDir(t, f)
	ctx := context.Background()
	alice := parseCertFile(t, f, "alice.pem")
	inter := parseCertFile(t, f, "inter.pem")

	t.Run("by email", func(t *testing.T) {
		for _, addr := range []string{"alice@example.com", "ALICE@Example.COM", " alice@example.com "} {
			cs, _ := k.CertsByEmail(ctx, addr)
			if len(cs) != 1 || !cs[0].Equal(alice) {
				t.Errorf("CertsByEmail(%q) = %d certs", addr, len(cs))
			}
		}
		if cs, _ := k.CertsByEmail(ctx, "nobody@example.com"); len(cs) != 0 {
			t.Errorf("unknown address found %d certs", len(cs))
		}
	})
	t.Run("by issuer and serial", func(t *testing.T) {
		cs, _ := k.CertsByIssuerSerial(ctx, alice.RawIssuer, big.NewInt(4242))
		if len(cs) != 1 || !cs[0].Equal(alice) {
			t.Errorf("got %d certs", len(cs))
		}
		if cs, _ := k.CertsByIssuerSerial(ctx, alice.RawIssuer, big.NewInt(4243)); len(cs) != 0 {
			t.Errorf("wrong serial found %d certs", len(cs))
		}
	})
	t.Run("by SKI", func(t *testing.T) {
		cs, _ := k.CertsBySKI(ctx, alice.SubjectKeyId)
		if len(cs) != 1 || !cs[0].Equal(alice) {
			t.Errorf("got %d certs", len(cs))
		}
	})
	t.Run("results are copies", func(t *testing.T) {
		cs, _ := k.CertsByEmail(ctx, "alice@example.com")
		cs[0] = nil
		cs2, _ := k.CertsByEmail(ctx, "alice@example.com")
		if cs2[0] == nil {
			t.Error("caller's change reached the keyring")
		}
	})
	t.Run("smime keys", func(t *testing.T) {
		all, _ := k.SMIMEKeys(ctx)
		if len(all) != 3 {
			t.Errorf("SMIMEKeys: %d keys, want alice, bob, carol", len(all))
		}
		ks, _ := k.SMIMEKeysByEmail(ctx, "Alice@example.com")
		if len(ks) != 1 || ks[0].Key == nil || ks[0].Locked || !ks[0].Cert.Equal(alice) {
			t.Fatalf("alice: %+v", ks)
		}
		if len(ks[0].Chain) != 1 || !ks[0].Chain[0].Equal(inter) {
			t.Errorf("alice chain: %d certs, want the intermediate only", len(ks[0].Chain))
		}
		ks, _ = k.SMIMEKeysByEmail(ctx, "bob@example.com")
		if len(ks) != 1 || ks[0].Key == nil || len(ks[0].Chain) != 0 {
			t.Errorf("bob: %+v", ks)
		}
		ks, _ = k.SMIMEKeysByEmail(ctx, "carol@example.com")
		if len(ks) != 1 || !ks[0].Locked || ks[0].Key != nil || ks[0].Cert == nil {
			t.Errorf("carol: want one locked key with certificate, got %+v", ks)
		}
	})
	t.Run("trust", func(t *testing.T) {
		tr, err := k.Trust(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = alice.Verify(x509.VerifyOptions{
			Roots: tr.Roots, Intermediates: tr.Intermediates,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		})
		if err != nil {
			t.Errorf("alice does not verify to the CA in the keyring: %v", err)
		}
		if len(tr.CRLs) != 1 {
			t.Errorf("%d CRLs, want 1", len(tr.CRLs))
		}
		if tr2, _ := k.Trust(ctx); tr2 != tr {
			t.Error("Trust rebuilt without a change")
		}
	})
	t.Run("pgp", func(t *testing.T) {
		ents, _ := k.PGPKeysByID(ctx, f.daveSub)
		if len(ents) != 1 || hex.EncodeToString(ents[0].PrimaryKey.Fingerprint) != strings.ToLower(f.daveFP) {
			t.Fatalf("PGPKeysByID(subkey %X): %d keys", f.daveSub, len(ents))
		}
		if ents2, _ := k.PGPKeysByID(ctx, ents[0].PrimaryKey.KeyId); len(ents2) != 1 {
			t.Errorf("PGPKeysByID(primary): %d keys", len(ents2))
		}
		if ents, _ := k.PGPKeysByEmail(ctx, "DAVE@example.com"); len(ents) != 1 {
			t.Errorf("PGPKeysByEmail(dave): %d keys", len(ents))
		}
		ents, _ = k.PGPKeysByEmail(ctx, "Anyone@Alias.Example")
		if len(ents) != 1 || hex.EncodeToString(ents[0].PrimaryKey.Fingerprint) != strings.ToLower(f.aliasFP) {
			t.Errorf("domain alias: %d keys", len(ents))
		}
		if ents, _ := k.PGPKeysByEmail(ctx, "anyone@other.example"); len(ents) != 0 {
			t.Errorf("other domain: %d keys", len(ents))
		}
		sec, _ := k.PGPSecretKeys(ctx)
		if len(sec) != 1 || sec[0].PrivateKey == nil || sec[0].PrivateKey.Encrypted {
			t.Fatalf("PGPSecretKeys: want dave's key, decrypted; got %d", len(sec))
		}
		// The secret key superseded the public copy from both.asc.
		if ents, _ := k.PGPKeysByEmail(ctx, "dave@example.com"); ents[0].PrivateKey == nil {
			t.Error("public copy shadows the secret key")
		}
	})
	t.Run("capabilities", func(t *testing.T) {
		oids := []string{"2.16.840.1.101.3.4.1.46", "2.16.840.1.101.3.4.1.42"}
		k.SetCapabilities("Alice@Example.com", oids)
		oids[0] = "changed"
		got, _ := k.Capabilities(ctx, "alice@example.com")
		if len(got) != 2 || got[0] != "2.16.840.1.101.3.4.1.46" {
			t.Errorf("Capabilities = %v", got)
		}
		if got, _ := k.Capabilities(ctx, "bob@example.com"); got != nil {
			t.Errorf("unset capabilities = %v", got)
		}
	})
}

func TestKeyringAddOrderAndTrustRebuild(t *testing.T) {
	f := fixtures(t)
	ctx := context.Background()
	k := New()
	// Key first, certificate later: the key waits for its certificate.
	kb, err := Parse("alice.key", f.read(t, "alice.key"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	k.Add(kb)
	if ks, _ := k.SMIMEKeys(ctx); len(ks) != 0 {
		t.Fatalf("key without certificate listed: %d", len(ks))
	}
	tr1, _ := k.Trust(ctx)
	for _, name := range []string{"alice.pem", "inter.pem", "ca.pem"} {
		b, err := Parse(name, f.read(t, name), Options{})
		if err != nil {
			t.Fatal(err)
		}
		k.Add(b)
		k.Add(b) // idempotent
	}
	ks, _ := k.SMIMEKeysByEmail(ctx, "alice@example.com")
	if len(ks) != 1 {
		t.Fatalf("key not matched after its certificate arrived: %d", len(ks))
	}
	// The intermediate came after the key and still completes its chain.
	if len(ks[0].Chain) != 1 || ks[0].Chain[0].Subject.CommonName != "Keyring Test Intermediate" {
		t.Errorf("chain after late intermediate: %d certs", len(ks[0].Chain))
	}
	if cs, _ := k.CertsByEmail(ctx, "alice@example.com"); len(cs) != 1 {
		t.Errorf("duplicate certificate indexed twice: %d", len(cs))
	}
	tr2, _ := k.Trust(ctx)
	if tr2 == tr1 {
		t.Fatal("Trust not rebuilt after a CA was added")
	}
	if _, err := parseCertFile(t, f, "alice.pem").Verify(x509.VerifyOptions{Roots: tr2.Roots, Intermediates: tr2.Intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("verify after rebuild: %v", err)
	}
	// A leaf is not a trust anchor.
	if _, err := parseCertFile(t, f, "inter.pem").Verify(x509.VerifyOptions{Roots: x509.NewCertPool()}); err == nil {
		t.Error("sanity: empty pool verified")
	}
}

func TestKeyringConcurrent(t *testing.T) {
	f := fixtures(t)
	k := loadMixedDir(t, f)
	ctx := context.Background()
	extra, err := Parse("bundle.pem", f.read(t, "bundle.pem"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if i == 0 {
					k.Add(extra)
				}
				if cs, _ := k.CertsByEmail(ctx, "alice@example.com"); len(cs) != 1 {
					t.Error("lookup failed under concurrency")
					return
				}
				if _, err := k.Trust(ctx); err != nil {
					t.Error(err)
					return
				}
				_, _ = k.SMIMEKeys(ctx)
				_, _ = k.PGPKeysByEmail(ctx, "x@alias.example")
			}
		}()
	}
	wg.Wait()
}

func TestLoadDirErrors(t *testing.T) {
	f := fixtures(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), f.read(t, "ca.pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "broken.p12")
	if err := os.WriteFile(bad, []byte("\x30\x03\x02\x01\x03"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadDir(dir, Options{})
	if reason.CodeOf(err) != reason.Malformed || !strings.Contains(err.Error(), "broken.p12") {
		t.Errorf("LoadDir with a broken file: %v", err)
	}
	if err := os.WriteFile(bad, f.read(t, "alice.p12"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadDir(dir, Options{Passphrases: []string{"wrong"}, RequireUnlocked: true})
	if reason.CodeOf(err) != reason.WrongPassphrase || !strings.Contains(err.Error(), "broken.p12") {
		t.Errorf("LoadDir with a wrong passphrase: %v", err)
	}
	_, err = LoadDir(dir, Options{MaxSize: 64})
	if reason.CodeOf(err) != reason.TooLarge {
		t.Errorf("LoadDir with MaxSize: %v", err)
	}
	if _, err := LoadDir(filepath.Join(dir, "missing"), Options{}); err == nil {
		t.Error("LoadDir of a missing directory succeeded")
	}
}

func TestReadPassphraseFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(p, []byte("first\r\n\n with spaces \n\r\nlast"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPassphraseFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"first", " with spaces ", "last"}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != len(want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := ReadPassphraseFile(p + ".missing"); err == nil {
		t.Error("missing file: no error")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "garbage", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n",
		"\x30\x03\x02\x01\x03", "\x99\x00\x01\x04",
	} {
		f.Add([]byte(s))
	}
	// Real files as seeds when the tools are there (never skip the
	// static seeds for want of them).
	_, e1 := exec.LookPath("openssl")
	_, e2 := exec.LookPath("gpg")
	if e1 == nil && e2 == nil {
		fx := fixtures(f)
		for _, n := range []string{"bundle.pem", "alice.der", "chain.p7c", "ca-crl.der", "alice.p12",
			"alice-p8-default.key", "alice-legacy.key", "bob-combined.pem", "dave.gpg", "dave-secret.asc", "alice-signed.p7s"} {
			f.Add(fx.read(f, n))
		}
	}
	// No passphrases: key derivation would dominate every execution, and
	// the structure around it is parsed before any passphrase is tried.
	opts := Options{}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Parse("fuzz", data, opts)
		if err != nil {
			if reason.CodeOf(err) == "" {
				t.Fatalf("error without reason code: %v", err)
			}
			return
		}
		if len(b.Certs)+len(b.Keys)+len(b.PGP)+len(b.CRLs) == 0 {
			t.Fatal("empty bundle without error")
		}
		for _, k := range b.Keys {
			if k.Locked == (k.Key != nil) {
				t.Fatalf("key Locked=%v with Key=%v", k.Locked, k.Key != nil)
			}
		}
	})
}

// benchCerts makes n certificates for distinct addresses cheaply: one
// ECDSA key signs them all.
func benchCerts(b *testing.B, n int) []*x509.Certificate {
	b.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Bench CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	out := make([]*x509.Certificate, 0, n)
	for i := range n {
		tmpl := &x509.Certificate{
			SerialNumber:   big.NewInt(int64(i + 2)),
			Subject:        pkix.Name{CommonName: fmt.Sprintf("user %d", i)},
			EmailAddresses: []string{fmt.Sprintf("user%d@example.com", i)},
			NotBefore:      time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			SubjectKeyId: []byte(fmt.Sprintf("ski-%d", i)),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, key)
		if err != nil {
			b.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func BenchmarkLookupByEmail(b *testing.B) {
	const n = 10000
	certs := benchCerts(b, n)
	k := New()
	k.Add(&Bundle{Certs: certs})
	addrs := make([]string, 64)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("USER%d@example.com", i*151%n)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		cs, _ := k.CertsByEmail(ctx, addrs[i%len(addrs)])
		if len(cs) != 1 {
			b.Fatal("not found")
		}
	}
}

func BenchmarkLookupByIssuerSerial(b *testing.B) {
	const n = 10000
	certs := benchCerts(b, n)
	k := New()
	k.Add(&Bundle{Certs: certs})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		c := certs[i*151%n]
		if cs, _ := k.CertsByIssuerSerial(ctx, c.RawIssuer, c.SerialNumber); len(cs) != 1 {
			b.Fatal("not found")
		}
	}
}
