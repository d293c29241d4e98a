package certcheck

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/secmail/secmail/internal/testpeer"
	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/reason"
)

// The PKI below is made by the real openssl (req, x509, ca, ca -revoke,
// ca -gencrl) once per test binary and kept in memory.
type pki struct {
	root, inter, otherRoot *x509.Certificate
	certs                  map[string]*x509.Certificate
	crl                    *x509.RevocationList
	interKeyPEM            []byte
}

var (
	pkiOnce sync.Once
	pkiVal  *pki
	pkiErr  error
)

func getPKI(t *testing.T) *pki {
	t.Helper()
	testpeer.Need(t, "openssl")
	pkiOnce.Do(func() { pkiVal, pkiErr = buildPKI() })
	if pkiErr != nil {
		t.Fatalf("building PKI with openssl: %v", pkiErr)
	}
	return pkiVal
}

const caConfig = `[ ca ]
default_ca = CA_default
[ CA_default ]
dir = .
database = index.txt
new_certs_dir = newcerts
serial = serial
crlnumber = crlnumber
default_md = sha256
default_days = 30
default_crl_days = 30
policy = policy_any
unique_subject = no
[ policy_any ]
commonName = supplied
emailAddress = optional
[ sign_enc ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = email:${ENV::SANMAIL}
[ ec_agree ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyAgreement
extendedKeyUsage = emailProtection
subjectAltName = email:${ENV::SANMAIL}
[ sign_only ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = emailProtection
subjectAltName = email:${ENV::SANMAIL}
[ nonrep_only ]
basicConstraints = CA:FALSE
keyUsage = critical,nonRepudiation
subjectAltName = email:${ENV::SANMAIL}
[ enc_only ]
basicConstraints = CA:FALSE
keyUsage = critical,keyEncipherment
extendedKeyUsage = emailProtection
subjectAltName = email:${ENV::SANMAIL}
[ no_usage ]
basicConstraints = CA:FALSE
subjectAltName = email:${ENV::SANMAIL}
[ any_eku ]
basicConstraints = CA:FALSE
extendedKeyUsage = anyExtendedKeyUsage
subjectAltName = email:${ENV::SANMAIL}
[ server_eku ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = email:${ENV::SANMAIL}
[ subject_only ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = emailProtection
`

const caExt = `basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
`

const leafExt = `basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=emailProtection
subjectAltName=email:alice@example.org
`

// leafSpec is one certificate issued by the intermediate with `openssl ca`.
type leafSpec struct {
	name, key, ext, subj, san string
	start, end                string // -startdate / -enddate, empty = now / 30 days
}

func stamp(t time.Time) string { return t.UTC().Format("20060102150405Z") }

