package store

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/secmail/secmail/keyring"
	"github.com/secmail/secmail/keys"
)

// CertInfo is a certificate's metadata as listed and shown.
type CertInfo struct {
	// Kind is "cert" for end-entity certificates and "ca" for CAs.
	Kind               string    `json:"kind"`
	Fingerprint        string    `json:"fingerprint_sha256"`
	Subject            string    `json:"subject"`
	Issuer             string    `json:"issuer"`
	Serial             string    `json:"serial"`
	SKI                string    `json:"ski,omitempty"`
	AKI                string    `json:"aki,omitempty"`
	Emails             []string  `json:"emails"`
	NotBefore          time.Time `json:"not_before"`
	NotAfter           time.Time `json:"not_after"`
	IsCA               bool      `json:"is_ca"`
	KeyUsage           []string  `json:"key_usage,omitempty"`
	ExtKeyUsage        []string  `json:"ext_key_usage,omitempty"`
	PublicKeyAlgorithm string    `json:"public_key_algorithm"`
	HasPrivateKey      bool      `json:"has_private_key"`
	// KeyLocation says where the private key is: "store" (sealed in the
	// store) or "token" (in a PKCS#11 token, named by Token); empty
	// without a private key.
	KeyLocation string    `json:"key_location,omitempty"`
	Token       *TokenRef `json:"token,omitempty"`
	// SMIMECapabilities are those harvested from signed mail of the
	// certificate's first address that has any (filled on Get/List).
	SMIMECapabilities []string  `json:"smime_capabilities,omitempty"`
	ImportedAt        time.Time `json:"imported_at"`
}

// CertRecord is the stored form: metadata plus DER.
type CertRecord struct {
	CertInfo
	DER []byte `json:"der"`
}

// fillKeyLocation completes records written before keys could live in a
// token: a private key without a location is sealed in the store.
func (ci *CertInfo) fillKeyLocation() {
	if ci.HasPrivateKey && ci.KeyLocation == "" {
		ci.KeyLocation = KeyInStore
	}
}

// Certificate parses the stored DER.
func (r *CertRecord) Certificate() (*x509.Certificate, error) {
	c, err := x509.ParseCertificate(r.DER)
	if err != nil {
		return nil, fmt.Errorf("store: certificate %s: %w", r.Fingerprint, err)
	}
	return c, nil
}

func newCertRecord(c *x509.Certificate, now time.Time) *CertRecord {
	info := CertInfo{
		Kind:               "cert",
		Fingerprint:        Fingerprint(c),
		Subject:            dnString(c.Subject.String()),
		Issuer:             dnString(c.Issuer.String()),
		Serial:             strings.ToLower(c.SerialNumber.Text(16)),
		SKI:                hex.EncodeToString(c.SubjectKeyId),
		AKI:                hex.EncodeToString(c.AuthorityKeyId),
		Emails:             keys.CertEmails(c),
		NotBefore:          c.NotBefore.UTC(),
		NotAfter:           c.NotAfter.UTC(),
		IsCA:               c.IsCA && c.BasicConstraintsValid,
		KeyUsage:           keyUsageNames(c.KeyUsage),
		ExtKeyUsage:        extKeyUsageNames(c.ExtKeyUsage),
		PublicKeyAlgorithm: c.PublicKeyAlgorithm.String(),
		ImportedAt:         now.UTC(),
	}
	if info.IsCA {
		info.Kind = "ca"
	}
	if info.Emails == nil {
		info.Emails = []string{}
	}
	return &CertRecord{CertInfo: info, DER: c.Raw}
}

