package keyring

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/secmail/secmail/keys"
	"github.com/secmail/secmail/reason"
)

var _ keys.Source = (*Keyring)(nil)

// maxChainDepth bounds the intermediate walk for SMIMEKey.Chain.
const maxChainDepth = 8

// Keyring is an in-memory keys.Source, loaded from a directory for the
// offline commands and tests. Every look-up is a map access; results are
// fresh slices the caller may keep. Safe for concurrent use.
type Keyring struct {
	mu sync.RWMutex

	certSeen       map[[32]byte]*x509.Certificate
	byEmail        map[string][]*x509.Certificate
	byIssuerSerial map[string][]*x509.Certificate
	bySKI          map[string][]*x509.Certificate
	bySubject      map[string][]*x509.Certificate
	bySPKI         map[string][]*x509.Certificate
	cas            []*x509.Certificate
	crls           []*x509.RevocationList
	crlSeen        map[[32]byte]bool

	smime       []*smimeEntry
	smimeSeen   map[string]bool // by Raw of the key: the same key twice is one key
	smimeEmail  map[string][]*smimeEntry
	unmatched   []PrivateKey // keys waiting for their certificate
	caps        map[string][]string
	trust       *keys.Trust // nil when it must be rebuilt
	trustMu     sync.Mutex
	pgpByFP     map[string]*openpgp.Entity
	pgpOrder    []string // fingerprints, in insertion order
	pgpSecret   map[string]bool
	pgpByID     map[uint64][]string
	pgpByEmail  map[string][]string // includes "*@domain" alias keys
	pgpSecLocks map[string]bool
}

type smimeEntry struct {
	cert   *x509.Certificate
	chain  []*x509.Certificate // computed under the write lock, read-only after
	key    keys.PrivateKey
	locked bool
}

// New returns an empty keyring.
func New() *Keyring {
	return &Keyring{
		certSeen:       map[[32]byte]*x509.Certificate{},
		crlSeen:        map[[32]byte]bool{},
		byEmail:        map[string][]*x509.Certificate{},
		byIssuerSerial: map[string][]*x509.Certificate{},
		bySKI:          map[string][]*x509.Certificate{},
		bySubject:      map[string][]*x509.Certificate{},
		bySPKI:         map[string][]*x509.Certificate{},
		smimeSeen:      map[string]bool{},
		smimeEmail:     map[string][]*smimeEntry{},
		caps:           map[string][]string{},
		pgpByFP:        map[string]*openpgp.Entity{},
		pgpSecret:      map[string]bool{},
		pgpByID:        map[uint64][]string{},
		pgpByEmail:     map[string][]string{},
		pgpSecLocks:    map[string]bool{},
	}
}

// issuerSerialKey appends the index key of (issuer, serial) to dst.
func issuerSerialKey(dst, rawIssuer []byte, serial *big.Int) []byte {
	dst = append(dst, rawIssuer...)
	dst = append(dst, 0)
	if serial != nil {
		// Text form keeps the sign: negative serials exist in the wild.
		dst = serial.Append(dst, 16)
	}
	return dst
}

// Add indexes everything in b. CA certificates (basic constraints cA)
// become trust anchors, as in Zammad, and also intermediates. Keys match
// certificates added before or after them.
func (k *Keyring) Add(b *Bundle) {
	if b == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	cas := len(k.cas)
	for _, c := range b.Certs {
		k.addCert(c)
	}

	for _, crl := range b.CRLs {
		fp := sha256.Sum256(crl.Raw)
		if !k.crlSeen[fp] {
			k.crlSeen[fp] = true
			k.crls = append(k.crls, crl)
			k.invalidateTrust()
		}
	}
	for _, pk := range b.Keys {
		k.addKey(pk)
	}
	// Certificates of this bundle may complete keys added earlier.
	if len(b.Certs) > 0 && len(k.unmatched) > 0 {
		waiting := k.unmatched
		k.unmatched = nil
		for _, pk := range waiting {
			k.addKey(pk)
		}
	}
	for _, pk := range b.PGP {
		k.addPGP(pk)
	}
	if len(k.cas) != cas {
		// A new CA may complete the chains of keys added before it.
		for _, e := range k.smime {
			e.chain = k.chain(e.cert)
		}
	}
}

func (k *Keyring) invalidateTrust() {
	k.trustMu.Lock()
	k.trust = nil
	k.trustMu.Unlock()
}

