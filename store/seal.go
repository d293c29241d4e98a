package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MasterKeyEnv is the environment variable holding the base64 master key.
const MasterKeyEnv = "SECMAIL_MASTER_KEY"

// ErrNoMasterKey is returned by operations that need private key material
// when the store was opened without a master key.
var ErrNoMasterKey = errors.New("store: no master key configured: private keys are unavailable")

// ErrWrongMasterKey is returned when a sealed record was sealed under a
// different master key than the one configured.
var ErrWrongMasterKey = errors.New("store: record sealed under a different master key")

// MasterKey seals private keys and passphrases with AES-256-GCM.
type MasterKey struct {
	id   string
	aead cipher.AEAD
}

// NewMasterKey returns a master key from 32 raw bytes.
func NewMasterKey(raw []byte) (*MasterKey, error) {
	if len(raw) != 32 {
		return nil, fmt.Errorf("store: master key must be 32 bytes, got %d", len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("store: master key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("store: master key: %w", err)
	}
	// The id identifies the key without revealing it (a hash of a
	// domain-separated encoding, truncated).
	h := sha256.Sum256(append([]byte("secmail master key id\x00"), raw...))
	return &MasterKey{id: hex.EncodeToString(h[:8]), aead: aead}, nil
}

// ParseMasterKey decodes a master key given as base64 (standard or URL,
// padded or not) or as 64 hex digits.
func ParseMasterKey(text string) (*MasterKey, error) {
	text = strings.TrimSpace(text)
	if len(text) == 64 {
		if raw, err := hex.DecodeString(text); err == nil {
			return NewMasterKey(raw)
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err := enc.DecodeString(text); err == nil {
			return NewMasterKey(raw)
		}
	}
	return nil, errors.New("store: master key is neither base64 nor hex")
}

// LoadMasterKey reads the master key from file (base64, hex or 32 raw
// bytes) or, when file is empty, from the SECMAIL_MASTER_KEY environment
// variable. It returns nil and no error when neither is set: the store then
// opens without private keys.
func LoadMasterKey(file string) (*MasterKey, error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("store: reading master key: %w", err)
		}
		if len(data) == 32 {
			if mk, err := NewMasterKey(data); err == nil && !isPrintable(data) {
				return mk, nil
			}
		}
		return ParseMasterKey(string(data))
	}
	if v := os.Getenv(MasterKeyEnv); v != "" {
		return ParseMasterKey(v)
	}
	return nil, nil
}

func isPrintable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// ID returns the key id recorded with sealed records.
func (m *MasterKey) ID() string { return m.id }

// seal encrypts plaintext bound to the record key; the output is
// nonce || ciphertext.
func (m *MasterKey) seal(recordKey string, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, m.aead.NonceSize(), m.aead.NonceSize()+len(plaintext)+m.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("store: nonce: %w", err)
	}
	return m.aead.Seal(nonce, nonce, plaintext, []byte(recordKey)), nil
}

func (m *MasterKey) open(recordKey, kid string, sealed []byte) ([]byte, error) {
	if kid != m.id {
		return nil, fmt.Errorf("%w (record key id %s, configured %s)", ErrWrongMasterKey, kid, m.id)
	}
	n := m.aead.NonceSize()
	if len(sealed) < n+m.aead.Overhead() {
		return nil, fmt.Errorf("store: sealed record %s is truncated", recordKey)
	}
	pt, err := m.aead.Open(nil, sealed[:n], sealed[n:], []byte(recordKey))
	if err != nil {
		return nil, fmt.Errorf("store: sealed record %s does not authenticate: %w", recordKey, err)
	}
	return pt, nil
}
