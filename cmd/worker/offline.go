package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/handlers"
	"github.com/secmail/secmail/keybackend"
	"github.com/secmail/secmail/keyring"
	"github.com/secmail/secmail/mimewalk"
	"github.com/secmail/secmail/reason"
	"github.com/secmail/secmail/result"
)

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// keyringFlags are shared by the offline commands.
type keyringFlags struct {
	dir            string
	passphrases    listFlag
	passphraseFile string
	lang           string
	config         string
	backend        backendFlags
}

func (k *keyringFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.dir, "keyring", "", "directory of certificates and keys in any supported format (required)")
	fs.Var(&k.passphrases, "passphrase", "passphrase to try on every protected key (repeatable)")
	fs.StringVar(&k.passphraseFile, "passphrase-file", "", "file with one passphrase per line")
	fs.StringVar(&k.lang, "lang", envOr("SECMAIL_LANG", "en"), "language of comments: en, de, tr")
	fs.StringVar(&k.config, "config", "", "JSON configuration file (group defaults, outbound choices)")
	k.backend.register(fs)
}

// fileConfig is the JSON configuration file of the offline commands and of
// `worker run --config`.
type fileConfig struct {
	Lang      string                   `json:"lang"`
	Allow3DES *bool                    `json:"allow_3des"`
	Limits    *limitsConfig            `json:"limits"`
	Outbound  *handlers.OutboundConfig `json:"outbound"`
}

// limitsConfig bounds what one message may cost; zero keeps the default.
type limitsConfig struct {
	MaxSize        int `json:"max_size"`         // bytes, default 50 MiB
	MaxDepth       int `json:"max_depth"`        // MIME nesting, default 32
	MaxParts       int `json:"max_parts"`        // parts per message, default 1000
	MaxHeaderBytes int `json:"max_header_bytes"` // per header block, default 256 KiB
}

// handler loads the keyring and returns a handler over it.
func (k *keyringFlags) handler() (*handlers.Handler, error) {
	if k.dir == "" {
		return nil, errors.New("--keyring DIR is required")
	}
	pass := append([]string{}, k.passphrases...)
	if k.passphraseFile != "" {
		more, err := keyring.ReadPassphraseFile(k.passphraseFile)
		if err != nil {
			return nil, err
		}
		pass = append(pass, more...)
	}
	b, err := k.backend.open()
	if err != nil {
		return nil, err
	}
	// The offline commands exit after one run; the backend lives as long.
	kr, err := keyring.LoadDir(k.dir, keyring.Options{Passphrases: pass, LoadKey: b.Load})
	if err != nil {
		return nil, fmt.Errorf("reading keyring: %w", err)
	}
	cfg, err := loadConfig(k.config, k.lang)
	if err != nil {
		return nil, err
	}
	cfg.Verifier, cfg.CBC = keybackend.Offload(b)
	return handlers.New(kr, cfg), nil
}

// loadConfig builds the handler configuration from defaults, an optional
// JSON file and the language flag.
func loadConfig(path, lang string) (handlers.Config, error) {
	cfg := handlers.DefaultConfig()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, err
		}
		var fc fileConfig
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fc); err != nil {
			return cfg, fmt.Errorf("%s: %w", path, err)
		}
		if fc.Lang != "" && lang == "" {
			lang = fc.Lang
		}
		if fc.Allow3DES != nil {
			cfg.Allow3DES = *fc.Allow3DES
		}
		if l := fc.Limits; l != nil {
			cfg.Limits = mimewalk.Limits{MaxSize: l.MaxSize, MaxDepth: l.MaxDepth, MaxParts: l.MaxParts, MaxHeaderBytes: l.MaxHeaderBytes}
		}
		if fc.Outbound != nil {
			oc := *fc.Outbound
			if oc.Prefer == "" {
				oc.Prefer = result.SMIME
			}
			oc.Hash = cfg.Outbound.Hash
			cfg.Outbound = oc
		}
	}
	l, err := reason.ParseLang(lang)
	if err != nil {
		return cfg, err
	}
	cfg.Lang = l
	return cfg, nil
}

func envOr(k, def string) string {
	if v, ok := os.LookupEnv(k); ok && v != "" {
		return v
	}
	return def
}

// inspectLine is one JSON Lines record of `worker inspect`.
type inspectLine struct {
	File     string           `json:"file"`
	Security *result.Security `json:"security"`
	Output   string           `json:"output,omitempty"`
	Error    *lineError       `json:"error,omitempty"`
}

type lineError struct {
	Code    reason.Code `json:"code"`
	Message string      `json:"message"`
}

func errorOf(err error, lang reason.Lang) *lineError {
	c := reason.CodeOf(err)
	if c == "" {
		return &lineError{Code: reason.Malformed, Message: err.Error()}
	}
	return &lineError{Code: c, Message: reason.Comment(lang, c) + " (" + err.Error() + ")"}
}

func cmdInspect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var kf keyringFlags
	kf.register(fs)
	outDir := fs.String("output-dir", "", "write each processed (decrypted, unwrapped) message here")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: worker inspect --keyring DIR [--passphrase P]... [--passphrase-file F] [--lang en|de|tr] [--output-dir D] FILE.eml...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	h, err := kf.handler()
	if err != nil {
		fmt.Fprintln(stderr, "worker inspect:", err)
		return 1
	}
	if *outDir != "" {
		if err := os.MkdirAll(*outDir, 0o755); err != nil {
			fmt.Fprintln(stderr, "worker inspect:", err)
			return 1
		}
	}
	lang, _ := reason.ParseLang(kf.lang)
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	for _, file := range fs.Args() {
		line := inspectLine{File: file}
		raw, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintln(stderr, "worker inspect:", err)
			return 1
		}
		out, err := h.Inbound(ctx, raw)
		if err != nil {
			line.Error = errorOf(err, lang)
		} else {
			line.Security = &out.Security
			if *outDir != "" {
				line.Output = filepath.Join(*outDir, filepath.Base(file))
				if err := os.WriteFile(line.Output, out.Raw, 0o644); err != nil {
					fmt.Fprintln(stderr, "worker inspect:", err)
					return 1
				}
			}
		}
		if err := enc.Encode(line); err != nil {
			return 1
		}
	}
	return 0
}