func (k *Keyring) addCert(c *x509.Certificate) {
	fp := sha256.Sum256(c.Raw)
	if _, ok := k.certSeen[fp]; ok {
		return
	}
	k.certSeen[fp] = c
	for _, e := range keys.CertEmails(c) {
		k.byEmail[e] = append(k.byEmail[e], c)
	}
	isk := string(issuerSerialKey(nil, c.RawIssuer, c.SerialNumber))
	k.byIssuerSerial[isk] = append(k.byIssuerSerial[isk], c)
	if len(c.SubjectKeyId) > 0 {
		k.bySKI[string(c.SubjectKeyId)] = append(k.bySKI[string(c.SubjectKeyId)], c)
	}
	k.bySubject[string(c.RawSubject)] = append(k.bySubject[string(c.RawSubject)], c)
	k.bySPKI[string(c.RawSubjectPublicKeyInfo)] = append(k.bySPKI[string(c.RawSubjectPublicKeyInfo)], c)
	if c.IsCA && c.BasicConstraintsValid {
		k.cas = append(k.cas, c)
		k.invalidateTrust()
	}
}

// addKey files a key under its certificate, or keeps it waiting for one.
func (k *Keyring) addKey(pk PrivateKey) {
	cert := pk.Cert
	if pk.Key != nil && (cert == nil || !publicKeyEqual(pk.Key.Public(), cert)) {
		cert = nil
		if spki, err := x509.MarshalPKIXPublicKey(pk.Key.Public()); err == nil {
			if cs := k.bySPKI[string(spki)]; len(cs) > 0 {
				cert = newest(cs)
			}
		}
	}
	if cert == nil {
		k.unmatched = append(k.unmatched, pk)
		return
	}
	// The same key for the same certificate, from two files, is one key.
	id := "locked\x00" + string(pk.Raw)
	if pk.Key != nil {
		if spki, err := x509.MarshalPKIXPublicKey(pk.Key.Public()); err == nil {
			id = "key\x00" + string(spki)
		}
	}
	id += "\x00" + string(cert.Raw)
	if k.smimeSeen[id] {
		return
	}
	k.smimeSeen[id] = true
	k.addCert(cert)
	e := &smimeEntry{cert: cert, key: pk.Key, locked: pk.Locked || pk.Key == nil}
	e.chain = k.chain(cert)
	k.smime = append(k.smime, e)
	for _, addr := range keys.CertEmails(cert) {
		k.smimeEmail[addr] = append(k.smimeEmail[addr], e)
	}
}

// newest picks the certificate that expires last (key rollover re-issues
// certificates for the same key).
func newest(cs []*x509.Certificate) *x509.Certificate {
	best := cs[0]
	for _, c := range cs[1:] {
		if c.NotAfter.After(best.NotAfter) {
			best = c
		}
	}
	return best
}

func (k *Keyring) addPGP(pk PGPKey) {
	e := pk.Entity
	if e == nil || e.PrimaryKey == nil {
		return
	}
	fp := string(e.PrimaryKey.Fingerprint)
	if old, ok := k.pgpByFP[fp]; ok {
		// A secret key supersedes its public half; an unlocked secret key
		// supersedes a locked copy; otherwise the first one stays.
		switch {
		case pk.Secret && old.PrivateKey == nil:
		case pk.Secret && !pk.Locked && k.pgpSecLocks[fp]:
		default:
			return
		}
		k.pgpByFP[fp] = e
	} else {
		k.pgpByFP[fp] = e
		k.pgpOrder = append(k.pgpOrder, fp)
		k.pgpByID[e.PrimaryKey.KeyId] = append(k.pgpByID[e.PrimaryKey.KeyId], fp)
		for _, s := range e.Subkeys {
			k.pgpByID[s.PublicKey.KeyId] = append(k.pgpByID[s.PublicKey.KeyId], fp)
		}
		for _, addr := range keys.EntityEmails(e) {
			k.pgpByEmail[addr] = append(k.pgpByEmail[addr], fp)
		}
	}
	if pk.Secret {
		k.pgpSecret[fp] = true
		k.pgpSecLocks[fp] = pk.Locked
	}
}

// SetCapabilities records the SMIMECapabilities harvested from email's mail.
func (k *Keyring) SetCapabilities(email string, oids []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.caps[normAddr(email)] = append([]string(nil), oids...)
}

