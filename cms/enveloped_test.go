package cms

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/secmail/secmail/internal/testpeer"
	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/reason"
)

func envRandom(tb testing.TB, n int) []byte {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return b
}

func envKeys(ps ...*envParty) []keys.SMIMEKey {
	var out []keys.SMIMEKey
	for _, p := range ps {
		out = append(out, p.smime)
	}
	return out
}

// TestDecryptOpenSSL decrypts what openssl cms -encrypt produces.
func TestDecryptOpenSSL(t *testing.T) {
	testpeer.Need(t, "openssl")
	fx := envGetFixture(t)
	A, B, C := fx.rsaA, fx.rsaB, fx.rsaC
	P256, P384 := fx.ecP256, fx.ecP384
	recip := func(p *envParty, keyopts ...string) []string {
		out := []string{"-recip", fx.certPath(p)}
		for _, o := range keyopts {
			out = append(out, "-keyopt", o)
		}
		return out
	}
	cat := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	legacy := []string{"-provider", "legacy", "-provider", "default"}
	allow := DecryptOptions{AllowLegacy3DES: true}

	tests := []struct {
		name      string
		size      int
		smime     bool
		args      []string
		ours      []keys.SMIMEKey
		opts      DecryptOptions
		wantCode  reason.Code
		cipher    Cipher
		keyAlg    string
		recipient *envParty
		weak      bool
		auth      bool
	}{
		{name: "rsa aes128-cbc", size: 1000, args: cat([]string{"-aes128"}, recip(A)), ours: envKeys(A), opts: allow,
			cipher: AES128CBC, keyAlg: "rsa-pkcs1v15", recipient: A},
		{name: "rsa aes192-cbc block-aligned", size: 1024, args: cat([]string{"-aes192"}, recip(A)), ours: envKeys(A), opts: allow,
			cipher: AES192CBC, keyAlg: "rsa-pkcs1v15", recipient: A},
		{name: "rsa aes256-cbc smime", size: 3000, smime: true, args: cat([]string{"-aes256"}, recip(A)), ours: envKeys(A), opts: allow,
			cipher: AES256CBC, keyAlg: "rsa-pkcs1v15", recipient: A},
		{name: "rsa aes256-cbc stream", size: 100 << 10, args: cat([]string{"-aes256", "-stream"}, recip(A)), ours: envKeys(A), opts: allow,
			cipher: AES256CBC, keyAlg: "rsa-pkcs1v15", recipient: A},
		{name: "rsa aes128-gcm", size: 777, args: cat([]string{"-aes-128-gcm"}, recip(A)), ours: envKeys(A), opts: allow,
			cipher: AES128GCM, keyAlg: "rsa-pkcs1v15", recipient: A, auth: true},
		{name: "rsa aes256-gcm stream smime", size: 100 << 10, smime: true, args: cat([]string{"-aes-256-gcm", "-stream"}, recip(A)), ours: envKeys(A), opts: allow,
			cipher: AES256GCM, keyAlg: "rsa-pkcs1v15", recipient: A, auth: true},
		{name: "rsa oaep sha1 default", size: 100, args: cat([]string{"-aes256"}, recip(A, "rsa_padding_mode:oaep")), ours: envKeys(A), opts: allow,
			cipher: AES256CBC, keyAlg: "rsa-oaep-sha1", recipient: A},
		{name: "rsa oaep sha256", size: 100, args: cat([]string{"-aes-256-gcm"}, recip(A, "rsa_padding_mode:oaep", "rsa_oaep_md:sha256")), ours: envKeys(A), opts: allow,
			cipher: AES256GCM, keyAlg: "rsa-oaep-sha256", recipient: A, auth: true},
		{name: "rsa keyid (SKI)", size: 100, args: cat([]string{"-aes128", "-keyid"}, recip(A)), ours: envKeys(A), opts: allow,
			cipher: AES128CBC, keyAlg: "rsa-pkcs1v15", recipient: A},
		{name: "ec p256 default kdf", size: 500, args: cat([]string{"-aes-256-gcm"}, recip(P256)), ours: envKeys(P256), opts: allow,
			cipher: AES256GCM, keyAlg: "ecdh-p256-sha1-kdf", recipient: P256, auth: true},
		{name: "ec p256 sha256 kdf", size: 500, args: cat([]string{"-aes128"}, recip(P256, "ecdh_kdf_md:sha256")), ours: envKeys(P256), opts: allow,
			cipher: AES128CBC, keyAlg: "ecdh-p256-sha256-kdf", recipient: P256},
		{name: "ec p256 sha224 kdf aes192 wrap", size: 500, args: cat([]string{"-aes192"}, recip(P256, "ecdh_kdf_md:sha224")), ours: envKeys(P256), opts: allow,
			cipher: AES192CBC, keyAlg: "ecdh-p256-sha224-kdf", recipient: P256},
		{name: "ec p256 sha512 kdf", size: 500, args: cat([]string{"-aes256"}, recip(P256, "ecdh_kdf_md:sha512")), ours: envKeys(P256), opts: allow,
			cipher: AES256CBC, keyAlg: "ecdh-p256-sha512-kdf", recipient: P256},
		{name: "ec p384 default kdf", size: 500, args: cat([]string{"-aes256"}, recip(P384)), ours: envKeys(P384), opts: allow,
			cipher: AES256CBC, keyAlg: "ecdh-p384-sha1-kdf", recipient: P384},
		{name: "ec p384 sha384 kdf gcm", size: 500, args: cat([]string{"-aes-128-gcm"}, recip(P384, "ecdh_kdf_md:sha384")), ours: envKeys(P384), opts: allow,
			cipher: AES128GCM, keyAlg: "ecdh-p384-sha384-kdf", recipient: P384, auth: true},
		{name: "ec keyid (rKeyId)", size: 500, args: cat([]string{"-aes256", "-keyid"}, recip(P256, "ecdh_kdf_md:sha256")), ours: envKeys(P256), opts: allow,
			cipher: AES256CBC, keyAlg: "ecdh-p256-sha256-kdf", recipient: P256},
		{name: "multi-recipient ours is 2nd of 3", size: 2000, args: cat([]string{"-aes256"}, recip(B), recip(A), recip(C)),
			ours: envKeys(P384, A), opts: allow, cipher: AES256CBC, keyAlg: "rsa-pkcs1v15", recipient: A},
		{name: "multi-recipient mixed rsa and ec", size: 2000, args: cat([]string{"-aes-256-gcm"}, recip(B), recip(P384, "ecdh_kdf_md:sha384"), recip(C)),
			ours: envKeys(A, P256, P384), opts: allow, cipher: AES256GCM, keyAlg: "ecdh-p384-sha384-kdf", recipient: P384, auth: true},
		{name: "3des weak", size: 300, args: cat([]string{"-des3"}, recip(A)), ours: envKeys(A), opts: allow,
			cipher: DES3CBC, keyAlg: "rsa-pkcs1v15", recipient: A, weak: true},
		{name: "ec 3des weak", size: 300, args: cat([]string{"-des3"}, recip(P384, "ecdh_kdf_md:sha256")), ours: envKeys(P384), opts: allow,
			cipher: DES3CBC, keyAlg: "ecdh-p384-sha256-kdf", recipient: P384, weak: true},
		{name: "3des refused by configuration", size: 300, args: cat([]string{"-des3"}, recip(A)), ours: envKeys(A),
			wantCode: reason.UnsupportedAlgorithm},
		{name: "des unsupported", size: 300, args: cat([]string{"-des"}, legacy, recip(A)), ours: envKeys(A), opts: allow,
			wantCode: reason.UnsupportedAlgorithm},
		{name: "rc2 unsupported", size: 300, args: cat([]string{"-rc2"}, legacy, recip(A)), ours: envKeys(A), opts: allow,
			wantCode: reason.UnsupportedAlgorithm},
		{name: "no matching key", size: 100, args: cat([]string{"-aes256"}, recip(B), recip(C)), ours: envKeys(A, P256), opts: allow,
			wantCode: reason.NoPrivateKey},
		{name: "no keys at all", size: 100, args: cat([]string{"-aes256"}, recip(A)), opts: allow,
			wantCode: reason.NoPrivateKey},
		{name: "locked key", size: 100, args: cat([]string{"-aes256"}, recip(A)),
			ours: []keys.SMIMEKey{{Cert: A.cert, Locked: true}}, opts: allow, wantCode: reason.WrongPassphrase},
		{name: "locked ec key", size: 100, args: cat([]string{"-aes-256-gcm"}, recip(P256)),
			ours: []keys.SMIMEKey{{Cert: P256.cert, Locked: true}}, opts: allow, wantCode: reason.WrongPassphrase},
		{name: "rollover: wrong key first (pkcs1v15, gcm)", size: 100, args: cat([]string{"-aes-256-gcm"}, recip(A)),
			ours: []keys.SMIMEKey{{Cert: A.cert, Key: B.smime.Key}, A.smime}, opts: allow,
			cipher: AES256GCM, keyAlg: "rsa-pkcs1v15", recipient: A, auth: true},
		{name: "rollover: wrong key first (oaep, cbc)", size: 100, args: cat([]string{"-aes128"}, recip(A, "rsa_padding_mode:oaep")),
			ours: []keys.SMIMEKey{{Cert: A.cert, Key: B.smime.Key}, A.smime}, opts: allow,
			cipher: AES128CBC, keyAlg: "rsa-oaep-sha1", recipient: A},
		{name: "rollover: wrong ec key first", size: 100, args: cat([]string{"-aes128"}, recip(P256)),
			ours: []keys.SMIMEKey{{Cert: P256.cert, Key: fx.noSKI.smime.Key}, P256.smime}, opts: allow,
			cipher: AES128CBC, keyAlg: "ecdh-p256-sha1-kdf", recipient: P256},
		{name: "only wrong key", size: 100, args: cat([]string{"-aes-128-gcm"}, recip(A)),
			ours: []keys.SMIMEKey{{Cert: A.cert, Key: B.smime.Key}}, opts: allow, wantCode: reason.Malformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plain := envRandom(t, tc.size)
			der := envOpenSSLEncrypt(t, plain, tc.smime, tc.args...)
			if !IsEnveloped(der) {
				t.Errorf("IsEnveloped = false")
			}
			for _, cv := range cbcVariants() {
				t.Run(cv.name, func(t *testing.T) {
					opts := tc.opts
					opts.CBC = cv.d
					d, err := Decrypt(der, tc.ours, opts)
					if tc.wantCode != "" {
						if got := reason.CodeOf(err); got != tc.wantCode {
							t.Fatalf("Decrypt error %v (code %q), want code %q", err, got, tc.wantCode)
						}
						if d != nil {
							t.Fatalf("Decrypt returned a result with error %v", err)
						}
						return
					}
					if err != nil {
						t.Fatalf("Decrypt: %v", err)
					}
					if !bytes.Equal(d.Plaintext, plain) {
						t.Fatalf("plaintext mismatch: got %d bytes, want %d", len(d.Plaintext), len(plain))
					}
					if d.Cipher != tc.cipher || d.KeyAlgorithm != tc.keyAlg || d.Weak != tc.weak || d.Authenticated != tc.auth {
						t.Errorf("got cipher %s keyAlg %s weak %v auth %v, want %s %s %v %v",
							d.Cipher, d.KeyAlgorithm, d.Weak, d.Authenticated, tc.cipher, tc.keyAlg, tc.weak, tc.auth)
					}
					if d.Recipient == nil || d.Recipient.Cert != tc.recipient.cert || d.Recipient.Key == nil {
						t.Errorf("recipient is not %s", tc.recipient.name)
					} else if tc.recipient.smime.Key != d.Recipient.Key {
						t.Errorf("opened with the wrong key of %s", tc.recipient.name)
					}
				})
			}
		})
	}
}

