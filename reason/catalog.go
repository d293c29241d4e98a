package reason

import (
	"fmt"
	"strings"
)

// Lang is a supported comment language.
type Lang string

// Supported languages. Adding one is adding a column to catalog.
const (
	EN Lang = "en"
	DE Lang = "de"
	TR Lang = "tr"
)

// Languages lists the supported languages.
var Languages = []Lang{EN, DE, TR}

// ParseLang returns the language for s ("en", "de-DE", "tr_TR" ...), or an
// error for an unsupported one.
func ParseLang(s string) (Lang, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return EN, nil
	}
	if i := strings.IndexAny(s, "-_"); i > 0 {
		s = s[:i]
	}
	for _, l := range Languages {
		if string(l) == s {
			return l, nil
		}
	}
	return "", fmt.Errorf("unsupported language %q (want one of en, de, tr)", s)
}

// Message identifies a human sentence that is not itself a reason code.
type Message string

// Sentences used besides the reason codes. %s verbs take addresses.
const (
	MsgDecrypted        Message = "decrypted"
	MsgVerified         Message = "verified"
	MsgEncrypted        Message = "encrypted"
	MsgSigned           Message = "signed"
	MsgNotEncrypted     Message = "not-encrypted"
	MsgNotSigned        Message = "not-signed"
	MsgCertFound        Message = "cert-found"
	MsgCertsFound       Message = "certs-found"
	MsgCertsNotFound    Message = "certs-not-found"
	MsgNoRecipient      Message = "no-recipient"
	MsgSignKeyFound     Message = "sign-key-found"
	MsgSignKeyNotFound  Message = "sign-key-not-found"
	MsgEncryptionNotReq Message = "encryption-not-requested"
	MsgSignNotReq       Message = "sign-not-requested"
)