func buildPKI() (*pki, error) {
	dir, err := os.MkdirTemp("", "certcheck")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	run := func(env []string, args ...string) error {
		cmd := exec.Command("openssl", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("openssl %v: %v: %s", args, err, stderr.String())
		}
		return nil
	}
	write := func(name, s string) error { return os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600) }
	if err := os.Mkdir(filepath.Join(dir, "newcerts"), 0o700); err != nil {
		return nil, err
	}
	for name, s := range map[string]string{"ca.cnf": caConfig, "ca.ext": caExt, "leaf.ext": leafExt, "index.txt": "", "serial": "1000\n", "crlnumber": "01\n"} {
		if err := write(name, s); err != nil {
			return nil, err
		}
	}
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"}
	steps := [][]string{
		append(append([]string{"req", "-x509"}, ec...), "-keyout", "root.key", "-out", "root.pem", "-subj", "/CN=certcheck root", "-days", "3650",
			"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"),
		append(append([]string{"req", "-x509"}, ec...), "-keyout", "other.key", "-out", "other.pem", "-subj", "/CN=certcheck root", "-days", "3650",
			"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"),
		append(append([]string{"req", "-new"}, ec...), "-keyout", "inter.key", "-out", "inter.csr", "-subj", "/CN=certcheck intermediate"),
		{"x509", "-req", "-in", "inter.csr", "-CA", "root.pem", "-CAkey", "root.key", "-set_serial", "2", "-days", "30", "-extfile", "ca.ext", "-out", "inter.pem"},
		{"genpkey", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.key"},
		{"genpkey", "-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ec.key"},
	}
	for _, s := range steps {
		if err := run(nil, s...); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	leaves := []leafSpec{
		{name: "good", key: "rsa", ext: "sign_enc", subj: "/CN=Alice", san: "Alice@Example.org"},
		{name: "ecgood", key: "ec", ext: "ec_agree", subj: "/CN=Eve", san: "eve@example.org"},
		{name: "ecsign", key: "ec", ext: "sign_only", subj: "/CN=Eve signing", san: "eve@example.org"},
		{name: "nonrep", key: "ec", ext: "nonrep_only", subj: "/CN=Nora", san: "nora@example.org"},
		{name: "enconly", key: "rsa", ext: "enc_only", subj: "/CN=Enc", san: "enc@example.org"},
		{name: "nousage", key: "rsa", ext: "no_usage", subj: "/CN=Plain", san: "plain@example.org"},
		{name: "anyeku", key: "ec", ext: "any_eku", subj: "/CN=Any", san: "any@example.org"},
		{name: "server", key: "rsa", ext: "server_eku", subj: "/CN=Server", san: "server@example.org"},
		{name: "subject", key: "rsa", ext: "subject_only", subj: "/CN=Sub/emailAddress=Bob.Subject@Example.org"},
		{name: "wildcard", key: "ec", ext: "sign_only", subj: "/CN=Wild", san: "*@example.org"},
		{name: "revoked", key: "rsa", ext: "sign_enc", subj: "/CN=Revoked", san: "revoked@example.org"},
		{name: "expired", key: "rsa", ext: "sign_enc", subj: "/CN=Expired", san: "expired@example.org",
			start: "20200101000000Z", end: "20210101000000Z"},
		{name: "notyet", key: "ec", ext: "ec_agree", subj: "/CN=Future", san: "future@example.org",
			start: stamp(now.AddDate(1, 0, 0)), end: stamp(now.AddDate(2, 0, 0))},
		// Outlives its issuers on both ends: used to check the issuers'
		// validity at a given time.
		{name: "long", key: "ec", ext: "sign_only", subj: "/CN=Long", san: "long@example.org",
			start: "20200101000000Z", end: stamp(now.AddDate(5, 0, 0))},
	}
	for _, l := range leaves {
		san := l.san
		if san == "" {
			san = "unused@example.org"
		}
		env := []string{"SANMAIL=" + san}
		if err := run(env, "req", "-new", "-key", l.key+".key", "-subj", l.subj, "-out", l.name+".csr"); err != nil {
			return nil, err
		}
		args := []string{"ca", "-config", "ca.cnf", "-batch", "-notext", "-cert", "inter.pem", "-keyfile", "inter.key",
			"-extensions", l.ext, "-in", l.name + ".csr", "-out", l.name + ".pem"}
		if l.start != "" {
			args = append(args, "-startdate", l.start, "-enddate", l.end)
		}
		if err := run(env, args...); err != nil {
			return nil, err
		}
	}
	// An untrusted leaf: same-named root, different key, not in the pool.
	if err := run(nil, "x509", "-req", "-in", "good.csr", "-CA", "other.pem", "-CAkey", "other.key", "-set_serial", "7",
		"-days", "30", "-extfile", "leaf.ext", "-out", "untrusted.pem"); err != nil {
		return nil, err
	}
	env := []string{"SANMAIL=unused@example.org"}
	if err := run(env, "ca", "-config", "ca.cnf", "-cert", "inter.pem", "-keyfile", "inter.key", "-revoke", "revoked.pem", "-crl_reason", "keyCompromise"); err != nil {
		return nil, err
	}
	if err := run(env, "ca", "-config", "ca.cnf", "-cert", "inter.pem", "-keyfile", "inter.key", "-gencrl", "-out", "inter.crl"); err != nil {
		return nil, err
	}

	p := &pki{certs: map[string]*x509.Certificate{}}
	readCert := func(name string) (*x509.Certificate, error) {
		return testpeer.ReadCert(filepath.Join(dir, name+".pem"))
	}
	for _, l := range append(leaves, leafSpec{name: "untrusted"}) {
		if p.certs[l.name], err = readCert(l.name); err != nil {
			return nil, err
		}
	}
	if p.root, err = readCert("root"); err != nil {
		return nil, err
	}
	if p.otherRoot, err = readCert("other"); err != nil {
		return nil, err
	}
	if p.inter, err = readCert("inter"); err != nil {
		return nil, err
	}
	crlDER, err := testpeer.ReadPEM(filepath.Join(dir, "inter.crl"))
	if err != nil {
		return nil, err
	}
	if p.crl, err = x509.ParseRevocationList(crlDER); err != nil {
		return nil, err
	}
	return p, nil
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// forgedCRL claims to come from the intermediate (same name and key id)
// and revokes serial, but is signed by a stranger's key.
func forgedCRL(t *testing.T, inter *x509.Certificate, serial *big.Int) *x509.RevocationList {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	issuer := &x509.Certificate{
		Subject: inter.Subject, RawSubject: inter.RawSubject, SubjectKeyId: inter.SubjectKeyId,
		KeyUsage: x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(99), ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: time.Now().Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: serial, RevocationTime: time.Now().Add(-time.Hour)}},
	}, issuer, k)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

