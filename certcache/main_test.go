package certcache_test

import (
	"os"
	"testing"

	"github.com/secmail/secmail/store/storetest"
)

// TestMain removes the shared openssl/gpg fixtures after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	storetest.RemoveFixtures()
	os.Exit(code)
}
