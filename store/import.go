package store

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/secmail/secmail/keyring"
	"github.com/secmail/secmail/reason"
)

// Input is one uploaded file. Bundle may be given pre-parsed; otherwise
// Data is parsed with keyring.Parse.
type Input struct {
	Name   string
	Data   []byte
	Bundle *keyring.Bundle
}

// ImportOptions control Import.
type ImportOptions struct {
	// Passphrases are tried on protected keys.
	Passphrases []string
	// Partial applies the valid entries even when others fail. By default
	// an import with any invalid entry writes nothing.
	Partial bool
	// MaxSize limits each file (keyring.DefaultMaxSize when 0).
	MaxSize int64
}

// Import entry statuses.
const (
	StatusAdded   = "added"
	StatusPresent = "present" // idempotent no-op
	StatusUpdated = "updated" // e.g. a public OpenPGP key gained its secret part
	StatusError   = "error"
	StatusSkipped = "skipped" // valid, but not written because another entry failed
)

// ReportEntry is the outcome for one certificate, key, OpenPGP key, CRL or
// unparseable file.
type ReportEntry struct {
	Source  string      `json:"source"`
	Kind    string      `json:"kind"` // cert, ca, key, pgp, pgp-secret, crl, file
	ID      string      `json:"id,omitempty"`
	Subject string      `json:"subject,omitempty"`
	Status  string      `json:"status"`
	Code    reason.Code `json:"code,omitempty"`
	Warning string      `json:"warning,omitempty"`
	Error   string      `json:"error,omitempty"`
}

// Report is the outcome of Import.
type Report struct {
	Entries []ReportEntry `json:"entries"`
	// Applied is false when nothing was written because an entry was
	// invalid (and Partial was not set).
	Applied bool `json:"applied"`
}

// Counts returns how many entries have each status.
func (r *Report) Counts() map[string]int {
	m := map[string]int{}
	for _, e := range r.Entries {
		m[e.Status]++
	}
	return m
}

// Failed reports whether any entry failed.
func (r *Report) Failed() bool { return r.Counts()[StatusError] > 0 }

// plan is one entry to write.
type plan struct {
	entry *ReportEntry
	apply func(ctx context.Context) (status, warning string, err error)
	// cert and rec are set for certificates (the bulk path uses them).
	cert *x509.Certificate
	rec  *CertRecord
}

// expiryWarnWithin is when imports and the expiry job warn.
const expiryWarnWithin = 30 * 24 * time.Hour

// importParallelism bounds concurrent KV writes of one bulk import.
const importParallelism = 32

