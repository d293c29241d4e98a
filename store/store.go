package store

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultBucket is the KV bucket used when Config.Bucket is empty.
const DefaultBucket = "secmail_keys"

// DefaultAuditPrefix is the subject prefix of audit events.
const DefaultAuditPrefix = "secmail.audit"

// Config configures Open.
type Config struct {
	// Bucket is the KV bucket name (DefaultBucket when empty).
	Bucket string
	// History is the number of revisions kept per key (default 10).
	History uint8
	// Replicas is the bucket's replication factor (default 1).
	Replicas int
	// MemoryStorage keeps the bucket in memory (tests, demos).
	MemoryStorage bool
	// MasterKey seals private keys; nil opens the store without secrets.
	MasterKey *MasterKey
	// AuditPrefix is the subject prefix of audit events
	// (DefaultAuditPrefix when empty).
	AuditPrefix string
	// Logger receives warnings (expiring certificates); slog.Default when nil.
	Logger *slog.Logger
	// Now overrides the clock (tests).
	Now func() time.Time
}

// Store is the JetStream KV backed certificate and key store. It is safe
// for concurrent use.
type Store struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	cfg    Config
	log    *slog.Logger
	master atomic.Pointer[MasterKey]
}

// Open creates the bucket if needed (idempotently) and returns the store.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if cfg.History == 0 {
		cfg.History = 10
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.AuditPrefix == "" {
		cfg.AuditPrefix = DefaultAuditPrefix
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("store: jetstream: %w", err)
	}
	kvc := jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "secmail certificates and keys",
		History:     cfg.History,
		Replicas:    cfg.Replicas,
		Storage:     jetstream.FileStorage,
	}
	if cfg.MemoryStorage {
		kvc.Storage = jetstream.MemoryStorage
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, kvc)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("store: bucket %s: %w", cfg.Bucket, err)
	}
	s := &Store{nc: nc, js: js, kv: kv, cfg: cfg, log: cfg.Logger}
	s.master.Store(cfg.MasterKey)
	if cfg.MasterKey == nil {
		s.log.Warn("store: no master key configured: private keys sealed in the store are unavailable (keys in a PKCS#11 token are not affected)", "env", MasterKeyEnv)
	}
	return s, nil
}

// KV returns the underlying bucket (for the cache's watcher).
func (s *Store) KV() jetstream.KeyValue { return s.kv }

// HasMasterKey reports whether private keys can be unsealed (/readyz).
func (s *Store) HasMasterKey() bool { return s.master.Load() != nil }

// Key names and encodings; see doc.go.

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Enc encodes an e-mail address or group name for use in a KV key.
func Enc(s string) string {
	return strings.ToLower(b32.EncodeToString([]byte(strings.ToLower(strings.TrimSpace(s)))))
}

func sha256hex(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Fingerprint returns the SHA-256 fingerprint (lower-case hex) of a
// certificate.
func Fingerprint(c *x509.Certificate) string { return sha256hex(c.Raw) }

// EmailIndexKey is the index key of certificates naming email.
func EmailIndexKey(email string) string { return "idx.email." + Enc(email) }

// IssuerSerialIndexKey is the index key of certificates by issuer and serial.
func IssuerSerialIndexKey(rawIssuer []byte, serial *big.Int) string {
	return "idx.is." + sha256hex(rawIssuer, []byte{0}, []byte(serial.Text(16)))
}

// SKIIndexKey is the index key of certificates by subject key identifier.
func SKIIndexKey(ski []byte) string { return "idx.ski." + hex.EncodeToString(ski) }

func spkiIndexKey(spkiDER []byte) string { return "idx.spki." + sha256hex(spkiDER) }

// PGPIDIndexKey is the index key of OpenPGP keys by (sub)key id.
func PGPIDIndexKey(id uint64) string { return fmt.Sprintf("idx.pgpid.%016x", id) }

// PGPEmailIndexKey is the index key of OpenPGP keys by UID address.
func PGPEmailIndexKey(email string) string { return "idx.pgpemail." + Enc(email) }

// CapsKey is the record key of email's harvested SMIMECapabilities.
func CapsKey(email string) string { return "caps." + Enc(email) }

const (
	idxCA        = "idx.ca"
	idxKeys      = "idx.keys"
	idxPGPSecret = "idx.pgpsecret"
)

func certKey(fp string) string      { return "cert." + fp }
func keyKey(fp string) string       { return "key." + fp }
func pgpKey(fpr string) string      { return "pgp." + fpr }
func groupKey(n string) string      { return "group." + Enc(n) }
func crlKey(raw []byte) string      { return "crl." + sha256hex(raw) }
func isHex(s string) bool           { _, err := hex.DecodeString(s); return err == nil && s != "" }
func errNotFound(what string) error { return fmt.Errorf("%w: %s", ErrNotFound, what) }

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("store: not found")

// getJSON reads a JSON record; found is false when the key does not exist.
func (s *Store) getJSON(ctx context.Context, key string, v any) (rev uint64, found bool, err error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: get %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, false, fmt.Errorf("store: record %s: %w", key, err)
	}
	return e.Revision(), true, nil
}