func normAddr(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func (k *Keyring) toSMIME(e *smimeEntry) keys.SMIMEKey {
	sk := keys.SMIMEKey{Cert: e.cert, Key: e.key, Locked: e.locked}
	if e.locked {
		sk.Key = nil
	}
	if len(e.chain) > 0 {
		sk.Chain = append([]*x509.Certificate(nil), e.chain...)
	}
	return sk
}

// chain follows issuers through the keyring's CA certificates, excluding
// the leaf and self-signed roots.
func (k *Keyring) chain(leaf *x509.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	seen := map[*x509.Certificate]bool{leaf: true}
	cur := leaf
	for range maxChainDepth {
		var next *x509.Certificate
		for _, c := range k.bySubject[string(cur.RawIssuer)] {
			if seen[c] || !c.IsCA || cur.CheckSignatureFrom(c) != nil {
				continue
			}
			next = c
			break
		}
		if next == nil || bytes.Equal(next.RawSubject, next.RawIssuer) {
			break
		}
		seen[next] = true
		out = append(out, next)
		cur = next
	}
	return out
}

// SMIMEKeys returns every private key with a certificate.
func (k *Keyring) SMIMEKeys(ctx context.Context) ([]keys.SMIMEKey, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]keys.SMIMEKey, 0, len(k.smime))
	for _, e := range k.smime {
		out = append(out, k.toSMIME(e))
	}
	return out, nil
}

// SMIMEKeysByEmail returns the private keys whose certificate names email.
func (k *Keyring) SMIMEKeysByEmail(ctx context.Context, email string) ([]keys.SMIMEKey, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	es := k.smimeEmail[normAddr(email)]
	out := make([]keys.SMIMEKey, 0, len(es))
	for _, e := range es {
		out = append(out, k.toSMIME(e))
	}
	return out, nil
}

func (k *Keyring) certs(m map[string][]*x509.Certificate, key string) []*x509.Certificate {
	k.mu.RLock()
	defer k.mu.RUnlock()
	cs := m[key]
	if len(cs) == 0 {
		return nil
	}
	return append([]*x509.Certificate(nil), cs...)
}

// CertsByEmail returns certificates naming email (SAN or subject emailAddress).
func (k *Keyring) CertsByEmail(ctx context.Context, email string) ([]*x509.Certificate, error) {
	return k.certs(k.byEmail, normAddr(email)), nil
}

// CertsByIssuerSerial returns certificates with that raw issuer and serial.
func (k *Keyring) CertsByIssuerSerial(ctx context.Context, rawIssuer []byte, serial *big.Int) ([]*x509.Certificate, error) {
	var buf [256]byte
	key := issuerSerialKey(buf[:0], rawIssuer, serial)
	k.mu.RLock()
	defer k.mu.RUnlock()
	// m[string(b)] does not allocate: the common look-up stays allocation-free.
	cs := k.byIssuerSerial[string(key)]
	if len(cs) == 0 {
		return nil, nil
	}
	return append([]*x509.Certificate(nil), cs...), nil
}

// CertsBySKI returns certificates with that subject key identifier.
func (k *Keyring) CertsBySKI(ctx context.Context, ski []byte) ([]*x509.Certificate, error) {
	return k.certs(k.bySKI, string(ski)), nil
}

// Trust returns the CA certificates as roots and intermediates, and the
// imported CRLs. The pools are built once per change of the keyring.
func (k *Keyring) Trust(ctx context.Context) (*keys.Trust, error) {
	k.trustMu.Lock()
	t := k.trust
	k.trustMu.Unlock()
	if t != nil {
		return t, nil
	}
	k.mu.RLock()
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range k.cas {
		roots.AddCert(c)
		inter.AddCert(c)
	}
	t = &keys.Trust{Roots: roots, Intermediates: inter, CRLs: append([]*x509.RevocationList(nil), k.crls...)}
	// Publish under trustMu while still holding the read lock, so an Add
	// (which needs the write lock) cannot slip in and be lost.
	k.trustMu.Lock()
	if k.trust == nil {
		k.trust = t
	} else {
		t = k.trust
	}
	k.trustMu.Unlock()
	k.mu.RUnlock()
	return t, nil
}

// Capabilities returns what SetCapabilities recorded for email, or nil.
func (k *Keyring) Capabilities(ctx context.Context, email string) ([]string, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	c := k.caps[normAddr(email)]
	if c == nil {
		return nil, nil
	}
	return append([]string(nil), c...), nil
}

