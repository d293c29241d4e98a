package store_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/secmail/secmail/store/storetest"
)

func mkCert(t testing.TB, fx *storetest.Fixtures, tpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, fx.CA, &k.PublicKey, fx.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// auditEvents subscribes to every audit event of the store's connection;
// the subscription is in place when it returns.
func (e *env) auditEvents(t testing.TB) <-chan *nats.Msg {
	t.Helper()
	events := make(chan *nats.Msg, 64)
	sub, err := e.nc.ChanSubscribe("secmail.audit.>", events)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return events
}
