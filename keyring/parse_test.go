package keyring

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/secmail/secmail/reason"
)

type want struct {
	certs, keys, locked, crls, pgp, pgpSecret, pgpLocked int
	matched                                              int // keys (locked or not) with Cert set
	passphrase                                           string
}

func TestParseFormats(t *testing.T) {
	f := fixtures(t)
	pass := Options{Passphrases: []string{"wrong one", testPass, testPGPPass}}
	wrong := Options{Passphrases: []string{"wrong one"}}
	cases := []struct {
		file string
		opts Options
		want want
	}{
		{"ca.pem", pass, want{certs: 1}},
		{"bundle.pem", pass, want{certs: 3}},
		{"alice.der", pass, want{certs: 1}},
		{"ca-trusted.pem", pass, want{certs: 1}},
		{"alice.key", pass, want{keys: 1}},
		{"alice-pkcs1.key", pass, want{keys: 1}},
		{"bob.key", pass, want{keys: 1}},
		{"bob-combined.pem", pass, want{certs: 1, keys: 1, matched: 1}},
		{"alice-key.der", pass, want{keys: 1}},
		{"alice-legacy.key", pass, want{keys: 1, passphrase: testPass}},
		{"alice-legacy.key", wrong, want{locked: 1}},
		{"alice-p8-default.key", pass, want{keys: 1, passphrase: testPass}},
		{"alice-p8-aes256.key", pass, want{keys: 1, passphrase: testPass}},
		{"alice-p8-sha1.key", pass, want{keys: 1, passphrase: testPass}},
		{"alice-p8-des3.key", pass, want{keys: 1, passphrase: testPass}},
		{"alice-p8-scrypt.key", pass, want{keys: 1, passphrase: testPass}},
		{"alice-p8.der", pass, want{keys: 1, passphrase: testPass}},
		{"alice-p8-default.key", wrong, want{locked: 1}},
		{"alice-p8-default.key", Options{}, want{locked: 1}},
		{"alice.p12", pass, want{certs: 3, keys: 1, matched: 1, passphrase: testPass}},
		{"alice-legacy.p12", pass, want{certs: 2, keys: 1, matched: 1, passphrase: testPass}},
		{"alice-nopass.p12", Options{}, want{certs: 1, keys: 1, matched: 1}},
		{"alice.p12", wrong, want{locked: 1}},
		{"carol-email.pem", Options{}, want{certs: 1, locked: 1, matched: 1}},
		{"ca.crl", pass, want{crls: 1}},
		{"ca-crl.der", pass, want{crls: 1}},
		{"chain.p7b", pass, want{certs: 2}},
		{"chain.p7c", pass, want{certs: 2}},
		{"ca-with-crl.p7b", pass, want{certs: 1, crls: 1}},
		{"alice-signed.p7s", pass, want{certs: 2}},
		{"alice-signed.pem", pass, want{certs: 2}},
		{"dave.asc", pass, want{pgp: 1}},
		{"dave.gpg", pass, want{pgp: 1}},
		{"dave-secret.asc", pass, want{pgp: 1, pgpSecret: 1, passphrase: testPGPPass}},
		{"dave-secret.gpg", pass, want{pgp: 1, pgpSecret: 1, passphrase: testPGPPass}},
		{"dave-secret.asc", wrong, want{pgp: 1, pgpSecret: 1, pgpLocked: 1}},
		{"dave-secret.gpg", Options{}, want{pgp: 1, pgpSecret: 1, pgpLocked: 1}},
		{"both.asc", pass, want{pgp: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.file+"/"+strings.Join(tc.opts.Passphrases, ","), func(t *testing.T) {
			b, err := Parse(tc.file, f.read(t, tc.file), tc.opts)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var got want
			got.certs, got.crls, got.pgp = len(b.Certs), len(b.CRLs), len(b.PGP)
			for _, k := range b.Keys {
				if k.Locked {
					got.locked++
					if k.Key != nil {
						t.Error("locked key has a Key")
					}
				} else {
					got.keys++
					got.passphrase = k.Passphrase
					checkSigner(t, k)
				}
				if k.Cert != nil {
					got.matched++
				}
				if len(k.Raw) == 0 {
					t.Error("key without Raw")
				}
			}
			for _, k := range b.PGP {
				if k.Secret {
					got.pgpSecret++
				}
				if k.Locked {
					got.pgpLocked++
				}
				if k.Secret && !k.Locked {
					got.passphrase = k.Passphrase
					if encryptedParts(k.Entity) != 0 {
						t.Error("unlocked PGP key still has encrypted parts")
					}
				}
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// checkSigner proves a decrypted key is the real key: it signs, and when
// matched, its certificate's public key verifies the signature.
func checkSigner(t *testing.T, k PrivateKey) {
	t.Helper()
	d := sha256.Sum256([]byte("keyring"))
	sig, err := k.Key.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if k.Cert == nil {
		return
	}
	alg := x509.SHA256WithRSA
	if k.Cert.PublicKeyAlgorithm == x509.ECDSA {
		alg = x509.ECDSAWithSHA256
	}
	if err := k.Cert.CheckSignature(alg, []byte("keyring"), sig); err != nil {
		t.Errorf("key does not match its certificate: %v", err)
	}
}

// Files as Windows tools save them: byte order mark, CRLF line endings,
// text around the blocks (openssl pkcs12 -nodes writes "Bag Attributes").
func TestParseTextVariants(t *testing.T) {
	f := fixtures(t)
	bob := string(f.read(t, "bob-combined.pem"))
	for name, data := range map[string]string{
		"bom":   "\xef\xbb\xbf" + bob,
		"crlf":  strings.ReplaceAll(bob, "\n", "\r\n"),
		"prose": "Bag Attributes\n    localKeyID: 01\nsubject=CN=Bob\n" + bob + "\ntrailing words\n",
	} {
		b, err := Parse(name, []byte(data), Options{})
		if err != nil || len(b.Certs) != 1 || len(b.Keys) != 1 || b.Keys[0].Cert == nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	f := fixtures(t)
	ca := string(f.read(t, "ca.pem"))
	junkPEM := ca + "-----BEGIN CERTIFICATE-----\n\x00\x01\xff\xfe binary junk \x80\x81\n-----END CERTIFICATE-----\n"
	goodBase64BadDER := ca + "-----BEGIN CERTIFICATE-----\nMIIBCgKCAQEAq3MRFxIz\n-----END CERTIFICATE-----\n"
	truncated := f.read(t, "alice.der")
	truncated = truncated[:len(truncated)/2]
	strict := Options{Passphrases: []string{"nope"}, RequireUnlocked: true}
	cases := []struct {
		name  string
		file  string // fixture, or
		data  string // literal content
		opts  Options
		code  reason.Code
		inErr string
	}{
		{name: "garbage", data: "this is not a key\n", code: reason.Malformed},
		{name: "empty", data: "", code: reason.Malformed},
		{name: "junk in PEM", data: junkPEM, code: reason.Malformed, inErr: "PEM block 2 (CERTIFICATE)"},
		{name: "junk before a good block", data: junkPEM + ca, code: reason.Malformed, inErr: "PEM block 2 (CERTIFICATE)"},
		{name: "bad DER in PEM", data: goodBase64BadDER, code: reason.Malformed, inErr: "PEM block 2 (CERTIFICATE)"},
		{name: "truncated DER", data: string(truncated), code: reason.Malformed},
		{name: "only a CSR", file: "alice.csr", code: reason.Malformed, inErr: "no certificate, key or CRL"},
		{name: "too large", data: ca, opts: Options{MaxSize: 100}, code: reason.TooLarge},
		{name: "p12 without key", file: "certs-only.p12", opts: Options{Passphrases: []string{testPass}}, code: reason.Malformed, inErr: "without a private key"},
		{name: "PBES1", file: "alice-p8-v1.key", opts: Options{Passphrases: []string{testPass}}, code: reason.UnsupportedAlgorithm},
		{name: "PEM wrong passphrase", file: "alice-p8-default.key", opts: strict, code: reason.WrongPassphrase, inErr: "PEM block 1 (ENCRYPTED PRIVATE KEY)"},
		{name: "legacy wrong passphrase", file: "alice-legacy.key", opts: strict, code: reason.WrongPassphrase},
		{name: "p12 wrong passphrase", file: "alice.p12", opts: strict, code: reason.WrongPassphrase},
		{name: "p12 legacy wrong passphrase", file: "alice-legacy.p12", opts: strict, code: reason.WrongPassphrase},
		{name: "PGP wrong passphrase", file: "dave-secret.asc", opts: strict, code: reason.WrongPassphrase},
		{name: "PGP binary wrong passphrase", file: "dave-secret.gpg", opts: strict, code: reason.WrongPassphrase},
		{name: "unterminated PGP armor", data: "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQ\n", code: reason.Malformed},
		{name: "binary PGP junk", data: "\x99\x01\x0dxxxxxxxx", code: reason.Malformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name, data := "upload-"+strings.ReplaceAll(tc.name, " ", "-"), []byte(tc.data)
			if tc.file != "" {
				name, data = tc.file, f.read(t, tc.file)
			}
			b, err := Parse(name, data, tc.opts)
			if err == nil {
				t.Fatalf("no error; bundle %+v", b)
			}
			var re *reason.Error
			if !errors.As(err, &re) || re.Code != tc.code {
				t.Fatalf("error %v: want code %s", err, tc.code)
			}
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name the file %q", err, name)
			}
			if tc.inErr != "" && !strings.Contains(err.Error(), tc.inErr) {
				t.Errorf("error %q does not mention %q", err, tc.inErr)
			}
			if strings.Contains(err.Error(), testPass) || strings.Contains(err.Error(), "nope") {
				t.Errorf("error %q leaks a passphrase", err)
			}
		})
	}
}

func TestBERToDER(t *testing.T) {
	f := fixtures(t)
	// DER passes through unchanged.
	for _, name := range []string{"alice.der", "chain.p7c", "ca-crl.der"} {
		der := f.read(t, name)
		out, err := berToDER(der)
		if err != nil || !bytes.Equal(out, der) {
			t.Errorf("%s: DER changed (%v)", name, err)
		}
	}
	ber := f.read(t, "alice-signed.p7s")
	if isPKCS7(ber) {
		t.Fatal("fixture is not BER with indefinite lengths")
	}
	der, err := berToDER(ber)
	if err != nil || !isPKCS7(der) {
		t.Fatalf("BER signature not converted: %v", err)
	}
	for _, bad := range [][]byte{
		{0x30, 0x80, 0x02, 0x01, 0x01},       // no end-of-contents
		{0x04, 0x80, 0x00, 0x00},             // indefinite primitive
		{0x30, 0x85, 1, 2, 3, 4, 5},          // length of length too long
		{0x30, 0x03, 0x02, 0x01},             // truncated
		bytes.Repeat([]byte{0x30, 0x80}, 64), // too deep
	} {
		if _, err := berToDER(bad); err == nil {
			t.Errorf("berToDER(% x) accepted", bad)
		}
	}
}

// Each key of a multi-key export keeps its own bytes.
func TestPGPRawPerEntity(t *testing.T) {
	f := fixtures(t)
	for _, name := range []string{"both.asc"} {
		b, err := Parse(name, f.read(t, name), Options{})
		if err != nil || len(b.PGP) != 2 {
			t.Fatalf("%s: %v", name, err)
		}
		for _, k := range b.PGP {
			ents, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(k.Raw))
			if err != nil || len(ents) != 1 {
				t.Fatalf("Raw of %X: %v, %d entities", k.Entity.PrimaryKey.Fingerprint, err, len(ents))
			}
			if !bytes.Equal(ents[0].PrimaryKey.Fingerprint, k.Entity.PrimaryKey.Fingerprint) {
				t.Errorf("Raw holds another key")
			}
		}
	}
}

func TestMatchAcrossBundles(t *testing.T) {
	f := fixtures(t)
	kb, err := Parse("alice.key", f.read(t, "alice.key"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	cb, err := Parse("alice.pem", f.read(t, "alice.pem"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if kb.Keys[0].Cert != nil {
		t.Fatal("key matched without certificate")
	}
	other, err := Parse("bob.pem", f.read(t, "bob.pem"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	Match(kb, other)
	if kb.Keys[0].Cert != nil {
		t.Fatal("key matched to a foreign certificate")
	}
	Match(kb, cb, other)
	if kb.Keys[0].Cert != cb.Certs[0] {
		t.Fatal("key not matched to its certificate")
	}
}