func (k *Keyring) entities(fps []string) openpgp.EntityList {
	if len(fps) == 0 {
		return nil
	}
	out := make(openpgp.EntityList, 0, len(fps))
	for _, fp := range fps {
		out = append(out, k.pgpByFP[fp])
	}
	return out
}

// PGPSecretKeys returns the secret keys; those no passphrase opened are
// still encrypted.
func (k *Keyring) PGPSecretKeys(ctx context.Context) (openpgp.EntityList, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	var out openpgp.EntityList
	for _, fp := range k.pgpOrder {
		if k.pgpSecret[fp] {
			out = append(out, k.pgpByFP[fp])
		}
	}
	return out, nil
}

// PGPKeysByID returns the keys whose primary key or a subkey has that id.
func (k *Keyring) PGPKeysByID(ctx context.Context, id uint64) (openpgp.EntityList, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.entities(k.pgpByID[id]), nil
}

// PGPKeysByEmail returns keys with a UID naming email, then domain-alias
// keys (*@domain) of its domain.
func (k *Keyring) PGPKeysByEmail(ctx context.Context, email string) (openpgp.EntityList, error) {
	addr := normAddr(email)
	k.mu.RLock()
	defer k.mu.RUnlock()
	fps := k.pgpByEmail[addr]
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		if alias := k.pgpByEmail["*"+addr[at:]]; len(alias) > 0 {
			fps = append(append([]string(nil), fps...), alias...)
		}
	}
	return k.entities(fps), nil
}

// Len reports how many certificates, S/MIME keys and OpenPGP keys the
// keyring holds (for logs and the inspect command's summary).
func (k *Keyring) Len() (certs, smimeKeys, pgpKeys int) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.certSeen), len(k.smime), len(k.pgpByFP)
}

// LoadDir imports every regular file in dir, also through symlinks (not
// recursive; dotfiles skipped) and matches keys to certificates across files. A file that does
// not parse is an error naming it: an unreadable keyring must not pass
// silently.
func LoadDir(dir string, opts Options) (*Keyring, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	var bundles []*Bundle
	for _, de := range ents {
		if strings.HasPrefix(de.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, de.Name())
		if de.Type()&os.ModeSymlink != 0 {
			// Kubernetes mounts Secrets as symlinks into "..data/".
			st, err := os.Stat(path)
			if err != nil {
				return nil, fmt.Errorf("keyring: %w", err)
			}
			if !st.Mode().IsRegular() {
				continue
			}
		} else if !de.Type().IsRegular() {
			continue
		}
		data, err := readLimited(path, opts.maxSize())
		if err != nil {
			return nil, err
		}
		b, err := Parse(path, data, opts)
		if err != nil {
			return nil, err
		}
		bundles = append(bundles, b)
	}
	Match(bundles...)
	if opts.LoadKey != nil {
		for _, b := range bundles {
			for i := range b.Keys {
				if b.Keys[i].Key == nil {
					continue
				}
				lk, err := opts.LoadKey(b.Keys[i].Key)
				if err != nil {
					what := "a private key"
					if c := b.Keys[i].Cert; c != nil {
						what = "the key of " + c.Subject.String()
					}
					return nil, fmt.Errorf("keyring: loading %s into the key backend: %w", what, err)
				}
				b.Keys[i].Key = lk
			}
		}
	}
	k := New()
	for _, b := range bundles {
		k.Add(b)
	}
	return k, nil
}

// readLimited reads a file but refuses one larger than max without
// reading it whole.
func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if st.Size() > max {
		return nil, reason.New(reason.TooLarge, "%s: %d bytes exceeds the limit of %d bytes", path, st.Size(), max)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, max+1)); err != nil {
		return nil, fmt.Errorf("keyring: %s: %w", path, err)
	}
	if int64(buf.Len()) > max {
		return nil, reason.New(reason.TooLarge, "%s: exceeds the limit of %d bytes", path, max)
	}
	return buf.Bytes(), nil
}

// ReadPassphraseFile reads one passphrase per line; trailing CR/LF are
// trimmed and empty lines skipped. Other whitespace is part of the
// passphrase.
func ReadPassphraseFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: passphrase file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r\n")
		if line != "" {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("keyring: passphrase file: %w", err)
	}
	return out, nil
}
