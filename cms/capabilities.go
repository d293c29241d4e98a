package cms

import (
	"encoding/asn1"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// DefaultCapabilities is what Sign advertises in SMIMECapabilities when the
// caller names nothing: the content ciphers secmail decrypts, strongest
// first (RFC 8551 §2.5.2 asks for preference order).
var DefaultCapabilities = []asn1.ObjectIdentifier{
	{2, 16, 840, 1, 101, 3, 4, 1, 46}, // aes256-GCM
	{2, 16, 840, 1, 101, 3, 4, 1, 6},  // aes128-GCM
	{2, 16, 840, 1, 101, 3, 4, 1, 42}, // aes256-CBC
	{2, 16, 840, 1, 101, 3, 4, 1, 2},  // aes128-CBC
}

// sdMaxCapabilities bounds how many capabilities are read from a message.
const sdMaxCapabilities = 64

// sdParseCapabilities reads an SMIMECapabilities value (SEQUENCE OF
// SEQUENCE { capabilityID OID, parameters ANY OPTIONAL }) and returns the
// dotted OIDs in order. It stops at the first unreadable entry: the list is
// advisory, so a damaged tail is dropped rather than failing verification.
func sdParseCapabilities(v []byte) []string {
	s := cryptobyte.String(v)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return nil
	}
	var out []string
	for !seq.Empty() && len(out) < sdMaxCapabilities {
		var capab cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !seq.ReadASN1(&capab, cbasn1.SEQUENCE) {
			break
		}
		// The ciphers mail agents advertise, without parsing and
		// formatting their OIDs for every message.
		var der cryptobyte.String
		if peek := capab; peek.ReadASN1(&der, cbasn1.OBJECT_IDENTIFIER) {
			if name, ok := sdKnownCapabilities[string(der)]; ok {
				out = append(out, name)
				continue
			}
		}
		if !capab.ReadASN1ObjectIdentifier(&oid) {
			break
		}
		out = append(out, oid.String())
	}
	return out
}

// sdKnownCapabilities maps the DER contents of common capability OIDs to
// their dotted form.
var sdKnownCapabilities = func() map[string]string {
	m := map[string]string{}
	for _, oid := range []asn1.ObjectIdentifier{
		{2, 16, 840, 1, 101, 3, 4, 1, 2},  // aes128-CBC
		{2, 16, 840, 1, 101, 3, 4, 1, 22}, // aes192-CBC
		{2, 16, 840, 1, 101, 3, 4, 1, 42}, // aes256-CBC
		{2, 16, 840, 1, 101, 3, 4, 1, 6},  // aes128-GCM
		{2, 16, 840, 1, 101, 3, 4, 1, 26}, // aes192-GCM
		{2, 16, 840, 1, 101, 3, 4, 1, 46}, // aes256-GCM
		{1, 2, 840, 113549, 3, 7},         // des-ede3-cbc
		{1, 2, 840, 113549, 3, 2},         // rc2-cbc
		{1, 3, 14, 3, 2, 7},               // des-cbc
	} {
		der, err := asn1.Marshal(oid)
		if err != nil || len(der) < 2 {
			panic("cms: capability OID " + oid.String())
		}
		m[string(der[2:])] = oid.String()
	}
	return m
}()

// sdAddCapabilities writes an SMIMECapabilities value without parameters
// (the AES ciphers take none in this attribute).
func sdAddCapabilities(c *cryptobyte.Builder, caps []asn1.ObjectIdentifier) {
	c.AddASN1(cbasn1.SEQUENCE, func(c *cryptobyte.Builder) {
		for _, oid := range caps {
			c.AddASN1(cbasn1.SEQUENCE, func(c *cryptobyte.Builder) {
				c.AddASN1ObjectIdentifier(oid)
			})
		}
	})
}
