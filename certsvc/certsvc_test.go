package certsvc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nkeys"

	"github.com/secmail/secmail/certsvc"
	"github.com/secmail/secmail/store"
	"github.com/secmail/secmail/store/storetest"
)

const permissionsConf = "../deploy/nats/permissions.conf"

type harness struct {
	t        *testing.T
	fx       *storetest.Fixtures
	n        *storetest.NATS
	st       *store.Store
	host     string
	adminURL string
}

func start(t *testing.T) *harness {
	t.Helper()
	fx := storetest.Fx(t)
	n := storetest.StartNATS(t, permissionsConf)
	worker := n.Connect(nats.UserInfo("worker", "worker-test-only"))
	mk, err := store.NewMasterKey(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, worker, store.Config{MasterKey: mk})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := certsvc.Start(ctx, worker, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	host := strings.TrimPrefix(n.URL, "nats://")
	return &harness{t: t, fx: fx, n: n, st: st, host: host, adminURL: "nats://admin:admin-test-only@" + host}
}

// cli runs `worker certs ARGS` as the given NATS URL's user.
func (h *harness) cli(url string, args ...string) (code int, stdout, stderr string) {
	h.t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"certs", "--nats", url, "--timeout", "5s"}, args...)
	code = certsvc.RunCLI(context.Background(), full, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func (h *harness) admin(args ...string) (int, string, string) { return h.cli(h.adminURL, args...) }

func TestCLIAgainstService(t *testing.T) {
	h := start(t)
	fx := h.fx
	f := func(n string) string { return fx.Files[n] }
	aliceFP := storetest.FP(fx.Alice)

	// Audit events reach an administrator's subscription, with the identity.
	adminNC := h.n.Connect(nats.UserInfo("admin", "admin-test-only"))
	events := make(chan *nats.Msg, 32)
	if _, err := adminNC.ChanSubscribe("secmail.audit.>", events); err != nil {
		t.Fatal(err)
	}
	if err := adminNC.Flush(); err != nil {
		t.Fatal(err)
	}

	big := filepath.Join(t.TempDir(), "big.pem")
	if err := os.WriteFile(big, bytes.Repeat(fx.Read(t, "alice.pem"), 2000), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.bin")
	if err := os.WriteFile(garbage, []byte("\x00\x01 not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"import chain and protected key", []string{"import", "--identity", "ops@example.com", f("chain.pem"), f("alice.enc.key"), "--passphrase", storetest.Passphrase}, 0, "added"},
		{"re-import is a no-op", []string{"import", f("chain.pem")}, 0, "present"},
		{"PKCS#12 wrong password", []string{"import", f("bob.p12"), "--passphrase", "nope"}, 1, "wrong-passphrase"},
		{"key without certificate", []string{"import", f("other.key")}, 1, "no-certificate"},
		{"PKCS#12", []string{"import", "--passphrase", storetest.Passphrase, f("bob.p12")}, 0, "added"},
		{"list table", []string{"list", "--has-key"}, 0, "CN=Alice"},
		{"show by prefix", []string{"show", aliceFP[:12]}, 0, "alice@example.com"},
		{"crl import", []string{"crl", "import", f("ca.crl")}, 0, "added"},
		{"crl of a certificate", []string{"crl", f("alice.pem")}, 1, "expected only CRLs"},
		{"group set", []string{"group", "set", "Sales", "--sign", "true", "--encrypt=false", "--type", "PGP"}, 0, "sign=true encrypt=false type=PGP"},
		{"group get", []string{"--json", "group", "get", "sales"}, 0, `"found":true`},
		{"unknown group", []string{"group", "get", "nope"}, 0, "no defaults"},
		{"unknown command", []string{"frobnicate"}, 2, ""},
		{"larger than max_payload", []string{"import", big}, 1, "max_payload"},
		{"garbage", []string{"import", garbage}, 1, "malformed"},
		{"show missing", []string{"show", "deadbeefdeadbeef"}, 1, "not found"},
	}
	for _, s := range steps {
		code, out, errOut := h.admin(s.args...)
		if code != s.code || !strings.Contains(out+errOut, s.contains) {
			t.Errorf("%s: exit %d (want %d)\nstdout: %s\nstderr: %s", s.name, code, s.code, out, errOut)
		}
	}

	// list --json: one object per certificate with the documented fields.
	code, out, errOut := h.admin("list", "--json", "--kind", "smime")
	if code != 0 {
		t.Fatalf("list --json: %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("list --json printed %d lines, want 3 (alice, bob, CA):\n%s", len(lines), out)
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		for _, k := range []string{"fingerprint_sha256", "subject", "issuer", "emails", "not_before", "not_after", "is_ca", "has_private_key"} {
			if _, ok := m[k]; !ok {
				t.Errorf("list --json object lacks %s: %s", k, l)
			}
		}
	}

	// Export: DER certificate and the private key exactly as uploaded.
	dir := t.TempDir()
	if code, _, e := h.admin("export", aliceFP, "--format", "der", "-o", filepath.Join(dir, "a.der")); code != 0 {
		t.Fatal(e)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.der")); !bytes.Equal(b, fx.Alice.Raw) {
		t.Error("exported DER differs")
	}
	code, out, errOut = h.admin("export", "--key", aliceFP)
	if code != 0 || strings.TrimSpace(out) != strings.TrimSpace(string(fx.Read(t, "alice.enc.key"))) {
		t.Errorf("exported key is not the protected upload: %d %s", code, errOut)
	}

	ev := <-events
	var e store.Event
	if err := json.Unmarshal(ev.Data, &e); err != nil || e.Identity != "ops@example.com" || ev.Subject != "secmail.audit.import" {
		t.Errorf("audit event %s %+v %v", ev.Subject, e, err)
	}

	// Delete, then it is gone.
	if code, out, e := h.admin("delete", aliceFP); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %d %s %s", code, out, e)
	}
	if code, _, _ := h.admin("show", aliceFP); code != 1 {
		t.Errorf("show after delete: exit %d", code)
	}

	// Discovery and stats through the micro protocol.
	m, err := adminNC.Request("$SRV.INFO."+certsvc.ServiceName, nil, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(m.Data, &info); err != nil || len(info.Endpoints) != 9 {
		t.Fatalf("service info: %v %+v", err, info)
	}
	m, err = adminNC.Request("$SRV.STATS."+certsvc.ServiceName, nil, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var stats micro.Stats
	if err := json.Unmarshal(m.Data, &stats); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, ep := range stats.Endpoints {
		total += ep.NumRequests
	}
	if total < 15 {
		t.Errorf("stats count %d requests", total)
	}
}

func TestPermissions(t *testing.T) {
	h := start(t)
	helpdesk := "nats://helpdesk:helpdesk-test-only@" + h.host
	// The helpdesk may not call the management service...
	code, _, errOut := h.cli(helpdesk, "list")
	if code != 1 || !strings.Contains(strings.ToLower(errOut), "permission") {
		t.Errorf("helpdesk list: exit %d, stderr %s", code, errOut)
	}
	code, _, errOut = h.cli(helpdesk, "import", h.fx.Files["alice.pem"])
	if code != 1 || !strings.Contains(strings.ToLower(errOut), "permission") {
		t.Errorf("helpdesk import: exit %d, stderr %s", code, errOut)
	}
	// ...nor read the key store bucket directly.
	nc := h.n.Connect(nats.UserInfo("helpdesk", "helpdesk-test-only"))
	js, err := nc.JetStream(nats.MaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.KeyValue(store.DefaultBucket); err == nil {
		t.Error("helpdesk can open the key store bucket")
	}
	// The admin can; a wrong password cannot connect at all.
	if code, out, errOut := h.admin("list"); code != 0 || !strings.Contains(out, "FINGERPRINT") {
		t.Errorf("admin list: %d %s %s", code, out, errOut)
	}
	if code, _, _ := h.cli("nats://admin:wrong@"+h.host, "list"); code != 1 {
		t.Errorf("wrong password: exit %d", code)
	}
}

func TestRotateMasterKeyCommand(t *testing.T) {
	h := start(t)
	if code, _, e := h.admin("import", "--passphrase", storetest.Passphrase, h.fx.Files["bob.p12"]); code != 0 {
		t.Fatal(e)
	}
	dir := t.TempDir()
	oldF, newF := filepath.Join(dir, "old"), filepath.Join(dir, "new")
	if err := os.WriteFile(oldF, bytes.Repeat([]byte{3}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(newF, []byte("BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ="), 0o600); err != nil {
		t.Fatal(err)
	}
	// The admin lacks JetStream access; rotation runs as the worker.
	if code, _, _ := h.admin("rotate-master-key", "--old-key-file", oldF, "--new-key-file", newF); code != 1 {
		t.Errorf("admin could rotate directly: exit %d", code)
	}
	code, out, errOut := h.cli("nats://worker:worker-test-only@"+h.host, "rotate-master-key", "--old-key-file", oldF, "--new-key-file", newF)
	if code != 0 || !strings.Contains(out, "re-sealed 1 records") {
		t.Fatalf("rotate: %d %s %s", code, out, errOut)
	}
	nk, _ := store.LoadMasterKey(newF)
	st, err := store.Open(context.Background(), h.n.Connect(nats.UserInfo("worker", "worker-test-only")), store.Config{MasterKey: nk})
	if err != nil {
		t.Fatal(err)
	}
	ks, err := st.SMIMEKeys(context.Background())
	if err != nil || len(ks) != 1 {
		t.Fatalf("keys under the new master key: %v %d", err, len(ks))
	}
}

func TestListIsPaged(t *testing.T) {
	h := start(t)
	const n = 2*certsvc.ListPage + 17
	certs, err := storetest.BulkCerts(h.fx, n)
	if err != nil {
		t.Fatal(err)
	}
	in := make([]store.Input, n)
	for i, c := range certs {
		in[i] = store.Input{Name: "bulk", Data: c.Raw}
	}
	if rep, err := h.st.Import(context.Background(), in, store.ImportOptions{}); err != nil || rep.Failed() {
		t.Fatal(err)
	}
	code, out, errOut := h.admin("list", "--json")
	if code != 0 {
		t.Fatal(errOut)
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var ci store.CertInfo
		if err := json.Unmarshal([]byte(l), &ci); err != nil {
			t.Fatal(err)
		}
		seen[ci.Fingerprint] = true
	}
	if len(seen) != n {
		t.Fatalf("list returned %d distinct certificates, want %d", len(seen), n)
	}
}

func TestNkeyAuthentication(t *testing.T) {
	fx := storetest.Fx(t)
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	dir := t.TempDir()
	seedFile := filepath.Join(dir, "admin.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nats.conf")
	cfg := fmt.Sprintf(`authorization {
  users = [
    {user: worker, password: w}
    {nkey: %s, permissions: {publish: ["secmail.certs.>"], subscribe: ["_INBOX.>"]}}
  ]
}
`, pub)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	n := storetest.StartNATS(t, conf)
	worker := n.Connect(nats.UserInfo("worker", "w"))
	st, err := store.Open(context.Background(), worker, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := certsvc.Start(context.Background(), worker, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	var out, errb bytes.Buffer
	code := certsvc.RunCLI(context.Background(), []string{"import", "--nats", n.URL, "--nkey", seedFile, fx.Files["ca.pem"]}, nil, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "added") {
		t.Fatalf("import with nkey: %d %s %s", code, out.String(), errb.String())
	}
	// Without credentials the server refuses the connection.
	code = certsvc.RunCLI(context.Background(), []string{"list", "--nats", n.URL}, nil, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "uthorization") {
		t.Fatalf("no credentials: %d %s", code, errb.String())
	}
}

// TestAttachCommand: `worker certs attach` records that a certificate's
// private key is in a PKCS#11 token, says so in list, show and --json, and
// refuses what would lose or fake a key.
func TestAttachCommand(t *testing.T) {
	h := start(t)
	f := func(n string) string { return h.fx.Files[n] }
	aliceFP, bobFP := storetest.FP(h.fx.Alice), storetest.FP(h.fx.Bob)
	if code, _, e := h.admin("import", f("chain.pem")); code != 0 {
		t.Fatal(e)
	}
	if code, _, e := h.admin("import", "--passphrase", storetest.Passphrase, f("bob.p12")); code != 0 {
		t.Fatal(e)
	}
	attach := func(key, id string) []string { return []string{"attach", "--token", "hsm", "--key", key, id} }
	steps := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"attach by prefix", attach("alice-2026", aliceFP[:12]), 0, "attached " + aliceFP + " CN=Alice,emailAddress=alice@example.com to key \"alice-2026\" of token \"hsm\""},
		{"again", attach("alice-2026", aliceFP), 0, "already attached " + aliceFP},
		{"another key, by CKA_ID", attach("0a1b2c", aliceFP), 0, "re-attached " + aliceFP},
		{"JSON", append([]string{"--json"}, attach("alice-2026", aliceFP)...), 0, `"token":{"token":"hsm","key":"alice-2026"},"status":"updated"}`},
		{"over a key sealed in the store", attach("bob", bobFP), 1, "already has a private key sealed in the store: " + bobFP + " (CN=Bob,emailAddress=Bob@Example.com) (409)"},
		{"unknown certificate", attach("k", "deadbeefdeadbeef"), 1, "not found: deadbeefdeadbeef (404)"},
		{"a label with spaces", attach(" k", aliceFP), 1, "surrounding spaces (400)"},
		{"without --key", []string{"attach", "--token", "hsm", aliceFP}, 2, "needs --token LABEL and --key"},
		{"two certificates", append(attach("k", aliceFP), bobFP), 2, "one certificate ID"},
		{"show", []string{"show", aliceFP}, 0, `in PKCS#11 key "alice-2026" of token "hsm"`},
		{"list --json", []string{"list", "--json", "--has-key"}, 0, `"has_private_key":true,"key_location":"token","token":{"token":"hsm","key":"alice-2026"}`},
		{"the key cannot be exported", []string{"export", "--key", aliceFP}, 1, "never leaves the token (409)"},
	}
	for _, s := range steps {
		code, out, errOut := h.admin(s.args...)
		if code != s.code || !strings.Contains(out+errOut, s.contains) {
			t.Errorf("%s: exit %d (want %d, %q)\nstdout: %s\nstderr: %s", s.name, code, s.code, s.contains, out, errOut)
		}
	}
	code, out, errOut := h.admin("list", "--has-key")
	if code != 0 || !regexp.MustCompile(`(?m)^`+aliceFP[:16]+`.*token$`).MatchString(out) || !regexp.MustCompile(`(?m)^`+bobFP[:16]+`.*yes$`).MatchString(out) {
		t.Errorf("list table does not tell token and store keys apart: %d\n%s%s", code, out, errOut)
	}

	// Deleting the certificate removes the attachment with it.
	if code, _, e := h.admin("delete", aliceFP); code != 0 {
		t.Fatal(e)
	}
	refs, err := h.st.SMIMEKeyRefs(context.Background())
	if err != nil || len(refs) != 1 || !refs[0].Cert.Equal(h.fx.Bob) {
		t.Fatalf("keys after deleting the token-key certificate: %v %+v", err, refs)
	}
}
