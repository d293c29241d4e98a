package mimewalk

import (
	"bytes"
	"strings"
	"testing"

	"github.com/secmail/secmail/reason"
)

const signedCRLF = "From: a@example.org\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=\"XX\"\r\n\r\n" +
	"preamble\r\n--XX\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n\r\n--XX\r\nContent-Type: application/pkcs7-signature\r\n\r\nsig\r\n--XX--\r\nepilogue\r\n"

func TestParseKeepsExactBytes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		raw   string
		first string // exact bytes of the first child
	}{
		{"CRLF", signedCRLF, "Content-Type: text/plain\r\n\r\nsigned text\r\n"},
		{"LF", strings.ReplaceAll(signedCRLF, "\r\n", "\n"), "Content-Type: text/plain\n\nsigned text\n"},
		{"boundary with trailing space", strings.Replace(signedCRLF, "--XX\r\nContent-Type: text/plain", "--XX  \r\nContent-Type: text/plain", 1), "Content-Type: text/plain\r\n\r\nsigned text\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(tc.raw), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if p.MediaType != "multipart/signed" || len(p.Children) != 2 {
				t.Fatalf("tree:\n%s", p)
			}
			if got := string(p.Children[0].Raw); got != tc.first {
				t.Errorf("first part = %q, want %q", got, tc.first)
			}
			if p.Header.Get("From") != "a@example.org" {
				t.Errorf("From = %q", p.Header.Get("From"))
			}
		})
	}
}

func TestParseLimitsAndErrors(t *testing.T) {
	nested := func(depth int) string {
		var sb strings.Builder
		for i := 0; i < depth; i++ {
			sb.WriteString("Content-Type: multipart/mixed; boundary=b" + strings.Repeat("x", i) + "\r\n\r\n--b" + strings.Repeat("x", i) + "\r\n")
		}
		sb.WriteString("Content-Type: text/plain\r\n\r\nleaf\r\n")
		return sb.String()
	}
	many := "Content-Type: multipart/mixed; boundary=m\r\n\r\n" + strings.Repeat("--m\r\nContent-Type: text/plain\r\n\r\nx\r\n", 20) + "--m--\r\n"
	for _, tc := range []struct {
		name string
		raw  string
		l    Limits
		code reason.Code
	}{
		{"too large", "Subject: x\r\n\r\n" + strings.Repeat("a", 100), Limits{MaxSize: 50}, reason.TooLarge},
		{"too deep", nested(10), Limits{MaxDepth: 5}, reason.TooComplex},
		{"too many parts", many, Limits{MaxParts: 10}, reason.TooComplex},
		{"huge header", "X-Junk: " + strings.Repeat("a", 2000) + "\r\n\r\nbody", Limits{MaxHeaderBytes: 1000}, reason.TooLarge},
		{"boundary never appears", "Content-Type: multipart/mixed; boundary=zz\r\n\r\nno parts here\r\n", Limits{}, reason.Malformed},
		{"multipart without boundary", "Content-Type: multipart/mixed\r\n\r\n--x\r\n", Limits{}, reason.Malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.raw), tc.l)
			if got := reason.CodeOf(err); got != tc.code {
				t.Fatalf("code = %q (%v), want %q", got, err, tc.code)
			}
		})
	}
}

func TestParseLenient(t *testing.T) {
	raw := "Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--q\r\n\r\nsecond, unterminated\r\n"
	p, err := Parse([]byte(raw), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Children) != 2 || len(p.Lenient) == 0 {
		t.Fatalf("children=%d lenient=%v", len(p.Children), p.Lenient)
	}
	if p.Children[1].MediaType != "text/plain" {
		t.Errorf("default media type = %q", p.Children[1].MediaType)
	}
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		cte, body, want string
		code            reason.Code
	}{
		{"base64", "aGVs\r\nbG8=\r\n", "hello", ""},
		{"base64", "aGVsbG8", "hello", ""}, // missing padding
		{"base64", "!!!!", "", reason.Malformed},
		{"quoted-printable", "Gr=C3=BC=C3=9Fe=\r\n!", "Grüße!", ""},
		{"8bit", "raw", "raw", ""},
		{"x-unknown", "raw", "", reason.Malformed},
	} {
		p, err := Parse([]byte("Content-Transfer-Encoding: "+tc.cte+"\r\n\r\n"+tc.body), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.Decode()
		if reason.CodeOf(err) != tc.code || (tc.code == "" && string(got) != tc.want) {
			t.Errorf("%s %q: got %q, %v", tc.cte, tc.body, got, err)
		}
	}
}

func TestCanonicalize(t *testing.T) {
	for in, want := range map[string]string{
		"a\nb\n":     "a\r\nb\r\n",
		"a\r\nb\n":   "a\r\nb\r\n",
		"a\r\nb\r\n": "a\r\nb\r\n",
		"\n":         "\r\n",
	} {
		if got := string(Canonicalize([]byte(in))); got != want {
			t.Errorf("Canonicalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTransportSafe(t *testing.T) {
	entity := "Content-Type: text/plain; charset=utf-8\n\nGrüße   \n" + strings.Repeat("long ", 30) + "\n"
	out, err := TransportSafe([]byte(entity), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("Content-Transfer-Encoding: quoted-printable\r\n")) {
		t.Errorf("not re-encoded:\n%s", out)
	}
	for _, line := range strings.Split(string(out), "\r\n") {
		if len(line) > 76 || strings.HasSuffix(line, " ") {
			t.Errorf("unsafe line %q", line)
		}
		for _, c := range []byte(line) {
			if c >= 0x80 {
				t.Fatalf("8-bit byte left in %q", line)
			}
		}
	}
	p, err := Parse(out, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := p.Decode()
	if !strings.HasPrefix(string(dec), "Grüße   \r\n") {
		t.Errorf("round trip lost content: %q", dec)
	}
	// Already safe input is only canonicalised.
	safe := "Content-Type: text/plain\r\n\r\nplain ascii\r\n"
	if out, _ := TransportSafe([]byte(safe), Limits{}); string(out) != safe {
		t.Errorf("safe input changed: %q", out)
	}
}

func TestReplaceKeepsOuterHeaders(t *testing.T) {
	p, err := Parse([]byte(signedCRLF), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	out := string(Replace(p.Header, p.Children[0].Raw))
	want := "From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n"
	if out != want {
		t.Errorf("Replace = %q, want %q", out, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(signedCRLF))
	f.Add([]byte(strings.ReplaceAll(signedCRLF, "\r\n", "\n")))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n--a--"))
	f.Add([]byte("Content-Transfer-Encoding: base64\r\n\r\n===="))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := Parse(raw, Limits{MaxSize: 1 << 20, MaxDepth: 8, MaxParts: 64})
		if err != nil {
			if reason.CodeOf(err) == "" {
				t.Fatalf("error without reason code: %v", err)
			}
			return
		}
		_ = p.Walk(func(q *Part) error { _, _ = q.Decode(); return nil })
		_ = Replace(p.Header, p.Body)
	})
}
