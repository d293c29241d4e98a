// Package article defines what a handler receives and returns for one
// helpdesk article, independent of transport: the pipeline (NATS) and the
// offline commands (inspect, secure) use the same types.
package article

import (
	"context"
	"errors"

	"github.com/secmail/secmail/reason"
	"github.com/secmail/secmail/result"
)

// Direction of an article.
type Direction string

// Directions, as used in subjects and results.
const (
	Inbound  Direction = "inbound"
	Outbound Direction = "outbound"
)

// Options are the per-article overrides of the group defaults (outbound).
// A nil field means "use the group's default".
type Options struct {
	Type    *string `json:"type"`
	Sign    *bool   `json:"sign"`
	Encrypt *bool   `json:"encrypt"`
}

// Request is one article to process.
type Request struct {
	ArticleID string
	TicketID  string
	Group     string
	Raw       []byte // RFC 5322 message
	Options   Options
	// Attempt marks a deliberate re-run of an article (worker reprocess
	// --only-failed-with): it is part of the result's deduplication
	// identity, so a retry gets a new result instead of the stored one,
	// and it is echoed in the result. Empty for the first run.
	Attempt string
}

// Recipient reports, per recipient address, whether it could be encrypted to.
type Recipient struct {
	Address     string              `json:"address"`
	Status      string              `json:"status"` // found|missing|expired|not-yet-valid|untrusted|revoked
	Reason      *reason.Code        `json:"reason"`
	Comment     string              `json:"comment,omitempty"`
	Certificate *result.Certificate `json:"certificate,omitempty"`
	Key         *result.PGPKey      `json:"key,omitempty"`
	Bcc         bool                `json:"bcc,omitempty"`
}

// Copy is a separately secured message, e.g. one per Bcc recipient.
type Copy struct {
	Recipients []string `json:"recipients"`
	Raw        []byte   `json:"-"`
}

// Outcome is the result of handling one article.
type Outcome struct {
	Security result.Security
	// Raw is the processed message: decrypted/unwrapped (inbound) or
	// secured (outbound). Nil when nothing may be sent (outbound failure).
	Raw        []byte
	Recipients []Recipient
	Copies     []Copy
}

// Handler processes one article. A security outcome (cannot decrypt, bad
// signature) is part of the Outcome, not an error. An error means the
// article could not be processed: wrap ErrTransient for failures worth a
// retry (store or cache time-outs); everything else is permanent and should
// carry a reason code (reason.Malformed, reason.TooLarge ...).
type Handler interface {
	Handle(ctx context.Context, dir Direction, req *Request) (*Outcome, error)
}

// ErrTransient marks an error as worth retrying.
var ErrTransient = errors.New("transient failure")

// IsTransient reports whether err should be retried.
func IsTransient(err error) bool {
	return errors.Is(err, ErrTransient) || errors.Is(err, context.DeadlineExceeded)
}
