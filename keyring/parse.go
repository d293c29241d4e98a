package keyring

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/reason"
)

// DefaultMaxSize is the largest file Parse accepts when Options.MaxSize is 0.
const DefaultMaxSize = 16 << 20

// maxPEMBlocks bounds the work one file can cause; a real bundle has at
// most a few hundred certificates.
const maxPEMBlocks = 100000

// Options control how Parse treats protected keys and large input.
type Options struct {
	// Passphrases are each tried on every protected key, like RT's
	// fallback passphrase.
	Passphrases []string
	// RequireUnlocked turns a protected key that no passphrase opens into
	// an error (reason.WrongPassphrase) instead of a Locked key. The store
	// import uses it; the offline commands keep locked keys so decryption
	// can report wrong-passphrase.
	RequireUnlocked bool
	// MaxSize is the largest accepted file; 0 means DefaultMaxSize.
	MaxSize int64
	// LoadKey, when set, hands every unlocked private key to a key
	// backend once, after matching (LoadDir only): keybackend.Backend.Load.
	LoadKey func(keys.PrivateKey) (keys.PrivateKey, error)
}

func (o Options) maxSize() int64 {
	if o.MaxSize > 0 {
		return o.MaxSize
	}
	return DefaultMaxSize
}

// parser carries the state of one Parse call.
type parser struct {
	name string
	opts Options
	b    *Bundle
}

// Parse detects the format of one file and returns everything in it: PEM
// with any mix of blocks (certificates, private keys in every common
// encoding, encrypted PKCS#8, legacy encrypted PEM, PKCS#7, CRLs, armored
// OpenPGP keys), DER certificates, CRLs, private keys and PKCS#7 bundles,
// PKCS#12 files and binary OpenPGP keys.
//
// Errors are *reason.Error values whose detail names the file (and the PEM
// block): reason.Malformed, reason.WrongPassphrase (only with
// RequireUnlocked), reason.TooLarge, reason.UnsupportedAlgorithm,
// reason.TooComplex (absurd key-derivation parameters).
func Parse(name string, data []byte, opts Options) (b *Bundle, err error) {
	if int64(len(data)) > opts.maxSize() {
		return nil, reason.New(reason.TooLarge, "%s: %d bytes exceeds the limit of %d bytes", name, len(data), opts.maxSize())
	}
	// Third-party parsers (PKCS#12, OpenPGP) have panicked on hostile
	// input before; a panic here is a malformed file, never a crash.
	defer func() {
		if r := recover(); r != nil {
			b = nil
			err = reason.New(reason.Malformed, "%s: parser failure: %v", name, r)
		}
	}()
	p := &parser{name: name, opts: opts, b: &Bundle{}}
	// Windows editors prefix a UTF-8 byte order mark.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	// DER starts with a SEQUENCE (0x30) and binary OpenPGP with a byte
	// >= 0x80; either may contain "-----BEGIN " by chance (in a UID, say).
	if len(data) > 0 && data[0] != 0x30 && data[0] < 0x80 && bytes.Contains(data, []byte("-----BEGIN ")) {
		err = p.parseText(data)
	} else {
		err = p.parseBinary(data)
	}
	if err != nil {
		return nil, err
	}
	if len(p.b.Certs) == 0 && len(p.b.Keys) == 0 && len(p.b.PGP) == 0 && len(p.b.CRLs) == 0 {
		return nil, reason.New(reason.Malformed, "%s: no certificate, key or CRL found", name)
	}
	p.pairLocked()
	Match(p.b)
	return p.b, nil
}

// errf builds a reason error whose detail names the file and the place.
func (p *parser) errf(code reason.Code, err error, where string, format string, args ...any) error {
	d := p.name
	if where != "" {
		d += ": " + where
	}
	if format != "" {
		d += ": " + fmt.Sprintf(format, args...)
	}
	var re *reason.Error
	if errors.As(err, &re) && re.Code == code {
		// Keep the inner detail but do not repeat the code in the chain.
		if re.Detail != "" {
			d += ": " + re.Detail
		}
		return &reason.Error{Code: code, Detail: d, Err: re.Err}
	}
	return &reason.Error{Code: code, Detail: d, Err: err}
}

