// Package mimewalk parses RFC 5322 / MIME messages into a tree of parts that
// keeps the exact bytes of every part. Signature verification needs those
// bytes (RFC 1847: a multipart/signed signature covers its first part
// byte for byte), which general MIME readers normalise away.
//
// The walker is strict about limits (size, depth, parts, header bytes) and
// lenient about everything else real mail gets wrong: bare LF line endings,
// a missing closing boundary, junk after the last part.
package mimewalk

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"

	"github.com/emersion/go-message/textproto"

	"github.com/secmail/secmail/reason"
)

// Limits bound the resources one message may use.
type Limits struct {
	MaxSize        int // whole message, bytes
	MaxDepth       int // multipart / message nesting
	MaxParts       int // parts in the whole tree
	MaxHeaderBytes int // per header block
}

// DefaultLimits are sane for helpdesk mail.
var DefaultLimits = Limits{
	MaxSize:        50 << 20,
	MaxDepth:       32,
	MaxParts:       1000,
	MaxHeaderBytes: 256 << 10,
}

func (l Limits) orDefault() Limits {
	d := DefaultLimits
	if l.MaxSize > 0 {
		d.MaxSize = l.MaxSize
	}
	if l.MaxDepth > 0 {
		d.MaxDepth = l.MaxDepth
	}
	if l.MaxParts > 0 {
		d.MaxParts = l.MaxParts
	}
	if l.MaxHeaderBytes > 0 {
		d.MaxHeaderBytes = l.MaxHeaderBytes
	}
	return d
}

// Part is one MIME entity.
type Part struct {
	Header    textproto.Header
	RawHeader []byte // header block including the blank line, as in the input
	Body      []byte // raw body, still transfer-encoded
	Raw       []byte // RawHeader + Body: the exact bytes of the entity

	MediaType string            // lower-cased type/subtype, "text/plain" when absent
	Params    map[string]string // Content-Type parameters
	Children  []*Part           // multipart children
	// Preamble-less parse problems that were tolerated (missing closing
	// boundary ...), for diagnostics.
	Lenient []string
}

// Parse parses raw as a message with limits l (zero fields take defaults).
// Errors are *reason.Error with codes TooLarge, TooComplex or Malformed.
func Parse(raw []byte, l Limits) (p *Part, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, reason.New(reason.Malformed, "panic while parsing MIME: %v", r)
		}
	}()
	l = l.orDefault()
	if len(raw) > l.MaxSize {
		return nil, reason.New(reason.TooLarge, "message of %d bytes exceeds the limit of %d", len(raw), l.MaxSize)
	}
	parts := 0
	return parse(raw, l, 0, &parts)
}

func parse(raw []byte, l Limits, depth int, parts *int) (*Part, error) {
	if depth > l.MaxDepth {
		return nil, reason.New(reason.TooComplex, "MIME nesting deeper than %d", l.MaxDepth)
	}
	*parts++
	if *parts > l.MaxParts {
		return nil, reason.New(reason.TooComplex, "more than %d MIME parts", l.MaxParts)
	}
	hdrLen := headerEnd(raw)
	if hdrLen > l.MaxHeaderBytes {
		return nil, reason.New(reason.TooLarge, "header block of %d bytes exceeds the limit of %d", hdrLen, l.MaxHeaderBytes)
	}
	p := &Part{RawHeader: raw[:hdrLen], Body: raw[hdrLen:], Raw: raw}
	h, err := readHeader(p.RawHeader)
	if err != nil && err != io.EOF {
		return nil, reason.Wrap(reason.Malformed, err, "MIME header")
	}
	p.Header = h
	p.MediaType, p.Params = "text/plain", map[string]string{}
	if ct := h.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil && mt == "" {
			// Unparseable Content-Type: RFC 2045 says treat as text/plain.
			p.Lenient = append(p.Lenient, "unparseable Content-Type")
		} else {
			p.MediaType, p.Params = strings.ToLower(mt), params
		}
	}
	if strings.HasPrefix(p.MediaType, "multipart/") {
		boundary := p.Params["boundary"]
		if boundary == "" {
			return nil, reason.New(reason.Malformed, "%s without boundary", p.MediaType)
		}
		bodies, lenient, err := splitMultipart(p.Body, boundary)
		if err != nil {
			return nil, err
		}
		p.Lenient = append(p.Lenient, lenient...)
		for _, b := range bodies {
			c, err := parse(b, l, depth+1, parts)
			if err != nil {
				return nil, err
			}
			p.Children = append(p.Children, c)
		}
	}
	return p, nil
}

// headerEnd returns the length of the header block including the empty
// line that ends it (CRLF or LF). A message without a blank line is all
// header.
func headerEnd(raw []byte) int {
	// A body may start right away with an empty line (no headers).
	if bytes.HasPrefix(raw, []byte("\r\n")) {
		return 2
	}
	if bytes.HasPrefix(raw, []byte("\n")) {
		return 1
	}
	for i := 0; i < len(raw); {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			return len(raw)
		}
		next := i + j + 1
		if next < len(raw) && raw[next] == '\n' {
			return next + 1
		}
		if next+1 < len(raw) && raw[next] == '\r' && raw[next+1] == '\n' {
			return next + 2
		}
		i = next
	}
	return len(raw)
}

