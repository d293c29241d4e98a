// Package mailgen makes a small world of test identities (a helpdesk and
// its customers, S/MIME and OpenPGP) and realistic articles between them:
// signed, encrypted, tampered, for unknown keys, plain. `worker demo` and
// the load generator publish them; tests use them for end-to-end runs.
//
// Customer mail is produced with secmail's own outbound handler acting as
// the customer, so every sample is a real, standards-conforming message.
package mailgen

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/demopki"
	"github.com/secmail/secmail/handlers"
	"github.com/secmail/secmail/keyring"
	"github.com/secmail/secmail/mimewalk"
	"github.com/secmail/secmail/reason"
	"github.com/secmail/secmail/result"
)

// Addresses of the world.
const (
	Support = "support@helpdesk.example"
	Alice   = "alice@customer.example" // S/MIME, known
	Bob     = "bob@customer.example"   // OpenPGP, known
	Carol   = "carol@customer.example" // S/MIME, unknown to the helpdesk
	Dave    = "dave@customer.example"  // OpenPGP, unknown to the helpdesk
)

// World holds the identities and two views of the keys: what the helpdesk
// knows (OrgFiles, to import into the store) and what each customer has.
type World struct {
	// OrgFiles are the helpdesk's files by name: trust anchors, its own
	// certificate and keys, its customers' certificates and public keys.
	OrgFiles map[string][]byte

	pki                 *demopki.PKI
	support, alice      demopki.Identity
	carol, supportOther demopki.Identity
	pgpSupport, pgpBob  *openpgp.Entity
	pgpDave             *openpgp.Entity

	alicesView, bobsView, carolsView, davesView *handlers.Handler
}

// New creates a world. keyType selects the S/MIME key algorithm.
func New(keyType demopki.KeyType) (*World, error) {
	w := &World{OrgFiles: map[string][]byte{}}
	var err error
	if w.pki, err = demopki.New("secmail Demo"); err != nil {
		return nil, err
	}
	leaf := func(email string) demopki.Identity {
		if err != nil {
			return demopki.Identity{}
		}
		var id demopki.Identity
		id, err = w.pki.Leaf(email, demopki.LeafOptions{Type: keyType})
		return id
	}
	w.support, w.alice, w.carol = leaf(Support), leaf(Alice), leaf(Carol)
	if err != nil {
		return nil, err
	}
	pgpKey := func(name, email string) *openpgp.Entity {
		if err != nil {
			return nil
		}
		var e *openpgp.Entity
		e, err = demopki.PGPKey(name, email, demopki.PGPOptions{})
		return e
	}
	w.pgpSupport, w.pgpBob, w.pgpDave = pgpKey("Support", Support), pgpKey("Bob", Bob), pgpKey("Dave", Dave)
	if err != nil {
		return nil, err
	}

	rootPEM := demopki.Identity{Cert: w.pki.Root.Cert}.CertPEM()
	supportKey, err := w.support.KeyPEM()
	if err != nil {
		return nil, err
	}
	w.OrgFiles["demo-root-ca.pem"] = rootPEM
	w.OrgFiles["demo-issuing-ca.pem"] = w.pki.Intermediate.CertPEM()
	w.OrgFiles["support.pem"] = append(w.support.CertPEM(), supportKey...)
	w.OrgFiles["alice.pem"] = w.alice.CertPEM()
	if w.OrgFiles["support-pgp.asc"], err = demopki.ArmorSecret(w.pgpSupport); err != nil {
		return nil, err
	}
	if w.OrgFiles["bob.asc"], err = demopki.ArmorPublic(w.pgpBob); err != nil {
		return nil, err
	}

	// Each customer's own view: their key, the helpdesk's public keys.
	supportCert := w.support.CertPEM()
	supportPub, err := demopki.ArmorPublic(w.pgpSupport)
	if err != nil {
		return nil, err
	}
	smimeView := func(id demopki.Identity) (*handlers.Handler, error) {
		k, err := id.KeyPEM()
		if err != nil {
			return nil, err
		}
		return view(map[string][]byte{"me.pem": append(id.CertPEM(), k...), "ca.pem": rootPEM,
			"issuing.pem": w.pki.Intermediate.CertPEM(), "support.pem": supportCert})
	}
	pgpView := func(e *openpgp.Entity) (*handlers.Handler, error) {
		sec, err := demopki.ArmorSecret(e)
		if err != nil {
			return nil, err
		}
		return view(map[string][]byte{"me.asc": sec, "support.asc": supportPub})
	}
	if w.alicesView, err = smimeView(w.alice); err != nil {
		return nil, err
	}
	if w.carolsView, err = smimeView(w.carol); err != nil {
		return nil, err
	}
	if w.bobsView, err = pgpView(w.pgpBob); err != nil {
		return nil, err
	}
	if w.davesView, err = pgpView(w.pgpDave); err != nil {
		return nil, err
	}
	return w, nil
}

