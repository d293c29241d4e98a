package mimewalk

import (
	"bytes"
	"encoding/base64"
	"mime/quotedprintable"
	"strings"
)

// maxSafeLine is the longest line we let through unencoded: RFC 5322 allows
// 998, but many MTAs rewrap above 76-78, which breaks signatures.
const maxSafeLine = 76

// TransportSafe returns entity (a MIME entity: Content-* header fields and
// body) rewritten so that it survives transport through real MTAs byte for
// byte, as a signature requires (RFC 8551 3.1.1, RFC 3156 3): CRLF line
// endings, and leaf bodies with 8-bit bytes, long lines or trailing
// whitespace re-encoded as quoted-printable (text) or base64 (other).
func TransportSafe(entity []byte, l Limits) ([]byte, error) {
	p, err := Parse(entity, l)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(len(entity) + len(entity)/8)
	if err := writeSafe(&buf, p); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeSafe(buf *bytes.Buffer, p *Part) error {
	if strings.HasPrefix(p.MediaType, "multipart/") {
		buf.Write(Canonicalize(p.RawHeader))
		boundary := p.Params["boundary"]
		for _, c := range p.Children {
			buf.WriteString("\r\n--" + boundary + "\r\n")
			if err := writeSafe(buf, c); err != nil {
				return err
			}
		}
		buf.WriteString("\r\n--" + boundary + "--\r\n")
		return nil
	}
	cte := strings.ToLower(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding")))
	if cte == "base64" || cte == "quoted-printable" || !needsEncoding(p.Body) {
		buf.Write(Canonicalize(p.RawHeader))
		buf.Write(Canonicalize(p.Body))
		return nil
	}
	// Re-encode: write every header field but the transfer encoding.
	h := p.Header.Copy()
	h.Del("Content-Transfer-Encoding")
	text := strings.HasPrefix(p.MediaType, "text/")
	if text {
		h.Set("Content-Transfer-Encoding", "quoted-printable")
	} else {
		h.Set("Content-Transfer-Encoding", "base64")
	}
	writeFields(buf, h, func(string) bool { return true })
	buf.WriteString("\r\n")
	if text {
		body := Canonicalize(p.Body)
		w := quotedprintable.NewWriter(buf)
		// Text mode: the writer turns CRLF into hard line breaks.
		w.Binary = false
		if _, err := w.Write(body); err != nil {
			return err
		}
		return w.Close()
	}
	writeBase64Lines(buf, p.Body)
	return nil
}

// needsEncoding reports 8-bit bytes, bare CR, long lines or trailing
// whitespace, any of which a relay may change.
func needsEncoding(b []byte) bool {
	lineLen := 0
	for i, c := range b {
		switch {
		case c >= 0x80 || c == 0:
			return true
		case c == '\n':
			if i > 0 {
				prev := b[i-1]
				if prev == '\r' && i > 1 {
					prev = b[i-2]
				}
				if prev == ' ' || prev == '\t' {
					return true
				}
			}
			lineLen = 0
			continue
		}
		lineLen++
		if lineLen > maxSafeLine {
			return true
		}
	}
	n := len(bytes.TrimRight(b, "\r\n"))
	return n > 0 && (b[n-1] == ' ' || b[n-1] == '\t')
}

// writeBase64Lines writes b base64-encoded in lines of 76 characters.
func writeBase64Lines(buf *bytes.Buffer, b []byte) {
	enc := base64.StdEncoding.EncodeToString(b)
	for len(enc) > 76 {
		buf.WriteString(enc[:76])
		buf.WriteString("\r\n")
		enc = enc[76:]
	}
	buf.WriteString(enc)
	buf.WriteString("\r\n")
}

// Base64Body returns b base64-encoded in 76-character CRLF lines.
func Base64Body(b []byte) []byte {
	var buf bytes.Buffer
	writeBase64Lines(&buf, b)
	return buf.Bytes()
}

// Entity returns the body entity of a message: its Content-* header fields
// and body (defaulting to text/plain), as the part to sign or encrypt.
func Entity(msg *Part) []byte {
	var buf bytes.Buffer
	writeFields(&buf, msg.Header, isBodyField)
	if msg.Header.Get("Content-Type") == "" {
		buf.WriteString("Content-Type: text/plain; charset=us-ascii\r\n")
	}
	buf.WriteString("\r\n")
	buf.Write(msg.Body)
	return buf.Bytes()
}
