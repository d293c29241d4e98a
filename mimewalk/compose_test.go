package mimewalk

import (
	"bytes"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
)

// replaceOld is Replace as it was before it split the entity's header
// itself: the reference FuzzReplace compares with.
func replaceOld(outer textproto.Header, entity []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(entity) + 1024)
	writeFields(&buf, outer, func(k string) bool { return !isContentField(k) })
	buf.WriteString("MIME-Version: 1.0\r\n")
	hdrLen := headerEnd(entity)
	inner, err := textproto.ReadHeader(bufioReader(entity[:hdrLen]))
	if err == nil {
		writeFields(&buf, inner, isBodyField)
	}
	if inner.Get("Content-Type") == "" {
		buf.WriteString("Content-Type: text/plain; charset=us-ascii\r\n")
	}
	buf.WriteString("\r\n")
	buf.Write(entity[hdrLen:])
	return buf.Bytes()
}

const replaceOuter = "From: a@example.org\r\nTo: b@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\n"

var replaceEntities = []string{
	"Content-Type: text/plain\r\n\r\nbody\r\n",
	"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nbody\n",
	"content-type: multipart/signed;\r\n\tboundary=\"XX\"\r\nX-Other: kept out\r\nCONTENT-ID: <a@b>\r\n\r\n--XX\r\n",
	"Content-Type:\r\n\r\nempty type gets the default and is still copied\r\n",
	"Content-Type:  \r\n   \r\n\r\nfolded blank type\r\n",
	"Content-Type: \r\r\n\r\nCR in the value is not blank\r\n",
	"Content-Type:\r\nContent-Type: text/html\r\n\r\nfirst one decides\r\n",
	"Content-Disposition: inline\r\n\r\nno type\r\n",
	"X-Only: 1\r\n\r\n",
	"\r\nno header at all\r\n",
	"",
	"no blank line, so all header",
	"Content-Type: text/plain\r\nbroken line without colon\r\n\r\nbody\r\n",
	" Content-Type: text/plain\r\n\r\nleading space\r\n",
	"Content-Type: text/html\r\nBad Key: v\r\n\r\nparse error after Content-Type\r\n",
	"Content-Type: text/plain\r\n: empty key\r\n\r\nbody\r\n",
	"Content-Type : text/plain\r\nContent-Transfer-Encoding: 7bit\r",
	"Content-Type: text/plain;\n charset=us-ascii\r\nContent-Description: a\rb\r\n\r\nx",
	"Content-Type: text/plain\r\n" + strings.Repeat("Content-X: y\r\n", 40) + "\r\nmany fields\r\n",
}

func TestReplaceMatchesOld(t *testing.T) {
	outer, err := textproto.ReadHeader(bufioReader([]byte(replaceOuter)))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range replaceEntities {
		got, want := Replace(outer, []byte(e)), replaceOld(outer, []byte(e))
		if !bytes.Equal(got, want) {
			t.Errorf("Replace(%q) =\n%q, want\n%q", e, got, want)
		}
	}
}

func TestReplaceContentFields(t *testing.T) {
	outer, err := textproto.ReadHeader(bufioReader([]byte(replaceOuter)))
	if err != nil {
		t.Fatal(err)
	}
	const head = "From: a@example.org\r\nTo: b@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
	const dflt = "Content-Type: text/plain; charset=us-ascii\r\n"
	for _, tc := range []struct{ entity, want string }{
		{"Content-Type: text/plain\nContent-Transfer-Encoding: 8bit\n\nbody\n",
			"Content-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\nbody\n"},
		{"content-type: multipart/signed;\r\n\tboundary=\"XX\"\r\nX-Other: no\r\n\r\n--XX\r\n",
			"content-type: multipart/signed;\r\n\tboundary=\"XX\"\r\n\r\n--XX\r\n"},
		{"Content-Type:\r\n\r\nx", "Content-Type:\r\n" + dflt + "\r\nx"},
		// The value is "\r" to Get (no default); the copy loses its CRs.
		{"Content-Type: \r\r\n\r\nx", "Content-Type: \r\n\r\nx"},
		{"Content-Type:\r\nContent-Type: text/html\r\n\r\nx", "Content-Type:\r\nContent-Type: text/html\r\n" + dflt + "\r\nx"},
		{"X-Only: 1\r\n\r\nx", dflt + "\r\nx"},
		// A malformed header: nothing copied, but the Content-Type read
		// before the error still counts.
		{"Content-Type: text/html\r\nBad Key: v\r\n\r\nx", "\r\nx"},
		{"Bad Key: v\r\nContent-Type: text/html\r\n\r\nx", dflt + "\r\nx"},
	} {
		got := string(Replace(outer, []byte(tc.entity)))
		if got != head+tc.want {
			t.Errorf("Replace(%q) =\n%q, want\n%q", tc.entity, got, head+tc.want)
		}
	}
}

// FuzzReplace compares Replace with replaceOld on any outer header and
// entity.
func FuzzReplace(f *testing.F) {
	for _, e := range replaceEntities {
		f.Add([]byte(replaceOuter), []byte(e))
	}
	f.Add([]byte("Subject: x\nContent-Type: text/plain\n\n"), []byte("Content-Type: text/plain\n\nx"))
	f.Fuzz(func(t *testing.T, outerRaw, entity []byte) {
		outer, _ := textproto.ReadHeader(bufioReader(outerRaw))
		in := bytes.Clone(entity)
		got, want := Replace(outer, entity), replaceOld(outer, entity)
		if !bytes.Equal(got, want) {
			t.Fatalf("Replace(%q, %q) =\n%q, want\n%q", outerRaw, entity, got, want)
		}
		if !bytes.Equal(entity, in) {
			t.Fatal("entity modified")
		}
	})
}

func BenchmarkReplace(b *testing.B) {
	outer, err := textproto.ReadHeader(bufioReader([]byte(mailHeader)))
	if err != nil {
		b.Fatal(err)
	}
	entity := []byte("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";\r\n\tmicalg=sha-256; boundary=\"----B\"\r\n\r\n" + strings.Repeat("x", 6000))
	for _, f := range []struct {
		name string
		fn   func(textproto.Header, []byte) []byte
	}{{"Replace", Replace}, {"old", replaceOld}} {
		b.Run(f.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f.fn(outer, entity)
			}
		})
	}
}