// OrgKeyring returns the helpdesk's keys (OrgFiles) as an in-memory
// keyring, for running handlers without a store.
func (w *World) OrgKeyring() (*keyring.Keyring, error) { return keyringOf(w.OrgFiles) }

// keyringOf imports files into an in-memory keyring.
func keyringOf(files map[string][]byte) (*keyring.Keyring, error) {
	var bundles []*keyring.Bundle
	for name, data := range files {
		b, err := keyring.Parse(name, data, keyring.Options{})
		if err != nil {
			return nil, err
		}
		bundles = append(bundles, b)
	}
	keyring.Match(bundles...)
	kr := keyring.New()
	for _, b := range bundles {
		kr.Add(b)
	}
	return kr, nil
}

// view builds a customer's handler over an in-memory keyring of files.
func view(files map[string][]byte) (*handlers.Handler, error) {
	kr, err := keyringOf(files)
	if err != nil {
		return nil, err
	}
	cfg := handlers.DefaultConfig()
	cfg.Outbound.EncryptToSelf = false
	return handlers.New(kr, cfg), nil
}

// Expect is the outcome a sample should get.
type Expect struct {
	Type       result.Type // "" for none
	Encryption result.Status
	EncReason  reason.Code
	Sign       result.Status
	SignReason reason.Code
}

// Sample is one article with its expected outcome.
type Sample struct {
	Name      string
	Direction article.Direction
	Group     string
	Raw       []byte
	Options   article.Options
	Expect    Expect
}

// Options tune the generated articles.
type Options struct {
	// BodySize pads the text body to about this many bytes (0: a short
	// note).
	BodySize int
	// Attachment adds a binary attachment of this many bytes.
	Attachment int
	// Seq makes Message-IDs unique across generated batches.
	Seq int
}