// TestDecryptNoPrivateKeyDetail checks that the error names what the
// message was addressed to.
func TestDecryptNoPrivateKeyDetail(t *testing.T) {
	testpeer.Need(t, "openssl")
	fx := envGetFixture(t)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"issuer and serial", []string{"-aes256", "-recip", fx.certPath(fx.rsaB), "-recip", fx.certPath(fx.ecP256)},
			[]string{"CN=rsa-b", "CN=ec-p256", "serial " + fx.rsaB.cert.SerialNumber.Text(16)}},
		{"subject key identifier", []string{"-aes256", "-keyid", "-recip", fx.certPath(fx.ecP384)},
			[]string{"subject key identifier " + hex.EncodeToString(fx.ecP384.cert.SubjectKeyId)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			der := envOpenSSLEncrypt(t, []byte("x"), false, tc.args...)
			_, err := Decrypt(der, envKeys(fx.rsaA), DecryptOptions{})
			var re *reason.Error
			if !errors.As(err, &re) || re.Code != reason.NoPrivateKey {
				t.Fatalf("got %v, want no-private-key", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(re.Detail, want) {
					t.Errorf("detail %q does not mention %q", re.Detail, want)
				}
			}
		})
	}
}

// TestDecryptBadInput covers damaged messages: every failure is a typed
// error and never comes with plaintext.
func TestDecryptBadInput(t *testing.T) {
	testpeer.Need(t, "openssl")
	fx := envGetFixture(t)
	ours := envKeys(fx.rsaA, fx.ecP256)
	plain := envRandom(t, 4096)
	gcmRSA := envOpenSSLEncrypt(t, plain, false, "-aes-256-gcm", "-recip", fx.certPath(fx.rsaA))
	gcmEC := envOpenSSLEncrypt(t, plain, false, "-aes-128-gcm", "-recip", fx.certPath(fx.ecP256))
	cbc := envOpenSSLEncrypt(t, plain, false, "-aes256", "-recip", fx.certPath(fx.ecP256))
	stream := envOpenSSLEncrypt(t, plain, false, "-aes256", "-stream", "-recip", fx.certPath(fx.rsaA))
	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i] ^= 0x01
		return b
	}
	// The encrypted content sits just before the 16-byte tag's OCTET
	// STRING (18 bytes) at the end of an openssl GCM message.
	tests := []struct {
		name string
		der  []byte
		want reason.Code
	}{
		{"empty", nil, reason.Malformed},
		{"garbage", envRandom(t, 700), reason.Malformed},
		{"truncated cbc", cbc[:len(cbc)/2], reason.Malformed},
		{"truncated by one byte", cbc[:len(cbc)-1], reason.Malformed},
		{"truncated stream", stream[:len(stream)-10], reason.Malformed},
		{"trailing data", append(bytes.Clone(cbc), 0), reason.Malformed},
		{"flipped gcm ciphertext (rsa)", flip(gcmRSA, len(gcmRSA)-18-100), reason.Malformed},
		{"flipped gcm ciphertext (ec)", flip(gcmEC, len(gcmEC)-18-1), reason.Malformed},
		{"flipped gcm tag", flip(gcmEC, len(gcmEC)-1), reason.Malformed},
		{"flipped cbc last block", flip(cbc, len(cbc)-1), reason.Malformed},
		{"flipped wrapped key", flip(cbc, bytes.Index(cbc, []byte{0x04, 0x28})+5), reason.Malformed},
		{"signed data is not enveloped", envSignedDataLike(), reason.Malformed},
		{"too large", make([]byte, MaxInput+1), reason.TooLarge},
	}
	for _, tc := range tests {
		for _, cv := range cbcVariants() {
			t.Run(tc.name+"/"+cv.name, func(t *testing.T) {
				d, err := Decrypt(tc.der, ours, DecryptOptions{AllowLegacy3DES: true, CBC: cv.d})
				if got := reason.CodeOf(err); got != tc.want {
					t.Fatalf("got %v (code %q), want %q", err, got, tc.want)
				}
				if d != nil {
					t.Fatalf("returned plaintext with error %v", err)
				}
				if strings.Contains(err.Error(), "panic") {
					t.Fatalf("recovered panic: %v", err)
				}
			})
		}
	}
}