// Import validates and stores everything in the inputs: certificates,
// private keys (which must match a stored or co-imported certificate),
// OpenPGP keys and CRLs. Re-importing is a no-op reported as "present".
// The returned error is for infrastructure failures only; the report then
// still says exactly which entries went in.
func (s *Store) Import(ctx context.Context, in []Input, opts ImportOptions) (*Report, error) {
	rep := &Report{}
	var bundles []*keyring.Bundle
	var names []string
	for _, f := range in {
		b := f.Bundle
		if b == nil {
			var err error
			b, err = keyring.Parse(f.Name, f.Data, keyring.Options{Passphrases: opts.Passphrases, RequireUnlocked: true, MaxSize: opts.MaxSize})
			if err != nil {
				rep.Entries = append(rep.Entries, errEntry(ReportEntry{Source: f.Name, Kind: "file"}, err))
				continue
			}
		}
		bundles = append(bundles, b)
		names = append(names, f.Name)
	}
	keyring.Match(bundles...)
	now := s.cfg.Now()

	var plans []plan
	seen := map[string]bool{}
	for bi, b := range bundles {
		src := names[bi]
		for _, c := range b.Certs {
			fp := Fingerprint(c)
			if seen["c"+fp] {
				continue
			}
			seen["c"+fp] = true
			plans = append(plans, s.planCert(src, c, now))
		}
	}
	for bi, b := range bundles {
		src := names[bi]
		for _, k := range b.Keys {
			plans = append(plans, s.planKey(ctx, src, k, bundles))
		}
		for _, k := range b.PGP {
			plans = append(plans, s.planPGP(src, k, now))
		}
		for _, crl := range b.CRLs {
			c := crl
			e := &ReportEntry{Source: src, Kind: "crl", ID: sha256hex(c.Raw), Subject: c.Issuer.String()}
			plans = append(plans, plan{entry: e, apply: func(ctx context.Context) (string, string, error) { return s.putCRL(ctx, c) }})
		}
	}

	invalid := len(rep.Entries) > 0
	for _, p := range plans {
		if p.entry.Status == StatusError {
			invalid = true
		}
	}
	if invalid && !opts.Partial {
		for _, p := range plans {
			if p.entry.Status != StatusError {
				p.entry.Status = StatusSkipped
			}
			rep.Entries = append(rep.Entries, *p.entry)
		}
		return rep, nil
	}
	rep.Applied = true

	// Certificates first (keys refer to them), in parallel: a bulk import
	// of thousands is bound by round trips, and index CAS keeps parallel
	// writers correct.
	var certs, rest []plan
	for _, p := range plans {
		if p.entry.Status == StatusError {
			continue
		}
		if p.entry.Kind == "cert" || p.entry.Kind == "ca" {
			certs = append(certs, p)
		} else {
			rest = append(rest, p)
		}
	}
	var firstErr error
	var mu sync.Mutex
	run := func(ps []plan, par int) {
		sem := make(chan struct{}, par)
		var wg sync.WaitGroup
		for _, p := range ps {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				status, warn, err := p.apply(ctx)
				if err != nil {
					*p.entry = errEntry(*p.entry, err)
					mu.Lock()
					if firstErr == nil && reason.CodeOf(err) == "" {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				p.entry.Status, p.entry.Warning = status, warn
			}()
		}
		wg.Wait()
	}
	if len(certs) >= bulkThreshold {
		if err := s.putCertsBulk(ctx, certs); err != nil {
			firstErr = err
		}
	} else {
		run(certs, importParallelism)
	}
	run(rest, 1)
	for _, p := range plans {
		rep.Entries = append(rep.Entries, *p.entry)
	}
	for _, e := range rep.Entries {
		if e.Status == StatusAdded || e.Status == StatusUpdated {
			s.audit(ctx, "import", map[string]any{"kind": e.Kind, "id": e.ID, "subject": e.Subject, "source": e.Source, "status": e.Status})
		}
	}
	return rep, firstErr
}

func errEntry(e ReportEntry, err error) ReportEntry {
	e.Status = StatusError
	e.Code = reason.CodeOf(err)
	e.Error = err.Error()
	return e
}

func (s *Store) planCert(src string, c *x509.Certificate, now time.Time) plan {
	rec := newCertRecord(c, now)
	e := &ReportEntry{Source: src, Kind: rec.Kind, ID: rec.Fingerprint, Subject: rec.Subject}
	return plan{entry: e, cert: c, rec: rec, apply: func(ctx context.Context) (string, string, error) {
		status, err := s.putCert(ctx, rec, c)
		if err != nil {
			return "", "", err
		}
		return status, certWarning(rec, now), nil
	}}
}

func certWarning(rec *CertRecord, now time.Time) string {
	switch {
	case now.After(rec.NotAfter):
		return fmt.Sprintf("certificate expired on %s", rec.NotAfter.Format(time.DateOnly))
	case now.Before(rec.NotBefore):
		return fmt.Sprintf("certificate is not valid before %s", rec.NotBefore.Format(time.DateOnly))
	case rec.NotAfter.Sub(now) < expiryWarnWithin:
		return fmt.Sprintf("certificate expires on %s", rec.NotAfter.Format(time.DateOnly))
	}
	return ""
}

// certIndexKeys lists the index keys naming a certificate.
func certIndexKeys(rec *CertRecord, c *x509.Certificate) []string {
	idx := []string{IssuerSerialIndexKey(c.RawIssuer, c.SerialNumber), spkiIndexKey(c.RawSubjectPublicKeyInfo)}
	for _, em := range rec.Emails {
		idx = append(idx, EmailIndexKey(em))
	}
	if len(c.SubjectKeyId) > 0 {
		idx = append(idx, SKIIndexKey(c.SubjectKeyId))
	}
	if rec.IsCA {
		idx = append(idx, idxCA)
	}
	return idx
}

// putCert writes the record (if new) and its index entries. Index entries
// are (re)added for a present record too, so a re-import repairs an import
// that was interrupted between the record and its indexes.
func (s *Store) putCert(ctx context.Context, rec *CertRecord, c *x509.Certificate) (string, error) {
	status := StatusAdded
	if _, err := s.kv.Create(ctx, certKey(rec.Fingerprint), mustJSON(rec)); errors.Is(err, jetstream.ErrKeyExists) {
		status = StatusPresent
	} else if err != nil {
		return "", fmt.Errorf("store: write %s: %w", certKey(rec.Fingerprint), err)
	}
	for _, k := range certIndexKeys(rec, c) {
		if err := s.indexAdd(ctx, k, rec.Fingerprint); err != nil {
			return "", err
		}
	}
	if status == StatusAdded {
		if err := s.linkExistingKey(ctx, rec.Fingerprint, c); err != nil {
			return "", err
		}
	}
	return status, nil
}

// linkExistingKey gives a new certificate the private key already stored
// for another certificate with the same public key (a renewal that kept
// its key), so it is usable at once: a sealed key, or the same token key.
// Without the master key a sealed key's link is left for a later
// re-import.
func (s *Store) linkExistingKey(ctx context.Context, fp string, c *x509.Certificate) error {
	fps, err := s.IndexList(ctx, spkiIndexKey(c.RawSubjectPublicKeyInfo))
	if err != nil || len(fps) < 2 {
		return err
	}
	for _, other := range fps {
		if other == fp {
			continue
		}
		var kr keyRecord
		_, found, err := s.getJSON(ctx, keyKey(other), &kr)
		if err != nil {
			return err
		}
		switch {
		case !found:
			continue
		case kr.Token != nil:
			return s.putTokenRef(ctx, fp, *kr.Token)
		case !s.HasMasterKey():
			continue
		}
		p, err := s.unseal(keyKey(other), kr.KID, kr.Sealed)
		if err != nil {
			return err
		}
		_, err = s.putKey(ctx, fp, keyring.PrivateKey{Raw: p.Raw, Format: kr.Format, Passphrase: p.Passphrase})
		return err
	}
	return nil
}

// putTokenRef writes a token key record for a certificate that has no key
// record yet (a renewal inheriting its predecessor's token key).
func (s *Store) putTokenRef(ctx context.Context, fp string, ref TokenRef) error {
	rec := keyRecord{Cert: fp, Token: &ref, ImportedAt: s.cfg.Now().UTC()}
	if _, err := s.kv.Create(ctx, keyKey(fp), mustJSON(rec)); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("store: write %s: %w", keyKey(fp), err)
	}
	if err := s.setKey(ctx, fp, KeyInToken, &ref); err != nil {
		return err
	}
	return s.indexAdd(ctx, idxKeys, fp)
}

