package mimewalk

import (
	"bytes"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// isContentField reports header fields that describe the body and so belong
// to the inner entity when a message is unwrapped.
func isContentField(k string) bool {
	k = strings.ToLower(k)
	return strings.HasPrefix(k, "content-") || k == "mime-version"
}

// isBodyField reports the Content-* fields an entity carries.
func isBodyField(k string) bool {
	return strings.HasPrefix(strings.ToLower(k), "content-")
}

// isBodyFieldBytes is isBodyField for a raw key (ASCII, as quickFields
// accepts it), without allocating.
func isBodyFieldBytes(k []byte) bool {
	const p = "content-"
	return len(k) >= len(p) && strings.EqualFold(string(k[:len(p)]), p)
}

// Replace returns a complete message made of outer's header fields that do
// not describe the body (From, To, Subject, Date, Message-ID ...) followed
// by entity, a MIME entity (its Content-* header fields and body). The
// helpdesk stores and shows this as the decrypted / unwrapped article.
func Replace(outer textproto.Header, entity []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(entity) + 1024)
	writeFields(&buf, outer, func(k string) bool { return !isContentField(k) })
	buf.WriteString("MIME-Version: 1.0\r\n")
	hdrLen := headerEnd(entity)
	var arr [32][]byte
	if kvs, ok := quickFields(entity[:hdrLen], arr[:0]); ok {
		// The fields as textproto.ReadHeader would return them, without
		// building a Header: Content-* copied, and the first Content-Type
		// is what Get would return.
		hasType, sawType := false, false
		for _, kv := range kvs {
			key, _ := fieldKey(kv)
			if !isBodyFieldBytes(key) {
				continue
			}
			buf.Write(Canonicalize(bytes.TrimRight(kv, "\r\n")))
			buf.WriteString("\r\n")
			if !sawType && len(key) == len("Content-Type") && strings.EqualFold(string(key), "Content-Type") {
				sawType, hasType = true, !blankValue(kv)
			}
		}
		if !hasType {
			buf.WriteString("Content-Type: text/plain; charset=us-ascii\r\n")
		}
	} else {
		inner, err := textproto.ReadHeader(bufioReader(entity[:hdrLen]))
		if err == nil {
			writeFields(&buf, inner, isBodyField)
		}
		if inner.Get("Content-Type") == "" {
			buf.WriteString("Content-Type: text/plain; charset=us-ascii\r\n")
		}
	}
	buf.WriteString("\r\n")
	buf.Write(entity[hdrLen:])
	return buf.Bytes()
}

// WriteHeader writes h's fields that keep(key) accepts, each with CRLF.
func writeFields(buf *bytes.Buffer, h textproto.Header, keep func(string) bool) {
	fields := h.Fields()
	for fields.Next() {
		if !keep(fields.Key()) {
			continue
		}
		raw, err := fields.Raw()
		if err != nil {
			continue
		}
		buf.Write(Canonicalize(bytes.TrimRight(raw, "\r\n")))
		buf.WriteString("\r\n")
	}
}

// TextEntity returns a text/plain MIME entity for body in charset (utf-8
// when empty), with CRLF line endings and an 8bit transfer encoding when
// the text is not plain ASCII.
func TextEntity(body []byte, charset string) []byte {
	if charset == "" {
		charset = "utf-8"
	}
	cte := "7bit"
	for _, c := range body {
		if c >= 0x80 {
			cte = "8bit"
			break
		}
	}
	var buf bytes.Buffer
	buf.WriteString("Content-Type: text/plain; charset=" + charset + "\r\n")
	buf.WriteString("Content-Transfer-Encoding: " + cte + "\r\n\r\n")
	buf.Write(Canonicalize(body))
	return buf.Bytes()
}