func TestVerifySigner(t *testing.T) {
	p := getPKI(t)
	now := time.Now()
	full := &keys.Trust{Roots: pool(p.root), Intermediates: pool(p.inter), CRLs: []*x509.RevocationList{p.crl}}
	rootsOnly := &keys.Trust{Roots: pool(p.root)}
	tests := []struct {
		name  string
		cert  string
		extra []*x509.Certificate
		trust *keys.Trust
		at    time.Time
		want  reason.Code
	}{
		{name: "intermediate from the message", cert: "good", extra: []*x509.Certificate{p.inter}, trust: rootsOnly},
		{name: "intermediate from the store", cert: "good", trust: full},
		{name: "ecdsa signing only", cert: "ecsign", trust: full},
		{name: "non-repudiation, no EKU", cert: "nonrep", trust: full},
		{name: "no key usage at all", cert: "nousage", trust: full},
		{name: "any EKU", cert: "anyeku", trust: full},
		{name: "subject emailAddress only", cert: "subject", trust: full},
		{name: "zero time means now", cert: "good", trust: full, at: time.Time{}},

		{name: "no intermediate anywhere", cert: "good", trust: rootsOnly, want: reason.UntrustedIssuer},
		{name: "nil trust", cert: "good", extra: []*x509.Certificate{p.inter}, want: reason.UntrustedIssuer},
		{name: "no roots", cert: "good", extra: []*x509.Certificate{p.inter}, trust: &keys.Trust{Intermediates: pool(p.inter)}, want: reason.UntrustedIssuer},
		{name: "other root with the same name", cert: "untrusted", trust: full, want: reason.UntrustedIssuer},
		{name: "message brings its own root", cert: "untrusted", extra: []*x509.Certificate{p.otherRoot}, trust: full, want: reason.UntrustedIssuer},
		{name: "intermediate as the only anchor is trusted", cert: "good", trust: &keys.Trust{Roots: pool(p.inter)}},
		{name: "wrong root only", cert: "good", extra: []*x509.Certificate{p.inter}, trust: &keys.Trust{Roots: pool(p.otherRoot)}, want: reason.UntrustedIssuer},
		{name: "expired", cert: "expired", trust: full, want: reason.Expired},
		{name: "not yet valid", cert: "notyet", trust: full, want: reason.NotYetValid},
		{name: "checked at signing time after expiry", cert: "good", trust: full, at: now.AddDate(0, 2, 0), want: reason.Expired},
		{name: "checked at signing time before issue", cert: "good", trust: full, at: now.AddDate(0, 0, -2), want: reason.NotYetValid},
		{name: "expired intermediate", cert: "long", trust: full, at: now.AddDate(0, 3, 0), want: reason.Expired},
		{name: "intermediate not yet valid", cert: "long", trust: full, at: now.AddDate(-2, 0, 0), want: reason.NotYetValid},
		{name: "revoked by CRL", cert: "revoked", trust: full, want: reason.Revoked},
		{name: "revoked but no CRL imported", cert: "revoked", trust: &keys.Trust{Roots: pool(p.root), Intermediates: pool(p.inter)}},
		{name: "server auth EKU only", cert: "server", trust: full, want: reason.NoCertificate},
		{name: "key encipherment only", cert: "enconly", trust: full, want: reason.NoCertificate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			at := tc.at
			if at.IsZero() && tc.name != "zero time means now" {
				at = now
			}
			chain, err := VerifySigner(p.certs[tc.cert], tc.extra, tc.trust, at)
			if got := reason.CodeOf(err); got != tc.want {
				t.Fatalf("VerifySigner = %v (code %q), want %q", err, got, tc.want)
			}
			if tc.want == "" && (len(chain) < 2 || !chain[0].Equal(p.certs[tc.cert])) {
				t.Fatalf("chain %v does not start at the leaf", chain)
			}
		})
	}
}

