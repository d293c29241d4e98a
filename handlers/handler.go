// Package handlers turns one article into its security outcome: inbound
// (detect, decrypt, verify) and outbound (sign, encrypt), plus the
// preflight that tells a helpdesk UI in advance what is possible. Handlers
// know nothing about NATS: the pipeline and the offline commands call the
// same functions with different keys.Source implementations.
package handlers

import (
	"context"
	"fmt"
	"time"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/cms"
	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/mimewalk"
	"github.com/secmail/secmail/reason"
)

// Config tunes the handlers. The zero value is usable: see DefaultConfig.
type Config struct {
	Lang   reason.Lang
	Limits mimewalk.Limits
	// Allow3DES lets legacy 3DES mail decrypt (with a weak-algorithm
	// warning) instead of failing with unsupported-algorithm.
	Allow3DES bool
	// Now returns the current time; tests pin it.
	Now func() time.Time
	// Outbound holds the group defaults and algorithm choices.
	Outbound OutboundConfig
	// Verifier checks inbound RSA and ECDSA signatures; nil means Go's
	// crypto/rsa and crypto/ecdsa. CBC decrypts inbound AES-CBC content;
	// nil means crypto/cipher. Set both with
	// cfg.Verifier, cfg.CBC = keybackend.Offload(backend): the openssl
	// backend gives its own (same results, arithmetic in libcrypto).
	Verifier cms.PublicKeyVerifier
	CBC      cms.CBCDecrypter
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		Lang:      reason.EN,
		Limits:    mimewalk.DefaultLimits,
		Allow3DES: true,
		Now:       time.Now,
		Outbound:  DefaultOutboundConfig(),
	}
}

// Handler implements article.Handler.
type Handler struct {
	src       keys.Source
	cfg       Config
	chains    *chainCache
	certs     *cms.CertCache
	summaries *summaryCache
}

// maxCertGeneration bounds the certificates parsed from inbound messages
// that a Handler keeps: two generations of this many (a few KB each).
// Correspondents' certificates recur; parsing them costs more than the
// rest of a SignedData.
const maxCertGeneration = 1024

var _ article.Handler = (*Handler)(nil)

// New returns a Handler reading keys from src.
func New(src keys.Source, cfg Config) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Lang == "" {
		cfg.Lang = reason.EN
	}
	return &Handler{src: src, cfg: cfg, chains: newChainCache(cfg.Now), certs: cms.NewCertCache(maxCertGeneration),
		summaries: &summaryCache{}}
}

// Handle dispatches by direction.
func (h *Handler) Handle(ctx context.Context, dir article.Direction, req *article.Request) (*article.Outcome, error) {
	switch dir {
	case article.Inbound:
		return h.Inbound(ctx, req.Raw)
	case article.Outbound:
		return h.Outbound(ctx, req)
	}
	return nil, reason.New(reason.Malformed, "unknown direction %q", dir)
}

// transient marks a key-store failure as worth retrying: the article itself
// is fine, the store or cache is not.
func transient(err error, what string) error {
	return fmt.Errorf("%s: %w: %w", what, article.ErrTransient, err)
}
