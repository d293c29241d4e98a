package main

import (
	"flag"
	"os"

	"github.com/secmail/secmail/keybackend"
)

// backendFlags choose where private-key operations run.
type backendFlags struct {
	name         string
	pkcs11Module string
	pkcs11Token  string
	pkcs11PIN    string
}

func (b *backendFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.name, "key-backend", envOr("SECMAIL_KEY_BACKEND", "go"), "private-key backend: go, openssl (build tag openssl) or pkcs11 (build tag pkcs11)")
	fs.StringVar(&b.pkcs11Module, "pkcs11-module", os.Getenv("SECMAIL_PKCS11_MODULE"), "PKCS#11 module (.so) for --key-backend pkcs11")
	fs.StringVar(&b.pkcs11Token, "pkcs11-token", os.Getenv("SECMAIL_PKCS11_TOKEN"), "PKCS#11 token label")
	// The PIN comes from the environment only, so it never shows in ps.
	b.pkcs11PIN = os.Getenv("SECMAIL_PKCS11_PIN")
}

func (b *backendFlags) open() (keybackend.Backend, error) {
	return keybackend.Open(b.name, keybackend.Config{PKCS11: keybackend.PKCS11Config{
		Module: b.pkcs11Module, TokenLabel: b.pkcs11Token, PIN: b.pkcs11PIN,
	}})
}