// parseText walks every "-----BEGIN X-----" block of a text file in order.
func (p *parser) parseText(data []byte) error {
	rest := data
	for i := 1; ; i++ {
		idx := bytes.Index(rest, []byte("-----BEGIN "))
		if idx < 0 {
			return nil
		}
		if i > maxPEMBlocks {
			return p.errf(reason.TooComplex, nil, "", "more than %d PEM blocks", maxPEMBlocks)
		}
		rest = rest[idx:]
		typ := blockType(rest)
		where := fmt.Sprintf("PEM block %d (%s)", i, typ)
		if strings.HasPrefix(typ, "PGP ") {
			end := []byte("-----END " + typ + "-----")
			e := bytes.Index(rest, end)
			if e < 0 {
				return p.errf(reason.Malformed, nil, where, "no END line")
			}
			seg := rest[:e+len(end)]
			rest = rest[e+len(end):]
			if typ != "PGP PUBLIC KEY BLOCK" && typ != "PGP PRIVATE KEY BLOCK" {
				continue // signatures and messages are not keys
			}
			if err := p.parsePGP(seg, true); err != nil {
				return p.errf(reason.CodeOf(err), err, where, "")
			}
			continue
		}
		block, after := pem.Decode(rest)
		consumed := rest[:len(rest)-len(after)]
		// pem.Decode silently skips an invalid block and returns the next
		// one; a block that is not ours means ours was invalid.
		if block == nil || bytes.Contains(consumed[1:], []byte("-----BEGIN ")) {
			return p.errf(reason.Malformed, nil, where, "invalid PEM encoding")
		}
		raw := bytes.TrimSpace(consumed)
		rest = after
		if err := p.parseBlock(block, raw); err != nil {
			code := reason.CodeOf(err)
			if code == "" {
				code = reason.Malformed
			}
			return p.errf(code, err, where, "")
		}
	}
}

// blockType returns X of a leading "-----BEGIN X-----" line.
func blockType(b []byte) string {
	line := b[len("-----BEGIN "):]
	if i := bytes.IndexAny(line, "\r\n"); i >= 0 {
		line = line[:i]
	}
	if len(line) > 64 {
		line = line[:64]
	}
	return strings.TrimSuffix(string(bytes.TrimSpace(line)), "-----")
}

func (p *parser) parseBlock(block *pem.Block, raw []byte) error {
	switch block.Type {
	case "CERTIFICATE", "X509 CERTIFICATE":
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return reason.Wrap(reason.Malformed, err, "certificate")
		}
		p.b.Certs = append(p.b.Certs, c)
	case "TRUSTED CERTIFICATE":
		// OpenSSL's form: the certificate followed by trust settings,
		// which we ignore (trust comes from being a CA in the store).
		s := cryptobyte.String(block.Bytes)
		var der cryptobyte.String
		if !s.ReadASN1Element(&der, cbasn1.SEQUENCE) {
			return reason.New(reason.Malformed, "trusted certificate")
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return reason.Wrap(reason.Malformed, err, "trusted certificate")
		}
		p.b.Certs = append(p.b.Certs, c)
	case "X509 CRL":
		crl, err := x509.ParseRevocationList(block.Bytes)
		if err != nil {
			return reason.Wrap(reason.Malformed, err, "CRL")
		}
		p.b.CRLs = append(p.b.CRLs, crl)
	case "PKCS7", "CMS":
		return p.parsePKCS7(block.Bytes)
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
		if x509.IsEncryptedPEMBlock(block) { //nolint:staticcheck // legacy OpenSSL encryption is still uploaded
			return p.legacyEncrypted(block, raw)
		}
		k, err := parseKeyDER(block.Bytes)
		if err != nil {
			return err
		}
		p.b.Keys = append(p.b.Keys, PrivateKey{Raw: raw, Format: "pem", Key: k})
	case "ENCRYPTED PRIVATE KEY":
		return p.encryptedPKCS8(block.Bytes, raw, "pem")
	}
	// Other blocks (EC PARAMETERS, PUBLIC KEY, CERTIFICATE REQUEST...)
	// carry nothing to import; Parse fails when a file yields nothing.
	return nil
}

// parseKeyDER accepts PKCS#8, PKCS#1 and SEC1 encodings.
func parseKeyDER(der []byte) (keys.PrivateKey, error) {
	var k crypto.PrivateKey
	var err error
	if k, err = x509.ParsePKCS8PrivateKey(der); err != nil {
		if k2, err2 := x509.ParsePKCS1PrivateKey(der); err2 == nil {
			k, err = k2, nil
		} else if k3, err3 := x509.ParseECPrivateKey(der); err3 == nil {
			k, err = k3, nil
		}
	}
	if err != nil {
		return nil, reason.Wrap(reason.Malformed, err, "private key")
	}
	w, err := keys.Wrap(k)
	if err != nil {
		return nil, reason.Wrap(reason.UnsupportedAlgorithm, err, "private key")
	}
	return w, nil
}

