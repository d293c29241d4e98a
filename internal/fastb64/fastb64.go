// Package fastb64 is standard base64 (RFC 4648, padded) at SIMD speed:
// github.com/segmentio/asm/base64 where the CPU has AVX2 (amd64) or NEON
// (arm64), encoding/base64 otherwise. Results and errors are exactly
// encoding/base64's: a failed decode is redone by the standard library,
// so callers see its error and offset.
//
// It exists for the raw message in the pipeline's JSON, most of every
// article's bytes: decoding 8 KiB takes 0.5 µs instead of 4.4 µs,
// encoding 0.4 µs instead of 5 µs (BenchmarkDecode, BenchmarkEncode).
package fastb64

import (
	"encoding/base64"

	asm "github.com/segmentio/asm/base64"
)

// EncodedLen and DecodedLen are encoding/base64.StdEncoding's.
func EncodedLen(n int) int { return base64.StdEncoding.EncodedLen(n) }
func DecodedLen(n int) int { return base64.StdEncoding.DecodedLen(n) }

// Encode writes EncodedLen(len(src)) bytes to dst, as
// base64.StdEncoding.Encode does.
func Encode(dst, src []byte) { asm.StdEncoding.Encode(dst, src) }

// Decode decodes src into dst, which must hold DecodedLen(len(src))
// bytes, and returns what base64.StdEncoding.Decode returns: the bytes
// written and, for bad input, its CorruptInputError (dst then holds
// whatever it wrote).
func Decode(dst, src []byte) (int, error) {
	n, err := asm.StdEncoding.Decode(dst, src)
	if err != nil {
		return base64.StdEncoding.Decode(dst, src)
	}
	return n, nil
}
