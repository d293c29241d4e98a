// Package certsvc is the management API of the certificate store: a NATS
// micro service ("secmail-certs", discoverable with $SRV.PING/INFO/STATS)
// with request-reply endpoints under secmail.certs.>, and the
// `worker certs` command-line client that talks to it.
//
// Who may call it is decided by NATS subject permissions, not here: see
// deploy/nats/permissions.conf. The identity recorded in audit events is
// the one the client declares in the Secmail-Identity header.
package certsvc

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/secmail/secmail/reason"
	"github.com/secmail/secmail/store"
)

// Service identity and subjects.
const (
	ServiceName    = "secmail-certs"
	ServiceVersion = "1.0.0"
	SubjectPrefix  = "secmail.certs"
	// IdentityHeader carries the caller's declared identity for audit.
	IdentityHeader = "Secmail-Identity"
	// MoreHeader marks a list answer page that is followed by more pages
	// on the same reply subject; the last page lacks it. A plain request
	// (e.g. `nats req`) therefore sees the first ListPage entries.
	MoreHeader = "Secmail-More"
	// ListPage is the number of entries per list answer message, keeping
	// each well below the default 1 MiB max_payload.
	ListPage = 500
	// MaxFileSize bounds one uploaded file (the NATS max_payload, 1 MiB by
	// default, usually bounds the whole request first).
	MaxFileSize = 8 << 20
)

// File is one uploaded file; Data is base64 in JSON.
type File struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
}

// ImportRequest is the payload of secmail.certs.import.
type ImportRequest struct {
	Files       []File   `json:"files"`
	Passphrases []string `json:"passphrases,omitempty"`
	Partial     bool     `json:"partial,omitempty"`
}

// ListRequest is the payload of secmail.certs.list.
type ListRequest struct {
	Email         string `json:"email,omitempty"`
	Kind          string `json:"kind,omitempty"`
	ExpiringDays  int    `json:"expiring_days,omitempty"`
	HasPrivateKey bool   `json:"has_private_key,omitempty"`
}

// IDRequest names one certificate or OpenPGP key (fingerprint or unique
// prefix), for show and delete.
type IDRequest struct {
	ID string `json:"id"`
}

// ShowResponse is a certificate (with PEM) or an OpenPGP key (armored).
type ShowResponse struct {
	Certificate *store.CertInfo `json:"certificate,omitempty"`
	PGP         *store.PGPInfo  `json:"pgp_key,omitempty"`
	PEM         string          `json:"pem,omitempty"`
	Armor       string          `json:"armor,omitempty"`
}

// ExportRequest is the payload of secmail.certs.export.
type ExportRequest struct {
	ID         string `json:"id"`
	Format     string `json:"format,omitempty"` // pem (default) or der
	Chain      bool   `json:"chain,omitempty"`
	PrivateKey bool   `json:"private_key,omitempty"`
}

// ExportResponse carries the exported bytes (base64 in JSON).
type ExportResponse struct {
	Data      []byte `json:"data"`
	Extension string `json:"extension"`
}

// AttachRequest is the payload of secmail.certs.attach: the certificate
// (fingerprint or unique prefix) whose private key lives only in a
// PKCS#11 token, the token's label and the key's label or hex CKA_ID.
// The answer is a store.Attachment. The service cannot see the token;
// the worker checks the key against the certificate when it uses it.
type AttachRequest struct {
	ID    string `json:"id"`
	Token string `json:"token"`
	Key   string `json:"key"`
}

// GroupRequest is the payload of secmail.certs.group.set and .group.get.
type GroupRequest struct {
	Group    string              `json:"group"`
	Defaults store.GroupDefaults `json:"defaults"`
}

// GroupResponse answers group.get (and echoes group.set).
type GroupResponse struct {
	Group    string              `json:"group"`
	Defaults store.GroupDefaults `json:"defaults"`
	Found    bool                `json:"found"`
}

