package mailgen

import (
	"bytes"
	"context"
	"testing"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/demopki"
	"github.com/secmail/secmail/handlers"
)

// TestSamplesGetTheirExpectedOutcome runs every kind through the helpdesk's
// own handler over the files it would import into its store.
func TestSamplesGetTheirExpectedOutcome(t *testing.T) {
	w, err := New(demopki.P256)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := w.OrgKeyring()
	if err != nil {
		t.Fatal(err)
	}
	h := handlers.New(kr, handlers.DefaultConfig())
	for _, kind := range Kinds {
		t.Run(kind, func(t *testing.T) {
			s, err := w.Make(kind, Options{BodySize: 2048, Attachment: 1024})
			if err != nil {
				t.Fatal(err)
			}
			out, err := h.Handle(context.Background(), s.Direction, &article.Request{Raw: s.Raw, Options: s.Options})
			if err != nil {
				t.Fatal(err)
			}
			if diff := s.Expect.Check(out.Security); diff != "" {
				t.Errorf("%s: %s", kind, diff)
			}
			if s.Direction == article.Inbound && s.Expect.Encryption == "ok" && !bytes.Contains(out.Raw, []byte("ticket #4711")) {
				t.Errorf("decrypted text missing")
			}
		})
	}
}
