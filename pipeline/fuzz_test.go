package pipeline

import (
	"context"
	"testing"
)

// FuzzDecode: arbitrary input never panics, and anything accepted obeys
// the limits and identifier rules.
func FuzzDecode(f *testing.F) {
	f.Add(articleJSON(f, "4711", mail("4711", "plain")))
	f.Add([]byte(`{"schema":"secmail.article.v1","article_id":"x","raw":"AAAA","options":{"type":"PGP","sign":true,"encrypt":null}}`))
	f.Add([]byte(`{"schema":"secmail.article.v1","article_id":"\u0000","raw":"=="}`))
	f.Add([]byte(`{"article_id":1}`))
	p := &Pipeline{cfg: Config{MaxMessageBytes: 1 << 10}.Defaults()}
	f.Fuzz(func(t *testing.T, payload []byte) {
		a, req, err := parse(payload)
		if err != nil {
			if req != nil && req.ArticleID != "" && !ValidID(req.ArticleID) {
				t.Fatalf("invalid id %q kept for the error result", req.ArticleID)
			}
			return
		}
		if !ValidID(req.ArticleID) || (a.Raw == nil) == (a.RawRef == nil) {
			t.Fatalf("accepted %q", payload)
		}
		if a.RawRef != nil {
			return // needs a server; TestBadInput and TestLargeMailObjectStore cover it
		}
		raw, err := p.loadRaw(context.Background(), a)
		if err == nil && len(raw) > 1<<10 {
			t.Fatalf("accepted %d bytes over the limit", len(raw))
		}
	})
}
