package keyring

import (
	"bytes"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"

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
		tag, n, ok := packetHeader(b[off:])
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

// packetHeader returns a packet's tag and total length (header included).
func packetHeader(b []byte) (tag, total int, ok bool) {
	if len(b) < 2 || b[0]&0x80 == 0 {
		return 0, 0, false
	}
	if b[0]&0x40 != 0 { // new format
		tag = int(b[0] & 0x3f)
		l0 := int(b[1])
		switch {
		case l0 < 192:
			return tag, 2 + l0, true
		case l0 < 224:
			if len(b) < 3 {
				return 0, 0, false
			}
			return tag, 3 + (l0-192)<<8 + int(b[2]) + 192, true
		case l0 == 255:
			if len(b) < 6 {
				return 0, 0, false
			}
			n := int(b[2])<<24 | int(b[3])<<16 | int(b[4])<<8 | int(b[5])
			return tag, 6 + n, n >= 0
		}
		return 0, 0, false // partial lengths never occur in keys
	}
	tag = int(b[0]>>2) & 0x0f
	switch b[0] & 3 {
	case 0:
		return tag, 2 + int(b[1]), true
	case 1:
		if len(b) < 3 {
			return 0, 0, false
		}
		return tag, 3 + (int(b[1])<<8 | int(b[2])), true
	case 2:
		if len(b) < 5 {
			return 0, 0, false
		}
		n := int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4])
		return tag, 5 + n, n >= 0
	}
	return 0, 0, false
}
