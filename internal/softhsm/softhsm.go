// Package softhsm sets up a throw-away SoftHSM2 token for tests of the
// PKCS#11 backend and of the packages that use token keys (certcache): a
// private token directory and configuration, a token initialised with
// softhsm2-util.
package softhsm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Test token credentials, obviously not secret.
const (
	Label = "test"
	PIN   = "1234"
	SOPIN = "5678"
)

// modulePaths are where Debian and others install the module.
var modulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
}

// ErrMissing means SoftHSM2 is not installed (Debian package softhsm2).
var ErrMissing = errors.New("softhsm2 not installed (apt-get install softhsm2)")

// Module returns the path of the SoftHSM2 PKCS#11 module.
func Module() (string, error) {
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		return "", ErrMissing
	}
	for _, p := range modulePaths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrMissing
}

// Setup creates a configuration and token directory under dir, points
// SOFTHSM2_CONF at it (process-wide: the module reads it when
// initialised) and initialises a token Label with PIN and SOPIN. It
// returns the module path.
func Setup(dir string) (string, error) {
	mod, err := Module()
	if err != nil {
		return "", err
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return "", err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return "", err
	}
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return "", err
	}
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", Label, "--pin", PIN, "--so-pin", SOPIN)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("softhsm2-util --init-token: %v: %s", err, out)
	}
	return mod, nil
}
