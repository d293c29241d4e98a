package keyring

import (
	"bytes"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/go-crypto/openpgp/s2k"

	"github.com/secmail/secmail/reason"
)

// TestArgon2S2KLimit: an RFC 9580 v6 key protected with Argon2 opens, and
// the same key with its memory parameter raised to 2^31 KiB is refused
// before go-crypto would try to allocate it.
func TestArgon2S2KLimit(t *testing.T) {
	const memExp = 10
	cfg := &packet.Config{
		V6Keys:     true,
		Algorithm:  packet.PubKeyAlgoEd25519,
		AEADConfig: &packet.AEADConfig{},
		S2KConfig: &s2k.Config{S2KMode: s2k.Argon2S2K, Argon2Config: &s2k.Argon2Config{
			NumberOfPasses: 1, DegreeOfParallelism: 1, Memory: 1 << memExp,
		}},
	}
	e, err := openpgp.NewEntity("Eve", "", "eve@example.com", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.EncryptPrivateKeys([]byte("argon pass"), cfg); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := e.SerializePrivateWithoutSigning(&buf, nil); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	b, err := Parse("eve.gpg", good, Options{Passphrases: []string{"argon pass"}})
	if err != nil || len(b.PGP) != 1 || b.PGP[0].Locked {
		t.Fatalf("Argon2 key: %v %+v", err, b)
	}

	// Patch every Argon2 specifier (mode 4, 16-byte salt, passes 1,
	// parallelism 1, memory exponent) to 2^31 KiB.
	bad := bytes.Clone(good)
	patched := 0
	for i := 0; i+20 <= len(bad); i++ {
		if bad[i] == 4 && bad[i+17] == 1 && bad[i+18] == 1 && bad[i+19] == memExp {
			bad[i+19] = 31
			patched++
		}
	}
	if patched == 0 {
		t.Fatal("no Argon2 specifier found to patch")
	}
	_, err = Parse("eve-hostile.gpg", bad, Options{Passphrases: []string{"argon pass"}})
	if reason.CodeOf(err) != reason.TooComplex {
		t.Fatalf("hostile Argon2 parameters: %v, want %s", err, reason.TooComplex)
	}
	// Without passphrases nothing is derived, so the key is merely locked.
	if b, err := Parse("eve-hostile.gpg", bad, Options{}); err != nil || !b.PGP[0].Locked {
		t.Fatalf("hostile key without passphrases: %v", err)
	}
}
