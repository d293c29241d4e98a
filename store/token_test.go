package store_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/secmail/secmail/store"
	"github.com/secmail/secmail/store/storetest"
)

// TestAttachTokenKey: a certificate whose private key lives only in a
// PKCS#11 token is recorded without key bytes and without the master key,
// listed as a token key, handed out as a reference, inherited by a renewal,
// and removed with the certificate; sealed keys beside it keep working.
func TestAttachTokenKey(t *testing.T) {
	fx := storetest.Fx(t)
	e := newEnv(t)
	ctx := store.WithIdentity(context.Background(), "hsm-admin@example.com")
	mk := testKey(t, 1)
	s := e.openBucket(t, "tok", mk)
	if rep, err := s.Import(ctx, in(t, fx, "chain.pem", "bob.pem", "bob.key"), store.ImportOptions{}); err != nil || rep.Failed() {
		t.Fatal(err, mustJSON(rep))
	}
	events := e.auditEvents(t)
	nextEvent := func() (string, store.Event) {
		t.Helper()
		select {
		case m := <-events:
			var ev store.Event
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				t.Fatal(err)
			}
			return m.Subject, ev
		case <-time.After(5 * time.Second):
			t.Fatal("no audit event")
		}
		return "", store.Event{}
	}

	// Attaching needs no master key: an administrator's store without one.
	admin := e.openBucket(t, "tok", nil)
	aliceFP, bobFP := storetest.FP(fx.Alice), storetest.FP(fx.Bob)
	ref := store.TokenRef{Token: "hsm", Key: "alice-2026"}
	steps := []struct {
		name   string
		id     string
		ref    store.TokenRef
		status string
		err    error
	}{
		{"attach by prefix", aliceFP[:12], ref, store.StatusAdded, nil},
		{"again is a no-op", aliceFP, ref, store.StatusPresent, nil},
		{"another token key", aliceFP, store.TokenRef{Token: "hsm", Key: "0a1b2c"}, store.StatusUpdated, nil},
		{"back to the first", aliceFP, ref, store.StatusUpdated, nil},
		{"over a sealed key", bobFP, ref, "", store.ErrKeyInStore},
		{"unknown certificate", "deadbeefdeadbeef", ref, "", store.ErrNotFound},
		{"empty token", aliceFP, store.TokenRef{Key: "k"}, "", store.ErrInvalidTokenRef},
		{"empty key", aliceFP, store.TokenRef{Token: "hsm"}, "", store.ErrInvalidTokenRef},
		{"spaces", aliceFP, store.TokenRef{Token: " hsm", Key: "k"}, "", store.ErrInvalidTokenRef},
		{"control character", aliceFP, store.TokenRef{Token: "hsm", Key: "k\n"}, "", store.ErrInvalidTokenRef},
		{"too long", aliceFP, store.TokenRef{Token: "hsm", Key: strings.Repeat("k", 257)}, "", store.ErrInvalidTokenRef},
	}
	for _, st := range steps {
		a, err := admin.AttachTokenKey(ctx, st.id, st.ref)
		if st.err != nil {
			if !errors.Is(err, st.err) {
				t.Errorf("%s: %v, want %v", st.name, err, st.err)
			}
			continue
		}
		if err != nil || a.Status != st.status || a.Token != st.ref || a.Certificate.Fingerprint != aliceFP ||
			a.Certificate.KeyLocation != store.KeyInToken || !a.Certificate.HasPrivateKey {
			t.Fatalf("%s: %v %+v", st.name, err, a)
		}
		if st.status == store.StatusPresent {
			continue // no change, no event
		}
		subj, ev := nextEvent()
		if subj != "secmail.audit.key.attach" || ev.What["id"] != aliceFP || ev.What["token"] != st.ref.Token ||
			ev.What["key"] != st.ref.Key || ev.What["status"] != st.status || ev.Identity != "hsm-admin@example.com" {
			t.Errorf("%s: audit event %s %+v", st.name, subj, ev)
		}
	}

	// Listing and showing say where each key is, in JSON too.
	got, err := s.Get(ctx, aliceFP)
	if err != nil || !got.Cert.HasPrivateKey || got.Cert.KeyLocation != store.KeyInToken || got.Cert.Token == nil || *got.Cert.Token != ref {
		t.Fatalf("get: %v %+v", err, got)
	}
	l, err := s.List(ctx, store.Filter{HasPrivateKey: true})
	if err != nil || len(l.Certs) != 2 {
		t.Fatalf("list --has-key: %v %+v", err, l)
	}
	for _, ci := range l.Certs {
		b, _ := json.Marshal(ci)
		want := map[string]string{aliceFP: `"key_location":"token","token":{"token":"hsm","key":"alice-2026"}`, bobFP: `"key_location":"store"`}[ci.Fingerprint]
		if want == "" || !strings.Contains(string(b), `"has_private_key":true,`+want) {
			t.Errorf("listed %s", b)
		}
	}
	if b, _ := json.Marshal(mustGet(t, s, storetest.FP(fx.CA)).Cert.CertInfo); strings.Contains(string(b), "key_location") || strings.Contains(string(b), `"token"`) {
		t.Errorf("a certificate without a key names a key location: %s", b)
	}

	// The worker's view: the sealed key unsealed, the token key as a
	// reference with its chain; SMIMEKeys keeps to sealed keys.
	checkRefs := func(st *store.Store, wantSealed string) {
		t.Helper()
		refs, err := st.SMIMEKeyRefs(ctx)
		if err != nil || len(refs) != 2 {
			t.Fatalf("refs: %v %d", err, len(refs))
		}
		for _, r := range refs {
			switch storetest.FP(r.Cert) {
			case aliceFP:
				if r.Token == nil || *r.Token != ref || r.Key != nil || r.NeedsMasterKey || len(r.Chain) != 1 || !r.Chain[0].Equal(fx.CA) {
					t.Errorf("token key ref %+v", r)
				}
			case bobFP:
				switch wantSealed {
				case "unsealed":
					if r.Key == nil || r.Token != nil || r.NeedsMasterKey {
						t.Errorf("sealed key %+v", r)
					}
				case "needs master key":
					if r.Key != nil || r.Token != nil || !r.NeedsMasterKey {
						t.Errorf("sealed key without master key %+v", r)
					}
				}
			default:
				t.Errorf("unexpected key for %s", r.Cert.Subject)
			}
		}
	}
	checkRefs(s, "unsealed")
	checkRefs(admin, "needs master key")
	if ks, err := s.SMIMEKeys(ctx); err != nil || len(ks) != 1 || !ks[0].Cert.Equal(fx.Bob) || ks[0].Key == nil {
		t.Fatalf("SMIMEKeys: %v %+v", err, ks)
	}
	if _, err := admin.SMIMEKeys(ctx); !errors.Is(err, store.ErrNoMasterKey) {
		t.Fatalf("SMIMEKeys with a sealed key and no master key: %v", err)
	}

	// The token key never leaves the token: no export, and an uploaded
	// copy of the key is refused rather than reported as present.
	if _, _, err := s.Export(ctx, aliceFP, store.ExportOptions{PrivateKey: true}); !errors.Is(err, store.ErrKeyInToken) {
		t.Fatalf("export of a token key: %v", err)
	}
	rep, err := s.Import(ctx, in(t, fx, "alice.key"), store.ImportOptions{})
	if err != nil || rep.Applied || len(rep.Entries) != 1 || !strings.Contains(rep.Entries[0].Error, "PKCS#11 token") {
		t.Fatalf("upload of a token key: %v %s", err, mustJSON(rep))
	}

	// A renewal for the same public key inherits the token key, without
	// the master key.
	renewed, err := x509.CreateCertificate(rand.Reader, storetest.CertTemplate(4001, "alice@example.com"), fx.CA, fx.Alice.PublicKey, fx.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := admin.Import(ctx, []store.Input{{Name: "renewed.der", Data: renewed}}, store.ImportOptions{}); err != nil || rep.Failed() {
		t.Fatal(err, mustJSON(rep))
	}
	renewedCert, _ := x509.ParseCertificate(renewed)
	if g := mustGet(t, s, storetest.FP(renewedCert)); g.Cert.KeyLocation != store.KeyInToken || *g.Cert.Token != ref {
		t.Errorf("renewal did not inherit the token key: %+v", g.Cert.CertInfo)
	}

	// Rotation re-seals the sealed key and leaves the token records alone.
	if n, err := s.RotateMasterKey(ctx, mk, testKey(t, 2)); err != nil || n != 1 {
		t.Fatalf("rotate: %d %v", n, err)
	}
	for len(events) > 0 {
		<-events
	}

	// Deleting the certificate removes its token reference.
	if _, err := s.Delete(ctx, aliceFP); err != nil {
		t.Fatal(err)
	}
	for {
		subj, ev := nextEvent()
		if subj != "secmail.audit.delete" {
			continue
		}
		if tok, _ := ev.What["token"].(map[string]any); tok["key"] != ref.Key {
			t.Errorf("delete event does not name the token key: %+v", ev)
		}
		break
	}
	refs, err := s.SMIMEKeyRefs(ctx)
	if err != nil || len(refs) != 2 {
		t.Fatalf("refs after delete: %v %d (want bob and the renewal)", err, len(refs))
	}
	for _, r := range refs {
		if r.Cert.Equal(fx.Alice) {
			t.Error("deleted certificate still has a key")
		}
	}
	if _, err := s.AttachTokenKey(ctx, aliceFP, ref); !store.IsNotFound(err) {
		t.Errorf("attach to a deleted certificate: %v", err)
	}
}

