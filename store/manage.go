package store

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

type identityKey struct{}

// WithIdentity returns a context whose changes are audited as identity.
func WithIdentity(ctx context.Context, identity string) context.Context {
	return context.WithValue(ctx, identityKey{}, identity)
}

func identityOf(ctx context.Context) string {
	if s, ok := ctx.Value(identityKey{}).(string); ok && s != "" {
		return s
	}
	return "unknown"
}

// Event is an audit event, published as JSON on <AuditPrefix>.<action>.
type Event struct {
	Action   string         `json:"action"`
	What     map[string]any `json:"what"`
	When     time.Time      `json:"when"`
	Identity string         `json:"identity"`
	Bucket   string         `json:"bucket"`
}

func (s *Store) audit(ctx context.Context, action string, what map[string]any) {
	ev := Event{Action: action, What: what, When: s.cfg.Now().UTC(), Identity: identityOf(ctx), Bucket: s.cfg.Bucket}
	if err := s.nc.Publish(s.cfg.AuditPrefix+"."+action, mustJSON(ev)); err != nil {
		s.log.Error("store: audit event not published", "action", action, "err", err)
	}
}

// Filter selects List results; zero values select everything.
type Filter struct {
	Email string
	// Kind is "cert" (end-entity), "ca", "smime" (both), "pgp" or "" (all).
	Kind string
	// ExpiringWithin selects entries whose not_after is within this
	// duration from now (already expired included).
	ExpiringWithin time.Duration
	// HasPrivateKey selects only entries with a private/secret key.
	HasPrivateKey bool
}

// Listing is the result of List.
type Listing struct {
	Certs []CertInfo `json:"certificates"`
	PGP   []PGPInfo  `json:"pgp_keys"`
}

