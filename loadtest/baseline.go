package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/mailgen"
	"github.com/secmail/secmail/result"
)

// Baseline is how the helpdesks we replace process the same articles:
// one openssl or gpg process per message (per step), run with as many
// processes at once as there are CPUs.
type Baseline struct {
	Articles         int     `json:"articles"`
	Processes        int     `json:"processes"`
	Seconds          float64 `json:"seconds"`
	Throughput       float64 `json:"articles_per_second"`
	CPUSecondsPerArt float64 `json:"cpu_seconds_per_article"` // children's CPU (RUSAGE_CHILDREN)
	// Unexpected counts tool failures on articles that should succeed: a
	// broken baseline, not a slow one.
	Unexpected int      `json:"unexpected_failures"`
	Examples   []string `json:"unexpected_examples,omitempty"`
}

// baselineEnv holds the helpdesk's keys as files, and a GnuPG home.
type baselineEnv struct {
	dir       string
	gnupgHome string
	support   string // certificate + key
	ca        string // root + issuing CA
	alice     string // a customer certificate (outbound)
}

func newBaselineEnv(ctx context.Context, w *mailgen.World) (*baselineEnv, error) {
	for _, tool := range []string{"openssl", "gpg"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s is needed for the baseline (or use --baseline=false): %w", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "secmail-baseline-")
	if err != nil {
		return nil, err
	}
	// gpg-agent's socket path must stay under 108 bytes.
	home, err := os.MkdirTemp("/tmp", "gpg")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e := &baselineEnv{dir: dir, gnupgHome: home,
		support: filepath.Join(dir, "support.pem"), ca: filepath.Join(dir, "ca.pem"), alice: filepath.Join(dir, "alice.pem")}
	files := map[string][]byte{
		e.support: w.OrgFiles["support.pem"],
		e.ca:      append(append([]byte{}, w.OrgFiles["demo-root-ca.pem"]...), w.OrgFiles["demo-issuing-ca.pem"]...),
		e.alice:   w.OrgFiles["alice.pem"],
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			e.close()
			return nil, err
		}
	}
	for _, name := range []string{"support-pgp.asc", "bob.asc"} {
		if _, err := e.gpg(ctx, w.OrgFiles[name], "--import"); err != nil {
			e.close()
			return nil, fmt.Errorf("gpg --import %s: %w", name, err)
		}
	}
	return e, nil
}

func (e *baselineEnv) close() {
	cmd := exec.Command("gpgconf", "--kill", "gpg-agent")
	cmd.Env = append(os.Environ(), "GNUPGHOME="+e.gnupgHome)
	_ = cmd.Run()
	os.RemoveAll(e.gnupgHome)
	os.RemoveAll(e.dir)
}

func (e *baselineEnv) gpg(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	args = append([]string{"--batch", "--yes", "--quiet", "--no-tty", "--trust-model", "always", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)
	cmd := exec.CommandContext(ctx, "gpg", args...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+e.gnupgHome)
	return runCmd(cmd, stdin)
}

func (e *baselineEnv) openssl(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	return runCmd(exec.CommandContext(ctx, "openssl", args...), stdin)
}

func runCmd(cmd *exec.Cmd, stdin []byte) ([]byte, error) {
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return out.Bytes(), fmt.Errorf("%s: %w: %s", filepath.Base(cmd.Path), err, msg)
	}
	return out.Bytes(), nil
}

// process handles one article the way a helpdesk that shells out does.
// It returns the number of processes started.
func (e *baselineEnv) process(ctx context.Context, s *mailgen.Sample) (int, error) {
	if s.Direction == article.Outbound {
		return e.outbound(ctx, s)
	}
	raw := s.Raw
	ct := header(raw, "Content-Type")
	mt, params, _ := mime.ParseMediaType(ct)
	switch {
	case mt == "application/pkcs7-mime" && params["smime-type"] == "enveloped-data":
		dec, err := e.openssl(ctx, raw, "cms", "-decrypt", "-recip", e.support, "-inkey", e.support)
		if err != nil {
			return 1, err
		}
		if !bytes.Contains(dec, []byte("application/pkcs7-signature")) && !bytes.Contains(dec, []byte("signed-data")) {
			return 1, nil // encrypted only
		}
		_, err = e.openssl(ctx, dec, "cms", "-verify", "-CAfile", e.ca, "-out", os.DevNull)
		return 2, err
	case mt == "multipart/signed" && strings.Contains(params["protocol"], "pkcs7-signature"),
		mt == "application/pkcs7-mime":
		_, err := e.openssl(ctx, raw, "cms", "-verify", "-CAfile", e.ca, "-out", os.DevNull)
		return 1, err
	case mt == "multipart/encrypted":
		msg := armored(raw, "PGP MESSAGE")
		if msg == nil {
			return 0, errors.New("no PGP message found")
		}
		_, err := e.gpg(ctx, msg, "--decrypt")
		return 1, err
	case mt == "multipart/signed":
		sig := armored(raw, "PGP SIGNATURE")
		content := firstPart(raw, params["boundary"])
		if sig == nil || content == nil {
			return 0, errors.New("no PGP signature found")
		}
		sigFile, err := e.temp("sig-*.asc", sig)
		if err != nil {
			return 0, err
		}
		defer os.Remove(sigFile)
		_, err = e.gpg(ctx, content, "--verify", sigFile, "-")
		return 1, err
	}
	return 0, nil // plain: nothing to run
}