// TestCertRecordsWithoutKeyLocation: records written before token keys
// (has_private_key without key_location) read as keys in the store.
func TestCertRecordsWithoutKeyLocation(t *testing.T) {
	fx := storetest.Fx(t)
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(t, testKey(t, 1))
	if rep, err := s.Import(ctx, in(t, fx, "bob.pem", "bob.key"), store.ImportOptions{}); err != nil || rep.Failed() {
		t.Fatal(err, mustJSON(rep))
	}
	key := "cert." + storetest.FP(fx.Bob)
	kve, err := s.KV().Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(kve.Value(), &m); err != nil {
		t.Fatal(err)
	}
	if m["key_location"] != store.KeyInStore {
		t.Fatalf("new record without key_location: %v", m)
	}
	delete(m, "key_location")
	old, _ := json.Marshal(m)
	if _, err := s.KV().Put(ctx, key, old); err != nil {
		t.Fatal(err)
	}
	if g := mustGet(t, s, storetest.FP(fx.Bob)); g.Cert.KeyLocation != store.KeyInStore {
		t.Errorf("get: %+v", g.Cert.CertInfo)
	}
	l, err := s.List(ctx, store.Filter{})
	if err != nil || len(l.Certs) != 1 || l.Certs[0].KeyLocation != store.KeyInStore {
		t.Fatalf("list: %v %+v", err, l)
	}
	if ks, err := s.SMIMEKeys(ctx); err != nil || len(ks) != 1 {
		t.Fatalf("sealed key of an old record: %v %d", err, len(ks))
	}
}

func mustGet(t *testing.T, s *store.Store, id string) *store.Entry {
	t.Helper()
	e, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
