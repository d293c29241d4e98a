package pipeline

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/reason"
	"github.com/secmail/secmail/result"
)

// sameAsEncodingJSON checks splitRaw against encoding/json on the whole
// payload: the same verdict on validity, the same fields, the same raw.
func sameAsEncodingJSON(t *testing.T, payload []byte) (fast bool) {
	t.Helper()
	var whole Article
	wholeErr := json.Unmarshal(payload, &whole)
	rest, raw, ok := splitRaw(payload)
	if !ok {
		return false
	}
	var split Article
	splitErr := json.Unmarshal(rest, &split)
	if (wholeErr == nil) != (splitErr == nil) {
		t.Fatalf("%q: encoding/json says %v, split says %v", payload, wholeErr, splitErr)
	}
	if wholeErr != nil {
		return true
	}
	if whole.Raw == nil || split.Raw == nil || *split.Raw != "" {
		t.Fatalf("%q: raw member: whole %v, split %v", payload, whole.Raw, split.Raw)
	}
	if utf8.Valid(raw) {
		if *whole.Raw != string(raw) {
			t.Fatalf("%q: raw %q, encoding/json %q", payload, raw, *whole.Raw)
		}
	} else if _, err := base64.StdEncoding.DecodeString(string(raw)); err == nil {
		t.Fatalf("%q: invalid UTF-8 decoded as base64", payload)
	}
	split.Raw = whole.Raw
	if !reflect.DeepEqual(whole, split) {
		t.Fatalf("%q:\nwhole %+v\nsplit %+v", payload, whole, split)
	}
	return true
}

func TestSplitRaw(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		fast    bool
	}{
		{"typical", `{"schema":"secmail.article.v1","article_id":"1","raw":"AAAA","options":{"type":null}}`, true},
		{"spaces", " {\n\t\"raw\" : \"QUJD\" , \"article_id\":\"x\"}\r\n", true},
		{"case-insensitive name", `{"RaW":"QUJD","article_id":"x"}`, true},
		{"raw inside options is not the member", `{"options":{"raw":"zz"},"raw":"QUJD"}`, true},
		{"raw inside a string value", `{"group":"\"raw\":\"zz\"","raw":"QUJD"}`, true},
		{"brackets inside strings", `{"group":"}]{[","ticket_id":"a\\\"}","raw":"QUJD"}`, true},
		{"raw_ref only", `{"raw_ref":{"bucket":"b","name":"n"}}`, false},
		{"escaped slash in base64", `{"raw":"QU\/D"}`, false},
		{"escaped key", `{"r\u0061w":"QUJD"}`, false},
		{"duplicate raw", `{"raw":"QUJD","raw":"REVG"}`, false},
		{"raw null", `{"raw":null}`, false},
		{"raw number", `{"raw":12}`, false},
		{"control character", "{\"raw\":\"QU\nJD\"}", false},
		{"not an object", `["raw","QUJD"]`, false},
		{"unterminated", `{"raw":"QUJD`, false},
		{"trailing garbage", `{"raw":"QUJD"} x`, true},
		{"missing colon", `{"raw" "QUJD"}`, false},
		{"invalid elsewhere", `{"raw":"QUJD","article_id":tru}`, true},
		{"invalid UTF-8 in raw", "{\"raw\":\"QU\xffD\"}", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if fast := sameAsEncodingJSON(t, []byte(tt.payload)); fast != tt.fast {
				t.Errorf("fast path taken: %v, want %v", fast, tt.fast)
			}
		})
	}
}

func TestHasControl(t *testing.T) {
	for n := range 20 {
		for pos := range n {
			for _, c := range []byte{0x00, 0x01, 0x0a, 0x1f, 0x20, 0x21, 0x7f, 0x80, 0x9f, 0xff} {
				s := []byte(strings.Repeat("A", n))
				s[pos] = c
				if got, want := hasControl(s), c < 0x20; got != want {
					t.Fatalf("hasControl(%q) = %v", s, got)
				}
			}
		}
	}
}

func TestEncodeResult(t *testing.T) {
	smime := result.SMIME
	sec := &result.Security{Type: &smime, Warnings: []reason.Code{}}
	at := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		res  Result
	}{
		{"inbound with raw", Result{Schema: SchemaResultV1, ArticleID: "4711", Direction: article.Inbound, Status: StatusDone, Security: sec, Raw: []byte("From: a@example.com\r\n\r\nhi\r\n"), ProcessedAt: at}},
		{"raw that needs padding", Result{Schema: SchemaResultV1, ArticleID: "x", Raw: []byte{0, 1}, ProcessedAt: at}},
		{"binary raw", Result{Schema: SchemaResultV1, ArticleID: "x", Raw: []byte{0xff, 0xfe, '"', '\\', 0}, ProcessedAt: at}},
		{"empty raw", Result{Schema: SchemaResultV1, ArticleID: "x", Raw: []byte{}, ProcessedAt: at}},
		{"error", Result{Schema: SchemaResultV1, ArticleID: "x", Status: StatusError, Error: &ErrorInfo{Code: "malformed", Message: "<&>\u2028"}, ProcessedAt: at}},
		{"outbound with copies", Result{Schema: SchemaResultV1, ArticleID: "x", Direction: article.Outbound, Raw: []byte("abc"),
			Recipients: []article.Recipient{}, Copies: []ResultCopy{{Recipients: []string{"b@example.com"}, Raw: []byte("defg")}}, ProcessedAt: at}},
		{"raw_ref", Result{Schema: SchemaResultV1, ArticleID: "x", RawRef: &ObjectRef{Bucket: "b", Name: "n"}, ProcessedAt: at}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(&tt.res)
			if err != nil {
				t.Fatal(err)
			}
			got, err := encodeResult(&tt.res)
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("%s: %v", got, err)
			}
			if err := json.Unmarshal(want, &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
			var back Result
			if err := json.Unmarshal(got, &back); err != nil || !bytes.Equal(back.Raw, tt.res.Raw) {
				t.Fatalf("raw round trip: %q, %v", back.Raw, err)
			}
		})
	}
}

// FuzzSplitRaw: the fast path agrees with encoding/json on every input.
func FuzzSplitRaw(f *testing.F) {
	f.Add(articleJSON(f, "4711", mail("4711", "plain")))
	f.Add([]byte(`{"group":"}]{[","ticket_id":"a\\\"}","raw":"QUJD","options":{"raw":[1,{"x":"]"}]}}`))
	f.Add([]byte(`{"RAW":"QUJD","Raw":"QUJD"}`))
	f.Add([]byte(" {\n\t\"raw\" : \"QUJD\" , \"article_id\":\"x\"}\r\n"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		sameAsEncodingJSON(t, payload)
	})
}

// BenchmarkParse: the envelope of a 4 KiB signed-then-encrypted article
// and its base64, through parse and through encoding/json alone (the
// fallback).
func BenchmarkParse(b *testing.B) {
	payload := articleJSON(b, "4711", newBenchArticle(b).raw)
	b.Run("parse", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		p := &Pipeline{cfg: Config{}.Defaults()}
		for b.Loop() {
			env, _, err := parse(payload)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := p.loadRaw(context.Background(), env); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			var a Article
			if err := json.Unmarshal(payload, &a); err != nil {
				b.Fatal(err)
			}
			if _, err := base64.StdEncoding.DecodeString(*a.Raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
