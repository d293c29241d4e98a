package pipeline

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"

	"github.com/secmail/secmail/internal/fastb64"
)

// splitRaw finds the top-level "raw" member of a JSON object and, when its
// value is a string without escapes or control characters (as base64
// always is), returns the document with that value replaced by "" and the
// string's contents. Everything else is then decoded by encoding/json on
// the small remainder, so its rules (validation, case-insensitive field
// names, duplicate fields, unknown fields) still apply; only the base64,
// which is most of an article's bytes, skips encoding/json's byte-by-byte
// scanner and its string copy (measured: a third of the pipeline's own
// CPU per 4 KiB article). ok is false whenever the shape is anything else
// (escaped keys, duplicate raw members, raw not a plain string, not an
// object); the caller then decodes the whole payload with encoding/json.
//
// The scan tracks string boundaries exactly and only ever replaces one
// complete string literal, so the remainder is valid JSON exactly when the
// payload is.
func splitRaw(p []byte) (rest, raw []byte, ok bool) {
	i := skipSpace(p, 0)
	if i >= len(p) || p[i] != '{' {
		return nil, nil, false
	}
	i++
	start, end := -1, -1
	for {
		i = skipSpace(p, i)
		if i >= len(p) {
			return nil, nil, false
		}
		switch p[i] {
		case '}':
			if start < 0 {
				return nil, nil, false
			}
			rest = make([]byte, 0, len(p)-(end-start)+2)
			rest = append(append(append(rest, p[:start]...), `""`...), p[end:]...)
			return rest, p[start+1 : end-1], true
		case ',':
			i++
			continue
		case '"':
		default:
			return nil, nil, false
		}
		keyEnd, escaped := scanString(p, i)
		if keyEnd < 0 || escaped {
			// An escaped key may spell "raw": leave it to encoding/json.
			return nil, nil, false
		}
		isRaw := asciiEqualFold(p[i+1:keyEnd-1], "raw")
		i = skipSpace(p, keyEnd)
		if i >= len(p) || p[i] != ':' {
			return nil, nil, false
		}
		i = skipSpace(p, i+1)
		if !isRaw {
			if i = skipValue(p, i); i < 0 {
				return nil, nil, false
			}
			continue
		}
		if start >= 0 || i >= len(p) || p[i] != '"' {
			return nil, nil, false // a second raw member, or raw is not a string
		}
		e, escaped := scanString(p, i)
		if e < 0 || escaped || hasControl(p[i+1:e-1]) {
			return nil, nil, false
		}
		start, end, i = i, e, e
	}
}

func skipSpace(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index after the string literal starting at
// p[i] == '"', and whether it contains a backslash; -1 if unterminated.
func scanString(p []byte, i int) (end int, escaped bool) {
	j := i + 1
	for {
		q := bytes.IndexByte(p[j:], '"')
		if q < 0 {
			return -1, escaped
		}
		b := bytes.IndexByte(p[j:j+q], '\\')
		if b < 0 {
			return j + q + 1, escaped
		}
		// Step over the escape and its next byte (which may be a quote).
		escaped = true
		j += b + 2
		if j > len(p) {
			return -1, escaped
		}
	}
}

// skipValue returns the index after the JSON value starting at p[i], or
// -1. It does not validate (encoding/json does that on the remainder); it
// only has to keep string boundaries right.
func skipValue(p []byte, i int) int {
	if i >= len(p) {
		return -1
	}
	switch p[i] {
	case '"':
		e, _ := scanString(p, i)
		return e
	case '{', '[':
		depth := 0
		for i < len(p) {
			switch p[i] {
			case '"':
				e, _ := scanString(p, i)
				if e < 0 {
					return -1
				}
				i = e
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	for i < len(p) && strings.IndexByte(",}] \t\r\n", p[i]) < 0 {
		i++
	}
	return i
}

// hasControl reports whether s has a byte below 0x20, eight bytes at a
// time ("hasless" from Bit Twiddling Hacks: exact for n <= 128).
func hasControl(s []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		if (x-ones*0x20)&^x&highs != 0 {
			return true
		}
	}
	for ; i < len(s); i++ {
		if s[i] < 0x20 {
			return true
		}
	}
	return false
}

// asciiEqualFold reports whether b equals s ignoring ASCII case, as
// encoding/json matches field names. (Its Unicode folding adds only K and
// S look-alikes, which "raw" does not contain.)
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// encodeResult is json.Marshal(res), except that the top-level raw body,
// most of a result's bytes, is base64-encoded straight into the output
// rather than through encoding/json's reflection and growing buffer. The
// member goes last; members of a JSON object have no order.
func encodeResult(res *Result) ([]byte, error) {
	if len(res.Raw) == 0 {
		return json.Marshal(res)
	}
	doc := *res
	doc.Raw = nil
	head, err := json.Marshal(&doc)
	if err != nil {
		return nil, err
	}
	// head is an object with members: it ends in '}'.
	const member = `,"raw":"`
	n := len(head) - 1 + len(member)
	size := n + fastb64.EncodedLen(len(res.Raw))
	out := make([]byte, size, size+2)
	copy(out, head[:len(head)-1])
	copy(out[len(head)-1:], member)
	fastb64.Encode(out[n:], res.Raw)
	return append(out, `"}`...), nil
}
