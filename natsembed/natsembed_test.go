package natsembed

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestStartPersistsJetStream(t *testing.T) {
	dir := t.TempDir()
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := Start(Options{Listen: "127.0.0.1:-1", DataDir: dir, Logger: log, MaxPayload: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(srv.URL(), "nats://127.0.0.1:") || strings.HasSuffix(srv.URL(), ":4222") {
		t.Errorf("URL %s", srv.URL())
	}
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	if nc.MaxPayload() != 64<<10 {
		t.Errorf("max payload %d", nc.MaxPayload())
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	srv.Shutdown()
	if !strings.Contains(logs.String(), "nats-server") {
		t.Error("server logs not routed to the slog logger")
	}

	// Restart on the same directory: the stream and its message survive.
	srv, err = Start(Options{Listen: "127.0.0.1:-1", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err = nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ = jetstream.New(nc)
	s, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil || string(m.Data) != "kept" {
		t.Errorf("message after restart: %v %q", err, m.Data)
	}
}

func TestStartErrors(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"no data dir", Options{Listen: "127.0.0.1:-1"}},
		{"no port", Options{Listen: "127.0.0.1", DataDir: t.TempDir()}},
		{"bad port", Options{Listen: "127.0.0.1:http", DataDir: t.TempDir()}},
		{"port out of range", Options{Listen: "127.0.0.1:70000", DataDir: t.TempDir()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if srv, err := Start(tc.opts); err == nil {
				srv.Shutdown()
				t.Error("started")
			}
		})
	}
}

// Two servers cannot share a port: the second start fails instead of
// hanging.
func TestStartPortInUse(t *testing.T) {
	a, err := Start(Options{Listen: "127.0.0.1:-1", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	addr := strings.TrimPrefix(a.URL(), "nats://")
	b, err := Start(Options{Listen: addr, DataDir: t.TempDir(), ReadyTimeout: 2 * time.Second})
	if err == nil {
		b.Shutdown()
		t.Fatal("second server on the same port started")
	}
}