// envSignedDataLike returns a minimal ContentInfo of another type.
func envSignedDataLike() []byte {
	return []byte{0x30, 0x0f, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0, 0x02, 0x30, 0x00}
}

// TestEncryptOpenSSL checks that openssl cms -decrypt opens what Encrypt
// produces, for every recipient, and that Decrypt does too.
func TestEncryptOpenSSL(t *testing.T) {
	testpeer.Need(t, "openssl")
	fx := envGetFixture(t)
	A, B, P256, P384 := fx.rsaA, fx.rsaB, fx.ecP256, fx.ecP384
	tests := []struct {
		name   string
		to     []*envParty
		opts   EncryptOptions
		cipher Cipher
		keyAlg []string // per recipient
	}{
		{"rsa pkcs1v15 default cipher", []*envParty{A}, EncryptOptions{}, AES256CBC, []string{"rsa-pkcs1v15"}},
		{"rsa pkcs1v15 aes128-gcm", []*envParty{A}, EncryptOptions{Cipher: AES128GCM}, AES128GCM, []string{"rsa-pkcs1v15"}},
		{"rsa oaep sha256 aes256-gcm", []*envParty{A}, EncryptOptions{Cipher: AES256GCM, OAEP: true}, AES256GCM, []string{"rsa-oaep-sha256"}},
		{"rsa oaep sha1 aes128-cbc", []*envParty{A}, EncryptOptions{Cipher: AES128CBC, OAEP: true, OAEPHash: crypto.SHA1}, AES128CBC, []string{"rsa-oaep-sha1"}},
		{"rsa oaep sha512 aes192-cbc", []*envParty{A}, EncryptOptions{Cipher: AES192CBC, OAEP: true, OAEPHash: crypto.SHA512}, AES192CBC, []string{"rsa-oaep-sha512"}},
		{"ec p256 aes128-cbc", []*envParty{P256}, EncryptOptions{Cipher: AES128CBC}, AES128CBC, []string{"ecdh-p256-sha256-kdf"}},
		{"ec p256 aes256-gcm", []*envParty{P256}, EncryptOptions{Cipher: AES256GCM}, AES256GCM, []string{"ecdh-p256-sha256-kdf"}},
		{"ec p384 aes256-cbc", []*envParty{P384}, EncryptOptions{}, AES256CBC, []string{"ecdh-p384-sha384-kdf"}},
		{"ec p384 aes128-gcm", []*envParty{P384}, EncryptOptions{Cipher: AES128GCM}, AES128GCM, []string{"ecdh-p384-sha384-kdf"}},
		{"three recipients cbc", []*envParty{A, P256, P384}, EncryptOptions{}, AES256CBC,
			[]string{"rsa-pkcs1v15", "ecdh-p256-sha256-kdf", "ecdh-p384-sha384-kdf"}},
		{"three recipients gcm oaep", []*envParty{P384, B, P256}, EncryptOptions{Cipher: AES256GCM, OAEP: true}, AES256GCM,
			[]string{"ecdh-p384-sha384-kdf", "rsa-oaep-sha256", "ecdh-p256-sha256-kdf"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plain := envRandom(t, 5000)
			var certs []*x509.Certificate
			for _, p := range tc.to {
				certs = append(certs, p.cert)
			}
			der, err := Encrypt(plain, certs, tc.opts)
			if err != nil {
				t.Fatalf("Encrypt: %v", err)
			}
			if !IsEnveloped(der) {
				t.Fatal("IsEnveloped = false")
			}
			ci, err := ParseContentInfo(der)
			if err != nil {
				t.Fatalf("output is not a DER ContentInfo: %v", err)
			}
			wantType := OIDEnvelopedData
			if strings.HasSuffix(string(tc.cipher), "gcm") {
				wantType = OIDAuthEnvelopedData
			}
			if !ci.ContentType.Equal(wantType) {
				t.Errorf("content type %s, want %s", ci.ContentType, wantType)
			}
			for i, p := range tc.to {
				got, err := fx.envOpenSSLDecrypt(t, der, p)
				if err != nil {
					t.Fatalf("openssl decrypt for %s: %v", p.name, err)
				}
				if !bytes.Equal(got, plain) {
					t.Fatalf("openssl decrypt for %s: plaintext mismatch", p.name)
				}
				d, err := Decrypt(der, envKeys(p), DecryptOptions{})
				if err != nil {
					t.Fatalf("Decrypt for %s: %v", p.name, err)
				}
				if !bytes.Equal(d.Plaintext, plain) || d.Cipher != tc.cipher || d.KeyAlgorithm != tc.keyAlg[i] {
					t.Errorf("Decrypt for %s: cipher %s keyAlg %s, want %s %s", p.name, d.Cipher, d.KeyAlgorithm, tc.cipher, tc.keyAlg[i])
				}
			}
			// A party not addressed cannot decrypt.
			if _, err := fx.envOpenSSLDecrypt(t, der, fx.rsaC); err == nil {
				t.Error("openssl decrypted for a party that was not a recipient")
			}
		})
	}
}

