package mimewalk

import (
	"bytes"

	"github.com/emersion/go-message/textproto"
)

// readHeader parses a header block into exactly what textproto.ReadHeader
// returns for it (same fields in the same order, same keys, values and raw
// bytes, same error). Well-formed blocks, which is what mail consists of,
// are split here without ReadHeader's bufio.Reader and per-field line
// buffers; anything unusual is left to ReadHeader itself.
func readHeader(b []byte) (textproto.Header, error) {
	if h, ok := quickHeader(b); ok {
		return h, nil
	}
	return textproto.ReadHeader(bufioReader(b))
}

// quickHeader handles a block that does not start with white space and
// whose fields up to the first empty line (or the end) each have a colon
// and a non-empty key of printable characters; ok is false for anything
// else, and for a block without fields.
func quickHeader(b []byte) (h textproto.Header, ok bool) {
	var arr [32][]byte
	kvs, ok := quickFields(b, arr[:0])
	if !ok || len(kvs) == 0 {
		return h, false
	}
	// textproto.Header keeps its fields in reverse order; AddRaw appends.
	for k := len(kvs) - 1; k >= 0; k-- {
		h.AddRaw(kvs[k])
	}
	return h, true
}

// quickFields appends to kvs the raw fields of b as textproto.ReadHeader
// splits them (each line with CRLF, continuation lines included), in
// order, when quickHeader's conditions hold; ok is false otherwise. A
// field is a view of b when all its lines end in CRLF (ReadHeader's copy
// would be equal), a copy with CRLF line ends otherwise.
func quickFields(b []byte, kvs [][]byte) (_ [][]byte, ok bool) {
	if len(b) == 0 || isWSP(b[0]) {
		return kvs, false
	}
	for i := 0; i < len(b); {
		next, contentEnd := headerLine(b, i)
		if contentEnd == i {
			break // empty line: end of the header
		}
		start, crlf := i, contentEnd == next-2
		for next < len(b) && isWSP(b[next]) {
			n, ce := headerLine(b, next)
			crlf = crlf && ce == n-2
			next = n
		}
		var kv []byte
		if crlf {
			kv = b[start:next:next]
		} else {
			kv = make([]byte, 0, next-start+2)
			for j := start; j < next; {
				n, ce := headerLine(b, j)
				kv = append(append(kv, b[j:ce]...), '\r', '\n')
				j = n
			}
		}
		key, ok := fieldKey(kv)
		if !ok || len(key) == 0 {
			return kvs, false
		}
		for _, c := range key {
			if c < 33 || c > 126 || c == ':' {
				return kvs, false
			}
		}
		kvs = append(kvs, kv)
		i = next
	}
	return kvs, true
}

// fieldKey returns a raw field's key without surrounding white space, as
// textproto reads it (before canonicalisation); ok is false without colon.
func fieldKey(kv []byte) (key []byte, ok bool) {
	colon := bytes.IndexByte(kv, ':')
	if colon < 0 {
		return nil, false
	}
	key = kv[:colon]
	for len(key) > 0 && isWSP(key[0]) {
		key = key[1:]
	}
	for len(key) > 0 && isWSP(key[len(key)-1]) {
		key = key[:len(key)-1]
	}
	return key, true
}

// blankValue reports whether a raw field's value is empty as textproto
// returns it (Header.Get): every line of it, without a CR before its end,
// only spaces and tabs.
func blankValue(kv []byte) bool {
	v := kv[bytes.IndexByte(kv, ':')+1:]
	for len(v) > 0 {
		line := v
		if i := bytes.IndexByte(v, '\n'); i >= 0 {
			line, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		for _, c := range line {
			if !isWSP(c) {
				return false
			}
		}
	}
	return true
}

// headerLine returns the start of the line after the one at i and the end
// of that line's content: without its LF, and without a CR before the LF,
// as bufio.Reader.ReadLine returns it (a line at the end of b without LF
// keeps everything).
func headerLine(b []byte, i int) (next, contentEnd int) {
	j := bytes.IndexByte(b[i:], '\n')
	if j < 0 {
		return len(b), len(b)
	}
	next, contentEnd = i+j+1, i+j
	if contentEnd > i && b[contentEnd-1] == '\r' {
		contentEnd--
	}
	return next, contentEnd
}

func isWSP(c byte) bool { return c == ' ' || c == '\t' }