// catalog maps every reason code and message to its sentence per language.
// The German and Turkish wording follows Zammad's own help texts where one
// exists.
var catalog = map[string]map[Lang]string{
	string(NoPrivateKey): {
		EN: "The private key for decryption could not be found.",
		DE: "Der private Schlüssel zur Entschlüsselung konnte nicht gefunden werden.",
		TR: "Şifre çözme için özel anahtar bulunamadı.",
	},
	string(WrongPassphrase): {
		EN: "The private key is protected by a passphrase that is missing or wrong.",
		DE: "Der private Schlüssel ist durch eine Passphrase geschützt, die fehlt oder falsch ist.",
		TR: "Özel anahtar, eksik veya yanlış bir parola ile korunuyor.",
	},
	string(NoCertificate): {
		EN: "The certificate for verification could not be found.",
		DE: "Das Zertifikat zur Überprüfung konnte nicht gefunden werden.",
		TR: "Doğrulama için sertifika bulunamadı.",
	},
	string(NoPublicKey): {
		EN: "The public key for verification could not be found.",
		DE: "Der öffentliche Schlüssel zur Überprüfung konnte nicht gefunden werden.",
		TR: "Doğrulama için açık anahtar bulunamadı.",
	},
	string(UntrustedIssuer): {
		EN: "The certificate was not issued by a trusted certificate authority.",
		DE: "Das Zertifikat wurde nicht von einer vertrauenswürdigen Zertifizierungsstelle ausgestellt.",
		TR: "Sertifika güvenilir bir sertifika yetkilisi tarafından verilmemiş.",
	},
	string(Expired): {
		EN: "The certificate or key has expired.",
		DE: "Das Zertifikat oder der Schlüssel ist abgelaufen.",
		TR: "Sertifikanın veya anahtarın süresi dolmuş.",
	},
	string(NotYetValid): {
		EN: "The certificate or key is not yet valid.",
		DE: "Das Zertifikat oder der Schlüssel ist noch nicht gültig.",
		TR: "Sertifika veya anahtar henüz geçerli değil.",
	},
	string(Revoked): {
		EN: "The certificate or key has been revoked.",
		DE: "Das Zertifikat oder der Schlüssel wurde widerrufen.",
		TR: "Sertifika veya anahtar iptal edilmiş.",
	},
	string(BadSignature): {
		EN: "The signature is invalid: the message was changed after it was signed.",
		DE: "Die Signatur ist ungültig: Die Nachricht wurde nach dem Signieren verändert.",
		TR: "İmza geçersiz: ileti imzalandıktan sonra değiştirilmiş.",
	},
	string(SignerMismatch): {
		EN: "The signer is not the sender: the certificate or key does not belong to the From address.",
		DE: "Der Unterzeichner ist nicht der Absender: Das Zertifikat oder der Schlüssel gehört nicht zur Absenderadresse.",
		TR: "İmzalayan gönderen değil: sertifika veya anahtar Kimden adresine ait değil.",
	},
	string(Malformed): {
		EN: "The message is malformed and could not be read.",
		DE: "Die Nachricht ist fehlerhaft aufgebaut und konnte nicht gelesen werden.",
		TR: "İleti bozuk ve okunamadı.",
	},
	string(UnsupportedAlgorithm): {
		EN: "The message uses an algorithm that is not supported.",
		DE: "Die Nachricht verwendet einen Algorithmus, der nicht unterstützt wird.",
		TR: "İleti desteklenmeyen bir algoritma kullanıyor.",
	},
	string(WeakAlgorithm): {
		EN: "The message uses a weak, outdated algorithm.",
		DE: "Die Nachricht verwendet einen schwachen, veralteten Algorithmus.",
		TR: "İleti zayıf ve eskimiş bir algoritma kullanıyor.",
	},
	string(PartiallyEncrypted): {
		EN: "Only part of the message was encrypted; the unencrypted parts were removed.",
		DE: "Nur ein Teil der Nachricht war verschlüsselt; die unverschlüsselten Teile wurden entfernt.",
		TR: "İletinin yalnızca bir kısmı şifreliydi; şifrelenmemiş kısımlar kaldırıldı.",
	},
	string(TooLarge): {
		EN: "The message is too large to be processed.",
		DE: "Die Nachricht ist zu groß, um verarbeitet zu werden.",
		TR: "İleti işlenemeyecek kadar büyük.",
	},
	string(TooComplex): {
		EN: "The message is nested too deeply or has too many parts to be processed.",
		DE: "Die Nachricht ist zu tief verschachtelt oder hat zu viele Teile, um verarbeitet zu werden.",
		TR: "İleti işlenemeyecek kadar derin iç içe geçmiş veya çok fazla parçaya sahip.",
	},
	string(MsgDecrypted): {
		EN: "The message was decrypted.",
		DE: "Die Nachricht wurde entschlüsselt.",
		TR: "İletinin şifresi çözüldü.",
	},
	string(MsgVerified): {
		EN: "The signature of %s was verified.",
		DE: "Die Signatur von %s wurde erfolgreich überprüft.",
		TR: "%s imzası doğrulandı.",
	},
	string(MsgEncrypted): {
		EN: "The message was encrypted for %s.",
		DE: "Die Nachricht wurde für %s verschlüsselt.",
		TR: "İleti %s için şifrelendi.",
	},
	string(MsgSigned): {
		EN: "The message was signed as %s.",
		DE: "Die Nachricht wurde als %s signiert.",
		TR: "İleti %s olarak imzalandı.",
	},
	string(MsgNotEncrypted): {
		EN: "The message is not encrypted.",
		DE: "Die Nachricht ist nicht verschlüsselt.",
		TR: "İleti şifreli değil.",
	},
	string(MsgNotSigned): {
		EN: "The message is not signed.",
		DE: "Die Nachricht ist nicht signiert.",
		TR: "İleti imzalı değil.",
	},
	string(MsgCertFound): {
		EN: "The certificate for %s was found.",
		DE: "Das Zertifikat für %s wurde gefunden.",
		TR: "%s için sertifika bulundu.",
	},
	string(MsgCertsFound): {
		EN: "The certificates for %s were found.",
		DE: "Die Zertifikate für %s wurden gefunden.",
		TR: "%s için sertifikalar bulundu.",
	},
	string(MsgCertsNotFound): {
		EN: "The certificates for %s were not found.",
		DE: "Die Zertifikate für %s wurden nicht gefunden.",
		TR: "%s için sertifikalar bulunamadı.",
	},
	string(MsgNoRecipient): {
		EN: "There was no recipient found.",
		DE: "Es wurde kein Empfänger gefunden.",
		TR: "Alıcı bulunamadı.",
	},
	string(MsgSignKeyFound): {
		EN: "The private key for %s was found.",
		DE: "Der private Schlüssel für %s wurde gefunden.",
		TR: "%s için özel anahtar bulundu.",
	},
	string(MsgSignKeyNotFound): {
		EN: "The private key for %s was not found.",
		DE: "Der private Schlüssel für %s wurde nicht gefunden.",
		TR: "%s için özel anahtar bulunamadı.",
	},
	string(MsgEncryptionNotReq): {
		EN: "Encryption was not requested.",
		DE: "Verschlüsselung wurde nicht angefordert.",
		TR: "Şifreleme istenmedi.",
	},
	string(MsgSignNotReq): {
		EN: "Signing was not requested.",
		DE: "Signieren wurde nicht angefordert.",
		TR: "İmzalama istenmedi.",
	},
}

// Comment returns the sentence for code c in lang.
func Comment(lang Lang, c Code) string { return text(lang, string(c)) }

// Text returns message m in lang, formatted with args.
func Text(lang Lang, m Message, args ...any) string {
	s := text(lang, string(m))
	if len(args) == 0 {
		return s
	}
	return fmt.Sprintf(s, args...)
}

func text(lang Lang, id string) string {
	row, ok := catalog[id]
	if !ok {
		return id
	}
	if s, ok := row[lang]; ok {
		return s
	}
	return row[EN]
}