func (s *Store) planKey(ctx context.Context, src string, k keyring.PrivateKey, bundles []*keyring.Bundle) plan {
	e := &ReportEntry{Source: src, Kind: "key"}
	fail := func(err error) plan { *e = errEntry(*e, err); return plan{entry: e} }
	if k.Key == nil || k.Locked {
		return fail(reason.New(reason.WrongPassphrase, "%s: the private key is passphrase-protected and no given passphrase opens it", src))
	}
	if !s.HasMasterKey() {
		return fail(fmt.Errorf("%s: %w", src, ErrNoMasterKey))
	}
	// Certificates this key belongs to: co-imported, and already stored
	// (a renewed certificate may reuse the key).
	matches := map[string]*x509.Certificate{}
	if k.Cert != nil {
		matches[Fingerprint(k.Cert)] = k.Cert
	}
	spki, err := x509.MarshalPKIXPublicKey(k.Key.Public())
	if err != nil {
		return fail(reason.Wrap(reason.UnsupportedAlgorithm, err, src))
	}
	for _, b := range bundles {
		for _, c := range b.Certs {
			if string(c.RawSubjectPublicKeyInfo) == string(spki) {
				matches[Fingerprint(c)] = c
			}
		}
	}
	stored, err := s.CertsByIndex(ctx, spkiIndexKey(spki))
	if err != nil {
		return fail(err)
	}
	// Certificates whose key is attached in a token keep it: storing the
	// upload there too would report "present" for a key that is not.
	inToken := 0
	for _, r := range stored {
		if c, err := r.Certificate(); err == nil {
			matches[r.Fingerprint] = c
		}
	}
	for _, r := range stored {
		if r.KeyLocation == KeyInToken {
			inToken++
			delete(matches, r.Fingerprint)
		}
	}
	switch {
	case len(matches) == 0 && inToken > 0:
		return fail(fmt.Errorf("%s: %w; to store this key instead, delete the certificate and import both again", src, ErrKeyInToken))
	case len(matches) == 0:
		return fail(reason.New(reason.NoCertificate, "%s: the private key matches no stored or imported certificate", src))
	}
	var warning string
	if inToken > 0 {
		warning = fmt.Sprintf("not stored for %d certificate(s) whose key is in a PKCS#11 token", inToken)
	}
	for fp, c := range matches {
		if e.ID == "" || fp < e.ID {
			e.ID, e.Subject = fp, c.Subject.String()
		}
	}
	return plan{entry: e, apply: func(ctx context.Context) (string, string, error) {
		status := StatusPresent
		for fp := range matches {
			st, err := s.putKey(ctx, fp, k)
			if err != nil {
				return "", "", err
			}
			if st == StatusAdded {
				status = StatusAdded
			}
		}
		return status, warning, nil
	}}
}

