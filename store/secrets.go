package store

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/secmail/secmail/keyring"
	"github.com/secmail/secmail/keys"
)

// seal seals an upload and its passphrase for recordKey.
func (s *Store) seal(recordKey string, raw []byte, passphrase string) (kid string, sealed []byte, err error) {
	mk := s.master.Load()
	if mk == nil {
		return "", nil, ErrNoMasterKey
	}
	sealed, err = mk.seal(recordKey, mustJSON(secretPayload{Raw: raw, Passphrase: passphrase}))
	return mk.ID(), sealed, err
}

func (s *Store) unseal(recordKey, kid string, sealed []byte) (*secretPayload, error) {
	mk := s.master.Load()
	if mk == nil {
		return nil, ErrNoMasterKey
	}
	return openPayload(mk, recordKey, kid, sealed)
}

func openPayload(mk *MasterKey, recordKey, kid string, sealed []byte) (*secretPayload, error) {
	pt, err := mk.open(recordKey, kid, sealed)
	if err != nil {
		return nil, err
	}
	var p secretPayload
	if err := json.Unmarshal(pt, &p); err != nil {
		return nil, fmt.Errorf("store: sealed record %s: %w", recordKey, err)
	}
	return &p, nil
}

// PrivateKeyUpload returns a certificate's private key exactly as uploaded,
// its format ("pem", "der", "pkcs12") and its passphrase. A key attached
// in a PKCS#11 token has no upload: that is ErrKeyInToken.
func (s *Store) PrivateKeyUpload(ctx context.Context, fp string) (raw []byte, format, passphrase string, err error) {
	var r keyRecord
	_, found, err := s.getJSON(ctx, keyKey(fp), &r)
	if err != nil {
		return nil, "", "", err
	}
	if !found {
		return nil, "", "", errNotFound("private key for certificate " + fp)
	}
	if r.Token != nil {
		return nil, "", "", fmt.Errorf("%w: certificate %s uses key %q of token %q, which never leaves the token", ErrKeyInToken, fp, r.Token.Key, r.Token.Token)
	}
	p, err := s.unseal(keyKey(fp), r.KID, r.Sealed)
	if err != nil {
		return nil, "", "", err
	}
	return p.Raw, r.Format, p.Passphrase, nil
}

// KeyRef is one of our certificates that has a private key, as
// SMIMEKeyRefs hands it out. Exactly one of these holds: Key is set (the
// key was sealed in the store and is unsealed); Token is set (the key is
// in a PKCS#11 token and the caller's key backend resolves it; Key is
// nil); NeedsMasterKey is true (the key is sealed in the store and no
// master key is configured; Key is nil).
type KeyRef struct {
	keys.SMIMEKey
	Token          *TokenRef
	NeedsMasterKey bool
}

// SMIMEKeyRefs returns every certificate that has a private key, with the
// chain of intermediates found in the store: sealed keys unsealed, token
// keys as references. Token keys need no master key, so a worker whose
// keys are all in a token runs without one; sealed keys are then marked
// NeedsMasterKey instead of failing the whole list.
func (s *Store) SMIMEKeyRefs(ctx context.Context) ([]KeyRef, error) {
	recs, err := s.CertsByIndex(ctx, idxKeys)
	if err != nil {
		return nil, err
	}
	mk := s.master.Load()
	out := make([]KeyRef, 0, len(recs))
	for _, r := range recs {
		cert, err := r.Certificate()
		if err != nil {
			return nil, err
		}
		rk := keyKey(r.Fingerprint)
		var kr keyRecord
		_, found, err := s.getJSON(ctx, rk, &kr)
		if err != nil {
			return nil, err
		}
		if !found {
			continue // deleted concurrently
		}
		ref := KeyRef{SMIMEKey: keys.SMIMEKey{Cert: cert}}
		switch {
		case kr.Token != nil:
			t := *kr.Token
			ref.Token = &t
		case mk == nil:
			ref.NeedsMasterKey = true
			out = append(out, ref)
			continue
		default:
			p, err := openPayload(mk, rk, kr.KID, kr.Sealed)
			if err != nil {
				return nil, err
			}
			if ref.Key, err = openKey(p.Raw, kr.Format, p.Passphrase, cert); err != nil {
				return nil, fmt.Errorf("store: private key of %s: %w", r.Fingerprint, err)
			}
		}
		if ref.Chain, err = s.chain(ctx, cert); err != nil {
			return nil, err
		}
		out = append(out, ref)
	}
	return out, nil
}

