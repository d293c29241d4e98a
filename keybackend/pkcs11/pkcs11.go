//go:build pkcs11 && cgo

package pkcs11

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sync"

	p11 "github.com/miekg/pkcs11"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/secmail/secmail/keybackend/internal/rsapad"
	"github.com/secmail/secmail/keys"
)

// Config addresses a token.
type Config struct {
	Module     string // path of the PKCS#11 module
	TokenLabel string // token label
	PIN        string // user PIN; never logged
	// MaxSessions bounds concurrent operations (PKCS#11 sessions are
	// single-threaded); 0 means 8.
	MaxSessions int
}

// ErrNotFound is returned when no key matches a label, id or public key.
// It also matches keys.ErrNotFound, so callers that only know the
// keybackend.TokenKeys interface (the certificate cache) can tell a
// missing key from a failing token without this build tag.
var ErrNotFound error = notFound{}

type notFound struct{}

func (notFound) Error() string        { return "keybackend/pkcs11: key not found on token" }
func (notFound) Is(target error) bool { return target == keys.ErrNotFound }

// ErrClosed is returned after Token.Close.
var ErrClosed = errors.New("keybackend/pkcs11: token closed")

// Token is an open, logged-in PKCS#11 token. It implements
// keybackend.Backend. Safe for concurrent use.
type Token struct {
	ctx     *p11.Ctx
	owner   bool // this Token initialised the module
	slot    uint
	login   p11.SessionHandle // keeps the login alive
	pool    chan p11.SessionHandle
	sem     chan struct{} // one token per open session beyond login
	mu      sync.RWMutex
	closed  bool
	mechRaw bool // CKM_RSA_X_509 available
}

// Open loads the module, finds the token by label and logs in. PKCS#11
// login is per process and token: a second Token for a token this
// process is already logged in to shares that login.
func Open(cfg Config) (*Token, error) {
	if cfg.Module == "" || cfg.TokenLabel == "" {
		return nil, errors.New("keybackend/pkcs11: module and token label are required")
	}
	ctx := p11.New(cfg.Module)
	if ctx == nil {
		return nil, fmt.Errorf("keybackend/pkcs11: cannot load module %s", cfg.Module)
	}
	// A module is initialised once per process; a second Token on the
	// same module (another token label) shares it and leaves C_Finalize
	// to the first.
	owner := true
	if err := ctx.Initialize(); errors.Is(err, p11.Error(p11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		owner = false
	} else if err != nil {
		ctx.Destroy()
		return nil, fmt.Errorf("keybackend/pkcs11: initialize %s: %w", cfg.Module, err)
	}
	fail := func(err error) (*Token, error) {
		if owner {
			ctx.Finalize()
		}
		ctx.Destroy()
		return nil, err
	}
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return fail(fmt.Errorf("keybackend/pkcs11: slots: %w", err))
	}
	slot, found := uint(0), false
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err == nil && ti.Label == cfg.TokenLabel {
			slot, found = s, true
			break
		}
	}
	if !found {
		return fail(fmt.Errorf("keybackend/pkcs11: no token labelled %q", cfg.TokenLabel))
	}
	login, err := ctx.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		return fail(fmt.Errorf("keybackend/pkcs11: open session: %w", err))
	}
	if err := ctx.Login(login, p11.CKU_USER, cfg.PIN); err != nil && !errors.Is(err, p11.Error(p11.CKR_USER_ALREADY_LOGGED_IN)) {
		// The PIN is deliberately not part of the message.
		return fail(fmt.Errorf("keybackend/pkcs11: login to token %q: %w", cfg.TokenLabel, err))
	}
	n := cfg.MaxSessions
	if n <= 0 {
		n = 8
	}
	t := &Token{ctx: ctx, owner: owner, slot: slot, login: login, pool: make(chan p11.SessionHandle, n), sem: make(chan struct{}, n)}
	if ms, err := ctx.GetMechanismList(slot); err == nil {
		for _, m := range ms {
			if m.Mechanism == p11.CKM_RSA_X_509 {
				t.mechRaw = true
			}
		}
	}
	return t, nil
}

// Name returns "pkcs11".
func (t *Token) Name() string { return "pkcs11" }

