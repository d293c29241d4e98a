package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ReadyFunc runs the readiness checks: a name per check (e.g. "nats",
// "consumers", "store", "master_key") and nil when it passes.
type ReadyFunc func(ctx context.Context) map[string]error

// Handler serves /metrics, /healthz and /readyz. A nil ready is always
// ready.
func Handler(m *Metrics, ready ReadyFunc) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		var checks map[string]error
		if ready != nil {
			checks = ready(ctx)
		}
		body := readyBody{Status: "ready", Version: m.version, Instance: m.instance, KeyBackend: m.keyBackend, Checks: map[string]string{}}
		names := make([]string, 0, len(checks))
		for name := range checks {
			names = append(names, name)
		}
		sort.Strings(names)
		code := http.StatusOK
		for _, name := range names {
			if err := checks[name]; err != nil {
				body.Checks[name] = err.Error()
				body.Status = "not ready"
				code = http.StatusServiceUnavailable
			} else {
				body.Checks[name] = "ok"
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	})
	return mux
}

type readyBody struct {
	Status   string `json:"status"` // "ready" | "not ready"
	Version  string `json:"version"`
	Instance string `json:"instance"`
	// KeyBackend is where private-key operations run (go, openssl, pkcs11).
	KeyBackend string            `json:"key_backend"`
	Checks     map[string]string `json:"checks"` // name -> "ok" or the error
}

// Serve listens on addr and serves Handler until ctx is cancelled, then
// shuts down gracefully. It returns nil after a cancellation.
func Serve(ctx context.Context, addr string, m *Metrics, ready func(ctx context.Context) map[string]error) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ServeListener(ctx, ln, m, ready)
}

// ServeListener is Serve on an existing listener (e.g. port 0 in tests).
func ServeListener(ctx context.Context, ln net.Listener, m *Metrics, ready func(ctx context.Context) map[string]error) error {
	srv := &http.Server{
		Handler:           Handler(m, ready),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
