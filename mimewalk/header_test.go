package mimewalk

import (
	"bufio"
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
)

var headerSeeds = []string{
	"",
	"\r\n",
	"\n",
	"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\n",
	"From: a@example.org\nSubject: hi\n\nbody\n",
	"Content-Type: multipart/signed;\r\n\tprotocol=\"application/pkcs7-signature\";\r\n boundary=\"XX\"\r\n\r\n",
	"Content-Type: text/plain;\n charset=utf-8\r\nX: y\n\n",
	"Subject: no blank line at the end",
	"Subject: x\r\n \r\n\tmore\r\n\r\n",
	"Received: a\r\nReceived: b\r\nreceived: c\r\nRECEIVED : d\r\n\r\n",
	" leading: space\r\n\r\n",
	"\tleading: tab\r\n\r\n",
	"no colon here\r\n\r\n",
	"bad key\x01: v\r\n\r\n",
	"bad key: v\r\n\r\n",
	": empty key\r\nSubject: x\r\n\r\n",
	"  : spaces only\r\n\r\n",
	"Subject: cr\rinside\r\n\r\n",
	"Subject: x\r\r\n\r\n",
	"Subject: x\r\n\r\r\nTo: y\r\n\r\n",
	"Subject: x\r",
	"Subject: x\r\n ",
	"A: 1\r\nB:\r\nC:   \r\n\r\nD: not header\r\n",
	"Key\t: tab before colon\r\n\r\n",
	"Subject: " + strings.Repeat("long ", 2000) + "\r\n\r\n",
	"Subject: caf\xc3\xa9 \xff\r\n\r\n",
}

// FuzzReadHeader checks that readHeader returns exactly what
// textproto.ReadHeader returns, for any input.
func FuzzReadHeader(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		compareReadHeader(t, b)
	})
}

func TestReadHeaderMatchesReadHeader(t *testing.T) {
	for _, s := range headerSeeds {
		compareReadHeader(t, []byte(s))
	}
}

func compareReadHeader(t *testing.T, b []byte) {
	t.Helper()
	in := bytes.Clone(b)
	want, wantErr := textproto.ReadHeader(bufio.NewReaderSize(bytes.NewReader(b), len(b)+16))
	got, gotErr := readHeader(b)
	if !bytes.Equal(b, in) {
		t.Fatalf("input modified")
	}
	if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && wantErr.Error() != gotErr.Error()) {
		t.Fatalf("%q: error %v, want %v", b, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: header %#v, want %#v", b, fieldList(got), fieldList(want))
	}
	// The same through the public API.
	if g, w := fieldList(got), fieldList(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("%q: fields %q, want %q", b, g, w)
	}
	for _, k := range []string{"Content-Type", "Subject", "From", "Received"} {
		if got.Get(k) != want.Get(k) {
			t.Fatalf("%q: Get(%s) = %q, want %q", b, k, got.Get(k), want.Get(k))
		}
	}
}

func fieldList(h textproto.Header) []string {
	var out []string
	fs := h.Fields()
	for fs.Next() {
		raw, err := fs.Raw()
		out = append(out, fs.Key(), fs.Value(), string(raw), errString(err))
	}
	return out
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestQuickHeaderTakesMail checks that the headers of ordinary mail take
// the quick path (it falls back to textproto.ReadHeader otherwise, which
// FuzzReadHeader cannot tell apart).
func TestQuickHeaderTakesMail(t *testing.T) {
	for _, s := range []string{
		headerSeeds[3], headerSeeds[4], headerSeeds[5], headerSeeds[6], headerSeeds[7], headerSeeds[8],
		headerSeeds[9], headerSeeds[20], headerSeeds[21], headerSeeds[22], headerSeeds[23],
	} {
		if _, ok := quickHeader([]byte(s)); !ok {
			t.Errorf("quickHeader(%q) fell back", s)
		}
	}
	for _, s := range []string{"", "\r\n", " x: y\r\n", "no colon\r\n", ": v\r\n", "a b: v\r\n"} {
		if _, ok := quickHeader([]byte(s)); ok {
			t.Errorf("quickHeader(%q) did not fall back", s)
		}
	}
}

// mailHeader is the header block of a typical helpdesk article.
const mailHeader = "Return-Path: <alice@customer.example>\r\n" +
	"Received: from mx.customer.example (mx.customer.example [192.0.2.7])\r\n\tby mx.helpdesk.example with ESMTPS id 4Xa9k2\r\n\tfor <support@helpdesk.example>; Tue, 24 Nov 2026 09:12:44 +0000\r\n" +
	"From: Alice Example <alice@customer.example>\r\n" +
	"To: support@helpdesk.example\r\n" +
	"Subject: Invoice 2026-1138 does not match the order\r\n" +
	"Date: Tue, 24 Nov 2026 10:12:40 +0100\r\n" +
	"Message-ID: <20261124091240.12345@customer.example>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: application/pkcs7-mime; smime-type=enveloped-data;\r\n\tname=\"smime.p7m\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n"

func BenchmarkReadHeader(b *testing.B) {
	raw := []byte(mailHeader)
	b.Run("readHeader", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := readHeader(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("textproto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := textproto.ReadHeader(bufioReader(raw)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