func (s *Store) putKey(ctx context.Context, fp string, k keyring.PrivateKey) (string, error) {
	rk := keyKey(fp)
	kid, sealed, err := s.seal(rk, k.Raw, k.Passphrase)
	if err != nil {
		return "", err
	}
	status := StatusAdded
	rec := keyRecord{Cert: fp, Format: k.Format, KID: kid, Sealed: sealed, ImportedAt: s.cfg.Now().UTC()}
	if _, err := s.kv.Create(ctx, rk, mustJSON(rec)); errors.Is(err, jetstream.ErrKeyExists) {
		status = StatusPresent
	} else if err != nil {
		return "", fmt.Errorf("store: write %s: %w", rk, err)
	}
	if err := s.setKey(ctx, fp, KeyInStore, nil); err != nil {
		return "", err
	}
	if err := s.indexAdd(ctx, idxKeys, fp); err != nil {
		return "", err
	}
	return status, nil
}

// setKey records on the certificate that it has a private key and where
// (KeyInStore, or KeyInToken with the token key), for listings.
func (s *Store) setKey(ctx context.Context, fp, location string, tok *TokenRef) error {
	return s.modify(ctx, certKey(fp), func(cur []byte, found bool) ([]byte, bool, error) {
		if !found {
			return nil, false, errNotFound("certificate " + fp)
		}
		var r CertRecord
		if err := json.Unmarshal(cur, &r); err != nil {
			return nil, false, err
		}
		r.fillKeyLocation()
		if r.HasPrivateKey && r.KeyLocation == location && (r.Token == nil) == (tok == nil) && (tok == nil || *r.Token == *tok) {
			return nil, false, nil
		}
		r.HasPrivateKey, r.KeyLocation, r.Token = true, location, tok
		return mustJSON(&r), true, nil
	})
}

func (s *Store) planPGP(src string, k keyring.PGPKey, now time.Time) plan {
	e := &ReportEntry{Source: src, Kind: "pgp"}
	if k.Secret {
		e.Kind = "pgp-secret"
	}
	if k.Entity == nil {
		*e = errEntry(*e, reason.New(reason.Malformed, "%s: OpenPGP key without packets", src))
		return plan{entry: e}
	}
	rec, err := newPGPRecord(k, now)
	if err != nil {
		*e = errEntry(*e, reason.Wrap(reason.Malformed, err, src))
		return plan{entry: e}
	}
	e.ID = rec.Fingerprint
	if len(rec.UIDs) > 0 {
		e.Subject = rec.UIDs[0]
	}
	if k.Secret {
		switch {
		case k.Locked:
			*e = errEntry(*e, reason.New(reason.WrongPassphrase, "%s: the OpenPGP secret key is passphrase-protected and no given passphrase opens it", src))
			return plan{entry: e}
		case !s.HasMasterKey():
			*e = errEntry(*e, fmt.Errorf("%s: %w", src, ErrNoMasterKey))
			return plan{entry: e}
		}
	}
	return plan{entry: e, apply: func(ctx context.Context) (string, string, error) {
		status, err := s.putPGP(ctx, rec, k)
		if err != nil {
			return "", "", err
		}
		var warn string
		if rec.Expires != nil && now.After(*rec.Expires) {
			warn = fmt.Sprintf("key expired on %s", rec.Expires.Format(time.DateOnly))
		}
		return status, warn, nil
	}}
}

