package keyring

// PKCS#7 files from S/MIME tools (Outlook's smime.p7s, openssl cms
// -stream) use BER indefinite lengths that encoding/asn1 and cryptobyte
// refuse. berToDER rewrites lengths in definite, minimal form so the
// certificates can be read; the certificates themselves are DER already
// (their signatures depend on it) and come out unchanged.

import (
	"errors"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

const maxBERDepth = 32

var errBER = errors.New("keyring: invalid BER")

// berToDER converts one BER element (and nothing after it) to DER lengths.
func berToDER(in []byte) (out []byte, err error) {
	var b cryptobyte.Builder
	rest, err := berElement(&b, in, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, errBER
	}
	return b.Bytes()
}

// berElement writes the element at the start of in to b and returns what
// follows it.
func berElement(b *cryptobyte.Builder, in []byte, depth int) ([]byte, error) {
	if depth > maxBERDepth || len(in) < 2 {
		return nil, errBER
	}
	tag := in[0]
	if tag&0x1f == 0x1f {
		return nil, errBER // high tag numbers do not occur in PKCS#7
	}
	constructed := tag&0x20 != 0
	in = in[1:]
	l0 := in[0]
	in = in[1:]
	if l0 == 0x80 { // indefinite: children up to end-of-contents
		if !constructed {
			return nil, errBER
		}
		var err error
		b.AddASN1(cbasn1.Tag(tag), func(c *cryptobyte.Builder) {
			for err == nil {
				if len(in) >= 2 && in[0] == 0 && in[1] == 0 {
					in = in[2:]
					return
				}
				in, err = berElement(c, in, depth+1)
			}
		})
		return in, err
	}
	n := int(l0)
	if l0 > 0x80 {
		k := int(l0 & 0x7f)
		if k > 4 || len(in) < k {
			return nil, errBER
		}
		n = 0
		for _, x := range in[:k] {
			n = n<<8 | int(x)
		}
		in = in[k:]
	}
	if n < 0 || n > len(in) {
		return nil, errBER
	}
	content, rest := in[:n], in[n:]
	if !constructed {
		b.AddASN1(cbasn1.Tag(tag), func(c *cryptobyte.Builder) { c.AddBytes(content) })
		return rest, nil
	}
	var err error
	b.AddASN1(cbasn1.Tag(tag), func(c *cryptobyte.Builder) {
		for len(content) > 0 && err == nil {
			content, err = berElement(c, content, depth+1)
		}
	})
	return rest, err
}