func TestEncryptErrors(t *testing.T) {
	fx := envGetFixture(t)
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "ed"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	edDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, edPriv.Public(), edPriv)
	if err != nil {
		t.Fatal(err)
	}
	edCert, err := x509.ParseCertificate(edDER)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		certs []*x509.Certificate
		opts  EncryptOptions
		want  reason.Code
	}{
		{"no recipients", nil, EncryptOptions{}, reason.NoCertificate},
		{"3des is never written", []*x509.Certificate{fx.rsaA.cert}, EncryptOptions{Cipher: DES3CBC}, reason.UnsupportedAlgorithm},
		{"unknown cipher", []*x509.Certificate{fx.rsaA.cert}, EncryptOptions{Cipher: "rc2-cbc"}, reason.UnsupportedAlgorithm},
		{"ed25519 recipient", []*x509.Certificate{fx.rsaA.cert, edCert}, EncryptOptions{}, reason.UnsupportedAlgorithm},
		{"unsupported oaep hash", []*x509.Certificate{fx.rsaA.cert}, EncryptOptions{OAEP: true, OAEPHash: crypto.MD5}, reason.UnsupportedAlgorithm},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Encrypt([]byte("hello"), tc.certs, tc.opts)
			if got := reason.CodeOf(err); got != tc.want || out != nil {
				t.Fatalf("got %v (code %q, %d bytes), want %q", err, got, len(out), tc.want)
			}
		})
	}
}