func (s *Store) putPGP(ctx context.Context, rec *PGPRecord, k keyring.PGPKey) (string, error) {
	rk := pgpKey(rec.Fingerprint)
	if k.Secret {
		kid, sealed, err := s.seal(rk, k.Raw, k.Passphrase)
		if err != nil {
			return "", err
		}
		rec.KID, rec.Sealed = kid, sealed
	}
	status := StatusAdded
	err := s.modify(ctx, rk, func(cur []byte, found bool) ([]byte, bool, error) {
		if !found {
			status = StatusAdded
			return mustJSON(rec), true, nil
		}
		var old PGPRecord
		if err := json.Unmarshal(cur, &old); err != nil {
			return nil, false, err
		}
		if old.Secret || !rec.Secret {
			status = StatusPresent
			return nil, false, nil
		}
		status = StatusUpdated
		return mustJSON(rec), true, nil
	})
	if err != nil {
		return "", err
	}
	idx := make([]string, 0, 4)
	for _, id := range rec.KeyIDs {
		idx = append(idx, "idx.pgpid."+id)
	}
	for _, em := range rec.Emails {
		idx = append(idx, PGPEmailIndexKey(em))
	}
	if rec.Secret {
		idx = append(idx, idxPGPSecret)
	}
	for _, key := range idx {
		if err := s.indexAdd(ctx, key, rec.Fingerprint); err != nil {
			return "", err
		}
	}
	return status, nil
}

// putCRL keeps the newest CRL per issuer.
func (s *Store) putCRL(ctx context.Context, crl *x509.RevocationList) (string, string, error) {
	rec := crlRecord{Issuer: crl.Issuer.String(), ThisUpdate: crl.ThisUpdate.UTC(), NextUpdate: crl.NextUpdate.UTC(), DER: crl.Raw}
	if crl.Number != nil {
		rec.Number = crl.Number.String()
	}
	status := StatusAdded
	err := s.modify(ctx, crlKey(crl.RawIssuer), func(cur []byte, found bool) ([]byte, bool, error) {
		if found {
			var old crlRecord
			if err := json.Unmarshal(cur, &old); err != nil {
				return nil, false, err
			}
			if string(old.DER) == string(rec.DER) || old.ThisUpdate.After(rec.ThisUpdate) {
				status = StatusPresent
				return nil, false, nil
			}
			status = StatusUpdated
		}
		return mustJSON(rec), true, nil
	})
	var warn string
	if status != StatusPresent && !rec.NextUpdate.IsZero() && s.cfg.Now().After(rec.NextUpdate) {
		warn = fmt.Sprintf("CRL is stale (next update was due %s)", rec.NextUpdate.Format(time.DateOnly))
	}
	return status, warn, err
}

// ImportCRL parses and stores a CRL (DER or PEM).
func (s *Store) ImportCRL(ctx context.Context, name string, data []byte) (*Report, error) {
	b, err := keyring.Parse(name, data, keyring.Options{})
	if err != nil {
		return &Report{Entries: []ReportEntry{errEntry(ReportEntry{Source: name, Kind: "file"}, err)}}, nil
	}
	if len(b.CRLs) == 0 || len(b.Certs)+len(b.Keys)+len(b.PGP) > 0 {
		err := reason.New(reason.Malformed, "%s: expected only CRLs", name)
		return &Report{Entries: []ReportEntry{errEntry(ReportEntry{Source: name, Kind: "file"}, err)}}, nil
	}
	rep, err := s.Import(ctx, []Input{{Name: name, Bundle: b}}, ImportOptions{})
	if err == nil {
		for _, e := range rep.Entries {
			if e.Status == StatusAdded || e.Status == StatusUpdated {
				s.audit(ctx, "crl.import", map[string]any{"id": e.ID, "issuer": e.Subject})
			}
		}
	}
	return rep, err
}