func (p *parser) legacyEncrypted(block *pem.Block, raw []byte) error {
	for _, pass := range p.opts.Passphrases {
		der, err := x509.DecryptPEMBlock(block, []byte(pass)) //nolint:staticcheck // see above
		if err != nil {
			if errors.Is(err, x509.IncorrectPasswordError) {
				continue
			}
			return reason.Wrap(reason.Malformed, err, "encrypted PEM key")
		}
		// The legacy scheme has no integrity check beyond padding, so a
		// wrong passphrase can still yield bytes that do not parse.
		k, err := parseKeyDER(der)
		if err != nil {
			if reason.CodeOf(err) == reason.UnsupportedAlgorithm {
				return err
			}
			continue
		}
		p.b.Keys = append(p.b.Keys, PrivateKey{Raw: raw, Format: "pem", Key: k, Passphrase: pass})
		return nil
	}
	return p.locked(raw, "pem")
}

func (p *parser) encryptedPKCS8(der, raw []byte, format string) error {
	epki, err := parseEncryptedPKCS8(der)
	if err != nil {
		return err
	}
	for _, pass := range p.opts.Passphrases {
		plain, err := epki.decrypt(pass)
		if err != nil {
			if errors.Is(err, errBadPassphrase) {
				continue
			}
			return err
		}
		k, err := parseKeyDER(plain)
		if err != nil {
			if reason.CodeOf(err) == reason.UnsupportedAlgorithm {
				return err
			}
			continue // padding matched by chance: a wrong passphrase
		}
		p.b.Keys = append(p.b.Keys, PrivateKey{Raw: raw, Format: format, Key: k, Passphrase: pass})
		return nil
	}
	return p.locked(raw, format)
}

// locked records a key no passphrase opened, or fails under RequireUnlocked.
func (p *parser) locked(raw []byte, format string) error {
	if p.opts.RequireUnlocked {
		if len(p.opts.Passphrases) == 0 {
			return reason.New(reason.WrongPassphrase, "the private key is passphrase-protected and no passphrase was given")
		}
		return reason.New(reason.WrongPassphrase, "none of the %d passphrases opens the private key", len(p.opts.Passphrases))
	}
	p.b.Keys = append(p.b.Keys, PrivateKey{Raw: raw, Format: format, Locked: true})
	return nil
}

// pairLocked assigns the only leaf certificate of a file to its only locked
// key: the public key of a protected key is unknown until it is opened, and
// a file with one certificate and one key (RT's email.pem) belongs together.
// Without this a locked key would be invisible and decryption would report
// no-private-key instead of wrong-passphrase.
func (p *parser) pairLocked() {
	var lockedIdx = -1
	for i, k := range p.b.Keys {
		if k.Locked {
			if lockedIdx >= 0 {
				return
			}
			lockedIdx = i
		}
	}
	if lockedIdx < 0 {
		return
	}
	var leaf *x509.Certificate
	for _, c := range p.b.Certs {
		if c.IsCA && c.BasicConstraintsValid {
			continue
		}
		if leaf != nil {
			return
		}
		leaf = c
	}
	// Only when no unlocked key already claims that certificate.
	for _, k := range p.b.Keys {
		if k.Key != nil && leaf != nil && publicKeyEqual(k.Key.Public(), leaf) {
			return
		}
	}
	p.b.Keys[lockedIdx].Cert = leaf
}

