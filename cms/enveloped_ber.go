package cms

import (
	"errors"
	"fmt"
)

// A zero-copy BER walker for the outer layers of (Auth)EnvelopedData.
//
// normalizeBER rebuilds the whole tree, which for a 50 MiB message costs
// several copies of the ciphertext. Decrypt instead walks the streaming
// (indefinite-length) structure in place, normalises only the small
// elements (RecipientInfos, algorithm identifiers, attributes) and collects
// the encrypted content as slices of the caller's buffer.

var errEnvBER = errors.New("invalid BER")

// envElem is one BER element as a view into the input.
type envElem struct {
	class       byte // 0x00 universal, 0x40 application, 0x80 context, 0xc0 private
	constructed bool
	tag         int
	body        []byte // contents, without the end-of-contents octets
	full        []byte // the whole element including header (and EOC)
}

func (e envElem) is(class byte, constructed bool, tag int) bool {
	return e.class == class && e.constructed == constructed && e.tag == tag
}

const (
	envUniversal = 0x00
	envContext   = 0x80
)

// envHeader parses identifier and length octets.
func envHeader(b []byte) (class byte, constructed bool, tag, hdr, length int, indefinite bool, err error) {
	if len(b) < 2 {
		return 0, false, 0, 0, 0, false, fmt.Errorf("%w: truncated header", errEnvBER)
	}
	id := b[0]
	class, constructed = id&0xc0, id&0x20 != 0
	tag = int(id & 0x1f)
	i := 1
	if tag == 0x1f {
		tag = 0
		for {
			if i >= len(b) || i > 4 {
				return 0, false, 0, 0, 0, false, fmt.Errorf("%w: bad tag", errEnvBER)
			}
			c := b[i]
			i++
			tag = tag<<7 | int(c&0x7f)
			if c&0x80 == 0 {
				break
			}
		}
	}
	if i >= len(b) {
		return 0, false, 0, 0, 0, false, fmt.Errorf("%w: truncated length", errEnvBER)
	}
	l := b[i]
	i++
	switch {
	case l == 0x80:
		if !constructed {
			return 0, false, 0, 0, 0, false, fmt.Errorf("%w: indefinite primitive", errEnvBER)
		}
		return class, constructed, tag, i, 0, true, nil
	case l < 0x80:
		length = int(l)
	default:
		n := int(l & 0x7f)
		if n > 4 || i+n > len(b) {
			return 0, false, 0, 0, 0, false, fmt.Errorf("%w: bad length", errEnvBER)
		}
		for j := 0; j < n; j++ {
			length = length<<8 | int(b[i+j])
		}
		i += n
	}
	if length > len(b)-i {
		return 0, false, 0, 0, 0, false, fmt.Errorf("%w: truncated element", errEnvBER)
	}
	return class, constructed, tag, i, length, false, nil
}

// envNext reads one element from b.
func envNext(b []byte, depth int) (e envElem, rest []byte, err error) {
	if depth > maxBERDepth {
		return e, nil, fmt.Errorf("%w: nested too deeply", errEnvBER)
	}
	class, constructed, tag, hdr, length, indefinite, err := envHeader(b)
	if err != nil {
		return e, nil, err
	}
	e.class, e.constructed, e.tag = class, constructed, tag
	if !indefinite {
		e.body = b[hdr : hdr+length]
		e.full = b[:hdr+length]
		return e, b[hdr+length:], nil
	}
	p := b[hdr:]
	pos := 0
	for {
		if len(p)-pos < 2 {
			return e, nil, fmt.Errorf("%w: missing end-of-contents", errEnvBER)
		}
		if p[pos] == 0 && p[pos+1] == 0 {
			break
		}
		_, r, err := envNext(p[pos:], depth+1)
		if err != nil {
			return e, nil, err
		}
		pos = len(p) - len(r)
	}
	e.body = p[:pos]
	e.full = b[:hdr+pos+2]
	return e, p[pos+2:], nil
}

// envChildren splits a constructed element into its children.
func envChildren(e envElem, depth int, max int) ([]envElem, error) {
	if !e.constructed {
		return nil, fmt.Errorf("%w: expected a constructed element", errEnvBER)
	}
	out := make([]envElem, 0, min(max, 8))
	b := e.body
	for len(b) > 0 {
		if len(out) >= max {
			return nil, fmt.Errorf("%w: too many elements", errEnvBER)
		}
		c, r, err := envNext(b, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		b = r
	}
	return out, nil
}

// envOctets collects the contents of an OCTET STRING (or an IMPLICIT
// tagged one) in primitive or constructed form as slices of the input.
func envOctets(e envElem, depth int, dst [][]byte) ([][]byte, error) {
	if !e.constructed {
		if len(e.body) > 0 {
			dst = append(dst, e.body)
		}
		return dst, nil
	}
	if depth > maxBERDepth {
		return nil, fmt.Errorf("%w: nested too deeply", errEnvBER)
	}
	b := e.body
	for len(b) > 0 {
		c, r, err := envNext(b, depth+1)
		if err != nil {
			return nil, err
		}
		if c.class != envUniversal || c.tag != 4 {
			return nil, fmt.Errorf("%w: constructed OCTET STRING with a non-OCTET STRING segment", errEnvBER)
		}
		if dst, err = envOctets(c, depth+1, dst); err != nil {
			return nil, err
		}
		b = r
	}
	return dst, nil
}