// Close logs out, closes all sessions and unloads the module. Keys from
// this token fail with ErrClosed afterwards.
func (t *Token) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	t.ctx.Logout(t.login)
	t.ctx.CloseAllSessions(t.slot)
	var err error
	if t.owner {
		err = t.ctx.Finalize()
	}
	t.ctx.Destroy()
	return err
}

// session runs f with a session from the pool, opening one when none is
// idle and fewer than MaxSessions exist.
func (t *Token) session(f func(p11.SessionHandle) error) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return ErrClosed
	}
	var s p11.SessionHandle
	select {
	case s = <-t.pool:
	default:
		select {
		case s = <-t.pool:
		case t.sem <- struct{}{}:
			var err error
			s, err = t.ctx.OpenSession(t.slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
			if err != nil {
				<-t.sem
				return fmt.Errorf("keybackend/pkcs11: open session: %w", err)
			}
		}
	}
	err := f(s)
	t.pool <- s
	return err
}

func (t *Token) findOne(s p11.SessionHandle, tmpl []*p11.Attribute) (p11.ObjectHandle, error) {
	if err := t.ctx.FindObjectsInit(s, tmpl); err != nil {
		return 0, fmt.Errorf("keybackend/pkcs11: find: %w", err)
	}
	objs, _, err := t.ctx.FindObjects(s, 2)
	t.ctx.FindObjectsFinal(s)
	if err != nil {
		return 0, fmt.Errorf("keybackend/pkcs11: find: %w", err)
	}
	switch len(objs) {
	case 0:
		return 0, ErrNotFound
	case 1:
		return objs[0], nil
	}
	return 0, errors.New("keybackend/pkcs11: more than one key matches")
}

// Key returns the private key with CKA_LABEL labelOrID or, if none, with
// CKA_ID equal to labelOrID read as hex. Its public half is read from the
// token's matching public key object (same CKA_ID).
func (t *Token) Key(labelOrID string) (keys.PrivateKey, error) {
	var k keys.PrivateKey
	err := t.session(func(s p11.SessionHandle) error {
		priv, err := t.findOne(s, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY),
			p11.NewAttribute(p11.CKA_LABEL, labelOrID),
		})
		if errors.Is(err, ErrNotFound) {
			if id, herr := hex.DecodeString(labelOrID); herr == nil && len(id) > 0 {
				priv, err = t.findOne(s, []*p11.Attribute{
					p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY),
					p11.NewAttribute(p11.CKA_ID, id),
				})
			}
		}
		if err != nil {
			return fmt.Errorf("%w: %q", err, labelOrID)
		}
		k, err = t.keyFromHandle(s, priv)
		return err
	})
	return k, err
}

// keyFromHandle reads the public half belonging to a private key object.
func (t *Token) keyFromHandle(s p11.SessionHandle, priv p11.ObjectHandle) (keys.PrivateKey, error) {
	attrs, err := t.ctx.GetAttributeValue(s, priv, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_KEY_TYPE, nil),
		p11.NewAttribute(p11.CKA_ID, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("keybackend/pkcs11: key attributes: %w", err)
	}
	kt, id := bytesToUint(attrs[0].Value), attrs[1].Value
	pubObj, err := t.findOne(s, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PUBLIC_KEY),
		p11.NewAttribute(p11.CKA_ID, id),
	})
	if err != nil {
		return nil, fmt.Errorf("keybackend/pkcs11: public key for id %x: %w", id, err)
	}
	switch kt {
	case p11.CKK_RSA:
		a, err := t.ctx.GetAttributeValue(s, pubObj, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_MODULUS, nil),
			p11.NewAttribute(p11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return nil, fmt.Errorf("keybackend/pkcs11: RSA public key: %w", err)
		}
		e := new(big.Int).SetBytes(a[1].Value)
		if !e.IsInt64() || e.Int64() > 1<<31-1 {
			return nil, errors.New("keybackend/pkcs11: RSA public exponent too large")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(a[0].Value), E: int(e.Int64())}
		return &RSAKey{t: t, obj: priv, pub: pub}, nil
	case p11.CKK_EC:
		a, err := t.ctx.GetAttributeValue(s, pubObj, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_EC_PARAMS, nil),
			p11.NewAttribute(p11.CKA_EC_POINT, nil),
		})
		if err != nil {
			return nil, fmt.Errorf("keybackend/pkcs11: EC public key: %w", err)
		}
		curve, ok := curveByParams(a[0].Value)
		if !ok {
			return nil, errors.New("keybackend/pkcs11: unsupported EC curve")
		}
		var point []byte
		if rest, err := asn1.Unmarshal(a[1].Value, &point); err != nil || len(rest) != 0 {
			point = a[1].Value // some tokens store the bare point
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return nil, fmt.Errorf("keybackend/pkcs11: EC public key: %w", err)
		}
		dh, err := pub.ECDH()
		if err != nil {
			return nil, fmt.Errorf("keybackend/pkcs11: %w", err)
		}
		return &ECKey{t: t, obj: priv, pub: pub, dhCurve: dh.Curve()}, nil
	}
	return nil, fmt.Errorf("keybackend/pkcs11: unsupported key type %#x", kt)
}

