package cms

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// RFC 3394 §4 test vectors.
func TestKeyWrapRFC3394(t *testing.T) {
	h := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name, kek, key, wrapped string
	}{
		{"4.1 128-bit key, 128-bit KEK", "000102030405060708090A0B0C0D0E0F", "00112233445566778899AABBCCDDEEFF",
			"1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"},
		{"4.2 128-bit key, 192-bit KEK", "000102030405060708090A0B0C0D0E0F1011121314151617", "00112233445566778899AABBCCDDEEFF",
			"96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D"},
		{"4.3 128-bit key, 256-bit KEK", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF",
			"64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7"},
		{"4.4 192-bit key, 192-bit KEK", "000102030405060708090A0B0C0D0E0F1011121314151617", "00112233445566778899AABBCCDDEEFF0001020304050607",
			"031D33264E15D332 68F24EC260743EDC E1C6C7DDEE725A93 6BA814915C6762D2"},
		{"4.5 192-bit key, 256-bit KEK", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF0001020304050607",
			"A8F9BC1612C68B3F F6E6F4FBE30E71E4 769C8B80A32CB895 8CD5D17D6B254DA1"},
		{"4.6 256-bit key, 256-bit KEK", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
			"28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kek, key, want := h(tc.kek), h(tc.key), h(tc.wrapped)
			got, err := envKeyWrap(kek, key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("wrap = %X, want %X", got, want)
			}
			un, err := envKeyUnwrap(kek, want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(un, key) {
				t.Fatalf("unwrap = %X, want %X", un, key)
			}
			// Any modification must fail the integrity check.
			for _, i := range []int{0, 7, 8, len(want) - 1} {
				bad := bytes.Clone(want)
				bad[i] ^= 1
				if _, err := envKeyUnwrap(kek, bad); err == nil {
					t.Errorf("unwrap of a wrapped key with byte %d flipped succeeded", i)
				}
			}
			if _, err := envKeyUnwrap(kek, want[:len(want)-8]); err == nil {
				t.Error("unwrap of a truncated wrapped key succeeded")
			}
		})
	}
	if _, err := envKeyUnwrap(h("000102030405060708090A0B0C0D0E0F"), make([]byte, 12)); err == nil {
		t.Error("unwrap of 12 bytes succeeded")
	}
	if _, err := envKeyWrap(h("000102030405060708090A0B0C0D0E0F"), make([]byte, 12)); err == nil {
		t.Error("wrap of 12 bytes succeeded")
	}
}

func TestPadLen(t *testing.T) {
	tests := []struct {
		block []byte
		want  int
	}{
		{append(bytes.Repeat([]byte{9}, 15), 1), 1},
		{bytes.Repeat([]byte{16}, 16), 16},
		{append(bytes.Repeat([]byte{9}, 12), 4, 4, 4, 4), 4},
		{append(bytes.Repeat([]byte{9}, 12), 3, 4, 4, 4), 0},
		{append(bytes.Repeat([]byte{9}, 15), 0), 0},
		{append(bytes.Repeat([]byte{9}, 15), 17), 0},
		{bytes.Repeat([]byte{8}, 8), 8}, // 3DES block
	}
	for _, tc := range tests {
		if got := envPadLen(tc.block); got != tc.want {
			t.Errorf("envPadLen(%x) = %d, want %d", tc.block, got, tc.want)
		}
	}
}