// secureResult is the JSON `worker secure` writes to stderr or --result.
type secureResult struct {
	Security   result.Security     `json:"security"`
	Recipients []article.Recipient `json:"recipients"`
	Output     string              `json:"output,omitempty"`
	Copies     []secureCopy        `json:"copies,omitempty"`
	Error      *lineError          `json:"error,omitempty"`
}

type secureCopy struct {
	Recipients []string `json:"recipients"`
	File       string   `json:"file"`
}

func cmdSecure(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("secure", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var kf keyringFlags
	kf.register(fs)
	typ := fs.String("type", "", "smime or pgp (default: group default, then what is possible, S/MIME preferred)")
	sign := fs.Bool("sign", false, "require signing")
	encrypt := fs.Bool("encrypt", false, "require encryption")
	noSign := fs.Bool("no-sign", false, "do not sign")
	noEncrypt := fs.Bool("no-encrypt", false, "do not encrypt")
	group := fs.String("group", "", "helpdesk group whose defaults apply")
	resultFile := fs.String("result", "", "write the result JSON here instead of stderr")
	output := fs.String("output", "", "write the secured message here instead of stdout; Bcc copies go next to it as NAME.bcc-N.eml")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: worker secure --keyring DIR [--passphrase P]... [--passphrase-file F] [--type smime|pgp] [--sign] [--encrypt] [--group G --config FILE] [--output OUT.eml] [--result FILE] IN.eml > OUT.eml")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	h, err := kf.handler()
	if err != nil {
		fmt.Fprintln(stderr, "worker secure:", err)
		return 1
	}
	raw, err := readInput(fs.Arg(0), stdin)
	if err != nil {
		fmt.Fprintln(stderr, "worker secure:", err)
		return 1
	}
	req := &article.Request{Raw: raw, Group: *group}
	if *typ != "" {
		req.Options.Type = typ
	}
	req.Options.Sign = boolOpt(*sign, *noSign)
	req.Options.Encrypt = boolOpt(*encrypt, *noEncrypt)
	lang, _ := reason.ParseLang(kf.lang)
	var res secureResult
	code := 0
	out, err := h.Outbound(ctx, req)
	if err != nil {
		res.Error = errorOf(err, lang)
		code = 1
	} else {
		res.Security, res.Recipients = out.Security, out.Recipients
		if out.Raw == nil {
			code = 3 // nothing may be sent
		} else if err := writeOutput(*output, out, stdout, &res); err != nil {
			fmt.Fprintln(stderr, "worker secure:", err)
			return 1
		}
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	b = append(b, '\n')
	if *resultFile != "" {
		if err := os.WriteFile(*resultFile, b, 0o644); err != nil {
			fmt.Fprintln(stderr, "worker secure:", err)
			return 1
		}
	} else {
		stderr.Write(b)
	}
	return code
}

// boolOpt maps --x / --no-x to an option; neither means the default.
func boolOpt(on, off bool) *bool {
	switch {
	case on:
		return &on
	case off:
		f := false
		return &f
	}
	return nil
}

func readInput(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(name)
}

// writeOutput writes the main message and any Bcc copies.
func writeOutput(path string, out *article.Outcome, stdout io.Writer, res *secureResult) error {
	if path == "" {
		if len(out.Copies) > 0 {
			return errors.New("the message has Bcc recipients, which get separately encrypted copies: use --output FILE")
		}
		_, err := stdout.Write(out.Raw)
		return err
	}
	if err := os.WriteFile(path, out.Raw, 0o644); err != nil {
		return err
	}
	res.Output = path
	base := strings.TrimSuffix(path, filepath.Ext(path))
	for i, c := range out.Copies {
		name := fmt.Sprintf("%s.bcc-%d.eml", base, i+1)
		if err := os.WriteFile(name, c.Raw, 0o644); err != nil {
			return err
		}
		res.Copies = append(res.Copies, secureCopy{Recipients: c.Recipients, File: name})
	}
	return nil
}

func cmdPreflight(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("preflight", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var kf keyringFlags
	kf.register(fs)
	from := fs.String("from", "", "sending address")
	var to, cc, bcc listFlag
	fs.Var(&to, "to", "recipient address(es), comma-separated or repeated")
	fs.Var(&cc, "cc", "Cc address(es)")
	fs.Var(&bcc, "bcc", "Bcc address(es)")
	group := fs.String("group", "", "helpdesk group whose defaults apply")
	typ := fs.String("type", "", "only this type: smime or pgp")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	h, err := kf.handler()
	if err != nil {
		fmt.Fprintln(stderr, "worker preflight:", err)
		return 1
	}
	req := handlers.PreflightRequest{From: *from, To: to, Cc: cc, Bcc: bcc, Group: *group}
	if *typ != "" {
		req.Type = typ
	}
	resp, err := h.Preflight(ctx, req)
	if err != nil {
		fmt.Fprintln(stderr, "worker preflight:", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(resp); err != nil {
		return 1
	}
	return 0
}