// KeyFor returns the token's private key for a public key (as in a
// certificate), found through the public key object with the same
// modulus or EC point.
func (t *Token) KeyFor(pub crypto.PublicKey) (keys.PrivateKey, error) {
	var tmpl []*p11.Attribute
	switch p := pub.(type) {
	case *rsa.PublicKey:
		tmpl = []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PUBLIC_KEY),
			p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_RSA),
			p11.NewAttribute(p11.CKA_MODULUS, p.N.Bytes()),
		}
	case *ecdsa.PublicKey:
		pt, err := ecPointDER(p)
		if err != nil {
			return nil, err
		}
		tmpl = []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PUBLIC_KEY),
			p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_EC),
			p11.NewAttribute(p11.CKA_EC_POINT, pt),
		}
	default:
		return nil, fmt.Errorf("keybackend/pkcs11: unsupported public key %T", pub)
	}
	var k keys.PrivateKey
	err := t.session(func(s p11.SessionHandle) error {
		pubObj, err := t.findOne(s, tmpl)
		if err != nil {
			return err
		}
		a, err := t.ctx.GetAttributeValue(s, pubObj, []*p11.Attribute{p11.NewAttribute(p11.CKA_ID, nil)})
		if err != nil {
			return fmt.Errorf("keybackend/pkcs11: %w", err)
		}
		priv, err := t.findOne(s, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY),
			p11.NewAttribute(p11.CKA_ID, a[0].Value),
		})
		if err != nil {
			return err
		}
		k, err = t.keyFromHandle(s, priv)
		return err
	})
	return k, err
}

// Load returns the token key whose public key is k's. It never imports:
// a PKCS#11 deployment addresses its keys by label (Key) or certificate
// (KeyFor), and provisioning is an explicit Import. Keys that already
// belong to this token come back unchanged.
func (t *Token) Load(k keys.PrivateKey) (keys.PrivateKey, error) {
	switch tk := k.(type) {
	case *RSAKey:
		if tk.t == t {
			return k, nil
		}
	case *ECKey:
		if tk.t == t {
			return k, nil
		}
	}
	if k == nil {
		return nil, errors.New("keybackend/pkcs11: nil key")
	}
	tk, err := t.KeyFor(k.Public())
	if err != nil {
		return nil, fmt.Errorf("keybackend/pkcs11: this key is not on the token (import it with Import, then address it by label): %w", err)
	}
	return tk, nil
}

