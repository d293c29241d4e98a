package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/reason"
	"github.com/secmail/secmail/store"
	"github.com/secmail/secmail/store/storetest"
)

func testKey(t testing.TB, b byte) *store.MasterKey {
	t.Helper()
	mk, err := store.NewMasterKey(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return mk
}

type env struct {
	nats *storetest.NATS
	nc   *nats.Conn
	n    int
	mu   sync.Mutex
}

func newEnv(t testing.TB) *env {
	n := storetest.StartNATS(t, "")
	return &env{nats: n, nc: n.Connect()}
}

// open returns a store on a fresh bucket.
func (e *env) open(t testing.TB, mk *store.MasterKey) *store.Store {
	t.Helper()
	e.mu.Lock()
	e.n++
	bucket := fmt.Sprintf("b%d", e.n)
	e.mu.Unlock()
	return e.openBucket(t, bucket, mk)
}

func (e *env) openBucket(t testing.TB, bucket string, mk *store.MasterKey) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), e.nc, store.Config{Bucket: bucket, MasterKey: mk, MemoryStorage: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func in(t testing.TB, fx *storetest.Fixtures, names ...string) []store.Input {
	var out []store.Input
	for _, n := range names {
		out = append(out, store.Input{Name: n, Data: fx.Read(t, n)})
	}
	return out
}

type want struct {
	kind, status string
	code         reason.Code
}

func entries(r *store.Report) []want {
	var out []want
	for _, e := range r.Entries {
		out = append(out, want{e.Kind, e.Status, e.Code})
	}
	return out
}

func TestImportFormats(t *testing.T) {
	fx := storetest.Fx(t)
	e := newEnv(t)
	ctx := context.Background()
	tests := []struct {
		name  string
		files []string
		pass  []string
		want  []want
	}{
		{"PEM certificate", []string{"alice.pem"}, nil, []want{{"cert", "added", ""}}},
		{"DER certificate", []string{"alice.der"}, nil, []want{{"cert", "added", ""}}},
		{"PEM chain", []string{"chain.pem"}, nil, []want{{"cert", "added", ""}, {"ca", "added", ""}}},
		{"PKCS#7 PEM", []string{"bundle.p7b"}, nil, []want{{"cert", "added", ""}, {"ca", "added", ""}}},
		{"PKCS#7 DER", []string{"bundle.p7b.der"}, nil, []want{{"cert", "added", ""}, {"ca", "added", ""}}},
		{"RSA key with certificate", []string{"alice.pem", "alice.key"}, nil, []want{{"cert", "added", ""}, {"key", "added", ""}}},
		{"encrypted PKCS#8", []string{"alice.pem", "alice.enc.key"}, []string{"wrong", storetest.Passphrase}, []want{{"cert", "added", ""}, {"key", "added", ""}}},
		{"EC key with certificate", []string{"bob.key", "bob.pem"}, nil, []want{{"cert", "added", ""}, {"key", "added", ""}}},
		{"legacy encrypted PEM", []string{"bob.pem", "bob.legacy.key"}, []string{storetest.Passphrase}, []want{{"cert", "added", ""}, {"key", "added", ""}}},
		{"PKCS#12", []string{"bob.p12"}, []string{storetest.Passphrase}, []want{{"cert", "added", ""}, {"ca", "added", ""}, {"key", "added", ""}}},
		{"expired certificate", []string{"expired.pem"}, nil, []want{{"cert", "added", ""}}},
		{"CRL", []string{"ca.crl"}, nil, []want{{"crl", "added", ""}}},
		{"PGP public", []string{"carol.pub.asc"}, nil, []want{{"pgp", "added", ""}}},
		{"PGP secret", []string{"carol.sec.asc"}, []string{storetest.Passphrase}, []want{{"pgp-secret", "added", ""}}},
		// Bad input: nothing written, precise reasons.
		{"key without certificate", []string{"other.key"}, nil, []want{{"key", "error", reason.NoCertificate}}},
		{"wrong passphrase PKCS#8", []string{"alice.pem", "alice.enc.key"}, []string{"nope"}, []want{{"file", "error", reason.WrongPassphrase}, {"cert", "skipped", ""}}},
		{"wrong passphrase PKCS#12", []string{"bob.p12"}, []string{"nope"}, []want{{"file", "error", reason.WrongPassphrase}}},
		{"PGP secret wrong passphrase", []string{"carol.sec.asc"}, []string{"nope"}, []want{{"file", "error", reason.WrongPassphrase}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if slices.ContainsFunc(tc.files, func(s string) bool { return len(s) > 4 && s[len(s)-4:] == ".asc" }) && !fx.HavePGP {
				t.Skip("gpg not installed")
			}
			s := e.open(t, testKey(t, 1))
			rep, err := s.Import(ctx, in(t, fx, tc.files...), store.ImportOptions{Passphrases: tc.pass})
			if err != nil {
				t.Fatal(err)
			}
			got := entries(rep)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("report %+v, want %+v\n%s", got, tc.want, mustJSON(rep))
			}
			failed := rep.Failed()
			if rep.Applied == failed {
				t.Errorf("applied=%v with failures=%v", rep.Applied, failed)
			}
			if failed {
				l, err := s.List(ctx, store.Filter{})
				if err != nil {
					t.Fatal(err)
				}
				if len(l.Certs)+len(l.PGP) != 0 {
					t.Errorf("failed import wrote %d certs, %d pgp keys", len(l.Certs), len(l.PGP))
				}
				return
			}
			// Re-import is an idempotent no-op that says so.
			rep, err = s.Import(ctx, in(t, fx, tc.files...), store.ImportOptions{Passphrases: tc.pass})
			if err != nil {
				t.Fatal(err)
			}
			for _, en := range rep.Entries {
				if en.Status != store.StatusPresent {
					t.Errorf("re-import %s %s: status %s", en.Kind, en.ID, en.Status)
				}
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func TestExpiredWarningAndLookups(t *testing.T) {
	fx := storetest.Fx(t)
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(t, testKey(t, 1))
	rep, err := s.Import(ctx, in(t, fx, "expired.pem", "chain.pem", "bob.pem", "bob.key", "ca.crl"), store.ImportOptions{})
	if err != nil || rep.Failed() {
		t.Fatalf("%v %s", err, mustJSON(rep))
	}
	if w := rep.Entries[0].Warning; w == "" {
		t.Errorf("expired certificate imported without a warning")
	}
	// By e-mail, case-insensitively (Bob's certificate says Bob@Example.com).
	certs, err := s.CertsByEmail(ctx, "BOB@example.COM")
	if err != nil || len(certs) != 1 || !certs[0].Equal(fx.Bob) {
		t.Fatalf("by email: %v %d", err, len(certs))
	}
	recs, err := s.CertsByIndex(ctx, store.IssuerSerialIndexKey(fx.Alice.RawIssuer, fx.Alice.SerialNumber))
	if err != nil || len(recs) != 1 || recs[0].Fingerprint != storetest.FP(fx.Alice) {
		t.Fatalf("by issuer+serial: %v %d", err, len(recs))
	}
	recs, err = s.CertsByIndex(ctx, store.SKIIndexKey(fx.Bob.SubjectKeyId))
	if err != nil || len(recs) != 1 || !recs[0].HasPrivateKey {
		t.Fatalf("by SKI: %v %+v", err, recs)
	}
	cas, crls, err := s.TrustMaterial(ctx)
	if err != nil || len(cas) != 1 || !cas[0].Equal(fx.CA) || len(crls) != 1 {
		t.Fatalf("trust: %v %d %d", err, len(cas), len(crls))
	}
	ks, err := s.SMIMEKeys(ctx)
	if err != nil || len(ks) != 1 || !ks[0].Cert.Equal(fx.Bob) || len(ks[0].Chain) != 1 || !ks[0].Chain[0].Equal(fx.CA) {
		t.Fatalf("smime keys: %v %+v", err, ks)
	}
	if _, ok := ks[0].Key.(keys.KeyAgreer); !ok {
		t.Errorf("EC key is not a KeyAgreer")
	}

	// Filters.
	for _, tc := range []struct {
		f    store.Filter
		want int
	}{
		{store.Filter{}, 4},
		{store.Filter{Kind: "ca"}, 1},
		{store.Filter{Kind: "cert"}, 3},
		{store.Filter{HasPrivateKey: true}, 1},
		{store.Filter{ExpiringWithin: 30 * 24 * time.Hour}, 1},
		{store.Filter{Email: "alice@example.com"}, 1},
		{store.Filter{Email: "nobody@example.com"}, 0},
	} {
		l, err := s.List(ctx, tc.f)
		if err != nil || len(l.Certs) != tc.want {
			t.Errorf("List(%+v) = %d certs, %v; want %d", tc.f, len(l.Certs), err, tc.want)
		}
	}

	// Export: PEM, DER, chain, private key exactly as uploaded.
	fp := storetest.FP(fx.Bob)
	der, _, err := s.Export(ctx, fp[:12], store.ExportOptions{Format: "der"})
	if err != nil || !bytes.Equal(der, fx.Bob.Raw) {
		t.Fatalf("export der: %v", err)
	}
	chain, _, err := s.Export(ctx, fp, store.ExportOptions{Chain: true})
	if err != nil || bytes.Count(chain, []byte("BEGIN CERTIFICATE")) != 2 {
		t.Fatalf("export chain: %v\n%s", err, chain)
	}
	key, _, err := s.Export(ctx, fp, store.ExportOptions{PrivateKey: true})
	if err != nil || !bytes.Equal(bytes.TrimSpace(key), bytes.TrimSpace(fx.Read(t, "bob.key"))) {
		t.Fatalf("export key: %v", err)
	}

	// Expiries for the metrics.
	exps, err := s.Expiries(ctx)
	if err != nil || len(exps) != 4 {
		t.Fatalf("expiries: %v %+v", err, exps)
	}

	// Delete removes the certificate, its key and its index entries.
	if _, err := s.Delete(ctx, fp); err != nil {
		t.Fatal(err)
	}
	if certs, err := s.CertsByEmail(ctx, "bob@example.com"); err != nil || len(certs) != 0 {
		t.Fatalf("after delete: %v %d", err, len(certs))
	}
	if ks, err := s.SMIMEKeys(ctx); err != nil || len(ks) != 0 {
		t.Fatalf("keys after delete: %v %d", err, len(ks))
	}
	if _, err := s.Get(ctx, fp); !store.IsNotFound(err) {
		t.Fatalf("get after delete: %v", err)
	}
}

func TestBulkAllOrReport(t *testing.T) {
	fx := storetest.Fx(t)
	e := newEnv(t)
	ctx := context.Background()
	files := append(in(t, fx, "chain.pem", "bob.pem"), store.Input{Name: "junk.pem", Data: []byte("-----BEGIN CERTIFICATE-----\n\x00\x01garbage\n-----END CERTIFICATE-----\n")})
	s := e.open(t, testKey(t, 1))
	rep, err := s.Import(ctx, files, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Applied || rep.Entries[0].Source != "junk.pem" || rep.Entries[0].Code != reason.Malformed {
		t.Fatalf("garbage not reported precisely: %s", mustJSON(rep))
	}
	if l, _ := s.List(ctx, store.Filter{}); len(l.Certs) != 0 {
		t.Fatalf("all-or-nothing import wrote %d certificates", len(l.Certs))
	}
	rep, err = s.Import(ctx, files, store.ImportOptions{Partial: true})
	if err != nil || !rep.Applied {
		t.Fatal(err, mustJSON(rep))
	}
	if c := rep.Counts(); c[store.StatusAdded] != 3 || c[store.StatusError] != 1 {
		t.Fatalf("partial import counts %v", c)
	}
	if l, _ := s.List(ctx, store.Filter{}); len(l.Certs) != 3 {
		t.Fatalf("partial import wrote %d certificates, want 3", len(l.Certs))
	}
	// A 100 MB upload is refused before parsing.
	rep, err = s.Import(ctx, []store.Input{{Name: "huge.pem", Data: make([]byte, 100<<20)}}, store.ImportOptions{})
	if err != nil || rep.Entries[0].Code != reason.TooLarge {
		t.Fatalf("huge upload: %v %s", err, mustJSON(rep))
	}
}

func TestConcurrentAdmins(t *testing.T) {
	fx := storetest.Fx(t)
	e := newEnv(t)
	ctx := context.Background()
	s1 := e.openBucket(t, "shared", testKey(t, 1))
	s2 := e.openBucket(t, "shared", testKey(t, 1))
	// Forty certificates for one address, imported by two "admins" at once:
	// every one must end up in the shared e-mail index.
	var certs []store.Input
	for i := 0; i < 40; i++ {
		tpl := storetest.CertTemplate(int64(5000+i), "shared@example.com")
		c := mkCert(t, fx, tpl)
		certs = append(certs, store.Input{Name: fmt.Sprint(i), Data: c.Raw})
	}
	var wg sync.WaitGroup
	for i, c := range certs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := s1
			if i%2 == 1 {
				s = s2
			}
			if rep, err := s.Import(ctx, []store.Input{c}, store.ImportOptions{}); err != nil || rep.Failed() {
				t.Errorf("import %d: %v %s", i, err, mustJSON(rep))
			}
		}()
	}
	wg.Wait()
	got, err := s1.CertsByEmail(ctx, "shared@example.com")
	if err != nil || len(got) != 40 {
		t.Fatalf("index has %d certificates, want 40 (%v)", len(got), err)
	}
}

func TestMasterKeyMissingAndRotation(t *testing.T) {
	fx := storetest.Fx(t)
	e := newEnv(t)
	ctx := context.Background()
	old, nk := testKey(t, 1), testKey(t, 2)
	s := e.openBucket(t, "rot", old)
	files := in(t, fx, "alice.pem", "alice.enc.key", "bob.p12")
	if fx.HavePGP {
		files = append(files, in(t, fx, "carol.sec.asc")...)
	}
	rep, err := s.Import(ctx, files, store.ImportOptions{Passphrases: []string{storetest.Passphrase}})
	if err != nil || rep.Failed() {
		t.Fatal(err, mustJSON(rep))
	}

	// Without the master key: public look-ups work, private ones fail typed.
	ro := e.openBucket(t, "rot", nil)
	if ro.HasMasterKey() {
		t.Fatal("HasMasterKey without key")
	}
	if c, err := ro.CertsByEmail(ctx, "alice@example.com"); err != nil || len(c) != 1 {
		t.Fatalf("public lookup without master key: %v", err)
	}
	if _, err := ro.SMIMEKeys(ctx); !errors.Is(err, store.ErrNoMasterKey) {
		t.Fatalf("SMIMEKeys without master key: %v", err)
	}
	if _, err := ro.PGPSecretKeys(ctx); !errors.Is(err, store.ErrNoMasterKey) {
		t.Fatalf("PGPSecretKeys without master key: %v", err)
	}
	if _, _, err := ro.Export(ctx, storetest.FP(fx.Alice), store.ExportOptions{PrivateKey: true}); !errors.Is(err, store.ErrNoMasterKey) {
		t.Fatalf("key export without master key: %v", err)
	}
	rep, err = ro.Import(ctx, in(t, fx, "bob.pem", "bob.key"), store.ImportOptions{})
	if err != nil || !rep.Failed() || rep.Entries[1].Kind != "key" {
		t.Fatalf("key import without master key: %v %s", err, mustJSON(rep))
	}

	n, err := s.RotateMasterKey(ctx, old, nk)
	want := 2
	if fx.HavePGP {
		want = 3
	}
	if err != nil || n != want {
		t.Fatalf("rotate: %d %v, want %d", n, err, want)
	}
	// Idempotent: nothing left to re-seal.
	if n, err := s.RotateMasterKey(ctx, old, nk); err != nil || n != 0 {
		t.Fatalf("second rotate: %d %v", n, err)
	}
	withOld := e.openBucket(t, "rot", old)
	if _, err := withOld.SMIMEKeys(ctx); !errors.Is(err, store.ErrWrongMasterKey) {
		t.Fatalf("old key after rotation: %v", err)
	}
	withNew := e.openBucket(t, "rot", nk)
	ks, err := withNew.SMIMEKeys(ctx)
	if err != nil || len(ks) != 2 {
		t.Fatalf("new key after rotation: %v %d", err, len(ks))
	}
	raw, _, err := withNew.Export(ctx, storetest.FP(fx.Alice), store.ExportOptions{PrivateKey: true})
	if err != nil || !bytes.Equal(bytes.TrimSpace(raw), bytes.TrimSpace(fx.Read(t, "alice.enc.key"))) {
		t.Fatalf("protected key not exported as uploaded: %v", err)
	}
	if fx.HavePGP {
		el, err := withNew.PGPSecretKeys(ctx)
		if err != nil || len(el) != 1 || el[0].PrivateKey == nil || el[0].PrivateKey.Encrypted {
			t.Fatalf("pgp secret keys after rotation: %v %d", err, len(el))
		}
	}
}

func TestAuditGroupsCapabilities(t *testing.T) {
	fx := storetest.Fx(t)
	e := newEnv(t)
	ctx := store.WithIdentity(context.Background(), "admin@example.com")
	s := e.open(t, testKey(t, 1))
	events := e.auditEvents(t)
	expect := func(action string) store.Event {
		t.Helper()
		select {
		case m := <-events:
			var ev store.Event
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				t.Fatal(err)
			}
			if m.Subject != "secmail.audit."+action || ev.Action != action || ev.Identity != "admin@example.com" || ev.When.IsZero() {
				t.Fatalf("event on %s: %+v, want %s", m.Subject, ev, action)
			}
			return ev
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s audit event", action)
		}
		return store.Event{}
	}
	if _, err := s.Import(ctx, in(t, fx, "alice.pem"), store.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if ev := expect("import"); ev.What["id"] != storetest.FP(fx.Alice) {
		t.Errorf("import event names %v", ev.What["id"])
	}
	tr, fa := true, false
	if err := s.SetGroupDefaults(ctx, "Sales & Support", store.GroupDefaults{Sign: &tr, Encrypt: &fa, Type: "smime"}); err != nil {
		t.Fatal(err)
	}
	expect("group.set")
	d, found, err := s.GroupDefaults(ctx, "sales & support")
	if err != nil || !found || *d.Sign != true || *d.Encrypt != false || d.Type != "S/MIME" {
		t.Fatalf("group defaults: %+v %v %v", d, found, err)
	}
	if err := s.SetCapabilities(ctx, "Alice@example.com", []string{"2.16.840.1.101.3.4.1.46"}); err != nil {
		t.Fatal(err)
	}
	expect("capabilities.set")
	if err := s.SetCapabilities(ctx, "alice@example.com", []string{"2.16.840.1.101.3.4.1.46"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, storetest.FP(fx.Alice))
	if err != nil || !slices.Equal(got.Cert.SMIMECapabilities, []string{"2.16.840.1.101.3.4.1.46"}) {
		t.Fatalf("capabilities on certificate: %v %+v", err, got)
	}
	if _, err := s.Delete(ctx, storetest.FP(fx.Alice)); err != nil {
		t.Fatal(err)
	}
	// The unchanged SetCapabilities above published nothing: next is delete.
	expect("delete")
}

func TestMasterKeyLoading(t *testing.T) {
	raw := bytes.Repeat([]byte{7}, 32)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"raw", raw},
		{"base64", []byte("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n")},
		{"hex", []byte("0707070707070707070707070707070707070707070707070707070707070707")},
	} {
		p := dir + "/" + tc.name
		if err := os.WriteFile(p, tc.data, 0o600); err != nil {
			t.Fatal(err)
		}
		mk, err := store.LoadMasterKey(p)
		if err != nil || mk.ID() != testKey(t, 7).ID() {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	t.Setenv(store.MasterKeyEnv, "")
	if mk, err := store.LoadMasterKey(""); mk != nil || err != nil {
		t.Errorf("no key configured: %v %v", mk, err)
	}
	t.Setenv(store.MasterKeyEnv, "short")
	if _, err := store.LoadMasterKey(""); err == nil {
		t.Errorf("short key accepted")
	}
}

func TestRenewedCertificateGetsStoredKey(t *testing.T) {
	fx := storetest.Fx(t)
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(t, testKey(t, 1))
	if rep, err := s.Import(ctx, in(t, fx, "chain.pem", "alice.key"), store.ImportOptions{}); err != nil || rep.Failed() {
		t.Fatal(err, mustJSON(rep))
	}
	// The CA re-issues Alice's certificate for the same key.
	tpl := storetest.CertTemplate(2001, "alice@example.com")
	der, err := x509.CreateCertificate(rand.Reader, tpl, fx.CA, fx.Alice.PublicKey, fx.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := s.Import(ctx, []store.Input{{Name: "renewed.der", Data: der}}, store.ImportOptions{}); err != nil || rep.Failed() {
		t.Fatal(err, mustJSON(rep))
	}
	ks, err := s.SMIMEKeys(ctx)
	if err != nil || len(ks) != 2 {
		t.Fatalf("keys: %v %d, want the renewed certificate to have the stored key", err, len(ks))
	}
	l, err := s.List(ctx, store.Filter{Email: "alice@example.com", HasPrivateKey: true})
	if err != nil || len(l.Certs) != 2 {
		t.Fatalf("list with key: %v %+v", err, l)
	}
}

// TestBulkPath covers the pipelined import: present records, index keys
// that already exist, records with delete markers, and a renewed
// certificate that inherits a stored key.
func TestBulkPath(t *testing.T) {
	fx := storetest.Fx(t)
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(t, testKey(t, 1))
	bulk, err := storetest.BulkCerts(fx, 100)
	if err != nil {
		t.Fatal(err)
	}
	pre := append(in(t, fx, "chain.pem", "alice.key", "bob.pem"), store.Input{Name: "bulk0", Data: bulk[0].Raw})
	if rep, err := s.Import(ctx, pre, store.ImportOptions{}); err != nil || rep.Failed() {
		t.Fatal(err, mustJSON(rep))
	}
	if _, err := s.Delete(ctx, storetest.FP(fx.Bob)); err != nil {
		t.Fatal(err)
	}
	renewed, err := x509.CreateCertificate(rand.Reader, storetest.CertTemplate(3001, "alice@example.com"), fx.CA, fx.Alice.PublicKey, fx.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	var inputs []store.Input
	for _, c := range bulk {
		inputs = append(inputs, store.Input{Name: "bulk", Data: c.Raw})
	}
	inputs = append(inputs, in(t, fx, "alice.pem", "bob.pem")...)
	inputs = append(inputs, store.Input{Name: "renewed", Data: renewed})
	rep, err := s.Import(ctx, inputs, store.ImportOptions{})
	if err != nil || rep.Failed() {
		t.Fatal(err, mustJSON(rep))
	}
	want := map[string]string{storetest.FP(bulk[0]): store.StatusPresent, storetest.FP(fx.Alice): store.StatusPresent, storetest.FP(fx.Bob): store.StatusAdded}
	for _, en := range rep.Entries {
		w := want[en.ID]
		if w == "" {
			w = store.StatusAdded
		}
		if en.Status != w {
			t.Errorf("%s (%s): %s, want %s", en.ID, en.Subject, en.Status, w)
		}
	}
	for i := range bulk {
		got, err := s.CertsByEmail(ctx, storetest.BulkEmail(i))
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: %v %d", storetest.BulkEmail(i), err, len(got))
		}
	}
	if got, err := s.CertsByIndex(ctx, store.IssuerSerialIndexKey(fx.Bob.RawIssuer, fx.Bob.SerialNumber)); err != nil || len(got) != 1 {
		t.Fatalf("bob after delete and bulk re-import: %v %d", err, len(got))
	}
	if got, err := s.CertsByEmail(ctx, "alice@example.com"); err != nil || len(got) != 2 {
		t.Fatalf("alice: %v %d", err, len(got))
	}
	if ks, err := s.SMIMEKeys(ctx); err != nil || len(ks) != 2 {
		t.Fatalf("renewed certificate did not get the stored key: %v %d", err, len(ks))
	}
}
