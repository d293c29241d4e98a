package handlers

import (
	"context"
	"strings"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/reason"
	"github.com/secmail/secmail/result"
)

// PreflightRequest asks what an outbound reply could do. It is the JSON of
// `worker preflight` and of the secmail.preflight NATS endpoint.
type PreflightRequest struct {
	From  string   `json:"from"`
	To    []string `json:"to"`
	Cc    []string `json:"cc"`
	Bcc   []string `json:"bcc"`
	Group string   `json:"group"`
	Type  *string  `json:"type,omitempty"`
}

// PreflightCheck says whether signing is possible and on by default.
type PreflightCheck struct {
	Possible bool         `json:"possible"`
	Default  bool         `json:"default"`
	Reason   *reason.Code `json:"reason"`
	Comment  string       `json:"comment"`
}

// PreflightEncryption says whether encryption is possible, per recipient.
type PreflightEncryption struct {
	Possible   bool                `json:"possible"`
	Default    bool                `json:"default"`
	Reason     *reason.Code        `json:"reason"`
	Recipients []article.Recipient `json:"recipients"`
	Comment    string              `json:"comment"`
}

// PreflightType is the answer for one security type.
type PreflightType struct {
	Sign       PreflightCheck      `json:"sign"`
	Encryption PreflightEncryption `json:"encryption"`
}

// PreflightResponse answers per type, and which type a reply would use.
type PreflightResponse struct {
	Type  *result.Type   `json:"type"`
	SMIME *PreflightType `json:"smime,omitempty"`
	PGP   *PreflightType `json:"pgp,omitempty"`
}

// Preflight tells the UI in advance what signing and encryption can do for
// a reply, and why not, so it can enable or disable its buttons.
func (h *Handler) Preflight(ctx context.Context, req PreflightRequest) (*PreflightResponse, error) {
	lower := func(in []string) []string {
		var out []string
		for _, s := range in {
			for _, part := range strings.Split(s, ",") {
				if p := strings.ToLower(strings.TrimSpace(part)); p != "" {
					out = append(out, p)
				}
			}
		}
		return out
	}
	a := addresses{from: strings.ToLower(strings.TrimSpace(req.From)), to: lower(req.To), cc: lower(req.Cc), bcc: lower(req.Bcc)}
	seen := map[string]bool{}
	for _, s := range append(append([]string{}, a.to...), a.cc...) {
		if !seen[s] {
			seen[s] = true
			a.encryptTo = append(a.encryptTo, s)
		}
	}
	if h.cfg.Outbound.EncryptToSelf && a.from != "" && !seen[a.from] {
		a.encryptTo = append(a.encryptTo, a.from)
	}
	opts := article.Options{Type: req.Type}
	sign, enc, typ, err := h.wishes(ctx, req.Group, opts)
	if err != nil {
		return nil, err
	}
	ob := &outbound{h: h, ctx: ctx, now: h.cfg.Now(), lang: h.cfg.Lang, addrs: a, sec: result.None()}
	types := []result.Type{result.SMIME, result.PGP}
	if typ != "" {
		types = []result.Type{typ}
	}
	resp := &PreflightResponse{}
	for _, t := range types {
		p, err := ob.plan(t)
		if err != nil {
			return nil, err
		}
		pt := ob.preflightType(p, sign, enc)
		if t == result.SMIME {
			resp.SMIME = pt
		} else {
			resp.PGP = pt
		}
	}
	chosen, err := ob.choosePlan(sign, enc, typ)
	if err != nil {
		return nil, err
	}
	if chosen.signErr == "" || chosen.encErr == "" {
		t := chosen.typ
		resp.Type = &t
	}
	return resp, nil
}

func (ob *outbound) preflightType(p *plan, sign, enc mode) *PreflightType {
	lang := ob.lang
	pt := &PreflightType{}
	if p.signErr == "" {
		pt.Sign = PreflightCheck{Possible: true, Default: sign != modeOff,
			Comment: reason.Text(lang, reason.MsgSignKeyFound, ob.addrs.from)}
	} else {
		c := p.signErr
		pt.Sign = PreflightCheck{Reason: &c, Comment: reason.Comment(lang, c)}
		if c == reason.NoPrivateKey {
			pt.Sign.Comment = reason.Text(lang, reason.MsgSignKeyNotFound, ob.addrs.from)
		}
	}
	e := PreflightEncryption{Recipients: []article.Recipient{}}
	for _, rc := range append(append([]recipientChoice{}, p.recipients...), p.bcc...) {
		e.Recipients = append(e.Recipients, rc.rcpt)
	}
	switch {
	case len(ob.addrs.to)+len(ob.addrs.cc)+len(ob.addrs.bcc) == 0:
		c := missingCode(p.typ)
		e.Reason, e.Comment = &c, reason.Text(lang, reason.MsgNoRecipient)
	case p.encErr != "":
		c := p.encErr
		e.Reason, e.Comment = &c, ob.missingComment(p)
	default:
		e.Possible, e.Default = true, enc != modeOff
		var names []string
		for _, rc := range e.Recipients {
			names = append(names, rc.Address)
		}
		msg := reason.MsgCertsFound
		if len(names) == 1 {
			msg = reason.MsgCertFound
		}
		e.Comment = reason.Text(lang, msg, strings.Join(names, ", "))
	}
	pt.Encryption = e
	return pt
}