// Import stores a software RSA or EC key on the token as a token object
// that is sensitive and not extractable, with a public key object beside
// it; both get label and CKA_ID = SHA-1 of the public key (as a subject
// key identifier). It returns the token key; a key already on the token
// (same CKA_ID) is returned as it is. The caller should destroy the
// software key afterwards.
func (t *Token) Import(label string, k keys.PrivateKey) (keys.PrivateKey, error) {
	var privT, pubT []*p11.Attribute
	var keyID []byte
	common := func(class uint, kt uint, id []byte) []*p11.Attribute {
		return []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, class),
			p11.NewAttribute(p11.CKA_KEY_TYPE, kt),
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_LABEL, label),
			p11.NewAttribute(p11.CKA_ID, id),
		}
	}
	secret := []*p11.Attribute{
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
		p11.NewAttribute(p11.CKA_SIGN, true),
	}
	switch key := k.(type) {
	case *rsa.PrivateKey:
		if len(key.Primes) != 2 {
			return nil, errors.New("keybackend/pkcs11: multi-prime RSA keys are not supported")
		}
		key.Precompute()
		id := sha1.Sum(x509.MarshalPKCS1PublicKey(&key.PublicKey))
		keyID = id[:]
		n, e := key.N.Bytes(), big.NewInt(int64(key.E)).Bytes()
		privT = append(common(p11.CKO_PRIVATE_KEY, p11.CKK_RSA, id[:]), secret...)
		privT = append(privT,
			p11.NewAttribute(p11.CKA_DECRYPT, true),
			p11.NewAttribute(p11.CKA_MODULUS, n),
			p11.NewAttribute(p11.CKA_PUBLIC_EXPONENT, e),
			p11.NewAttribute(p11.CKA_PRIVATE_EXPONENT, key.D.Bytes()),
			p11.NewAttribute(p11.CKA_PRIME_1, key.Primes[0].Bytes()),
			p11.NewAttribute(p11.CKA_PRIME_2, key.Primes[1].Bytes()),
			p11.NewAttribute(p11.CKA_EXPONENT_1, key.Precomputed.Dp.Bytes()),
			p11.NewAttribute(p11.CKA_EXPONENT_2, key.Precomputed.Dq.Bytes()),
			p11.NewAttribute(p11.CKA_COEFFICIENT, key.Precomputed.Qinv.Bytes()),
		)
		pubT = append(common(p11.CKO_PUBLIC_KEY, p11.CKK_RSA, id[:]),
			p11.NewAttribute(p11.CKA_VERIFY, true),
			p11.NewAttribute(p11.CKA_ENCRYPT, true),
			p11.NewAttribute(p11.CKA_MODULUS, n),
			p11.NewAttribute(p11.CKA_PUBLIC_EXPONENT, e),
		)
	default:
		pub, ok := k.Public().(*ecdsa.PublicKey)
		b, okB := k.(interface{ Bytes() ([]byte, error) }) // *ecdsa.PrivateKey and keys.Wrap's EC key
		if !ok || !okB {
			return nil, fmt.Errorf("keybackend/pkcs11: cannot import %T", k)
		}
		scalar, err := b.Bytes()
		if err != nil {
			return nil, fmt.Errorf("keybackend/pkcs11: EC key: %w", err)
		}
		params, ok := curveParams(pub.Curve)
		if !ok {
			return nil, errors.New("keybackend/pkcs11: unsupported EC curve")
		}
		pt, err := ecPointDER(pub)
		if err != nil {
			return nil, err
		}
		id := sha1.Sum(pt)
		keyID = id[:]
		privT = append(common(p11.CKO_PRIVATE_KEY, p11.CKK_EC, id[:]), secret...)
		privT = append(privT,
			p11.NewAttribute(p11.CKA_DERIVE, true),
			p11.NewAttribute(p11.CKA_EC_PARAMS, params),
			p11.NewAttribute(p11.CKA_VALUE, scalar),
		)
		pubT = append(common(p11.CKO_PUBLIC_KEY, p11.CKK_EC, id[:]),
			p11.NewAttribute(p11.CKA_VERIFY, true),
			p11.NewAttribute(p11.CKA_EC_PARAMS, params),
			p11.NewAttribute(p11.CKA_EC_POINT, pt),
		)
	}
	// The template holds the key material: wipe it once the token has it.
	defer func() {
		for _, a := range privT {
			clear(a.Value)
		}
	}()
	var out keys.PrivateKey
	err := t.session(func(s p11.SessionHandle) error {
		// Importing the same key twice returns the key already there.
		existing, err := t.findOne(s, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY),
			p11.NewAttribute(p11.CKA_ID, keyID),
		})
		if err == nil {
			out, err = t.keyFromHandle(s, existing)
			return err
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		priv, err := t.ctx.CreateObject(s, privT)
		if err != nil {
			return fmt.Errorf("keybackend/pkcs11: import private key %q: %w", label, err)
		}
		if _, err := t.ctx.CreateObject(s, pubT); err != nil {
			t.ctx.DestroyObject(s, priv)
			return fmt.Errorf("keybackend/pkcs11: import public key %q: %w", label, err)
		}
		out, err = t.keyFromHandle(s, priv)
		return err
	})
	return out, err
}