// TestDecryptSKIFallback: a certificate without the SKI extension still
// matches a subjectKeyIdentifier computed as SHA-1 of its key.
func TestDecryptSKIFallback(t *testing.T) {
	fx := envGetFixture(t)
	p := fx.noSKI
	sum := envKeySHA1(p.cert)
	if len(sum) != 20 {
		t.Fatal("no key hash")
	}
	if !envMatches(p.cert, RecipientID{SKI: sum}) {
		t.Fatal("SKI fallback does not match")
	}
	if envMatches(fx.ecP256.cert, RecipientID{SKI: sum}) {
		t.Fatal("SKI of another certificate matches")
	}
}

// TestDecryptKeyOpLimit: a message naming our certificate many times costs
// at most envMaxKeyOps private-key operations.
func TestDecryptKeyOpLimit(t *testing.T) {
	fx := envGetFixture(t)
	var certs []*x509.Certificate
	for i := 0; i < envMaxKeyOps+4; i++ {
		certs = append(certs, fx.rsaA.cert)
	}
	der, err := Encrypt([]byte("hello"), certs, EncryptOptions{Cipher: AES128GCM})
	if err != nil {
		t.Fatal(err)
	}
	wrong := []keys.SMIMEKey{{Cert: fx.rsaA.cert, Key: fx.rsaB.smime.Key}}
	if _, err := Decrypt(der, wrong, DecryptOptions{}); reason.CodeOf(err) != reason.TooComplex {
		t.Fatalf("got %v, want too-complex", err)
	}
	d, err := Decrypt(der, envKeys(fx.rsaA), DecryptOptions{})
	if err != nil || string(d.Plaintext) != "hello" {
		t.Fatalf("right key: %v", err)
	}
}