// IndexList reads an index key: the fingerprints it lists.
func (s *Store) IndexList(ctx context.Context, key string) ([]string, error) {
	var l []string
	_, _, err := s.getJSON(ctx, key, &l)
	return l, err
}

// casRetries bounds optimistic retries; conflicts only happen between
// concurrent writers to the same key.
const casRetries = 50

// modify applies fn to the JSON value at key under compare-and-set,
// retrying on conflicts. fn gets found=false for a missing key and returns
// the new value, or nil to delete it; returning keep=false leaves the key
// unchanged.
func (s *Store) modify(ctx context.Context, key string, fn func(cur []byte, found bool) (next []byte, keep bool, err error)) error {
	for i := 0; i < casRetries; i++ {
		var cur []byte
		var rev uint64
		e, err := s.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("store: get %s: %w", key, err)
		default:
			cur, rev = e.Value(), e.Revision()
		}
		next, change, err := fn(cur, rev != 0)
		if err != nil || !change {
			return err
		}
		switch {
		case next == nil && rev == 0:
			return nil
		case next == nil:
			err = s.kv.Delete(ctx, key, jetstream.LastRevision(rev))
		case rev == 0:
			_, err = s.kv.Create(ctx, key, next)
		default:
			_, err = s.kv.Update(ctx, key, next, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return fmt.Errorf("store: write %s: %w", key, err)
		}
		return nil
	}
	return fmt.Errorf("store: write %s: too many concurrent updates", key)
}

// indexAdd adds fp to the list at key.
func (s *Store) indexAdd(ctx context.Context, key, fp string) error {
	// Most index keys are new: try Create first and save a read.
	if data, _ := json.Marshal([]string{fp}); true {
		_, err := s.kv.Create(ctx, key, data)
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("store: write %s: %w", key, err)
		}
	}
	return s.modify(ctx, key, func(cur []byte, found bool) ([]byte, bool, error) {
		var l []string
		if found {
			if err := json.Unmarshal(cur, &l); err != nil {
				return nil, false, fmt.Errorf("store: index %s: %w", key, err)
			}
		}
		if slices.Contains(l, fp) {
			return nil, false, nil
		}
		l = append(l, fp)
		b, err := json.Marshal(l)
		return b, true, err
	})
}

// indexRemove removes fp from the list at key, deleting an empty list.
func (s *Store) indexRemove(ctx context.Context, key, fp string) error {
	return s.modify(ctx, key, func(cur []byte, found bool) ([]byte, bool, error) {
		if !found {
			return nil, false, nil
		}
		var l []string
		if err := json.Unmarshal(cur, &l); err != nil {
			return nil, false, fmt.Errorf("store: index %s: %w", key, err)
		}
		i := slices.Index(l, fp)
		if i < 0 {
			return nil, false, nil
		}
		l = slices.Delete(l, i, i+1)
		if len(l) == 0 {
			return nil, true, nil
		}
		b, err := json.Marshal(l)
		return b, true, err
	})
}

// deleteKey removes a record (a delete marker; history keeps it).
func (s *Store) deleteKey(ctx context.Context, key string) error {
	if err := s.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("store: delete %s: %w", key, err)
	}
	return nil
}
