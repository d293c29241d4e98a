// Package store is secmail's durable certificate and key store: one NATS
// JetStream key-value bucket is the source of truth that every worker
// replica shares. It owns writes (import, delete, CRLs, group defaults,
// harvested capabilities), the sealing of private keys and the key layout.
// Reads on the hot path go through package certcache.
//
// # Key layout
//
// KV keys may only contain [-/_=.a-zA-Z0-9], so e-mail addresses and group
// names are encoded as enc(x) = lower-case base32 (RFC 4648 alphabet,
// no padding) of the lower-cased, trimmed string. Fingerprints are
// lower-case hex.
//
//	cert.<sha256hex(DER)>           certificate: DER + metadata (JSON)
//	key.<sha256hex(cert DER)>       private key of that certificate, exactly as
//	                                uploaded, and its passphrase; sealed. Or,
//	                                for a key in a PKCS#11 token, only where
//	                                it is: {"cert", "token": {"token": token
//	                                label, "key": key label or hex CKA_ID},
//	                                "imported_at"}, no key material
//	pgp.<fingerprint hex>           OpenPGP key: public packets + metadata; for
//	                                secret keys the upload and passphrase, sealed
//	crl.<sha256hex(raw issuer)>     newest CRL of that issuer
//	group.<enc(name)>               group defaults {sign, encrypt, type}
//	caps.<enc(email)>               SMIMECapabilities harvested from signed mail
//
// Index keys hold a JSON array of fingerprints, so every look-up the worker
// makes is one or two KV reads, never a scan:
//
//	idx.email.<enc(email)>          certificates naming the address (SAN, subject)
//	idx.is.<sha256hex(rawIssuer || 0x00 || serial hex)>  by issuer and serial
//	idx.ski.<hex(SKI)>              by subject key identifier
//	idx.spki.<sha256hex(SPKI DER)>  by public key (matching uploaded keys)
//	idx.ca                          CA certificates (trust anchors)
//	idx.keys                        certificates that have a private key (in
//	                                the store or in a token)
//	idx.pgpid.<16-hex key id>       OpenPGP keys by primary or subkey id
//	idx.pgpemail.<enc(email)>       OpenPGP keys by UID address ("*@domain" for
//	                                domain-alias keys)
//	idx.pgpsecret                   OpenPGP keys with secret material
//
// A certificate record repeats where its key is (has_private_key,
// key_location "store" or "token", token) for listings; the key record is
// what the worker reads. Records from before token keys have no
// key_location and mean "store".
//
// Records are written before the index entries that point at them and
// removed after, so a reader following an index may find a missing record
// (skipped) but never an index that misses a record. Index updates use the
// KV revision (Create / Update with expected revision) and retry on
// conflict, so concurrent administrators never lose each other's entries.
//
// # Sealing
//
// Private keys and passphrases are sealed with AES-256-GCM under a 32-byte
// master key the operator supplies (file, or SECMAIL_MASTER_KEY as base64).
// The record key is the additional authenticated data, so a sealed blob
// cannot be moved to another record; each record names the id of the
// master key that sealed it. Without a master key the store opens with
// public material only: key imports and look-ups of sealed keys return
// ErrNoMasterKey.
//
// Keys in a PKCS#11 token are not sealed: their records hold no secret,
// so attaching one (Store.AttachTokenKey, `worker certs attach`) and
// using one (Store.SMIMEKeyRefs, resolved by the worker's key backend)
// need no master key. A worker whose keys are all in a token runs
// without one.
//
// Rotating the master key re-seals every record:
//
//	worker certs rotate-master-key --old-key-file OLD --new-key-file NEW
//
// (Store.RotateMasterKey). It is restartable: records already sealed under
// the new key are skipped. Deploy the new key to the workers afterwards.
//
// # Audit
//
// Every change publishes a JSON Event on secmail.audit.<action> (import,
// delete, key.attach, crl.import, group.set, capabilities.set, rotate);
// capture them durably with a JetStream stream on secmail.audit.>. The
// bucket's history keeps earlier revisions as well.
package store
