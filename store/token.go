package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Where a certificate's private key is (CertInfo.KeyLocation).
const (
	KeyInStore = "store"
	KeyInToken = "token"
)

// TokenRef names a private key that lives in a PKCS#11 token: the token's
// label and the key's CKA_LABEL, or its CKA_ID in hex. It is no secret;
// the worker finds the key through its key backend when it needs it.
type TokenRef struct {
	Token string `json:"token"`
	Key   string `json:"key"`
}

// String is how messages name the key.
func (r TokenRef) String() string { return fmt.Sprintf("key %q of token %q", r.Key, r.Token) }

// maxTokenRefLen bounds labels: PKCS#11 token labels are 32 bytes, key
// labels have no limit in the standard but real ones are short.
const maxTokenRefLen = 256

// ErrInvalidTokenRef is returned for an empty or unusable token or key name.
var ErrInvalidTokenRef = errors.New("store: invalid token reference")

// ErrKeyInStore is returned when a token key is attached to a certificate
// whose private key is already sealed in the store: replacing it would
// silently drop a key the administrator uploaded.
var ErrKeyInStore = errors.New("store: the certificate already has a private key sealed in the store")

// ErrKeyInToken is returned where a key's bytes are needed (export, an
// uploaded key for the same certificate) but the key is in a token.
var ErrKeyInToken = errors.New("store: the certificate's private key is in a PKCS#11 token")

// Validate checks both names: present, UTF-8, no control characters,
// not longer than 256 bytes. Surrounding spaces are not part of a name.
func (r TokenRef) Validate() error {
	for _, f := range []struct{ what, v string }{{"token label", r.Token}, {"key label or id", r.Key}} {
		switch {
		case f.v == "":
			return fmt.Errorf("%w: empty %s", ErrInvalidTokenRef, f.what)
		case f.v != strings.TrimSpace(f.v):
			return fmt.Errorf("%w: %s %q has surrounding spaces", ErrInvalidTokenRef, f.what, f.v)
		case len(f.v) > maxTokenRefLen:
			return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalidTokenRef, f.what, maxTokenRefLen)
		case !utf8.ValidString(f.v) || strings.ContainsFunc(f.v, unicode.IsControl):
			return fmt.Errorf("%w: %s %q is not printable UTF-8", ErrInvalidTokenRef, f.what, f.v)
		}
	}
	return nil
}

// Attachment is the outcome of AttachTokenKey.
type Attachment struct {
	Certificate CertInfo `json:"certificate"`
	Token       TokenRef `json:"token"`
	// Status is "added", "present" (attached like this already) or
	// "updated" (it named another token key before).
	Status string `json:"status"`
}

// AttachTokenKey records that the private key of the certificate id (a
// fingerprint or unique prefix, as for Get) is ref, a key in a PKCS#11
// token. No key material is involved, so it needs no master key. The
// store cannot see the token: the worker checks the key's public key
// against the certificate when it loads it. A token key may replace
// another token key; a key sealed in the store is never replaced
// (ErrKeyInStore: delete and re-import the certificate first).
func (s *Store) AttachTokenKey(ctx context.Context, id string, ref TokenRef) (*Attachment, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	e, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if e.Cert == nil {
		return nil, errNotFound("certificate " + id + " (it names an OpenPGP key)")
	}
	r := e.Cert
	fp := r.Fingerprint
	status := StatusAdded
	// The key record first, then the certificate's metadata and idx.keys
	// (records before the index entries that point at them); a repeated
	// attach repairs an interrupted one.
	err = s.modify(ctx, keyKey(fp), func(cur []byte, found bool) ([]byte, bool, error) {
		status = StatusAdded
		if found {
			var old keyRecord
			if err := json.Unmarshal(cur, &old); err != nil {
				return nil, false, fmt.Errorf("store: record %s: %w", keyKey(fp), err)
			}
			if old.Token == nil {
				return nil, false, fmt.Errorf("%w: %s (%s)", ErrKeyInStore, fp, r.Subject)
			}
			if *old.Token == ref {
				status = StatusPresent
				return nil, false, nil
			}
			status = StatusUpdated
		}
		return mustJSON(keyRecord{Cert: fp, Token: &ref, ImportedAt: s.cfg.Now().UTC()}), true, nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.setKey(ctx, fp, KeyInToken, &ref); err != nil {
		return nil, err
	}
	if err := s.indexAdd(ctx, idxKeys, fp); err != nil {
		return nil, err
	}
	if status != StatusPresent {
		s.audit(ctx, "key.attach", map[string]any{"id": fp, "subject": r.Subject, "token": ref.Token, "key": ref.Key, "status": status})
	}
	info := r.CertInfo
	info.HasPrivateKey, info.KeyLocation, info.Token = true, KeyInToken, &ref
	return &Attachment{Certificate: info, Token: ref, Status: status}, nil
}
