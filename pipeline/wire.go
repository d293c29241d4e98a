package pipeline

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/result"
)

// Schema identifiers of the wire messages (schemas/article.v1.schema.json
// and schemas/result.v1.schema.json).
const (
	SchemaArticleV1 = "secmail.article.v1"
	SchemaResultV1  = "secmail.result.v1"
)

// Result statuses.
const (
	StatusDone  = "done"  // processed; the security block says how it went
	StatusError = "error" // the article could not be processed at all
)

// Error codes of a result's error block and of the Secmail-Error-Code
// dead-letter header. Content problems use the reason codes (malformed,
// too-large, too-complex ...); the others are the pipeline's own.
const (
	CodeUnknownSchema    = "unknown-schema"    // schema is not secmail.article.v1
	CodeInvalidRequest   = "invalid-request"   // valid JSON, but a field is missing or wrong
	CodeMissingObject    = "missing-object"    // raw_ref names no object
	CodeHandlerPanic     = "handler-panic"     // the handler crashed on this article
	CodeRetriesExhausted = "retries-exhausted" // still failing transiently at the last delivery
	CodeInternal         = "internal"          // a handler error without a reason code
)

// Limits on identifiers: they end up in NATS headers and logs.
const MaxIDLen = 256

// ObjectRef points into a JetStream Object Store (claim check).
type ObjectRef struct {
	Bucket string `json:"bucket"`
	Name   string `json:"name"`
}

// Article is the input message on <prefix>.inbound / <prefix>.outbound.
// Exactly one of Raw (base64 of the RFC 5322 message) and RawRef is set.
type Article struct {
	Schema    string `json:"schema"`
	ArticleID string `json:"article_id"`
	TicketID  string `json:"ticket_id,omitempty"`
	// Attempt distinguishes a deliberate re-run from a redelivery (see
	// article.Request.Attempt); it changes the payload and so the result's
	// Nats-Msg-Id.
	Attempt string          `json:"attempt,omitempty"`
	Group   string          `json:"group,omitempty"`
	Raw     *string         `json:"raw,omitempty"`
	RawRef  *ObjectRef      `json:"raw_ref,omitempty"`
	Options article.Options `json:"options"`
}

// Result is the message on <prefix>.<direction>.result.
type Result struct {
	Schema    string            `json:"schema"`
	ArticleID string            `json:"article_id"`
	TicketID  string            `json:"ticket_id"`
	Attempt   string            `json:"attempt,omitempty"`
	Direction article.Direction `json:"direction"`
	Status    string            `json:"status"`
	// Security is null for status "error".
	Security *result.Security `json:"security"`
	// Raw or RawRef carries the processed message; neither when there is
	// none (an error, or outbound mail that may not be sent).
	Raw    []byte     `json:"raw,omitempty"`
	RawRef *ObjectRef `json:"raw_ref,omitempty"`
	// Recipients and Copies are outbound only.
	Recipients  []article.Recipient `json:"recipients,omitempty"`
	Copies      []ResultCopy        `json:"copies,omitempty"`
	Error       *ErrorInfo          `json:"error"`
	ProcessedAt time.Time           `json:"processed_at"`
	Worker      WorkerInfo          `json:"worker"`
}

// ResultCopy is a separately secured copy (one per Bcc recipient).
type ResultCopy struct {
	Recipients []string   `json:"recipients"`
	Raw        []byte     `json:"raw,omitempty"`
	RawRef     *ObjectRef `json:"raw_ref,omitempty"`
}

// ErrorInfo says why an article could not be processed.
type ErrorInfo struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WorkerInfo identifies the worker that produced a result.
type WorkerInfo struct {
	Version  string `json:"version"`
	Instance string `json:"instance"`
}

// Submit publishes req for processing in direction dir and waits for the
// stream's acknowledgement. Mail too large for the server's max payload
// goes to the object store (cfg.ObjectStoreBucket, which must exist) and
// the article carries a raw_ref (claim check). It is what `worker demo`,
// `worker reprocess` and tests use; helpdesks do the same in their
// language.
func Submit(ctx context.Context, js jetstream.JetStream, cfg Config, dir article.Direction, req *article.Request) (*jetstream.PubAck, error) {
	cfg = cfg.Defaults()
	a := Article{
		Schema:    SchemaArticleV1,
		ArticleID: req.ArticleID,
		TicketID:  req.TicketID,
		Attempt:   req.Attempt,
		Group:     req.Group,
		Options:   req.Options,
	}
	limit := int(js.Conn().MaxPayload()) - envelopeHeadroom
	if base64.StdEncoding.EncodedLen(len(req.Raw)) > limit {
		obs, err := js.ObjectStore(ctx, cfg.ObjectStoreBucket)
		if err != nil {
			return nil, fmt.Errorf("pipeline: submit %s: object store %s: %w", req.ArticleID, cfg.ObjectStoreBucket, err)
		}
		name := "articles/" + string(dir) + "/" + nuid.Next()
		if err := putObject(ctx, obs, name, req.Raw, js.Conn().MaxPayload()); err != nil {
			return nil, fmt.Errorf("pipeline: submit %s: put %s: %w", req.ArticleID, name, err)
		}
		a.RawRef = &ObjectRef{Bucket: cfg.ObjectStoreBucket, Name: name}
	} else {
		s := base64.StdEncoding.EncodeToString(req.Raw)
		a.Raw = &s
	}
	data, err := json.Marshal(&a)
	if err != nil {
		return nil, fmt.Errorf("pipeline: submit %s: %w", req.ArticleID, err)
	}
	ack, err := js.Publish(ctx, cfg.InputSubject(dir), data)
	if err != nil {
		return nil, fmt.Errorf("pipeline: submit %s: %w", req.ArticleID, err)
	}
	return ack, nil
}

// putObject stores data in chunks that fit the server's max payload (the
// object store's default 128 KiB chunks do not when max_payload is lower).
func putObject(ctx context.Context, obs jetstream.ObjectStore, name string, data []byte, maxPayload int64) error {
	chunk := uint32(128 << 10)
	if limit := maxPayload - 1024; limit < int64(chunk) {
		chunk = uint32(max(limit, 1024))
	}
	_, err := obs.Put(ctx, jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: chunk}}, bytes.NewReader(data))
	return err
}

// envelopeHeadroom is what the JSON envelope and headers may add to a
// message body before the server's max payload is reached.
const envelopeHeadroom = 8 << 10

// Load returns inline, or the object ref points to when ref is set: the
// raw message of a Result or ResultCopy.
func Load(ctx context.Context, js jetstream.JetStream, inline []byte, ref *ObjectRef) ([]byte, error) {
	if ref == nil {
		return inline, nil
	}
	obs, err := js.ObjectStore(ctx, ref.Bucket)
	if err != nil {
		return nil, fmt.Errorf("pipeline: object store %s: %w", ref.Bucket, err)
	}
	b, err := obs.GetBytes(ctx, ref.Name)
	if err != nil {
		return nil, fmt.Errorf("pipeline: object %s/%s: %w", ref.Bucket, ref.Name, err)
	}
	return b, nil
}

// isMissingObject reports whether err means the referenced object or
// bucket does not exist (permanent), as opposed to a time-out (transient).
func isMissingObject(err error) bool {
	return errors.Is(err, jetstream.ErrObjectNotFound) ||
		errors.Is(err, jetstream.ErrBucketNotFound) ||
		errors.Is(err, jetstream.ErrInvalidBucketName) ||
		errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, jetstream.ErrBadObjectMeta) ||
		errors.Is(err, jetstream.ErrNameRequired)
}
