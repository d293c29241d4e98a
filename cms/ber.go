package cms

import (
	"errors"
	"fmt"
)

// maxBERDepth bounds nesting so hostile input cannot exhaust the stack.
const maxBERDepth = 64

var errBER = errors.New("cms: invalid BER")

// normalizeBER converts BER as produced by streaming encoders (openssl cms,
// Outlook: indefinite lengths, constructed OCTET STRINGs) into DER-style
// definite-length encoding that encoding/asn1 reads. Constructed string
// types are flattened into primitive ones. Input that is already definite
// is returned unchanged without copying.
func normalizeBER(in []byte) ([]byte, error) {
	if !needsNormalizing(in, 0) {
		return in, nil
	}
	out, rest, err := berElement(in, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		// Trailing bytes are reported by the caller's asn1.Unmarshal.
		out = append(out, rest...)
	}
	return out, nil
}

// needsNormalizing reports whether any element in the tree uses an
// indefinite length or a constructed string encoding.
func needsNormalizing(b []byte, depth int) bool {
	for len(b) > 0 {
		if depth > maxBERDepth {
			return true // let berElement produce the error
		}
		tag, constructed, hdr, length, indefinite, err := berHeader(b)
		if err != nil {
			return true
		}
		if indefinite || (constructed && isStringTag(tag)) {
			return true
		}
		if hdr+length > len(b) {
			return true
		}
		if constructed && needsNormalizing(b[hdr:hdr+length], depth+1) {
			return true
		}
		b = b[hdr+length:]
	}
	return false
}

// isStringTag reports universal string types whose constructed form must be
// flattened (OCTET STRING, BIT STRING is not produced constructed in CMS).
func isStringTag(tag []byte) bool {
	return len(tag) == 1 && tag[0]&0xdf == 0x04 // universal OCTET STRING
}

// berHeader parses an identifier and length. tag holds the identifier
// octets as in b, constructed bit included.
func berHeader(b []byte) (tag []byte, constructed bool, hdr, length int, indefinite bool, err error) {
	if len(b) < 2 {
		return nil, false, 0, 0, false, fmt.Errorf("%w: short header", errBER)
	}
	i := 1
	if b[0]&0x1f == 0x1f { // high tag number form
		for {
			if i >= len(b) || i > 5 {
				return nil, false, 0, 0, false, fmt.Errorf("%w: bad tag", errBER)
			}
			if b[i]&0x80 == 0 {
				i++
				break
			}
			i++
		}
	}
	// A view of b, not a copy: needsNormalizing scans every element of
	// every message. Readers of tag ignore its constructed bit.
	tag = b[:i:i]
	constructed = tag[0]&0x20 != 0
	if i >= len(b) {
		return nil, false, 0, 0, false, fmt.Errorf("%w: missing length", errBER)
	}
	l := int(b[i])
	i++
	switch {
	case l == 0x80:
		if !constructed {
			return nil, false, 0, 0, false, fmt.Errorf("%w: indefinite primitive", errBER)
		}
		return tag, constructed, i, 0, true, nil
	case l < 0x80:
		length = l
	default:
		n := l & 0x7f
		if n > 4 || i+n > len(b) {
			return nil, false, 0, 0, false, fmt.Errorf("%w: bad length", errBER)
		}
		for j := 0; j < n; j++ {
			length = length<<8 | int(b[i+j])
		}
		i += n
		if length < 0 || length > MaxInput {
			return nil, false, 0, 0, false, fmt.Errorf("%w: length out of range", errBER)
		}
	}
	return tag, constructed, i, length, false, nil
}

// berElement converts one element starting at b and returns its DER form
// and the bytes after it.
func berElement(b []byte, depth int) (out, rest []byte, err error) {
	if depth > maxBERDepth {
		return nil, nil, fmt.Errorf("%w: nested too deeply", errBER)
	}
	tag, constructed, hdr, length, indefinite, err := berHeader(b)
	if err != nil {
		return nil, nil, err
	}
	if !constructed {
		if hdr+length > len(b) {
			return nil, nil, fmt.Errorf("%w: truncated", errBER)
		}
		return b[:hdr+length], b[hdr+length:], nil
	}
	var body, after []byte
	if indefinite {
		body = b[hdr:]
	} else {
		if hdr+length > len(b) {
			return nil, nil, fmt.Errorf("%w: truncated", errBER)
		}
		body, after = b[hdr:hdr+length], b[hdr+length:]
	}
	var children [][]byte
	for {
		if indefinite {
			if len(body) < 2 {
				return nil, nil, fmt.Errorf("%w: missing end-of-contents", errBER)
			}
			if body[0] == 0 && body[1] == 0 {
				after = body[2:]
				break
			}
		} else if len(body) == 0 {
			break
		}
		child, r, err := berElement(body, depth+1)
		if err != nil {
			return nil, nil, err
		}
		children = append(children, child)
		body = r
	}
	if isStringTag(tag) {
		// Flatten: concatenate the contents of the primitive segments.
		var content []byte
		for _, c := range children {
			_, _, h, l, _, err := berHeader(c)
			if err != nil {
				return nil, nil, err
			}
			content = append(content, c[h:h+l]...)
		}
		return appendTLV(nil, tag, false, content), after, nil
	}
	var content []byte
	for _, c := range children {
		content = append(content, c...)
	}
	return appendTLV(nil, tag, true, content), after, nil
}

func appendTLV(dst, tag []byte, constructed bool, content []byte) []byte {
	t0 := tag[0] &^ 0x20
	if constructed {
		t0 |= 0x20
	}
	dst = append(dst, t0)
	dst = append(dst, tag[1:]...)
	n := len(content)
	switch {
	case n < 0x80:
		dst = append(dst, byte(n))
	case n < 1<<8:
		dst = append(dst, 0x81, byte(n))
	case n < 1<<16:
		dst = append(dst, 0x82, byte(n>>8), byte(n))
	case n < 1<<24:
		dst = append(dst, 0x83, byte(n>>16), byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, content...)
}