// parseBinary sniffs a file without PEM armor.
func (p *parser) parseBinary(data []byte) error {
	if len(data) == 0 {
		return reason.New(reason.Malformed, "%s: empty file", p.name)
	}
	if data[0]&0x80 != 0 {
		if err := p.parsePGP(data, false); err != nil {
			return p.errf(reason.CodeOf(err), err, "OpenPGP", "")
		}
		return nil
	}
	if data[0] != 0x30 {
		return reason.New(reason.Malformed, "%s: unrecognised format (neither PEM, DER, PKCS#12 nor OpenPGP)", p.name)
	}
	if c, err := x509.ParseCertificate(data); err == nil {
		p.b.Certs = append(p.b.Certs, c)
		return nil
	}
	if crl, err := x509.ParseRevocationList(data); err == nil {
		p.b.CRLs = append(p.b.CRLs, crl)
		return nil
	}
	if der, ok := asPKCS7(data); ok {
		if err := p.parsePKCS7(der); err != nil {
			return p.errf(reason.CodeOf(err), err, "PKCS#7", "")
		}
		return nil
	}
	if isPFX(data) {
		if err := p.parsePKCS12(data); err != nil {
			return p.errf(reason.CodeOf(err), err, "PKCS#12", "")
		}
		return nil
	}
	if _, err := parseEncryptedPKCS8(data); err == nil {
		if err := p.encryptedPKCS8(data, data, "der"); err != nil {
			return p.errf(reason.CodeOf(err), err, "encrypted PKCS#8", "")
		}
		return nil
	}
	if k, err := parseKeyDER(data); err == nil {
		p.b.Keys = append(p.b.Keys, PrivateKey{Raw: data, Format: "der", Key: k})
		return nil
	} else if reason.CodeOf(err) == reason.UnsupportedAlgorithm {
		return p.errf(reason.UnsupportedAlgorithm, err, "DER private key", "")
	}
	return reason.New(reason.Malformed, "%s: unrecognised DER structure (not a certificate, CRL, PKCS#7, PKCS#12 or private key)", p.name)
}

// isPFX reports whether data starts like a PFX PDU: SEQUENCE { INTEGER 3, ... }.
func isPFX(data []byte) bool {
	s := cryptobyte.String(data)
	var pfx cryptobyte.String
	var v int
	return s.ReadASN1(&pfx, cbasn1.SEQUENCE) && pfx.ReadASN1Integer(&v) && v == 3
}

func (p *parser) parsePKCS12(data []byte) error {
	if err := checkPFXCost(data); err != nil {
		return err
	}
	// The empty passphrase first: openssl -passout pass: is common for
	// files that are protected by other means.
	tries := append([]string{""}, p.opts.Passphrases...)
	for _, pass := range tries {
		priv, cert, chain, err := pkcs12.DecodeChain(data, pass)
		if err != nil {
			if errors.Is(err, pkcs12.ErrIncorrectPassword) || errors.Is(err, pkcs12.ErrDecryption) {
				continue
			}
			if err.Error() == "pkcs12: private key missing" {
				// go-pkcs12 reads certificates only alongside a key.
				return reason.New(reason.Malformed, "a PKCS#12 file without a private key is not supported; import the certificates as PEM, DER or PKCS#7")
			}
			var ni pkcs12.NotImplementedError
			if errors.As(err, &ni) {
				return reason.Wrap(reason.UnsupportedAlgorithm, err, "")
			}
			return reason.Wrap(reason.Malformed, err, "")
		}
		k, err := keys.Wrap(priv)
		if err != nil {
			return reason.Wrap(reason.UnsupportedAlgorithm, err, "private key")
		}
		p.b.Certs = append(p.b.Certs, cert)
		p.b.Certs = append(p.b.Certs, chain...)
		p.b.Keys = append(p.b.Keys, PrivateKey{Raw: data, Format: "pkcs12", Key: k, Passphrase: pass, Cert: cert})
		return nil
	}
	// The certificates of a PKCS#12 file are usually encrypted too, so a
	// locked file yields one locked key and nothing else.
	return p.locked(data, "pkcs12")
}

// Match sets PrivateKey.Cert for keys whose public key equals a
// certificate's, across all bundles. Keys already matched are kept.
func Match(bundles ...*Bundle) {
	bySPKI := map[string]*x509.Certificate{}
	for _, b := range bundles {
		if b == nil {
			continue
		}
		for _, c := range b.Certs {
			if _, ok := bySPKI[string(c.RawSubjectPublicKeyInfo)]; !ok {
				bySPKI[string(c.RawSubjectPublicKeyInfo)] = c
			}
		}
	}
	for _, b := range bundles {
		if b == nil {
			continue
		}
		for i := range b.Keys {
			k := &b.Keys[i]
			if k.Key == nil {
				continue
			}
			if k.Cert != nil && publicKeyEqual(k.Key.Public(), k.Cert) {
				continue
			}
			spki, err := x509.MarshalPKIXPublicKey(k.Key.Public())
			if err != nil {
				continue
			}
			if c, ok := bySPKI[string(spki)]; ok {
				k.Cert = c
			}
		}
	}
}

// publicKeyEqual compares a key's public half with a certificate's.
func publicKeyEqual(pub crypto.PublicKey, c *x509.Certificate) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := pub.(equaler)
	return ok && e.Equal(c.PublicKey)
}