// List returns certificate and OpenPGP key metadata. With an e-mail filter
// it uses the indexes; otherwise it scans (an administrative operation).
func (s *Store) List(ctx context.Context, f Filter) (*Listing, error) {
	out := &Listing{Certs: []CertInfo{}, PGP: []PGPInfo{}}
	now := s.cfg.Now()
	wantCert := f.Kind == "" || f.Kind == "cert" || f.Kind == "ca" || f.Kind == "smime"
	wantPGP := f.Kind == "" || f.Kind == "pgp"
	if !wantCert && !wantPGP {
		return nil, fmt.Errorf("store: unknown kind %q (cert, ca, smime, pgp)", f.Kind)
	}
	keepCert := func(r *CertRecord) bool {
		switch {
		case f.Kind == "cert" && r.IsCA, f.Kind == "ca" && !r.IsCA:
			return false
		case f.HasPrivateKey && !r.HasPrivateKey:
			return false
		case f.ExpiringWithin > 0 && r.NotAfter.Sub(now) > f.ExpiringWithin:
			return false
		}
		return true
	}
	keepPGP := func(r *PGPRecord) bool {
		switch {
		case f.HasPrivateKey && !r.Secret:
			return false
		case f.ExpiringWithin > 0 && (r.Expires == nil || r.Expires.Sub(now) > f.ExpiringWithin):
			return false
		}
		return true
	}
	if f.Email != "" {
		if wantCert {
			recs, err := s.CertsByIndex(ctx, EmailIndexKey(f.Email))
			if err != nil {
				return nil, err
			}
			for _, r := range recs {
				if keepCert(r) {
					out.Certs = append(out.Certs, r.CertInfo)
				}
			}
		}
		if wantPGP {
			recs, err := s.PGPByIndex(ctx, PGPEmailIndexKey(f.Email))
			if err != nil {
				return nil, err
			}
			for _, r := range recs {
				if keepPGP(r) {
					out.PGP = append(out.PGP, r.PGPInfo)
				}
			}
		}
	} else {
		if wantCert {
			err := s.scan(ctx, "cert.>", func(key string, val []byte) error {
				var r CertRecord
				if err := json.Unmarshal(val, &r); err != nil {
					return fmt.Errorf("store: record %s: %w", key, err)
				}
				r.fillKeyLocation()
				if keepCert(&r) {
					out.Certs = append(out.Certs, r.CertInfo)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		if wantPGP {
			err := s.scan(ctx, "pgp.>", func(key string, val []byte) error {
				var r PGPRecord
				if err := json.Unmarshal(val, &r); err != nil {
					return fmt.Errorf("store: record %s: %w", key, err)
				}
				if keepPGP(&r) {
					out.PGP = append(out.PGP, r.PGPInfo)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	for i := range out.Certs {
		out.Certs[i].SMIMECapabilities = s.capsFor(ctx, out.Certs[i].Emails)
	}
	sort.Slice(out.Certs, func(i, j int) bool {
		a, b := out.Certs[i], out.Certs[j]
		if a.Subject != b.Subject {
			return a.Subject < b.Subject
		}
		return a.Fingerprint < b.Fingerprint
	})
	sort.Slice(out.PGP, func(i, j int) bool { return out.PGP[i].Fingerprint < out.PGP[j].Fingerprint })
	return out, nil
}

func (s *Store) capsFor(ctx context.Context, emails []string) []string {
	for _, em := range emails {
		if oids, err := s.Capabilities(ctx, em); err == nil && len(oids) > 0 {
			return oids
		}
	}
	return nil
}

// Entry is one shown record: a certificate or an OpenPGP key.
type Entry struct {
	Cert *CertRecord `json:"certificate,omitempty"`
	PGP  *PGPRecord  `json:"pgp_key,omitempty"`
}

// Get returns the certificate or OpenPGP key with fingerprint id, which
// may be a unique prefix of at least 8 hex digits.
func (s *Store) Get(ctx context.Context, id string) (*Entry, error) {
	key, err := s.resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	if fp, ok := strings.CutPrefix(key, "cert."); ok {
		r, _, found, err := s.certRecord(ctx, fp)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, errNotFound(id)
		}
		r.SMIMECapabilities = s.capsFor(ctx, r.Emails)
		return &Entry{Cert: r}, nil
	}
	var r PGPRecord
	_, found, err := s.getJSON(ctx, key, &r)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, errNotFound(id)
	}
	return &Entry{PGP: &r}, nil
}

// resolve maps a fingerprint or unique prefix to its record key.
func (s *Store) resolve(ctx context.Context, id string) (string, error) {
	id = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(id), ":", ""))
	if !isHex(id) && !isHex(id+"0") || len(id) < 8 {
		return "", fmt.Errorf("%w: %q is not a fingerprint (at least 8 hex digits)", ErrNotFound, id)
	}
	for _, k := range []string{certKey(id), pgpKey(id)} {
		if _, err := s.kv.Get(ctx, k); err == nil {
			return k, nil
		}
	}
	var matches []string
	for _, prefix := range []string{"cert.", "pgp."} {
		lister, err := s.kv.ListKeysFiltered(ctx, prefix+">")
		if err != nil {
			return "", fmt.Errorf("store: listing keys: %w", err)
		}
		for k := range lister.Keys() {
			if strings.HasPrefix(k, prefix+id) {
				matches = append(matches, k)
			}
		}
		_ = lister.Stop()
	}
	switch len(matches) {
	case 0:
		return "", errNotFound(id)
	case 1:
		return matches[0], nil
	}
	return "", fmt.Errorf("store: %q is ambiguous (%d matches)", id, len(matches))
}

// Export formats.
const (
	FormatPEM = "pem"
	FormatDER = "der"
)

// ExportOptions select what Export returns.
type ExportOptions struct {
	// Format "pem" (default) or "der" for certificates.
	Format string
	// Chain appends the issuers found in the store (PEM only).
	Chain bool
	// PrivateKey returns the private key exactly as uploaded instead of
	// the certificate (needs the master key).
	PrivateKey bool
}

// Export returns a certificate (PEM or DER, optionally with its chain),
// its private key as uploaded, or an OpenPGP key armored (secret key as
// uploaded with PrivateKey). The returned string is a suggested file
// extension.
func (s *Store) Export(ctx context.Context, id string, opts ExportOptions) ([]byte, string, error) {
	e, err := s.Get(ctx, id)
	if err != nil {
		return nil, "", err
	}
	if e.PGP != nil {
		if opts.PrivateKey {
			raw, _, err := s.PGPSecretUpload(ctx, e.PGP.Fingerprint)
			return raw, "asc", err
		}
		b, err := e.PGP.Armor()
		return b, "asc", err
	}
	r := e.Cert
	if opts.PrivateKey {
		raw, format, _, err := s.PrivateKeyUpload(ctx, r.Fingerprint)
		if err != nil {
			return nil, "", err
		}
		ext := map[string]string{"pem": "key", "der": "der", "pkcs12": "p12"}[format]
		return raw, ext, nil
	}
	if opts.Format == FormatDER {
		if opts.Chain {
			return nil, "", errors.New("store: a chain can only be exported as PEM")
		}
		return r.DER, "der", nil
	}
	if opts.Format != "" && opts.Format != FormatPEM {
		return nil, "", fmt.Errorf("store: unknown format %q (pem, der)", opts.Format)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.DER})
	if opts.Chain {
		c, err := r.Certificate()
		if err != nil {
			return nil, "", err
		}
		chain, err := s.chain(ctx, c)
		if err != nil {
			return nil, "", err
		}
		for _, ic := range chain {
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ic.Raw})...)
		}
	}
	return out, "pem", nil
}

// Delete removes a certificate (with its private key) or an OpenPGP key.
// Index entries go first so no index ever points at a half-deleted record.
func (s *Store) Delete(ctx context.Context, id string) (*Entry, error) {
	e, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if r := e.Cert; r != nil {
		c, err := r.Certificate()
		if err != nil {
			return nil, err
		}
		idx := []string{IssuerSerialIndexKey(c.RawIssuer, c.SerialNumber), spkiIndexKey(c.RawSubjectPublicKeyInfo), idxCA, idxKeys}
		for _, em := range r.Emails {
			idx = append(idx, EmailIndexKey(em))
		}
		if len(c.SubjectKeyId) > 0 {
			idx = append(idx, SKIIndexKey(c.SubjectKeyId))
		}
		for _, k := range idx {
			if err := s.indexRemove(ctx, k, r.Fingerprint); err != nil {
				return nil, err
			}
		}
		if err := s.deleteKey(ctx, keyKey(r.Fingerprint)); err != nil {
			return nil, err
		}
		if err := s.deleteKey(ctx, certKey(r.Fingerprint)); err != nil {
			return nil, err
		}
		what := map[string]any{"kind": r.Kind, "id": r.Fingerprint, "subject": r.Subject, "had_private_key": r.HasPrivateKey}
		if r.Token != nil {
			// The key itself stays in the token; say which one it was.
			what["token"] = *r.Token
		}
		s.audit(ctx, "delete", what)
		return e, nil
	}
	r := e.PGP
	idx := []string{idxPGPSecret}
	for _, id := range r.KeyIDs {
		idx = append(idx, "idx.pgpid."+id)
	}
	for _, em := range r.Emails {
		idx = append(idx, PGPEmailIndexKey(em))
	}
	for _, k := range idx {
		if err := s.indexRemove(ctx, k, r.Fingerprint); err != nil {
			return nil, err
		}
	}
	if err := s.deleteKey(ctx, pgpKey(r.Fingerprint)); err != nil {
		return nil, err
	}
	s.audit(ctx, "delete", map[string]any{"kind": "pgp", "id": r.Fingerprint, "uids": r.UIDs, "secret": r.Secret})
	return e, nil
}

// SetGroupDefaults stores a group's outbound defaults.
func (s *Store) SetGroupDefaults(ctx context.Context, group string, d GroupDefaults) error {
	if strings.TrimSpace(group) == "" {
		return errors.New("store: empty group name")
	}
	switch d.Type {
	case "", "S/MIME", "PGP":
	case "smime":
		d.Type = "S/MIME"
	case "pgp":
		d.Type = "PGP"
	default:
		return fmt.Errorf("store: unknown type %q (S/MIME, PGP)", d.Type)
	}
	if _, err := s.kv.Put(ctx, groupKey(group), mustJSON(d)); err != nil {
		return fmt.Errorf("store: write group %s: %w", group, err)
	}
	s.audit(ctx, "group.set", map[string]any{"group": group, "defaults": d})
	return nil
}

// GroupDefaults returns a group's defaults; found is false when unset.
func (s *Store) GroupDefaults(ctx context.Context, group string) (d GroupDefaults, found bool, err error) {
	_, found, err = s.getJSON(ctx, groupKey(group), &d)
	return d, found, err
}

// SetCapabilities records the SMIMECapabilities harvested from email's
// signed mail. Unchanged capabilities cause no write.
func (s *Store) SetCapabilities(ctx context.Context, email string, oids []string) error {
	changed := false
	err := s.modify(ctx, CapsKey(email), func(cur []byte, found bool) ([]byte, bool, error) {
		if found {
			var old capsRecord
			if json.Unmarshal(cur, &old) == nil && slices.Equal(old.OIDs, oids) {
				return nil, false, nil
			}
		}
		changed = true
		return mustJSON(capsRecord{OIDs: oids, Updated: s.cfg.Now().UTC()}), true, nil
	})
	if err == nil && changed {
		s.audit(ctx, "capabilities.set", map[string]any{"email": strings.ToLower(email), "oids": oids})
	}
	return err
}

// Expiry is one expiry-time sample for the metrics.
type Expiry struct {
	Email       string    `json:"email"`
	Fingerprint string    `json:"fingerprint"`
	Kind        string    `json:"kind"` // cert, ca, pgp
	NotAfter    time.Time `json:"not_after"`
}

// Expiries returns one sample per (certificate or OpenPGP key, address)
// — an entry without addresses gets one sample with an empty e-mail — and
// logs a warning for each certificate expiring within 30 days. Call it
// periodically (it scans), never per message.
func (s *Store) Expiries(ctx context.Context) ([]Expiry, error) {
	now := s.cfg.Now()
	var out []Expiry
	add := func(emails []string, fp, kind string, t time.Time) {
		if len(emails) == 0 {
			emails = []string{""}
		}
		for _, em := range emails {
			out = append(out, Expiry{Email: em, Fingerprint: fp, Kind: kind, NotAfter: t})
		}
	}
	err := s.scan(ctx, "cert.>", func(key string, val []byte) error {
		var r CertRecord
		if err := json.Unmarshal(val, &r); err != nil {
			return fmt.Errorf("store: record %s: %w", key, err)
		}
		add(r.Emails, r.Fingerprint, r.Kind, r.NotAfter)
		if left := r.NotAfter.Sub(now); left < expiryWarnWithin {
			s.log.Warn("store: certificate expires soon", "fingerprint", r.Fingerprint, "subject", r.Subject, "emails", r.Emails, "not_after", r.NotAfter, "expired", left < 0)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = s.scan(ctx, "pgp.>", func(key string, val []byte) error {
		var r PGPRecord
		if err := json.Unmarshal(val, &r); err != nil {
			return fmt.Errorf("store: record %s: %w", key, err)
		}
		if r.Expires != nil {
			add(r.Emails, r.Fingerprint, "pgp", *r.Expires)
		}
		return nil
	})
	return out, err
}

// RotateMasterKey re-seals every private key and secret OpenPGP key from
// oldKey to newKey and then uses newKey. Records already under newKey are
// skipped, so an interrupted rotation can simply be run again (and should
// be, if keys were imported by a worker still holding the old key while it
// ran). It returns the number of records re-sealed.
func (s *Store) RotateMasterKey(ctx context.Context, oldKey, newKey *MasterKey) (int, error) {
	if oldKey == nil || newKey == nil {
		return 0, errors.New("store: rotation needs the old and the new master key")
	}
	var keysToDo []string
	for _, prefix := range []string{"key.>", "pgp.>"} {
		lister, err := s.kv.ListKeysFiltered(ctx, prefix)
		if err != nil {
			return 0, fmt.Errorf("store: listing keys: %w", err)
		}
		for k := range lister.Keys() {
			keysToDo = append(keysToDo, k)
		}
		_ = lister.Stop()
	}
	n := 0
	for _, rk := range keysToDo {
		var resealed bool
		err := s.modify(ctx, rk, func(cur []byte, found bool) ([]byte, bool, error) {
			resealed = false
			if !found {
				return nil, false, nil
			}
			// Both record types carry kid and sealed at the top level.
			var m map[string]json.RawMessage
			if err := json.Unmarshal(cur, &m); err != nil {
				return nil, false, err
			}
			var kid string
			var sealed []byte
			_ = json.Unmarshal(m["kid"], &kid)
			_ = json.Unmarshal(m["sealed"], &sealed)
			if len(sealed) == 0 || kid == newKey.ID() {
				return nil, false, nil
			}
			pt, err := oldKey.open(rk, kid, sealed)
			if err != nil {
				return nil, false, err
			}
			ns, err := newKey.seal(rk, pt)
			if err != nil {
				return nil, false, err
			}
			m["kid"], m["sealed"] = mustJSON(newKey.ID()), mustJSON(ns)
			resealed = true
			return mustJSON(m), true, nil
		})
		if err != nil {
			return n, fmt.Errorf("store: rotating %s: %w", rk, err)
		}
		if resealed {
			n++
		}
	}
	s.master.Store(newKey)
	s.audit(ctx, "rotate", map[string]any{"old_kid": oldKey.ID(), "new_kid": newKey.ID(), "records": n})
	return n, nil
}

// IsNotFound reports whether err means a record does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