// Start registers the service on nc. Stop it with the returned
// micro.Service's Stop.
func Start(ctx context.Context, nc *nats.Conn, st *store.Store, logger *slog.Logger) (micro.Service, error) {
	if logger == nil {
		logger = slog.Default()
	}
	h := &handler{st: st, log: logger}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        ServiceName,
		Version:     ServiceVersion,
		Description: "secmail certificate and key store management",
		QueueGroup:  ServiceName,
	})
	if err != nil {
		return nil, err
	}
	g := svc.AddGroup(SubjectPrefix)
	eps := []struct {
		name, subject string
		fn            func(context.Context, []byte) (any, error)
	}{
		{"import", "import", h.imp},
		{"list", "list", h.list},
		{"show", "show", h.show},
		{"export", "export", h.export},
		{"delete", "delete", h.delete},
		{"attach", "attach", h.attach},
		{"crl_import", "crl.import", h.crlImport},
		{"group_set", "group.set", h.groupSet},
		{"group_get", "group.get", h.groupGet},
	}
	for _, ep := range eps {
		fn := ep.fn
		hf := func(ctx context.Context, req micro.Request) { h.serve(ctx, req, fn) }
		if ep.name == "list" {
			hf = h.listPaged
		}
		err := g.AddEndpoint(ep.name, micro.ContextHandler(ctx, hf), micro.WithEndpointSubject(ep.subject))
		if err != nil {
			_ = svc.Stop()
			return nil, err
		}
	}
	// Make sure the server has the subscriptions before callers are told
	// the service is up, or a first request may find no responders.
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		_ = svc.Stop()
		return nil, err
	}
	return svc, nil
}

type handler struct {
	st  *store.Store
	log *slog.Logger
}

// requestTimeout bounds one management operation (a bulk import).
const requestTimeout = 2 * time.Minute

func (h *handler) serve(ctx context.Context, req micro.Request, fn func(context.Context, []byte) (any, error)) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	id := strings.TrimSpace(req.Headers().Get(IdentityHeader))
	if id == "" {
		id = "anonymous"
	}
	ctx = store.WithIdentity(ctx, id)
	resp, err := fn(ctx, req.Data())
	if err != nil {
		code := "500"
		var bad *badRequest
		switch {
		case errors.As(err, &bad):
			code = "400"
		case store.IsNotFound(err):
			code = "404"
		case errors.Is(err, store.ErrKeyInStore), errors.Is(err, store.ErrKeyInToken):
			code = "409"
		case errors.Is(err, store.ErrNoMasterKey), errors.Is(err, store.ErrWrongMasterKey):
			code = "503"
		}
		h.log.Warn("certsvc: request failed", "subject", req.Subject(), "identity", id, "code", code, "err", err)
		_ = req.Error(code, err.Error(), nil)
		return
	}
	if err := req.RespondJSON(resp); err != nil {
		h.log.Error("certsvc: response not sent", "subject", req.Subject(), "err", err)
	}
}

type badRequest struct{ msg string }

func (b *badRequest) Error() string { return b.msg }

func decode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return &badRequest{"invalid request: " + err.Error()}
	}
	return nil
}

func (h *handler) imp(ctx context.Context, data []byte) (any, error) {
	var r ImportRequest
	if err := decode(data, &r); err != nil {
		return nil, err
	}
	if len(r.Files) == 0 {
		return nil, &badRequest{"no files"}
	}
	in := make([]store.Input, len(r.Files))
	for i, f := range r.Files {
		in[i] = store.Input{Name: f.Name, Data: f.Data}
	}
	return h.st.Import(ctx, in, store.ImportOptions{Passphrases: r.Passphrases, Partial: r.Partial, MaxSize: MaxFileSize})
}

func (h *handler) list(ctx context.Context, data []byte) (any, error) {
	var r ListRequest
	if len(data) > 0 {
		if err := decode(data, &r); err != nil {
			return nil, err
		}
	}
	l, err := h.st.List(ctx, store.Filter{Email: r.Email, Kind: r.Kind, ExpiringWithin: time.Duration(r.ExpiringDays) * 24 * time.Hour, HasPrivateKey: r.HasPrivateKey})
	if err != nil && strings.Contains(err.Error(), "unknown kind") {
		return nil, &badRequest{err.Error()}
	}
	return l, err
}