// TestDecryptAuthAttrs covers AuthEnvelopedData with authenticated
// attributes (RFC 5083 §2.1), which openssl does not emit: the MAC covers
// the attributes' DER SET OF encoding, so changing one must fail.
func TestDecryptAuthAttrs(t *testing.T) {
	fx := envGetFixture(t)
	cek := envRandom(t, 16)
	nonce := envRandom(t, 12)
	plain := []byte("authenticated attributes")
	ri, err := envKtriFor(rand.Reader, fx.rsaA.cert, fx.rsaA.cert.PublicKey.(*rsa.PublicKey), cek, EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// authAttrs: one content-type attribute (id-data).
	attrs := func(oid asn1.ObjectIdentifier) []byte {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(OIDAttrContentType)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oid) })
			})
		})
		return b.BytesOrPanic()
	}
	aad := attrs(OIDData)
	block, _ := aes.NewCipher(cek)
	aead, _ := cipher.NewGCM(block)
	sealed := aead.Seal(nil, nonce, plain, aad)
	build := func(attrSet []byte) []byte {
		params, _ := asn1.Marshal(envGCMParams{Nonce: nonce, ICVLen: 16})
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(OIDAuthEnvelopedData)
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1Int64(0)
					b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(ri) })
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(OIDData)
						envAddAlgID(b, envOIDAES128GCM, params)
						b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(sealed[:len(plain)]) })
					})
					// [1] IMPLICIT replaces the SET OF tag.
					b.AddBytes(append([]byte{0xa1}, attrSet[1:]...))
					b.AddASN1OctetString(sealed[len(plain):])
				})
			})
		})
		return b.BytesOrPanic()
	}
	d, err := Decrypt(build(aad), envKeys(fx.rsaA), DecryptOptions{})
	if err != nil {
		t.Fatalf("Decrypt with authAttrs: %v", err)
	}
	if !bytes.Equal(d.Plaintext, plain) || !d.Authenticated {
		t.Fatalf("got %q authenticated=%v", d.Plaintext, d.Authenticated)
	}
	d, err = Decrypt(build(attrs(OIDSignedData)), envKeys(fx.rsaA), DecryptOptions{})
	if reason.CodeOf(err) != reason.Malformed || d != nil {
		t.Fatalf("changed authAttrs: got %v, want malformed", err)
	}
}

