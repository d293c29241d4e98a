// Package storetest starts real peers for the store, cache and service
// tests: an embedded NATS server with JetStream and a private redis-server
// on a free port, both stoppable mid-test.
package storetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
)

// FreePort returns a TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// NATS is an embedded nats-server with JetStream.
type NATS struct {
	t    testing.TB
	opts *server.Options
	Srv  *server.Server
	URL  string
}

// StartNATS starts a JetStream-enabled server on a random loopback port
// with its store in a temporary directory. With configFile the server
// configuration (users, permissions) is read from it first.
func StartNATS(t testing.TB, configFile string) *NATS {
	t.Helper()
	opts := &server.Options{}
	if configFile != "" {
		var err error
		opts, err = server.ProcessConfigFile(configFile)
		if err != nil {
			t.Fatalf("nats config %s: %v", configFile, err)
		}
	}
	opts.Host = "127.0.0.1"
	opts.Port = FreePort(t)
	opts.JetStream = true
	opts.StoreDir = t.TempDir()
	opts.NoSigs = true
	opts.NoLog = true
	opts.HTTPPort = 0
	opts.Cluster.Port = 0
	n := &NATS{t: t, opts: opts, URL: fmt.Sprintf("nats://127.0.0.1:%d", opts.Port)}
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

// Start (re)starts the server on the same port and store directory.
func (n *NATS) Start() {
	n.t.Helper()
	o := n.opts.Clone()
	srv, err := server.NewServer(o)
	if err != nil {
		n.t.Fatalf("nats server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		n.t.Fatal("nats server not ready")
	}
	n.Srv = srv
}

// Stop shuts the server down.
func (n *NATS) Stop() {
	if n.Srv != nil {
		n.Srv.Shutdown()
		n.Srv.WaitForShutdown()
		n.Srv = nil
	}
}

// Connect returns a client connection closed at the end of the test; it
// keeps reconnecting forever so server restarts are survivable.
func (n *NATS) Connect(opts ...nats.Option) *nats.Conn {
	n.t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(n.URL, opts...)
	if err != nil {
		n.t.Fatalf("nats connect: %v", err)
	}
	n.t.Cleanup(nc.Close)
	return nc
}

// Redis is a private redis-server process.
type Redis struct {
	t    testing.TB
	Port int
	Addr string
	bin  string
	cmd  *exec.Cmd
}

// RedisBinary is where the tests expect redis-server.
const RedisBinary = "/usr/bin/redis-server"

// StartRedis starts redis-server on a free port without persistence. It
// skips the test when the binary is missing, unless CI is set.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin := RedisBinary
	if _, err := os.Stat(bin); err != nil {
		if p, err2 := exec.LookPath("redis-server"); err2 == nil {
			bin = p
		} else if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not installed: %v", err)
		} else {
			t.Skipf("redis-server not installed: %v", err)
		}
	}
	port := FreePort(t)
	r := &Redis{t: t, Port: port, Addr: "127.0.0.1:" + strconv.Itoa(port)}
	r.bin = bin
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Start (re)starts the server on the same port.
func (r *Redis) Start() {
	r.t.Helper()
	cmd := exec.Command(r.bin, "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("redis-server: %v", err)
	}
	r.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server.
func (r *Redis) Stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// Client returns a client with short time-outs, closed at test end.
func (r *Redis) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr: r.Addr, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, MaxRetries: -1,
	})
	r.t.Cleanup(func() { _ = c.Close() })
	return c
}