func keyUsageNames(u x509.KeyUsage) []string {
	names := []string{"digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment", "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}
	var out []string
	for i, n := range names {
		if u&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

func extKeyUsageNames(us []x509.ExtKeyUsage) []string {
	var out []string
	for _, u := range us {
		switch u {
		case x509.ExtKeyUsageAny:
			out = append(out, "any")
		case x509.ExtKeyUsageEmailProtection:
			out = append(out, "emailProtection")
		case x509.ExtKeyUsageClientAuth:
			out = append(out, "clientAuth")
		case x509.ExtKeyUsageServerAuth:
			out = append(out, "serverAuth")
		case x509.ExtKeyUsageCodeSigning:
			out = append(out, "codeSigning")
		default:
			out = append(out, fmt.Sprintf("%d", u))
		}
	}
	return out
}

// keyRecord is an S/MIME private key: sealed in the store (Format, KID,
// Sealed), or a reference to a key in a PKCS#11 token (Token, and no key
// material at all).
type keyRecord struct {
	Cert       string    `json:"cert"`
	Format     string    `json:"format,omitempty"`
	KID        string    `json:"kid,omitempty"`
	Sealed     []byte    `json:"sealed,omitempty"`
	Token      *TokenRef `json:"token,omitempty"`
	ImportedAt time.Time `json:"imported_at"`
}

// secretPayload is what gets sealed: the upload and its passphrase.
type secretPayload struct {
	Raw        []byte `json:"raw"`
	Passphrase string `json:"passphrase"`
}

// PGPInfo is an OpenPGP key's metadata as listed and shown.
type PGPInfo struct {
	Kind        string     `json:"kind"` // "pgp"
	Fingerprint string     `json:"fingerprint"`
	KeyIDs      []string   `json:"key_ids"`
	UIDs        []string   `json:"uids"`
	Emails      []string   `json:"emails"`
	Created     time.Time  `json:"created"`
	Expires     *time.Time `json:"expires,omitempty"`
	Secret      bool       `json:"secret"`
	DomainAlias bool       `json:"domain_alias"`
	ImportedAt  time.Time  `json:"imported_at"`
}

// PGPRecord is the stored form of an OpenPGP key.
type PGPRecord struct {
	PGPInfo
	// Public holds the public key packets (binary).
	Public []byte `json:"public"`
	KID    string `json:"kid,omitempty"`
	Sealed []byte `json:"sealed,omitempty"`
}

// Entity parses the public key packets.
func (r *PGPRecord) Entity() (*openpgp.Entity, error) {
	el, err := openpgp.ReadKeyRing(bytes.NewReader(r.Public))
	if err != nil || len(el) != 1 {
		return nil, fmt.Errorf("store: pgp key %s: unreadable public packets: %v", r.Fingerprint, err)
	}
	return el[0], nil
}

// Armor returns the public key ASCII-armored.
func (r *PGPRecord) Armor() ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(r.Public); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func newPGPRecord(k keyring.PGPKey, now time.Time) (*PGPRecord, error) {
	e := k.Entity
	var pub bytes.Buffer
	if err := e.Serialize(&pub); err != nil {
		return nil, fmt.Errorf("pgp key: serialising public packets: %w", err)
	}
	info := PGPInfo{
		Kind:        "pgp",
		Fingerprint: hex.EncodeToString(e.PrimaryKey.Fingerprint),
		KeyIDs:      []string{fmt.Sprintf("%016x", e.PrimaryKey.KeyId)},
		Emails:      keys.EntityEmails(e),
		Created:     e.PrimaryKey.CreationTime.UTC(),
		Secret:      k.Secret,
		ImportedAt:  now.UTC(),
	}
	for _, sk := range e.Subkeys {
		info.KeyIDs = append(info.KeyIDs, fmt.Sprintf("%016x", sk.PublicKey.KeyId))
	}
	for name := range e.Identities {
		info.UIDs = append(info.UIDs, name)
	}
	for _, em := range info.Emails {
		if strings.HasPrefix(em, "*@") {
			info.DomainAlias = true
		}
	}
	if info.Emails == nil {
		info.Emails = []string{}
	}
	if sig, _ := e.PrimarySelfSignature(); sig != nil && sig.KeyLifetimeSecs != nil && *sig.KeyLifetimeSecs != 0 {
		t := e.PrimaryKey.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second).UTC()
		info.Expires = &t
	}
	return &PGPRecord{PGPInfo: info, Public: pub.Bytes()}, nil
}

// crlRecord is the newest CRL of one issuer.
type crlRecord struct {
	Issuer     string    `json:"issuer"`
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update"`
	Number     string    `json:"number,omitempty"`
	DER        []byte    `json:"der"`
}

// GroupDefaults are a group's outbound defaults; nil means "not set".
type GroupDefaults struct {
	Sign    *bool  `json:"sign"`
	Encrypt *bool  `json:"encrypt"`
	Type    string `json:"type,omitempty"` // "S/MIME", "PGP" or ""
}

type capsRecord struct {
	OIDs    []string  `json:"oids"`
	Updated time.Time `json:"updated"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own record types are marshalled; they cannot fail.
		panic(err)
	}
	return b
}

// certRecord reads one certificate record.
func (s *Store) certRecord(ctx context.Context, fp string) (*CertRecord, uint64, bool, error) {
	var r CertRecord
	rev, found, err := s.getJSON(ctx, certKey(fp), &r)
	if err != nil || !found {
		return nil, 0, found, err
	}
	r.fillKeyLocation()
	return &r, rev, true, nil
}

// CertsByIndex returns the certificate records an index key lists
// (missing records are skipped).
func (s *Store) CertsByIndex(ctx context.Context, idxKey string) ([]*CertRecord, error) {
	fps, err := s.IndexList(ctx, idxKey)
	if err != nil {
		return nil, err
	}
	out := make([]*CertRecord, 0, len(fps))
	for _, fp := range fps {
		r, _, found, err := s.certRecord(ctx, fp)
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, r)
		}
	}
	return out, nil
}

// PGPByIndex returns the OpenPGP records an index key lists.
func (s *Store) PGPByIndex(ctx context.Context, idxKey string) ([]*PGPRecord, error) {
	fprs, err := s.IndexList(ctx, idxKey)
	if err != nil {
		return nil, err
	}
	out := make([]*PGPRecord, 0, len(fprs))
	for _, fpr := range fprs {
		var r PGPRecord
		_, found, err := s.getJSON(ctx, pgpKey(fpr), &r)
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, &r)
		}
	}
	return out, nil
}

// parseCerts parses certificate records.
func parseCerts(recs []*CertRecord) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(recs))
	for _, r := range recs {
		c, err := r.Certificate()
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// CertsByEmail returns the stored certificates naming email.
func (s *Store) CertsByEmail(ctx context.Context, email string) ([]*x509.Certificate, error) {
	recs, err := s.CertsByIndex(ctx, EmailIndexKey(email))
	if err != nil {
		return nil, err
	}
	return parseCerts(recs)
}

// Capabilities returns email's harvested SMIMECapabilities, or nil.
func (s *Store) Capabilities(ctx context.Context, email string) ([]string, error) {
	var r capsRecord
	_, _, err := s.getJSON(ctx, CapsKey(email), &r)
	return r.OIDs, err
}

// TrustMaterial returns the CA certificates and CRLs in the store.
func (s *Store) TrustMaterial(ctx context.Context) ([]*x509.Certificate, []*x509.RevocationList, error) {
	recs, err := s.CertsByIndex(ctx, idxCA)
	if err != nil {
		return nil, nil, err
	}
	cas, err := parseCerts(recs)
	if err != nil {
		return nil, nil, err
	}
	var crls []*x509.RevocationList
	err = s.scan(ctx, "crl.>", func(key string, val []byte) error {
		var r crlRecord
		if err := json.Unmarshal(val, &r); err != nil {
			return fmt.Errorf("store: record %s: %w", key, err)
		}
		crl, err := x509.ParseRevocationList(r.DER)
		if err != nil {
			return fmt.Errorf("store: record %s: %w", key, err)
		}
		crls = append(crls, crl)
		return nil
	})
	return cas, crls, err
}

// scan streams the current values of keys matching filter (a NATS
// wildcard subject relative to the bucket) — for administrative listings
// and periodic jobs, never per message.
func (s *Store) scan(ctx context.Context, filter string, fn func(key string, val []byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("store: scan %s: %w", filter, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("store: scan %s: watcher closed", filter)
			}
			if e == nil {
				return nil // initial values done
			}
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			if err := fn(e.Key(), e.Value()); err != nil {
				return err
			}
		}
	}
}

// emailAttr matches how pkix.Name.String renders the emailAddress
// attribute it has no name for: the OID and the DER value in hex.
var emailAttr = regexp.MustCompile(`1\.2\.840\.113549\.1\.9\.1=#([0-9a-f]+)`)

// dnString makes a distinguished name readable for administrators by
// naming emailAddress like OpenSSL does.
func dnString(dn string) string {
	return emailAttr.ReplaceAllStringFunc(dn, func(m string) string {
		der, err := hex.DecodeString(emailAttr.FindStringSubmatch(m)[1])
		if err != nil {
			return m
		}
		var v string
		if rest, err := asn1.Unmarshal(der, &v); err != nil || len(rest) > 0 {
			return m
		}
		return "emailAddress=" + v
	})
}
