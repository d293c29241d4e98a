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
// its format ("pem", "der", "pkcs12") and its passphrase.
func (s *Store) PrivateKeyUpload(ctx context.Context, fp string) (raw []byte, format, passphrase string, err error) {
	var r keyRecord
	_, found, err := s.getJSON(ctx, keyKey(fp), &r)
	if err != nil {
		return nil, "", "", err
	}
	if !found {
		return nil, "", "", errNotFound("private key for certificate " + fp)
	}
	p, err := s.unseal(keyKey(fp), r.KID, r.Sealed)
	if err != nil {
		return nil, "", "", err
	}
	return p.Raw, r.Format, p.Passphrase, nil
}

// SMIMEKeys returns every certificate that has a private key, with the
// unsealed key and the chain of intermediates found in the store.
func (s *Store) SMIMEKeys(ctx context.Context) ([]keys.SMIMEKey, error) {
	if !s.HasMasterKey() {
		return nil, ErrNoMasterKey
	}
	recs, err := s.CertsByIndex(ctx, idxKeys)
	if err != nil {
		return nil, err
	}
	out := make([]keys.SMIMEKey, 0, len(recs))
	for _, r := range recs {
		cert, err := r.Certificate()
		if err != nil {
			return nil, err
		}
		raw, format, pass, err := s.PrivateKeyUpload(ctx, r.Fingerprint)
		if errors.Is(err, ErrNotFound) {
			continue // deleted concurrently
		}
		if err != nil {
			return nil, err
		}
		k, err := openKey(raw, format, pass, cert)
		if err != nil {
			return nil, fmt.Errorf("store: private key of %s: %w", r.Fingerprint, err)
		}
		chain, err := s.chain(ctx, cert)
		if err != nil {
			return nil, err
		}
		out = append(out, keys.SMIMEKey{Cert: cert, Chain: chain, Key: k})
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