func TestForgedCRLIgnored(t *testing.T) {
	p := getPKI(t)
	good := p.certs["good"]
	forged := forgedCRL(t, p.inter, good.SerialNumber)
	trust := &keys.Trust{Roots: pool(p.root), Intermediates: pool(p.inter), CRLs: []*x509.RevocationList{forged, p.crl}}
	if _, err := VerifySigner(good, nil, trust, time.Now()); err != nil {
		t.Fatalf("a CRL with a bad signature revoked the certificate: %v", err)
	}
	if err := CheckRecipient(p.certs["revoked"], trust, time.Now()); reason.CodeOf(err) != reason.Revoked {
		t.Fatalf("the genuine CRL was not honoured next to a forged one: %v", err)
	}
}

func TestCheckRecipient(t *testing.T) {
	p := getPKI(t)
	full := &keys.Trust{Roots: pool(p.root), Intermediates: pool(p.inter), CRLs: []*x509.RevocationList{p.crl}}
	tests := []struct {
		cert  string
		trust *keys.Trust
		want  reason.Code
	}{
		{"good", full, ""},
		{"ecgood", full, ""},
		{"enconly", full, ""},
		{"nousage", full, ""},
		{"anyeku", full, ""},
		{"ecsign", full, reason.NoCertificate}, // EC without keyAgreement
		{"server", full, reason.NoCertificate},
		{"expired", full, reason.Expired},
		{"notyet", full, reason.NotYetValid},
		{"revoked", full, reason.Revoked},
		{"untrusted", full, reason.UntrustedIssuer},
		{"good", nil, reason.UntrustedIssuer},
		{"good", &keys.Trust{Roots: pool(p.root)}, reason.UntrustedIssuer},
	}
	for _, tc := range tests {
		t.Run(tc.cert+"/"+string(tc.want), func(t *testing.T) {
			err := CheckRecipient(p.certs[tc.cert], tc.trust, time.Now())
			if got := reason.CodeOf(err); got != tc.want {
				t.Fatalf("CheckRecipient = %v (code %q), want %q", err, got, tc.want)
			}
		})
	}
}

func TestMatchesAddress(t *testing.T) {
	p := getPKI(t)
	tests := []struct {
		cert, addr string
		want       bool
	}{
		{"good", "alice@example.org", true},
		{"good", "ALICE@EXAMPLE.ORG", true},
		{"good", " Alice@Example.org ", true},
		{"good", "alice@example.com", false},
		{"good", "bob@example.org", false},
		{"good", "", false},
		{"subject", "bob.subject@example.org", true},
		{"subject", "Bob.Subject@EXAMPLE.org", true},
		{"subject", "alice@example.org", false},
		{"wildcard", "anyone@example.org", false},
		{"wildcard", "*@example.org", false},
	}
	for _, tc := range tests {
		if got := MatchesAddress(p.certs[tc.cert], tc.addr); got != tc.want {
			t.Errorf("MatchesAddress(%s, %q) = %v, want %v", tc.cert, tc.addr, got, tc.want)
		}
	}
	if MatchesAddress(nil, "alice@example.org") {
		t.Error("nil certificate matched")
	}
}
