// Shared by the cgo preambles of this package (each compiles its own
// static copy): the EVP digest for a Go crypto.Hash number.
#include <openssl/evp.h>

static const EVP_MD *sm_md(int h) {
	switch (h) {
	case 3: return EVP_sha1();
	case 4: return EVP_sha224();
	case 5: return EVP_sha256();
	case 6: return EVP_sha384();
	case 7: return EVP_sha512();
	}
	return NULL;
}
