package keyring

// go-pkcs12 derives keys with whatever iteration count a file names, so a
// hostile or corrupted .p12 could make it hash for hours. Before handing a
// file to it, checkPFXCost walks the parts readable without a password (the
// MAC parameters, the encryption parameters of each safe and of visible
// shrouded key bags) and refuses absurd counts.

import (
	"encoding/asn1"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/secmail/secmail/reason"
)

var (
	oidPKCS12PBEPrefix = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1}
	oidPBMAC1          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 14}
	oidP7Data          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidP7EncryptedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}
	oidShroudedKeyBag  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
	errPFXTooCostly    = reason.New(reason.TooComplex, "PKCS#12: key-derivation iteration count above the limit")
	explicit0          = cbasn1.Tag(0).Constructed().ContextSpecific()
)

// maxKDFIterations caps PBKDF2 and PKCS#12 KDF iteration counts; OpenSSL
// uses 2048 and the most demanding common recommendation is ~1.3 million.
const maxKDFIterations = 2_000_000

func iterOK(n int64) bool { return n >= 1 && n <= maxKDFIterations }

// checkPFXCost returns a reason.TooComplex error for absurd KDF costs;
// structural problems are left to go-pkcs12 to report.
func checkPFXCost(data []byte) error {
	s := cryptobyte.String(data)
	var pfx, authSafe cryptobyte.String
	var version int64
	if !s.ReadASN1(&pfx, cbasn1.SEQUENCE) || !pfx.ReadASN1Int64WithTag(&version, cbasn1.INTEGER) ||
		!pfx.ReadASN1(&authSafe, cbasn1.SEQUENCE) {
		return nil
	}
	if !pfx.Empty() {
		var mac, digestInfo, alg, salt cryptobyte.String
		if pfx.ReadASN1(&mac, cbasn1.SEQUENCE) && mac.ReadASN1(&digestInfo, cbasn1.SEQUENCE) &&
			digestInfo.ReadASN1(&alg, cbasn1.SEQUENCE) && mac.ReadASN1(&salt, cbasn1.OCTET_STRING) {
			if !checkAlgCost(alg) {
				return errPFXTooCostly
			}
			iter := int64(1)
			if !mac.Empty() && (!mac.ReadASN1Int64WithTag(&iter, cbasn1.INTEGER) || !iterOK(iter)) {
				return errPFXTooCostly
			}
		}
	}
	var oid asn1.ObjectIdentifier
	var content, inner cryptobyte.String
	if !authSafe.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidP7Data) ||
		!authSafe.ReadASN1(&content, explicit0) || !content.ReadASN1(&inner, cbasn1.OCTET_STRING) {
		return nil
	}
	var safes cryptobyte.String
	if !inner.ReadASN1(&safes, cbasn1.SEQUENCE) {
		return nil
	}
	for !safes.Empty() {
		var ci, body cryptobyte.String
		var typ asn1.ObjectIdentifier
		if !safes.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1ObjectIdentifier(&typ) || !ci.ReadASN1(&body, explicit0) {
			return nil
		}
		switch {
		case typ.Equal(oidP7Data):
			var bags cryptobyte.String
			if body.ReadASN1(&bags, cbasn1.OCTET_STRING) && !checkBagsCost(bags) {
				return errPFXTooCostly
			}
		case typ.Equal(oidP7EncryptedData):
			var ed, eci, alg cryptobyte.String
			var v int64
			var ctype asn1.ObjectIdentifier
			if body.ReadASN1(&ed, cbasn1.SEQUENCE) && ed.ReadASN1Int64WithTag(&v, cbasn1.INTEGER) &&
				ed.ReadASN1(&eci, cbasn1.SEQUENCE) && eci.ReadASN1ObjectIdentifier(&ctype) &&
				eci.ReadASN1(&alg, cbasn1.SEQUENCE) && !checkAlgCost(alg) {
				return errPFXTooCostly
			}
		}
	}
	return nil
}

// checkBagsCost checks the shrouded key bags of a plain SafeContents.
func checkBagsCost(der cryptobyte.String) bool {
	var bags cryptobyte.String
	if !der.ReadASN1(&bags, cbasn1.SEQUENCE) {
		return true
	}
	for !bags.Empty() {
		var bag, val, epki, alg cryptobyte.String
		var id asn1.ObjectIdentifier
		if !bags.ReadASN1(&bag, cbasn1.SEQUENCE) || !bag.ReadASN1ObjectIdentifier(&id) {
			return true
		}
		if id.Equal(oidShroudedKeyBag) && bag.ReadASN1(&val, explicit0) &&
			val.ReadASN1(&epki, cbasn1.SEQUENCE) && epki.ReadASN1(&alg, cbasn1.SEQUENCE) && !checkAlgCost(alg) {
			return false
		}
	}
	return true
}

// checkAlgCost inspects an AlgorithmIdentifier body (OID and parameters)
// of a PKCS#12 PBE scheme, PBES2 or PBMAC1.
func checkAlgCost(alg cryptobyte.String) bool {
	var oid asn1.ObjectIdentifier
	if !alg.ReadASN1ObjectIdentifier(&oid) {
		return true
	}
	var params cryptobyte.String
	switch {
	case len(oid) == len(oidPKCS12PBEPrefix)+1 && oid[:len(oidPKCS12PBEPrefix)].Equal(oidPKCS12PBEPrefix):
		// pkcs-12PbeParams ::= SEQUENCE { salt OCTET STRING, iterations INTEGER }
		var salt cryptobyte.String
		var iter int64
		if alg.ReadASN1(&params, cbasn1.SEQUENCE) && params.ReadASN1(&salt, cbasn1.OCTET_STRING) {
			return params.ReadASN1Int64WithTag(&iter, cbasn1.INTEGER) && iterOK(iter)
		}
	case oid.Equal(oidPBES2) || oid.Equal(oidPBMAC1):
		// Both start with the key-derivation AlgorithmIdentifier.
		var kdf, kdfParams, salt cryptobyte.String
		var kdfOID asn1.ObjectIdentifier
		var iter int64
		if alg.ReadASN1(&params, cbasn1.SEQUENCE) && params.ReadASN1(&kdf, cbasn1.SEQUENCE) &&
			kdf.ReadASN1ObjectIdentifier(&kdfOID) && kdfOID.Equal(oidPBKDF2) &&
			kdf.ReadASN1(&kdfParams, cbasn1.SEQUENCE) && kdfParams.ReadASN1(&salt, cbasn1.OCTET_STRING) {
			return kdfParams.ReadASN1Int64WithTag(&iter, cbasn1.INTEGER) && iterOK(iter)
		}
	}
	return true
}