// cbcVariant is one way of decrypting AES-CBC content: d nil is
// crypto/cipher inside Decrypt.
type cbcVariant struct {
	name string
	d    CBCDecrypter
}

// cbcVariants: crypto/cipher inside Decrypt, crypto/cipher through the
// CBCDecrypter interface, and whatever the build adds (OpenSSL's with
// -tags openssl). Every decryption case runs with each and must come out
// the same.
func cbcVariants() []cbcVariant {
	return append([]cbcVariant{{"builtin", nil}, {"via-interface", goCBC{}}}, extraCBC()...)
}

// goCBC is crypto/cipher as a CBCDecrypter.
type goCBC struct{}

func (goCBC) DecryptAESCBC(key, iv, buf []byte) error {
	b, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	cipher.NewCBCDecrypter(b, iv).CryptBlocks(buf, buf)
	return nil
}

// countingCBC counts the calls that reach a CBCDecrypter.
type countingCBC struct {
	d CBCDecrypter
	n *int
}

func (c countingCBC) DecryptAESCBC(key, iv, buf []byte) error {
	*c.n++
	return c.d.DecryptAESCBC(key, iv, buf)
}

// TestDecryptUsesCBCDecrypter: AES-CBC content goes through the
// configured decrypter, once per message; GCM never does (3DES, which
// Encrypt refuses, is covered by TestDecryptOpenSSL's variants).
func TestDecryptUsesCBCDecrypter(t *testing.T) {
	fx := envGetFixture(t)
	plain := envRandom(t, 4096)
	for _, tc := range []struct {
		cipher Cipher
		calls  int
	}{{AES128CBC, 1}, {AES256CBC, 1}, {AES256GCM, 0}} {
		t.Run(string(tc.cipher), func(t *testing.T) {
			der, err := Encrypt(plain, []*x509.Certificate{fx.rsaA.cert}, EncryptOptions{Cipher: tc.cipher})
			if err != nil {
				t.Fatal(err)
			}
			var n int
			d, err := Decrypt(der, envKeys(fx.rsaA), DecryptOptions{AllowLegacy3DES: true, CBC: countingCBC{goCBC{}, &n}})
			if err != nil || !bytes.Equal(d.Plaintext, plain) {
				t.Fatalf("Decrypt: %v", err)
			}
			if n != tc.calls {
				t.Fatalf("%d calls to the CBC decrypter, want %d", n, tc.calls)
			}
		})
	}
}
