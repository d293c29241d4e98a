package cms

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/secmail/secmail/internal/testpeer"
	"github.com/secmail/secmail/keys"
)

// sdFixture is a test PKI made by the real openssl: root → intermediate →
// leaves of every key type secmail signs with.
type sdFixture struct {
	dir    string // per test: the files below, written to t.TempDir()
	files  map[string][]byte
	root   *x509.Certificate
	inter  *x509.Certificate
	leaves map[string]*sdLeaf
}

type sdLeaf struct {
	name     string
	cert     *x509.Certificate
	key      crypto.Signer
	certPath string
	keyPath  string
}

var (
	sdFixtureOnce sync.Once
	sdFixtureVal  *sdFixture
	sdFixtureErr  error
)

// sdGetFixture builds the PKI once per test binary.
func sdGetFixture(tb testing.TB) *sdFixture {
	tb.Helper()
	testpeer.Need(tb, "openssl")
	sdFixtureOnce.Do(func() { sdFixtureVal, sdFixtureErr = sdBuildFixture() })
	if sdFixtureErr != nil {
		tb.Fatalf("building openssl fixture: %v", sdFixtureErr)
	}
	// Keys are generated once; each test gets its own copy of the files.
	fx := *sdFixtureVal
	fx.dir = tb.TempDir()
	for name, b := range fx.files {
		if err := os.WriteFile(filepath.Join(fx.dir, name), b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return &fx
}

func sdOpenSSL(dir string, stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("openssl %v: %v: %s", args, err, stderr.String())
	}
	return stdout.Bytes(), nil
}

const sdLeafExt = `basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,nonRepudiation,keyEncipherment,keyAgreement
extendedKeyUsage=emailProtection
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=email:%s
`

const sdCAExt = `basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
`

func sdBuildFixture() (*sdFixture, error) {
	// Generated once in a scratch directory and kept in memory, so that
	// the slow key generation is shared by all tests of the package.
	dir, err := os.MkdirTemp("", "cmssd")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	fx := &sdFixture{files: map[string][]byte{}, leaves: map[string]*sdLeaf{}}
	steps := [][]string{
		{"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", "root.key", "-out", "root.pem", "-subj", "/CN=secmail test root", "-days", "30",
			"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"},
		{"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", "inter.key", "-out", "inter.csr", "-subj", "/CN=secmail test intermediate"},
		{"x509", "-req", "-in", "inter.csr", "-CA", "root.pem", "-CAkey", "root.key", "-set_serial", "2",
			"-days", "30", "-extfile", "ca.ext", "-out", "inter.pem"},
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.ext"), []byte(sdCAExt), 0o600); err != nil {
		return nil, err
	}
	for _, s := range steps {
		if _, err := sdOpenSSL(dir, nil, s...); err != nil {
			return nil, err
		}
	}
	leafKeys := []struct{ name, alg string }{
		{"rsa", "-algorithm rsa -pkeyopt rsa_keygen_bits:2048"},
		{"ec", "-algorithm ec -pkeyopt ec_paramgen_curve:P-256"},
		{"p384", "-algorithm ec -pkeyopt ec_paramgen_curve:P-384"},
		{"p521", "-algorithm ec -pkeyopt ec_paramgen_curve:P-521"},
		{"ed", "-algorithm ed25519"},
	}
	for i, lk := range leafKeys {
		args := append([]string{"genpkey"}, splitArgs(lk.alg)...)
		args = append(args, "-out", lk.name+".key")
		if _, err := sdOpenSSL(dir, nil, args...); err != nil {
			return nil, err
		}
		addr := lk.name + "@example.org"
		if err := os.WriteFile(filepath.Join(dir, lk.name+".ext"), []byte(fmt.Sprintf(sdLeafExt, addr)), 0o600); err != nil {
			return nil, err
		}
		for _, s := range [][]string{
			{"req", "-new", "-key", lk.name + ".key", "-subj", "/CN=" + lk.name + "/emailAddress=" + addr, "-out", lk.name + ".csr"},
			{"x509", "-req", "-in", lk.name + ".csr", "-CA", "inter.pem", "-CAkey", "inter.key",
				"-set_serial", fmt.Sprint(100 + i), "-days", "30", "-extfile", lk.name + ".ext", "-out", lk.name + ".pem"},
		} {
			if _, err := sdOpenSSL(dir, nil, s...); err != nil {
				return nil, err
			}
		}
		l := &sdLeaf{name: lk.name, certPath: lk.name + ".pem", keyPath: lk.name + ".key"}
		if l.cert, err = testpeer.ReadCert(filepath.Join(dir, l.certPath)); err != nil {
			return nil, err
		}
		if l.key, err = sdReadKey(filepath.Join(dir, l.keyPath)); err != nil {
			return nil, err
		}
		fx.leaves[lk.name] = l
	}
	if fx.root, err = testpeer.ReadCert(filepath.Join(dir, "root.pem")); err != nil {
		return nil, err
	}
	if fx.inter, err = testpeer.ReadCert(filepath.Join(dir, "inter.pem")); err != nil {
		return nil, err
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.pem"))
	if err != nil {
		return nil, err
	}
	more, _ := filepath.Glob(filepath.Join(dir, "*.key"))
	for _, n := range append(names, more...) {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		fx.files[filepath.Base(n)] = b
	}
	return fx, nil
}

func splitArgs(s string) []string {
	var out []string
	for _, f := range bytes.Fields([]byte(s)) {
		out = append(out, string(f))
	}
	return out
}

func sdReadKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	return keys.Wrap(k)
}

// sign runs `openssl cms -sign` over content with leaf and extra flags and
// returns the DER (or PEM-decoded) output.
func (fx *sdFixture) sign(tb testing.TB, leaf string, content []byte, flags ...string) []byte {
	tb.Helper()
	l := fx.leaves[leaf]
	in, err := os.CreateTemp(fx.dir, "msg")
	if err != nil {
		tb.Fatal(err)
	}
	defer os.Remove(in.Name())
	if _, err := in.Write(content); err != nil {
		tb.Fatal(err)
	}
	in.Close()
	args := []string{"cms", "-sign", "-binary", "-in", in.Name(), "-signer", l.certPath, "-inkey", l.keyPath, "-outform", "DER"}
	args = append(args, flags...)
	out, err := sdOpenSSL(fx.dir, nil, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