// bulkThreshold is the number of certificates from which an import takes
// the pipelined path; bulkBatch bounds the asynchronous writes in flight.
const (
	bulkThreshold = 64
	bulkBatch     = 1000
)

// putCertsBulk stores many certificates with pipelined writes: records
// first, then every index key once with all its new fingerprints. What
// the fast path cannot decide (an existing key, a delete marker, a
// stalled publish) is redone with the synchronous, CAS-correct path.
func (s *Store) putCertsBulk(ctx context.Context, ps []plan) error {
	now := s.cfg.Now()
	keys := make([]string, len(ps))
	vals := make([][]byte, len(ps))
	for i, p := range ps {
		keys[i], vals[i] = certKey(p.rec.Fingerprint), mustJSON(p.rec)
	}
	errs, err := s.createAsync(ctx, keys, vals)
	if err != nil {
		return err
	}
	status := make([]string, len(ps))
	var firstErr error
	for i, p := range ps {
		status[i] = StatusAdded
		if errs[i] == nil {
			continue
		}
		_, err := s.kv.Create(ctx, keys[i], vals[i])
		switch {
		case errors.Is(err, jetstream.ErrKeyExists):
			status[i] = StatusPresent
		case err != nil:
			status[i] = ""
			*p.entry = errEntry(*p.entry, fmt.Errorf("store: write %s: %w", keys[i], err))
			if firstErr == nil {
				firstErr = err
			}
		}
	}

	// Index keys with the certificates (by position) they gain.
	members := map[string][]int{}
	var order []string
	for i, p := range ps {
		if status[i] == "" {
			continue
		}
		for _, k := range certIndexKeys(p.rec, p.cert) {
			if _, ok := members[k]; !ok {
				order = append(order, k)
			}
			members[k] = append(members[k], i)
		}
	}
	ivals := make([][]byte, len(order))
	for j, k := range order {
		fps := make([]string, len(members[k]))
		for n, i := range members[k] {
			fps[n] = ps[i].rec.Fingerprint
		}
		ivals[j] = mustJSON(fps)
	}
	ierrs, err := s.createAsync(ctx, order, ivals)
	if err != nil {
		return err
	}
	failed := make([]bool, len(ps))
	for j, k := range order {
		if ierrs[j] == nil {
			continue
		}
		existed := false
		for _, i := range members[k] {
			if err := s.indexAdd(ctx, k, ps[i].rec.Fingerprint); err != nil {
				failed[i] = true
				*ps[i].entry = errEntry(*ps[i].entry, err)
				if firstErr == nil {
					firstErr = err
				}
			}
			existed = true
		}
		// A public key seen before may already have a stored private key.
		if existed && strings.HasPrefix(k, "idx.spki.") {
			for _, i := range members[k] {
				if status[i] == StatusAdded && !failed[i] {
					if err := s.linkExistingKey(ctx, ps[i].rec.Fingerprint, ps[i].cert); err != nil {
						failed[i] = true
						*ps[i].entry = errEntry(*ps[i].entry, err)
					}
				}
			}
		}
	}
	for i, p := range ps {
		if status[i] != "" && !failed[i] {
			p.entry.Status, p.entry.Warning = status[i], certWarning(p.rec, now)
		}
	}
	return firstErr
}

// createAsync publishes "create if absent" writes for keys in batches and
// returns each write's error (nil: created).
func (s *Store) createAsync(ctx context.Context, keys []string, vals [][]byte) ([]error, error) {
	errs := make([]error, len(keys))
	prefix := "$KV." + s.cfg.Bucket + "."
	for start := 0; start < len(keys); start += bulkBatch {
		end := min(start+bulkBatch, len(keys))
		futs := make([]jetstream.PubAckFuture, end-start)
		for i := start; i < end; i++ {
			m := nats.NewMsg(prefix + keys[i])
			m.Data = vals[i]
			futs[i-start], errs[i] = s.js.PublishMsgAsync(m, jetstream.WithExpectLastSequencePerSubject(0))
		}
		for i := start; i < end; i++ {
			f := futs[i-start]
			if f == nil {
				continue
			}
			select {
			case <-f.Ok():
			case err := <-f.Err():
				errs[i] = err
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return errs, nil
}
