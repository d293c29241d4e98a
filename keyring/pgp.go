package keyring

import (
	"bytes"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/secmail/secmail/reason"
)

// parsePGP reads OpenPGP public or secret keys, armored (one armor block)
// or binary, and unlocks secret keys with the configured passphrases.
func (p *parser) parsePGP(data []byte, armored bool) error {
	bin := data
	blockType := ""
	if armored {
		blk, err := armor.Decode(bytes.NewReader(data))
		if err != nil {
			return reason.Wrap(reason.Malformed, err, "OpenPGP armor")
		}
		blockType = blk.Type
		if bin, err = io.ReadAll(blk.Body); err != nil {
			return reason.Wrap(reason.Malformed, err, "OpenPGP armor")
		}
	}
	ents, err := openpgp.ReadKeyRing(bytes.NewReader(bin))
	if err != nil {
		return reason.Wrap(reason.Malformed, err, "OpenPGP keys")
	}
	// Each entity keeps its own bytes as uploaded, so the store can hand a
	// single key back even when it came in a multi-key export.
	segs := splitEntities(bin)
	for i, e := range ents {
		raw := data
		if len(ents) > 1 && len(segs) == len(ents) {
			raw = segs[i]
			if armored {
				raw = armorBytes(segs[i], blockType)
			}
		}
		k := PGPKey{Entity: e, Raw: raw, Secret: e.PrivateKey != nil}
		if k.Secret && encryptedParts(e) > 0 {
			if len(p.opts.Passphrases) > 0 {
				if err := checkS2KCost(e); err != nil {
					return err
				}
			}
			for _, pass := range p.opts.Passphrases {
				// Keys that one passphrase opened stay open; the rest
				// (a subkey with another passphrase) are tried again.
				if e.DecryptPrivateKeys([]byte(pass)) == nil || encryptedParts(e) == 0 {
					k.Passphrase = pass
				}
				if encryptedParts(e) == 0 {
					break
				}
			}
			if encryptedParts(e) > 0 {
				if p.opts.RequireUnlocked {
					return reason.New(reason.WrongPassphrase, "OpenPGP secret key %X: no passphrase opens it", e.PrimaryKey.Fingerprint)
				}
				k.Locked = true
				k.Passphrase = ""
			}
		}
		p.b.PGP = append(p.b.PGP, k)
	}
	return nil
}

// Limits on Argon2 S2K (RFC 9580 §3.7.1.4): its recommended profiles use
// at most 2 GiB (2^21 KiB) of memory; go-crypto accepts up to 2^31 KiB,
// which would abort the process when a passphrase is tried.
const (
	maxArgon2MemoryExp = 21
	maxArgon2Passes    = 16
)

// checkS2KCost refuses secret keys whose S2K parameters would exhaust
// memory or time. go-crypto does not expose them, so they are read from
// the packet as go-crypto serialises it.
func checkS2KCost(e *openpgp.Entity) error {
	check := func(pk *packet.PrivateKey) error {
		if pk == nil || !pk.Encrypted || pk.Dummy() {
			return nil
		}
		var pub, priv bytes.Buffer
		if pk.PublicKey.Serialize(&pub) != nil || pk.Serialize(&priv) != nil {
			return nil // go-crypto reports the problem when decrypting
		}
		_, pubHdr, _, ok1 := packetHeaderLen(pub.Bytes())
		_, privHdr, _, ok2 := packetHeaderLen(priv.Bytes())
		body := priv.Bytes()
		if !ok1 || !ok2 || len(body) <= privHdr+pub.Len()-pubHdr {
			return nil
		}
		body = body[privHdr+pub.Len()-pubHdr:] // S2K usage onwards
		v := pk.PublicKey.Version
		usage, i := body[0], 1
		if v == 5 || (v == 6 && usage != 0) {
			i++ // count of the optional fields
		}
		if usage < 253 {
			return nil
		}
		i++ // cipher
		if usage == 253 {
			i++ // AEAD mode
		}
		if v == 6 {
			i++ // S2K specifier length
		}
		const argon2Mode, saltLen = 4, 16
		if len(body) < i+saltLen+4 || body[i] != argon2Mode {
			return nil
		}
		passes, memExp := body[i+1+saltLen], body[i+3+saltLen]
		if memExp > maxArgon2MemoryExp || passes > maxArgon2Passes {
			return reason.New(reason.TooComplex, "OpenPGP key %X: Argon2 S2K with 2^%d KiB and %d passes exceeds the limit", pk.PublicKey.Fingerprint, memExp, passes)
		}
		return nil
	}
	if err := check(e.PrivateKey); err != nil {
		return err
	}
	for _, s := range e.Subkeys {
		if err := check(s.PrivateKey); err != nil {
			return err
		}
	}
	return nil
}

// encryptedParts counts secret key packets still encrypted (dummy stubs
// of offline primary keys do not count).
func encryptedParts(e *openpgp.Entity) int {
	n := 0
	if e.PrivateKey != nil && !e.PrivateKey.Dummy() && e.PrivateKey.Encrypted {
		n++
	}
	for _, s := range e.Subkeys {
		if s.PrivateKey != nil && !s.PrivateKey.Dummy() && s.PrivateKey.Encrypted {
			n++
		}
	}
	return n
}

func armorBytes(bin []byte, typ string) []byte {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, typ, nil)
	if err != nil {
		return bin
	}
	_, _ = w.Write(bin)
	_ = w.Close()
	return buf.Bytes()
}

// splitEntities cuts a binary OpenPGP key stream before every primary key
// packet (tag 5 secret key, tag 6 public key). It returns nil when the
// stream uses lengths it does not follow; the caller then keeps the whole.
func splitEntities(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for off := 0; off < len(b); {
		tag, _, n, ok := packetHeaderLen(b[off:])
		if !ok || n > len(b)-off {
			return nil
		}
		if tag == 5 || tag == 6 {
			if start >= 0 {
				out = append(out, b[start:off])
			}
			start = off
		}
		off += n
	}
	if start >= 0 {
		out = append(out, b[start:])
	}
	return out
}

// packetHeaderLen returns a packet's tag, header length and total length.
func packetHeaderLen(b []byte) (tag, hdr, total int, ok bool) {
	if len(b) < 2 || b[0]&0x80 == 0 {
		return 0, 0, 0, false
	}
	var n int
	if b[0]&0x40 != 0 { // new format
		tag = int(b[0] & 0x3f)
		switch l0 := int(b[1]); {
		case l0 < 192:
			hdr, n = 2, l0
		case l0 < 224:
			if len(b) < 3 {
				return 0, 0, 0, false
			}
			hdr, n = 3, (l0-192)<<8+int(b[2])+192
		case l0 == 255:
			if len(b) < 6 {
				return 0, 0, 0, false
			}
			hdr, n = 6, int(b[2])<<24|int(b[3])<<16|int(b[4])<<8|int(b[5])
		default:
			return 0, 0, 0, false // partial lengths never occur in keys
		}
	} else {
		tag = int(b[0]>>2) & 0x0f
		switch b[0] & 3 {
		case 0:
			hdr, n = 2, int(b[1])
		case 1:
			if len(b) < 3 {
				return 0, 0, 0, false
			}
			hdr, n = 3, int(b[1])<<8|int(b[2])
		case 2:
			if len(b) < 5 {
				return 0, 0, 0, false
			}
			hdr, n = 5, int(b[1])<<24|int(b[2])<<16|int(b[3])<<8|int(b[4])
		default:
			return 0, 0, 0, false
		}
	}
	return tag, hdr, hdr + n, n >= 0
}
