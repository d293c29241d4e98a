package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/reason"
)

// Preflight service identity on the wire.
const (
	PreflightService = "secmail-preflight"
	PreflightSubject = "secmail.preflight"
	// preflightTimeout bounds one request; the requester's own time-out is
	// usually shorter.
	preflightTimeout = 30 * time.Second
)

// Error codes of preflight error responses (Nats-Service-Error-Code).
// Errors carrying a reason code use that code instead.
const (
	PreflightCodeUnavailable = "unavailable" // transient: retry later
	PreflightCodeInternal    = "internal"
)

// ServePreflight registers the request-reply preflight service on
// secmail.preflight (nats.go micro, so `nats micro` lists and monitors it).
// fn receives the request JSON and returns the response to encode as JSON;
// its error becomes a micro error response whose code is the error's
// reason code, "unavailable" for transient errors, or "internal". Stop the
// returned service at shutdown.
func ServePreflight(nc *nats.Conn, fn func(ctx context.Context, req json.RawMessage) (any, error)) (micro.Service, error) {
	if nc == nil || fn == nil {
		return nil, errors.New("pipeline: preflight needs a connection and a function")
	}
	h := micro.HandlerFunc(func(r micro.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), preflightTimeout)
		defer cancel()
		resp, err := callPreflight(ctx, fn, r.Data())
		if err != nil {
			code := PreflightCodeInternal
			switch c := reason.CodeOf(err); {
			case c.Valid():
				code = string(c)
			case article.IsTransient(err):
				code = PreflightCodeUnavailable
			}
			_ = r.Error(code, headerSafe(err.Error()), nil)
			return
		}
		if err := r.RespondJSON(resp); err != nil {
			_ = r.Error(PreflightCodeInternal, "could not encode the response", nil)
		}
	})
	svc, err := micro.AddService(nc, micro.Config{
		Name:        PreflightService,
		Version:     "1.0.0",
		Description: "secmail outbound preflight: can this article be signed and encrypted?",
		Endpoint: &micro.EndpointConfig{
			Subject: PreflightSubject,
			Handler: h,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("pipeline: preflight service: %w", err)
	}
	return svc, nil
}

func callPreflight(ctx context.Context, fn func(context.Context, json.RawMessage) (any, error), data []byte) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, errors.New("preflight crashed on this request")
		}
	}()
	if !json.Valid(data) {
		return nil, reason.New(reason.Malformed, "request is not valid JSON")
	}
	return fn(ctx, json.RawMessage(data))
}
