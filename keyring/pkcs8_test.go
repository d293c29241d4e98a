package keyring

import (
	"encoding/asn1"
	"encoding/pem"
	"testing"

	"github.com/secmail/secmail/reason"
)

// reencodeKDF rewrites the KDF parameters of an openssl encrypted PKCS#8
// key, as a hostile upload would.
func reencodeKDF(t *testing.T, pemData []byte, edit func(kdf asn1.RawValue) any) []byte {
	t.Helper()
	blk, _ := pem.Decode(pemData)
	var epki encryptedPKCS8
	var params pbes2Params
	if _, err := asn1.Unmarshal(blk.Bytes, &epki); err != nil {
		t.Fatal(err)
	}
	if _, err := asn1.Unmarshal(epki.Algo.Parameters.FullBytes, &params); err != nil {
		t.Fatal(err)
	}
	kdf, err := asn1.Marshal(edit(params.KDF.Parameters))
	if err != nil {
		t.Fatal(err)
	}
	params.KDF.Parameters = asn1.RawValue{FullBytes: kdf}
	p, err := asn1.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	epki.Algo.Parameters = asn1.RawValue{FullBytes: p}
	der, err := asn1.Marshal(epki)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der})
}

func TestPKCS8CostLimits(t *testing.T) {
	f := fixtures(t)
	opts := Options{Passphrases: []string{testPass}}
	pbkdf := func(iter int) func(asn1.RawValue) any {
		return func(raw asn1.RawValue) any {
			var kp pbkdf2Params
			if _, err := asn1.Unmarshal(raw.FullBytes, &kp); err != nil {
				t.Fatal(err)
			}
			kp.Iter = iter
			return kp
		}
	}
	scryptN := func(n int) func(asn1.RawValue) any {
		return func(raw asn1.RawValue) any {
			var sp scryptParams
			if _, err := asn1.Unmarshal(raw.FullBytes, &sp); err != nil {
				t.Fatal(err)
			}
			sp.N = n
			return sp
		}
	}
	cases := []struct {
		name string
		file string
		edit func(asn1.RawValue) any
		code reason.Code
	}{
		{"pbkdf2 unchanged", "alice-p8-default.key", pbkdf(2048), ""},
		{"pbkdf2 absurd", "alice-p8-default.key", pbkdf(1 << 40), reason.TooComplex},
		{"pbkdf2 zero", "alice-p8-default.key", pbkdf(0), reason.TooComplex},
		{"scrypt unchanged", "alice-p8-scrypt.key", scryptN(16384), ""},
		{"scrypt absurd", "alice-p8-scrypt.key", scryptN(1 << 30), reason.TooComplex},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := reencodeKDF(t, f.read(t, tc.file), tc.edit)
			b, err := Parse(tc.name, data, opts)
			if reason.CodeOf(err) != tc.code {
				t.Fatalf("err = %v, want code %q", err, tc.code)
			}
			if tc.code == "" && (len(b.Keys) != 1 || b.Keys[0].Locked) {
				t.Fatal("re-encoded key did not open")
			}
		})
	}
}
