package cms

import (
	"bytes"
	"encoding/asn1"
	"sort"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/secmail/secmail/reason"
)

// sdMaxAttrs bounds the number of attributes in one signed or unsigned
// attribute set; real signers use fewer than ten.
const sdMaxAttrs = 64

// sdAttribute is one Attribute (RFC 5652 §5.3): a type and its values, each
// value kept as its full DER element.
type sdAttribute struct {
	Type   asn1.ObjectIdentifier
	Values [][]byte
}

// sdParseAttributes parses the contents of a SET OF Attribute (the bytes
// inside the [0] IMPLICIT tag).
func sdParseAttributes(body cryptobyte.String) ([]sdAttribute, error) {
	var out []sdAttribute
	for !body.Empty() {
		if len(out) >= sdMaxAttrs {
			return nil, reason.New(reason.TooComplex, "more than %d attributes", sdMaxAttrs)
		}
		var attr, set cryptobyte.String
		var a sdAttribute
		if !body.ReadASN1(&attr, cbasn1.SEQUENCE) ||
			!attr.ReadASN1ObjectIdentifier(&a.Type) ||
			!attr.ReadASN1(&set, cbasn1.SET) || !attr.Empty() {
			return nil, reason.New(reason.Malformed, "invalid attribute")
		}
		for !set.Empty() {
			var v cryptobyte.String
			var tag cbasn1.Tag
			if !set.ReadAnyASN1Element(&v, &tag) {
				return nil, reason.New(reason.Malformed, "invalid value of attribute %s", a.Type)
			}
			a.Values = append(a.Values, v)
		}
		if len(a.Values) == 0 {
			return nil, reason.New(reason.Malformed, "attribute %s without value", a.Type)
		}
		out = append(out, a)
	}
	return out, nil
}

// sdFindAttr returns the single value of the attribute of type oid. found is
// false when it is absent; a repeated attribute or one with several values
// is malformed (RFC 5652 §11: content-type, message-digest and signing-time
// carry exactly one value and appear at most once).
func sdFindAttr(attrs []sdAttribute, oid asn1.ObjectIdentifier) (value []byte, found bool, err error) {
	for _, a := range attrs {
		if !a.Type.Equal(oid) {
			continue
		}
		if found {
			return nil, false, reason.New(reason.Malformed, "attribute %s repeated", oid)
		}
		if len(a.Values) != 1 {
			return nil, false, reason.New(reason.Malformed, "attribute %s must have one value", oid)
		}
		value, found = a.Values[0], true
	}
	return value, found, nil
}

// sdParseTime reads a UTCTime or GeneralizedTime element (signing-time).
func sdParseTime(v []byte) (time.Time, error) {
	s := cryptobyte.String(v)
	var t time.Time
	switch {
	case s.PeekASN1Tag(cbasn1.UTCTime):
		if !s.ReadASN1UTCTime(&t) {
			return t, reason.New(reason.Malformed, "invalid signing-time")
		}
	case s.PeekASN1Tag(cbasn1.GeneralizedTime):
		if !s.ReadASN1GeneralizedTime(&t) {
			return t, reason.New(reason.Malformed, "invalid signing-time")
		}
	default:
		return t, reason.New(reason.Malformed, "signing-time is not a time")
	}
	if !s.Empty() {
		return t, reason.New(reason.Malformed, "trailing data in signing-time")
	}
	return t, nil
}

// sdAttrBuilder collects signed attributes and encodes them as a DER SET OF:
// the elements sorted by their encodings (X.690 §11.6), which is what the
// signature covers.
type sdAttrBuilder struct {
	elems [][]byte
}

// add appends an attribute with one value written by value.
func (b *sdAttrBuilder) add(oid asn1.ObjectIdentifier, value func(*cryptobyte.Builder)) error {
	var cb cryptobyte.Builder
	cb.AddASN1(cbasn1.SEQUENCE, func(c *cryptobyte.Builder) {
		c.AddASN1ObjectIdentifier(oid)
		c.AddASN1(cbasn1.SET, value)
	})
	der, err := cb.Bytes()
	if err != nil {
		return err
	}
	b.elems = append(b.elems, der)
	return nil
}

// set returns the DER SET OF (tag 0x31) over the sorted attributes.
func (b *sdAttrBuilder) set() ([]byte, error) {
	sorted := sdSortDER(b.elems)
	var cb cryptobyte.Builder
	cb.AddASN1(cbasn1.SET, func(c *cryptobyte.Builder) {
		for _, e := range sorted {
			c.AddBytes(e)
		}
	})
	return cb.Bytes()
}

// sdSortDER returns a sorted copy of DER elements, the order DER requires
// for the members of a SET OF.
func sdSortDER(elems [][]byte) [][]byte {
	out := append([][]byte(nil), elems...)
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i], out[j]) < 0 })
	return out
}

// sdAddTime writes t as UTCTime for 1950–2049 and GeneralizedTime otherwise
// (RFC 5652 §11.3).
func sdAddTime(c *cryptobyte.Builder, t time.Time) {
	t = t.UTC().Truncate(time.Second)
	if t.Year() >= 1950 && t.Year() < 2050 {
		c.AddASN1UTCTime(t)
		return
	}
	c.AddASN1GeneralizedTime(t)
}