// splitMultipart returns the exact bytes of each body part. The line break
// before a delimiter belongs to the delimiter (RFC 2046 5.1.1).
func splitMultipart(body []byte, boundary string) (parts [][]byte, lenient []string, err error) {
	delim := []byte("--" + boundary)
	start := -1 // start of the current part's content
	closed := false
	for i := 0; i <= len(body); {
		lineEnd := bytes.IndexByte(body[i:], '\n')
		var line []byte
		next := len(body) + 1
		if lineEnd < 0 {
			line = body[i:]
		} else {
			line = body[i : i+lineEnd+1]
			next = i + lineEnd + 1
		}
		if bytes.HasPrefix(line, delim) {
			rest := bytes.TrimRight(line[len(delim):], " \t\r\n")
			isClose := bytes.Equal(rest, []byte("--"))
			if len(rest) == 0 || isClose {
				if start >= 0 {
					end := i
					// Strip the line break that precedes the delimiter.
					if end > start && body[end-1] == '\n' {
						end--
						if end > start && body[end-1] == '\r' {
							end--
						}
					}
					parts = append(parts, body[start:end])
				}
				if isClose {
					closed = true
					break
				}
				start = next
				if start > len(body) {
					start = len(body)
				}
			}
		}
		if lineEnd < 0 {
			break
		}
		i = next
	}
	if !closed {
		if start < 0 {
			return nil, nil, reason.New(reason.Malformed, "multipart boundary %q not found", boundary)
		}
		// Missing closing delimiter: take the rest as the last part.
		lenient = append(lenient, "missing closing boundary")
		parts = append(parts, bytes.TrimRight(body[start:], "\r\n"))
	}
	return parts, lenient, nil
}

// Decode returns the part's body with its Content-Transfer-Encoding removed.
func (p *Part) Decode() ([]byte, error) {
	cte := strings.ToLower(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding")))
	switch cte {
	case "", "7bit", "8bit", "binary":
		return p.Body, nil
	case "base64":
		// Fast path: well-formed base64 in lines (the decoder skips CR and
		// LF itself), decoded without a cleaned copy.
		out := make([]byte, base64.StdEncoding.DecodedLen(len(p.Body)))
		if n, err := base64.StdEncoding.Decode(out, p.Body); err == nil {
			return out[:n], nil
		}
		clean := make([]byte, 0, len(p.Body))
		for _, c := range p.Body {
			switch c {
			case ' ', '\t', '\r', '\n':
			default:
				clean = append(clean, c)
			}
		}
		// Tolerate missing padding, which some MUAs produce.
		clean = bytes.TrimRight(clean, "=")
		if need := base64.RawStdEncoding.DecodedLen(len(clean)); cap(out) >= need {
			out = out[:need]
		} else {
			out = make([]byte, need)
		}
		n, err := base64.RawStdEncoding.Decode(out, clean)
		if err != nil {
			return nil, reason.Wrap(reason.Malformed, err, "base64 body")
		}
		return out[:n], nil
	case "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(p.Body)))
		if err != nil {
			return nil, reason.Wrap(reason.Malformed, err, "quoted-printable body")
		}
		return out, nil
	}
	return nil, reason.New(reason.Malformed, "unknown Content-Transfer-Encoding %q", cte)
}

// Filename returns the part's file name from Content-Disposition or the
// Content-Type name parameter.
func (p *Part) Filename() string {
	if cd := p.Header.Get("Content-Disposition"); cd != "" {
		if _, params, err := mime.ParseMediaType(cd); err == nil && params["filename"] != "" {
			return params["filename"]
		}
	}
	return p.Params["name"]
}

// Walk calls fn for p and every descendant, depth first. It does not
// descend into message/rfc822 attachments (they are not parsed as
// children), so a forwarded signed mail is never the article's own.
func (p *Part) Walk(fn func(*Part) error) error {
	if err := fn(p); err != nil {
		return err
	}
	for _, c := range p.Children {
		if err := c.Walk(fn); err != nil {
			return err
		}
	}
	return nil
}

// Canonicalize converts line endings to CRLF (RFC 5751 3.1.1 / RFC 3156
// 5), as the signer did before signing. Input that is already canonical is
// returned as is.
func Canonicalize(b []byte) []byte {
	bare := 0
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			bare++
		}
	}
	if bare == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+bare)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// String describes the tree for debugging.
func (p *Part) String() string {
	var sb strings.Builder
	var walk func(*Part, int)
	walk = func(q *Part, d int) {
		fmt.Fprintf(&sb, "%s%s (%d bytes)\n", strings.Repeat("  ", d), q.MediaType, len(q.Body))
		for _, c := range q.Children {
			walk(c, d+1)
		}
	}
	walk(p, 0)
	return sb.String()
}

// bufioReader reads a header block; sized to it, since a 4 KiB buffer per
// MIME part is most of the walker's allocation.
func bufioReader(b []byte) *bufio.Reader {
	return bufio.NewReaderSize(bytes.NewReader(b), len(b)+16)
}
