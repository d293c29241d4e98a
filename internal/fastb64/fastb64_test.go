package fastb64

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"testing"
)

// same checks Decode against encoding/base64 on src.
func same(t *testing.T, src []byte) {
	t.Helper()
	want := make([]byte, DecodedLen(len(src)))
	wn, werr := base64.StdEncoding.Decode(want, src)
	got := make([]byte, DecodedLen(len(src)))
	gn, gerr := Decode(got, src)
	if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("%q: error %v, encoding/base64 %v", src, gerr, werr)
	}
	if werr == nil && (gn != wn || !bytes.Equal(got[:gn], want[:wn])) {
		t.Fatalf("%q: decoded %x, encoding/base64 %x", src, got[:gn], want[:wn])
	}
}

func TestRoundTrip(t *testing.T) {
	// Lengths around the SIMD block sizes and the short-input cut-offs.
	for n := range 300 {
		src := make([]byte, n)
		rand.Read(src)
		enc := make([]byte, EncodedLen(n))
		Encode(enc, src)
		if want := base64.StdEncoding.EncodeToString(src); string(enc) != want {
			t.Fatalf("Encode(%d bytes) = %s, want %s", n, enc, want)
		}
		same(t, enc)
	}
}

func TestDecodeLikeEncodingBase64(t *testing.T) {
	long := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("secmail "), 40))
	tests := []struct{ name, src string }{
		{"empty", ""},
		{"padding", "QQ=="},
		{"missing padding", "QQ"},
		{"padding inside", "QQ==QUJD"},
		{"line breaks are skipped", long[:100] + "\r\n" + long[100:]},
		{"bad byte after the SIMD part", long[:200] + "*" + long[201:]},
		{"bad byte early", "*" + long[1:]},
		{"space", long[:64] + " " + long[65:]},
		{"URL alphabet", long[:80] + "-_" + long[82:]},
		{"non-ASCII", long[:96] + "\xff" + long[97:]},
		{"truncated", long[:len(long)-1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { same(t, []byte(tt.src)) })
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 60))))
	f.Add([]byte("QQ==QUJD"))
	f.Fuzz(func(t *testing.T, src []byte) { same(t, src) })
}

var payload = func() []byte { b := make([]byte, 8192); rand.Read(b); return b }()

func BenchmarkDecode(b *testing.B) {
	src := []byte(base64.StdEncoding.EncodeToString(payload))
	dst := make([]byte, DecodedLen(len(src)))
	for _, bc := range []struct {
		name string
		fn   func(dst, src []byte) (int, error)
	}{{"fastb64", Decode}, {"encoding-base64", base64.StdEncoding.Decode}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if _, err := bc.fn(dst, src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	dst := make([]byte, EncodedLen(len(payload)))
	for _, bc := range []struct {
		name string
		fn   func(dst, src []byte)
	}{{"fastb64", Encode}, {"encoding-base64", base64.StdEncoding.Encode}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				bc.fn(dst, payload)
			}
		})
	}
}