// Message composes a plain helpdesk-style message.
func Message(from, to, subject string, o Options) []byte {
	var body strings.Builder
	body.WriteString("Hello,\r\n\r\nthis is a message about ticket #4711 — Grüße, iyi günler.\r\n")
	for body.Len() < o.BodySize {
		body.WriteString("The quick brown fox jumps over the lazy dog while the helpdesk answers.\r\n")
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d.%d@%s>\r\nMIME-Version: 1.0\r\n",
		from, to, subject, time.Now().UTC().Format(time.RFC1123Z), time.Now().UnixNano(), o.Seq, strings.SplitN(from, "@", 2)[1])
	if o.Attachment <= 0 {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		b.WriteString(body.String())
		return b.Bytes()
	}
	b.WriteString("Content-Type: multipart/mixed; boundary=\"mailgen-att\"\r\n\r\n--mailgen-att\r\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString(body.String())
	b.WriteString("\r\n--mailgen-att\r\nContent-Type: application/octet-stream; name=\"report.bin\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"report.bin\"\r\n\r\n")
	att := make([]byte, o.Attachment)
	for i := range att {
		att[i] = byte(i * 7)
	}
	b.Write(mimewalk.Base64Body(att))
	b.WriteString("--mailgen-att--\r\n")
	return b.Bytes()
}

// secureAs has a customer secure a message with their own view.
func secureAs(v *handlers.Handler, raw []byte, typ string, sign, encrypt bool) ([]byte, error) {
	out, err := v.Outbound(context.Background(), &article.Request{Raw: raw, Options: article.Options{Type: &typ, Sign: &sign, Encrypt: &encrypt}})
	if err != nil {
		return nil, err
	}
	if out.Raw == nil {
		return nil, fmt.Errorf("mailgen: could not secure sample: %+v", out.Security)
	}
	return out.Raw, nil
}

// Kinds of sample, for the load generator's mix.
const (
	KindSMIMESignedEncrypted = "smime-signed-encrypted"
	KindSMIMESigned          = "smime-signed"
	KindSMIMEEncrypted       = "smime-encrypted"
	KindSMIMETampered        = "smime-tampered"
	KindSMIMEUnknownKey      = "smime-not-for-us"
	KindPGPSignedEncrypted   = "pgp-signed-encrypted"
	KindPGPUnknownSigner     = "pgp-unknown-signer"
	KindPlain                = "plain"
	KindReplySMIME           = "reply-smime"
	KindReplyPGP             = "reply-pgp"
	KindReplyNoCertificate   = "reply-no-certificate"
)

// Kinds lists every sample kind in a sensible demo order.
var Kinds = []string{
	KindSMIMESignedEncrypted, KindSMIMESigned, KindSMIMEEncrypted, KindSMIMETampered, KindSMIMEUnknownKey,
	KindPGPSignedEncrypted, KindPGPUnknownSigner, KindPlain, KindReplySMIME, KindReplyPGP, KindReplyNoCertificate,
}

var (
	ok     = result.StatusOK
	none   = result.StatusNone
	failed = result.StatusFailed
)

// Make generates one sample of kind.
func (w *World) Make(kind string, o Options) (Sample, error) {
	in := func(from, subject string) []byte { return Message(from, Support, subject, o) }
	s := Sample{Name: kind, Direction: article.Inbound}
	var err error
	switch kind {
	case KindSMIMESignedEncrypted:
		s.Raw, err = secureAs(w.alicesView, in(Alice, "Signed and encrypted"), "S/MIME", true, true)
		s.Expect = Expect{result.SMIME, ok, "", ok, ""}
	case KindSMIMESigned:
		s.Raw, err = secureAs(w.alicesView, in(Alice, "Signed"), "S/MIME", true, false)
		s.Expect = Expect{result.SMIME, none, "", ok, ""}
	case KindSMIMEEncrypted:
		s.Raw, err = secureAs(w.alicesView, in(Alice, "Encrypted"), "S/MIME", false, true)
		s.Expect = Expect{result.SMIME, ok, "", none, ""}
	case KindSMIMETampered:
		s.Raw, err = secureAs(w.alicesView, in(Alice, "Tampered on the way"), "S/MIME", true, false)
		s.Raw = bytes.Replace(s.Raw, []byte("quick brown fox"), []byte("quick brown cat"), 1)
		s.Raw = bytes.Replace(s.Raw, []byte("ticket #4711"), []byte("ticket #4712"), 1)
		s.Expect = Expect{result.SMIME, none, "", failed, reason.BadSignature}
	case KindSMIMEUnknownKey:
		// Carol encrypts to a certificate the helpdesk has no key for.
		raw := Message(Carol, Carol, "Encrypted for someone else", o)
		s.Raw, err = secureAs(w.carolsView, raw, "S/MIME", false, true)
		s.Raw = bytes.Replace(s.Raw, []byte("To: "+Carol), []byte("To: "+Support), 1)
		s.Expect = Expect{result.SMIME, failed, reason.NoPrivateKey, none, ""}
	case KindPGPSignedEncrypted:
		s.Raw, err = secureAs(w.bobsView, in(Bob, "PGP signed and encrypted"), "PGP", true, true)
		s.Expect = Expect{result.PGP, ok, "", ok, ""}
	case KindPGPUnknownSigner:
		s.Raw, err = secureAs(w.davesView, in(Dave, "PGP signed by a stranger"), "PGP", true, false)
		s.Expect = Expect{result.PGP, none, "", failed, reason.NoPublicKey}
	case KindPlain:
		s.Raw = in(Carol, "Plain mail")
		s.Expect = Expect{"", none, "", none, ""}
	case KindReplySMIME:
		s.Direction, s.Raw = article.Outbound, Message(Support, Alice, "Re: your request", o)
		s.Expect = Expect{result.SMIME, ok, "", ok, ""}
	case KindReplyPGP:
		s.Direction, s.Raw = article.Outbound, Message(Support, Bob, "Re: PGP request", o)
		s.Expect = Expect{result.PGP, ok, "", ok, ""}
	case KindReplyNoCertificate:
		t, enc := "S/MIME", true
		s.Direction, s.Raw = article.Outbound, Message(Support, Carol, "Re: must be encrypted", o)
		s.Options = article.Options{Type: &t, Encrypt: &enc}
		// All or nothing: nothing is signed or sent.
		s.Expect = Expect{result.SMIME, failed, reason.NoCertificate, none, ""}
	default:
		return s, fmt.Errorf("mailgen: unknown kind %q", kind)
	}
	return s, err
}

// Check compares a security block with the expectation and describes the
// first difference ("" when it matches).
func (e Expect) Check(s result.Security) string {
	typ := result.Type("")
	if s.Type != nil {
		typ = *s.Type
	}
	code := func(c *reason.Code) reason.Code {
		if c == nil {
			return ""
		}
		return *c
	}
	switch {
	case typ != e.Type:
		return fmt.Sprintf("type %q, want %q", typ, e.Type)
	case s.Encryption.Status != e.Encryption || code(s.Encryption.Reason) != e.EncReason:
		return fmt.Sprintf("encryption %s/%s, want %s/%s", s.Encryption.Status, code(s.Encryption.Reason), e.Encryption, e.EncReason)
	case s.Sign.Status != e.Sign || code(s.Sign.Reason) != e.SignReason:
		return fmt.Sprintf("sign %s/%s, want %s/%s", s.Sign.Status, code(s.Sign.Reason), e.Sign, e.SignReason)
	}
	return ""
}