// Attribute reads one attribute of a key's private object. Used to show
// that sensitive attributes are not readable: for CKA_VALUE or
// CKA_PRIVATE_EXPONENT the token answers CKR_ATTRIBUTE_SENSITIVE.
func (t *Token) Attribute(k keys.PrivateKey, typ uint) ([]byte, error) {
	var obj p11.ObjectHandle
	switch tk := k.(type) {
	case *RSAKey:
		obj = tk.obj
	case *ECKey:
		obj = tk.obj
	default:
		return nil, fmt.Errorf("keybackend/pkcs11: %T is not a token key", k)
	}
	var v []byte
	err := t.session(func(s p11.SessionHandle) error {
		a, err := t.ctx.GetAttributeValue(s, obj, []*p11.Attribute{p11.NewAttribute(typ, nil)})
		if err != nil {
			return err
		}
		v = a[0].Value
		return nil
	})
	return v, err
}

var (
	oidP256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384 = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidP521 = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
)

func curveParams(c elliptic.Curve) ([]byte, bool) {
	var oid asn1.ObjectIdentifier
	switch c {
	case elliptic.P256():
		oid = oidP256
	case elliptic.P384():
		oid = oidP384
	case elliptic.P521():
		oid = oidP521
	default:
		return nil, false
	}
	b, err := asn1.Marshal(oid)
	return b, err == nil
}

func curveByParams(b []byte) (elliptic.Curve, bool) {
	var oid asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(b, &oid); err != nil || len(rest) != 0 {
		return nil, false
	}
	switch {
	case oid.Equal(oidP256):
		return elliptic.P256(), true
	case oid.Equal(oidP384):
		return elliptic.P384(), true
	case oid.Equal(oidP521):
		return elliptic.P521(), true
	}
	return nil, false
}

// ecPointDER is CKA_EC_POINT: the uncompressed point in an OCTET STRING.
func ecPointDER(p *ecdsa.PublicKey) ([]byte, error) {
	raw, err := p.Bytes()
	if err != nil {
		return nil, fmt.Errorf("keybackend/pkcs11: %w", err)
	}
	return asn1.Marshal(raw)
}

// bytesToUint decodes a CK_ULONG attribute (host byte order).
func bytesToUint(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return ^uint(0) // matches no key type
}

// RSAKey is an RSA private key on a token. It implements crypto.Signer and
// crypto.Decrypter like *rsa.PrivateKey.
type RSAKey struct {
	t   *Token
	obj p11.ObjectHandle
	pub *rsa.PublicKey
}

// Public returns the *rsa.PublicKey.
func (k *RSAKey) Public() crypto.PublicKey { return k.pub }

// errInit marks a failed C_DecryptInit: the mechanism or its parameters
// are refused, which does not depend on the ciphertext.
type errInit struct{ err error }

func (e errInit) Error() string { return "keybackend/pkcs11: decrypt init: " + e.err.Error() }
func (e errInit) Unwrap() error { return e.err }

func (k *RSAKey) decrypt(mech *p11.Mechanism, ct []byte) ([]byte, error) {
	var out []byte
	err := k.t.session(func(s p11.SessionHandle) error {
		if err := k.t.ctx.DecryptInit(s, []*p11.Mechanism{mech}, k.obj); err != nil {
			return errInit{err}
		}
		var err error
		out, err = k.t.ctx.Decrypt(s, ct)
		return err
	})
	return out, err
}

// raw computes c^d mod n on the token (k bytes). Ciphertext length rules
// are crypto/rsa's: longer than the modulus or not below n fails, shorter
// is a smaller number.
func (k *RSAKey) raw(ct []byte) ([]byte, error) {
	size := k.pub.Size()
	if ct = rsapad.LeftPad(ct, size); ct == nil || new(big.Int).SetBytes(ct).Cmp(k.pub.N) >= 0 {
		return nil, rsa.ErrDecryption
	}
	em, err := k.decrypt(p11.NewMechanism(p11.CKM_RSA_X_509, nil), ct)
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return nil, err
		}
		return nil, rsa.ErrDecryption
	}
	if em = rsapad.LeftPad(em, size); em == nil {
		return nil, rsa.ErrDecryption
	}
	return em, nil
}