// outbound signs, then encrypts, one process per step (S/MIME), or one
// gpg --sign --encrypt (PGP). A reply without a recipient key fails at
// the look-up, before any process.
func (e *baselineEnv) outbound(ctx context.Context, s *mailgen.Sample) (int, error) {
	switch {
	case strings.Contains(header(s.Raw, "To"), mailgen.Alice):
		signed, err := e.openssl(ctx, s.Raw, "cms", "-sign", "-signer", e.support, "-inkey", e.support)
		if err != nil {
			return 1, err
		}
		_, err = e.openssl(ctx, signed, "cms", "-encrypt", "-aes-256-cbc", e.alice)
		return 2, err
	case strings.Contains(header(s.Raw, "To"), mailgen.Bob):
		_, err := e.gpg(ctx, s.Raw, "--armor", "--sign", "--encrypt", "--local-user", mailgen.Support, "--recipient", mailgen.Bob)
		return 1, err
	}
	return 0, nil
}

func (e *baselineEnv) temp(pattern string, data []byte) (string, error) {
	f, err := os.CreateTemp(e.dir, pattern)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// header returns the unfolded value of a top-level header field.
func header(raw []byte, name string) string {
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(raw)
	}
	lines := strings.Split(strings.ReplaceAll(string(raw[:end]), "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		k, v, ok := strings.Cut(lines[i], ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), name) {
			continue
		}
		for i+1 < len(lines) && len(lines[i+1]) > 0 && (lines[i+1][0] == ' ' || lines[i+1][0] == '\t') {
			i++
			v += " " + strings.TrimSpace(lines[i])
		}
		return strings.TrimSpace(v)
	}
	return ""
}

func armored(raw []byte, typ string) []byte {
	begin := bytes.Index(raw, []byte("-----BEGIN "+typ+"-----"))
	if begin < 0 {
		return nil
	}
	endMark := []byte("-----END " + typ + "-----")
	end := bytes.Index(raw[begin:], endMark)
	if end < 0 {
		return nil
	}
	return raw[begin : begin+end+len(endMark)]
}

// firstPart is the first body part of a multipart, as signed (RFC 3156:
// the part's bytes between the delimiters).
func firstPart(raw []byte, boundary string) []byte {
	if boundary == "" {
		return nil
	}
	delim := []byte("--" + boundary + "\r\n")
	i := bytes.Index(raw, delim)
	if i < 0 {
		return nil
	}
	rest := raw[i+len(delim):]
	j := bytes.Index(rest, []byte("\r\n--"+boundary))
	if j < 0 {
		return nil
	}
	return rest[:j]
}

// runBaseline processes a sample of the articles (every k-th, so the mix
// is the same) with the per-message tools, as many at once as CPUs.
func runBaseline(ctx context.Context, w *mailgen.World, set *articleSet, sample int) (*Baseline, error) {
	e, err := newBaselineEnv(ctx, w)
	if err != nil {
		return nil, err
	}
	defer e.close()
	n := len(set.Order)
	if sample <= 0 || sample > n {
		sample = n
	}
	var picks []*mailgen.Sample
	for k := 0; k < sample; k++ {
		picks = append(picks, set.sample(set.Order[k*n/sample]))
	}
	b := &Baseline{Articles: len(picks)}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		next = make(chan *mailgen.Sample)
	)
	ru0 := rusage(syscall.RUSAGE_CHILDREN)
	start := time.Now()
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range next {
				procs, err := e.process(ctx, s)
				mu.Lock()
				b.Processes += procs
				if err != nil && expectsSuccess(s) {
					b.Unexpected++
					if len(b.Examples) < 5 {
						b.Examples = append(b.Examples, s.Name+": "+err.Error())
					}
				}
				mu.Unlock()
			}
		}()
	}
	for _, s := range picks {
		select {
		case next <- s:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.Seconds = time.Since(start).Seconds()
	if b.Seconds > 0 {
		b.Throughput = float64(b.Articles) / b.Seconds
	}
	if b.Articles > 0 {
		b.CPUSecondsPerArt = (rusage(syscall.RUSAGE_CHILDREN) - ru0) / float64(b.Articles)
	}
	return b, nil
}

// expectsSuccess: the tools should succeed where secmail's expectation
// has no failure.
func expectsSuccess(s *mailgen.Sample) bool {
	return s.Expect.Encryption != result.StatusFailed && s.Expect.Sign != result.StatusFailed
}