// listPaged answers a list request in pages of ListPage entries.
func (h *handler) listPaged(ctx context.Context, req micro.Request) {
	h.serve(ctx, req, func(ctx context.Context, data []byte) (any, error) {
		v, err := h.list(ctx, data)
		if err != nil {
			return nil, err
		}
		l := v.(*store.Listing)
		// Send all but the last page here; serve sends the last.
		for len(l.Certs)+len(l.PGP) > ListPage {
			page := &store.Listing{Certs: []store.CertInfo{}, PGP: []store.PGPInfo{}}
			nc := min(ListPage, len(l.Certs))
			page.Certs, l.Certs = l.Certs[:nc], l.Certs[nc:]
			np := min(ListPage-nc, len(l.PGP))
			page.PGP, l.PGP = l.PGP[:np], l.PGP[np:]
			b, err := json.Marshal(page)
			if err != nil {
				return nil, err
			}
			if err := req.Respond(b, micro.WithHeaders(micro.Headers{MoreHeader: {"true"}})); err != nil {
				return nil, err
			}
		}
		return l, nil
	})
}

func (h *handler) show(ctx context.Context, data []byte) (any, error) {
	var r IDRequest
	if err := decode(data, &r); err != nil {
		return nil, err
	}
	e, err := h.st.Get(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	return showOf(e)
}

func showOf(e *store.Entry) (*ShowResponse, error) {
	if e.Cert != nil {
		return &ShowResponse{Certificate: &e.Cert.CertInfo, PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.Cert.DER}))}, nil
	}
	a, err := e.PGP.Armor()
	if err != nil {
		return nil, err
	}
	return &ShowResponse{PGP: &e.PGP.PGPInfo, Armor: string(a)}, nil
}

func (h *handler) export(ctx context.Context, data []byte) (any, error) {
	var r ExportRequest
	if err := decode(data, &r); err != nil {
		return nil, err
	}
	b, ext, err := h.st.Export(ctx, r.ID, store.ExportOptions{Format: r.Format, Chain: r.Chain, PrivateKey: r.PrivateKey})
	if err != nil {
		return nil, err
	}
	return &ExportResponse{Data: b, Extension: ext}, nil
}

func (h *handler) delete(ctx context.Context, data []byte) (any, error) {
	var r IDRequest
	if err := decode(data, &r); err != nil {
		return nil, err
	}
	e, err := h.st.Delete(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	return showOf(e)
}

func (h *handler) attach(ctx context.Context, data []byte) (any, error) {
	var r AttachRequest
	if err := decode(data, &r); err != nil {
		return nil, err
	}
	if strings.TrimSpace(r.ID) == "" {
		return nil, &badRequest{"no certificate id"}
	}
	a, err := h.st.AttachTokenKey(ctx, r.ID, store.TokenRef{Token: r.Token, Key: r.Key})
	if errors.Is(err, store.ErrInvalidTokenRef) {
		return nil, &badRequest{err.Error()}
	}
	return a, err
}

func (h *handler) crlImport(ctx context.Context, data []byte) (any, error) {
	var f File
	if err := decode(data, &f); err != nil {
		return nil, err
	}
	if len(f.Data) > MaxFileSize {
		return nil, &badRequest{reason.New(reason.TooLarge, "%s: too large", f.Name).Error()}
	}
	return h.st.ImportCRL(ctx, f.Name, f.Data)
}

func (h *handler) groupSet(ctx context.Context, data []byte) (any, error) {
	var r GroupRequest
	if err := decode(data, &r); err != nil {
		return nil, err
	}
	if err := h.st.SetGroupDefaults(ctx, r.Group, r.Defaults); err != nil {
		return nil, &badRequest{err.Error()}
	}
	d, found, err := h.st.GroupDefaults(ctx, r.Group)
	return &GroupResponse{Group: r.Group, Defaults: d, Found: found}, err
}

func (h *handler) groupGet(ctx context.Context, data []byte) (any, error) {
	var r GroupRequest
	if err := decode(data, &r); err != nil {
		return nil, err
	}
	d, found, err := h.st.GroupDefaults(ctx, r.Group)
	return &GroupResponse{Group: r.Group, Defaults: d, Found: found}, err
}