// Decrypt decrypts like (*rsa.PrivateKey).Decrypt (PKCS#1 v1.5 with or
// without SessionKeyLen, or OAEP). Tokens without CKM_RSA_X_509 get
// CKM_RSA_PKCS, where implicit rejection is emulated by returning random
// bytes on any failure (the token's own timing is then outside our
// control).
func (k *RSAKey) Decrypt(random io.Reader, ct []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	if random == nil {
		random = rand.Reader
	}
	size := k.pub.Size()
	switch o := opts.(type) {
	case nil, *rsa.PKCS1v15DecryptOptions:
		keyLen := 0
		if o, ok := o.(*rsa.PKCS1v15DecryptOptions); ok && o != nil {
			keyLen = o.SessionKeyLen
		}
		var key []byte
		if keyLen > 0 {
			key = make([]byte, keyLen)
			if _, err := io.ReadFull(random, key); err != nil {
				return nil, err
			}
		}
		if !k.t.mechRaw {
			if ct = rsapad.LeftPad(ct, size); ct == nil {
				return nil, rsa.ErrDecryption
			}
			m, err := k.decrypt(p11.NewMechanism(p11.CKM_RSA_PKCS, nil), ct)
			if keyLen == 0 {
				if err != nil {
					return nil, rsa.ErrDecryption
				}
				return m, nil
			}
			if err == nil && len(m) == keyLen {
				copy(key, m)
			}
			return key, nil
		}
		em, err := k.raw(ct)
		if err != nil {
			return nil, err
		}
		if keyLen == 0 {
			return rsapad.Unpad(em, size)
		}
		if err := rsapad.SessionKey(em, key, size); err != nil {
			return nil, err
		}
		return key, nil
	case *rsa.OAEPOptions:
		mgf := o.MGFHash
		if mgf == 0 {
			mgf = o.Hash
		}
		hm, _, ok := hashMech(o.Hash)
		_, mg, ok2 := hashMech(mgf)
		if !ok || !ok2 {
			return nil, fmt.Errorf("keybackend/pkcs11: unsupported OAEP hash %v/%v", o.Hash, mgf)
		}
		if ct = rsapad.LeftPad(ct, size); ct == nil {
			return nil, rsa.ErrDecryption
		}
		src := uint(0)
		if len(o.Label) > 0 {
			src = p11.CKZ_DATA_SPECIFIED
		}
		m, err := k.decrypt(p11.NewMechanism(p11.CKM_RSA_PKCS_OAEP, p11.NewOAEPParams(hm, mg, src, o.Label)), ct)
		var ie errInit
		if errors.As(err, &ie) && k.t.mechRaw {
			// The token refuses these OAEP parameters (SoftHSM2 2.6 does
			// only SHA-1): raw RSA on the token, OAEP decoding here.
			em, err := k.raw(ct)
			if err != nil {
				return nil, err
			}
			return rsapad.OAEPUnpad(em, size, o.Hash, mgf, o.Label)
		}
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return nil, err
			}
			return nil, rsa.ErrDecryption
		}
		return m, nil
	}
	return nil, errors.New("crypto/rsa: invalid options for Decrypt")
}

// hashMech maps a hash to its PKCS#11 mechanism and MGF1 generator.
func hashMech(h crypto.Hash) (mech, mgf uint, ok bool) {
	switch h {
	case crypto.SHA1:
		return p11.CKM_SHA_1, p11.CKG_MGF1_SHA1, true
	case crypto.SHA224:
		return p11.CKM_SHA224, p11.CKG_MGF1_SHA224, true
	case crypto.SHA256:
		return p11.CKM_SHA256, p11.CKG_MGF1_SHA256, true
	case crypto.SHA384:
		return p11.CKM_SHA384, p11.CKG_MGF1_SHA384, true
	case crypto.SHA512:
		return p11.CKM_SHA512, p11.CKG_MGF1_SHA512, true
	}
	return 0, 0, false
}

func (t *Token) sign(obj p11.ObjectHandle, mech *p11.Mechanism, data []byte) ([]byte, error) {
	var sig []byte
	err := t.session(func(s p11.SessionHandle) error {
		if err := t.ctx.SignInit(s, []*p11.Mechanism{mech}, obj); err != nil {
			return fmt.Errorf("keybackend/pkcs11: sign: %w", err)
		}
		var err error
		if sig, err = t.ctx.Sign(s, data); err != nil {
			return fmt.Errorf("keybackend/pkcs11: sign: %w", err)
		}
		return nil
	})
	return sig, err
}

