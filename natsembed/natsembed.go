// Package natsembed runs a NATS server with JetStream inside the worker
// process, so `worker run` and `worker demo` work without installing
// anything, and tests talk to a real server instead of a mock.
package natsembed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// DefaultListen is the embedded server's default address. It is loopback
// only, and deliberately not 4222, so it does not clash with a standalone
// nats-server on the same machine.
const DefaultListen = "127.0.0.1:4322"

// DefaultURL is where clients (worker certs, worker reprocess) find the
// embedded default of `worker run`.
const DefaultURL = "nats://" + DefaultListen

// Options configure the embedded server.
type Options struct {
	// Listen is host:port; port -1 picks a random free port (tests).
	// Empty means DefaultListen.
	Listen string
	// DataDir holds JetStream's file storage; required, so an embedded
	// deployment keeps its streams, keys and results across restarts.
	DataDir string
	// Logger receives the server's log lines; nil discards them.
	Logger *slog.Logger
	// MaxPayload overrides the server's max_payload in bytes (default
	// 1 MiB). Tests lower it to exercise the object-store claim check.
	MaxPayload int32
	// ServerName names the server in JetStream meta data; defaults to
	// "secmail-embedded".
	ServerName string
	// ReadyTimeout bounds the wait for the server to accept clients and
	// for JetStream to be up; default 10s.
	ReadyTimeout time.Duration
}

// Server is a running embedded NATS server.
type Server struct {
	ns *server.Server
}

// Start starts the server and waits until it accepts connections with
// JetStream enabled.
func Start(opts Options) (*Server, error) {
	if opts.DataDir == "" {
		return nil, errors.New("natsembed: DataDir is required")
	}
	listen := opts.Listen
	if listen == "" {
		listen = DefaultListen
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("natsembed: listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < -1 || port > 65535 {
		return nil, fmt.Errorf("natsembed: listen port %q is not a port number", portStr)
	}
	name := opts.ServerName
	if name == "" {
		name = "secmail-embedded"
	}
	sopts := &server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   opts.DataDir,
		MaxPayload: opts.MaxPayload,
		// The worker owns signal handling (graceful drain); the library
		// must not install its own handlers.
		NoSigs: true,
		NoLog:  opts.Logger == nil,
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	if opts.Logger != nil {
		ns.SetLoggerV2(slogAdapter{opts.Logger}, false, false, false)
	}
	ns.Start()
	wait := opts.ReadyTimeout
	if wait <= 0 {
		wait = 10 * time.Second
	}
	if !ns.ReadyForConnections(wait) {
		ns.Shutdown()
		return nil, fmt.Errorf("natsembed: server on %s not ready after %s", listen, wait)
	}
	deadline := time.Now().Add(wait)
	for !ns.JetStreamEnabled() {
		if time.Now().After(deadline) {
			ns.Shutdown()
			return nil, fmt.Errorf("natsembed: JetStream not enabled after %s", wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &Server{ns: ns}, nil
}

// URL is the client URL, e.g. nats://127.0.0.1:4322.
func (s *Server) URL() string { return s.ns.ClientURL() }

// InProcess is the nats.Connect option for a connection from the same
// process: no TCP, no syscalls per message. It is what the worker uses on
// the embedded default (measured: the pipeline's share of CPU per article
// drops by about a fifth); other programs connect through URL.
func (s *Server) InProcess() nats.Option { return nats.InProcessServer(s.ns) }

// Shutdown stops the server and waits until it has stopped.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// NATS exposes the underlying server, e.g. for monitoring in tests.
func (s *Server) NATS() *server.Server { return s.ns }

// slogAdapter implements server.Logger on top of slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) logf(level slog.Level, format string, v ...any) {
	a.l.Log(context.Background(), level, fmt.Sprintf(format, v...), "component", "nats-server")
}

func (a slogAdapter) Noticef(format string, v ...any) { a.logf(slog.LevelInfo, format, v...) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.logf(slog.LevelWarn, format, v...) }
func (a slogAdapter) Fatalf(format string, v ...any)  { a.logf(slog.LevelError, format, v...) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.logf(slog.LevelError, format, v...) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.logf(slog.LevelDebug, format, v...) }
func (a slogAdapter) Tracef(format string, v ...any)  { a.logf(slog.LevelDebug-4, format, v...) }