// SMIMEKeys returns every certificate whose private key is sealed in the
// store, with the unsealed key and the chain of intermediates found in the
// store. Keys in a PKCS#11 token are left out: SMIMEKeyRefs hands them out
// for a key backend to resolve. It fails with ErrNoMasterKey when a sealed
// key exists and no master key is configured.
func (s *Store) SMIMEKeys(ctx context.Context) ([]keys.SMIMEKey, error) {
	refs, err := s.SMIMEKeyRefs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]keys.SMIMEKey, 0, len(refs))
	for _, r := range refs {
		switch {
		case r.NeedsMasterKey:
			return nil, ErrNoMasterKey
		case r.Key != nil:
			out = append(out, r.SMIMEKey)
		}
	}
	return out, nil
}

// openKey parses a stored upload and returns the key matching cert.
func openKey(raw []byte, format, pass string, cert *x509.Certificate) (keys.PrivateKey, error) {
	b, err := keyring.Parse("stored-key."+format, raw, keyring.Options{Passphrases: []string{pass}, RequireUnlocked: true})
	if err != nil {
		return nil, err
	}
	b.Certs = append(b.Certs, cert)
	keyring.Match(b)
	for _, k := range b.Keys {
		if k.Key != nil && k.Cert != nil && k.Cert.Equal(cert) {
			return k.Key, nil
		}
		if k.Key != nil && k.Cert != nil && string(k.Cert.RawSubjectPublicKeyInfo) == string(cert.RawSubjectPublicKeyInfo) {
			return k.Key, nil
		}
	}
	return nil, errors.New("no key in the stored upload matches the certificate")
}

// chain returns the issuers of cert found in the store by authority key
// identifier, leaf excluded, up to a self-signed root or a missing link.
func (s *Store) chain(ctx context.Context, cert *x509.Certificate) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	cur := cert
	for range 8 {
		if len(cur.AuthorityKeyId) == 0 || string(cur.RawIssuer) == string(cur.RawSubject) {
			break
		}
		recs, err := s.CertsByIndex(ctx, SKIIndexKey(cur.AuthorityKeyId))
		if err != nil {
			return nil, err
		}
		var next *x509.Certificate
		for _, r := range recs {
			c, err := r.Certificate()
			if err == nil && string(c.RawSubject) == string(cur.RawIssuer) && !c.Equal(cur) {
				next = c
				break
			}
		}
		if next == nil {
			break
		}
		out = append(out, next)
		cur = next
	}
	return out, nil
}

// PGPSecretKeys returns our OpenPGP secret keys, unlocked with their
// stored passphrase.
func (s *Store) PGPSecretKeys(ctx context.Context) (openpgp.EntityList, error) {
	if !s.HasMasterKey() {
		return nil, ErrNoMasterKey
	}
	recs, err := s.PGPByIndex(ctx, idxPGPSecret)
	if err != nil {
		return nil, err
	}
	var out openpgp.EntityList
	for _, r := range recs {
		if !r.Secret {
			continue
		}
		p, err := s.unseal(pgpKey(r.Fingerprint), r.KID, r.Sealed)
		if err != nil {
			return nil, err
		}
		b, err := keyring.Parse("stored-pgp-key", p.Raw, keyring.Options{Passphrases: []string{p.Passphrase}, RequireUnlocked: true})
		if err != nil {
			return nil, fmt.Errorf("store: pgp key %s: %w", r.Fingerprint, err)
		}
		for _, k := range b.PGP {
			if k.Secret {
				out = append(out, k.Entity)
			}
		}
	}
	return out, nil
}

// PGPSecretUpload returns a secret OpenPGP key exactly as uploaded and its
// passphrase.
func (s *Store) PGPSecretUpload(ctx context.Context, fpr string) (raw []byte, passphrase string, err error) {
	var r PGPRecord
	_, found, err := s.getJSON(ctx, pgpKey(fpr), &r)
	if err != nil {
		return nil, "", err
	}
	if !found || !r.Secret {
		return nil, "", errNotFound("secret pgp key " + fpr)
	}
	p, err := s.unseal(pgpKey(fpr), r.KID, r.Sealed)
	if err != nil {
		return nil, "", err
	}
	return p.Raw, p.Passphrase, nil
}