// Sign signs digest like (*rsa.PrivateKey).Sign: PKCS#1 v1.5 (DigestInfo
// built here, CKM_RSA_PKCS on the token) or PSS for *rsa.PSSOptions.
func (k *RSAKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	hash := opts.HashFunc()
	if pss, ok := opts.(*rsa.PSSOptions); ok {
		hm, mg, ok := hashMech(hash)
		if !ok {
			return nil, fmt.Errorf("keybackend/pkcs11: unsupported PSS hash %v", hash)
		}
		if len(digest) != hash.Size() {
			return nil, errors.New("crypto/rsa: input must be hashed message")
		}
		salt, err := rsapad.PSSSaltLength(pss, hash, k.pub.N.BitLen())
		if err != nil {
			return nil, err
		}
		sig, err := k.t.sign(k.obj, p11.NewMechanism(p11.CKM_RSA_PKCS_PSS, p11.NewPSSParams(hm, mg, uint(salt))), digest)
		if err != nil {
			return nil, err
		}
		return rsapad.LeftPad(sig, k.pub.Size()), nil
	}
	di, err := rsapad.DigestInfo(hash, digest)
	if err != nil {
		return nil, err
	}
	sig, err := k.t.sign(k.obj, p11.NewMechanism(p11.CKM_RSA_PKCS, nil), di)
	if err != nil {
		return nil, err
	}
	return rsapad.LeftPad(sig, k.pub.Size()), nil
}

// ECKey is an EC private key on a token: crypto.Signer (DER ECDSA, like
// *ecdsa.PrivateKey) and keys.KeyAgreer (CKM_ECDH1_DERIVE).
type ECKey struct {
	t       *Token
	obj     p11.ObjectHandle
	pub     *ecdsa.PublicKey
	dhCurve ecdh.Curve
}

// Public returns the *ecdsa.PublicKey.
func (k *ECKey) Public() crypto.PublicKey { return k.pub }

// Sign returns an ASN.1 DER ECDSA signature of digest.
func (k *ECKey) Sign(_ io.Reader, digest []byte, _ crypto.SignerOpts) ([]byte, error) {
	raw, err := k.t.sign(k.obj, p11.NewMechanism(p11.CKM_ECDSA, nil), digest)
	if err != nil {
		return nil, err
	}
	if len(raw)%2 != 0 || len(raw) == 0 {
		return nil, errors.New("keybackend/pkcs11: malformed ECDSA signature from token")
	}
	// The token returns r || s; crypto.Signer callers expect
	// ECDSA-Sig-Value.
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(new(big.Int).SetBytes(raw[:len(raw)/2]))
		b.AddASN1BigInt(new(big.Int).SetBytes(raw[len(raw)/2:]))
	})
	return b.Bytes()
}

// ECDH derives the shared secret with remote on the token (CKD_NULL: the
// x coordinate, as crypto/ecdh returns).
func (k *ECKey) ECDH(remote *ecdh.PublicKey) ([]byte, error) {
	if remote == nil || remote.Curve() != k.dhCurve {
		return nil, errors.New("crypto/ecdh: private key and public key curves do not match")
	}
	size := (k.pub.Curve.Params().BitSize + 7) / 8
	var z []byte
	err := k.t.session(func(s p11.SessionHandle) error {
		mech := p11.NewMechanism(p11.CKM_ECDH1_DERIVE, p11.NewECDH1DeriveParams(p11.CKD_NULL, nil, remote.Bytes()))
		obj, err := k.t.ctx.DeriveKey(s, []*p11.Mechanism{mech}, k.obj, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
			p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_GENERIC_SECRET),
			p11.NewAttribute(p11.CKA_TOKEN, false),
			p11.NewAttribute(p11.CKA_SENSITIVE, false),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, true),
			p11.NewAttribute(p11.CKA_VALUE_LEN, size),
		})
		if err != nil {
			return fmt.Errorf("keybackend/pkcs11: ECDH: %w", err)
		}
		defer k.t.ctx.DestroyObject(s, obj)
		a, err := k.t.ctx.GetAttributeValue(s, obj, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)})
		if err != nil {
			return fmt.Errorf("keybackend/pkcs11: ECDH: %w", err)
		}
		z = a[0].Value
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(z) != size {
		return nil, errors.New("keybackend/pkcs11: ECDH: shared secret of unexpected length")
	}
	return z, nil
}

// compile-time checks
var (
	_ crypto.Decrypter = (*RSAKey)(nil)
	_ keys.KeyAgreer   = (*ECKey)(nil)
)
