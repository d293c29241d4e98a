package certsvc

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/secmail/secmail/natsembed"
	"github.com/secmail/secmail/store"
)

const cliUsage = `usage: worker certs [flags] <command> [flags] [arguments]

commands:
  import FILE...          add certificates, private keys, PGP keys, CRLs ("-" = stdin)
        --passphrase P (repeatable), --passphrase-file F (one per line), --partial
  list                    list certificates and PGP keys
        --email ADDR, --kind cert|ca|smime|pgp, --expiring DAYS, --has-key
  show ID                 show one certificate or PGP key (fingerprint or prefix)
  export ID               write PEM (default), --format der, --chain, --key
        (private key exactly as uploaded), -o FILE
  delete ID...            delete certificates (with their keys) or PGP keys
  attach ID               the certificate's private key is in a PKCS#11 token:
        --token LABEL --key LABEL|HEXID (key label or CKA_ID); no key leaves
        the token, the worker checks the key matches when it uses it
  crl import FILE...      add CRLs (also: crl FILE...)
  group set NAME          --sign true|false, --encrypt true|false, --type S/MIME|PGP
  group get NAME
  rotate-master-key       --old-key-file F --new-key-file F [--bucket B]
        re-seal all private keys; talks to JetStream directly, so it needs
        the worker's NATS credentials, not the admin's

flags (anywhere on the line; environment in brackets):
  --nats URL [SECMAIL_NATS_URL]   --creds FILE [SECMAIL_NATS_CREDS]
  --nkey FILE [SECMAIL_NATS_NKEY] --tls-ca/--tls-cert/--tls-key FILE
  [SECMAIL_NATS_TLS_CA/_CERT/_KEY] --identity NAME [SECMAIL_IDENTITY]
  --timeout DURATION (default 30s)  --json (machine-readable output)
`

// cli is one invocation's state.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	natsURL, creds, nkey, tlsCA, tlsCert, tlsKey, identity string
	timeout                                                time.Duration
	json                                                   bool
}

func (c *cli) globalFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.natsURL, "nats", envOr("SECMAIL_NATS_URL", natsembed.DefaultURL), "NATS server URL (default: the embedded default of `worker run`)")
	fs.StringVar(&c.creds, "creds", os.Getenv("SECMAIL_NATS_CREDS"), "NATS credentials file")
	fs.StringVar(&c.nkey, "nkey", os.Getenv("SECMAIL_NATS_NKEY"), "NATS nkey seed file")
	fs.StringVar(&c.tlsCA, "tls-ca", os.Getenv("SECMAIL_NATS_TLS_CA"), "CA certificate for the NATS server")
	fs.StringVar(&c.tlsCert, "tls-cert", os.Getenv("SECMAIL_NATS_TLS_CERT"), "client certificate")
	fs.StringVar(&c.tlsKey, "tls-key", os.Getenv("SECMAIL_NATS_TLS_KEY"), "client key")
	fs.StringVar(&c.identity, "identity", os.Getenv("SECMAIL_IDENTITY"), "identity recorded in audit events")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "request time-out")
	fs.BoolVar(&c.json, "json", false, "JSON output")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// parse parses flags interspersed with arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

// RunCLI runs `worker certs ARGS...` (args may start with "certs") and
// returns the exit status: 0 success, 1 failure (including an import with
// failed entries), 2 usage error.
func RunCLI(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "certs" {
		args = args[1:]
	}
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	// The command is the first non-flag argument; flags may come before it.
	var cmd string
	var rest []string
	for i, a := range args {
		if !strings.HasPrefix(a, "-") {
			// A value of a preceding global flag ("--nats URL") is not the
			// command.
			if i > 0 && takesValue(args[i-1]) {
				continue
			}
			cmd, rest = a, append(append([]string(nil), args[:i]...), args[i+1:]...)
			break
		}
	}
	if cmd == "" || cmd == "help" {
		fmt.Fprint(stderr, cliUsage)
		if cmd == "help" {
			return 0
		}
		return 2
	}
	err := c.run(ctx, cmd, rest)
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stderr, cliUsage)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "worker certs: %v\n\n%s", err, cliUsage)
		return 2
	case errors.Is(err, errFailedEntries):
		return 1
	}
	fmt.Fprintf(stderr, "worker certs %s: %v\n", cmd, err)
	return 1
}

func takesValue(flagArg string) bool {
	if strings.Contains(flagArg, "=") {
		return false
	}
	switch strings.TrimLeft(flagArg, "-") {
	case "nats", "creds", "nkey", "tls-ca", "tls-cert", "tls-key", "identity", "timeout":
		return true
	}
	return false
}

var errFailedEntries = errors.New("some entries failed")

func (c *cli) run(ctx context.Context, cmd string, args []string) error {
	fs := flag.NewFlagSet("worker certs "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.globalFlags(fs)
	switch cmd {
	case "import":
		var passes multiFlag
		fs.Var(&passes, "passphrase", "passphrase (repeatable)")
		passFile := fs.String("passphrase-file", "", "file with one passphrase per line")
		partial := fs.Bool("partial", false, "apply valid entries even when others fail")
		files, err := c.parse(fs, args)
		if err != nil {
			return err
		}
		if len(files) == 0 {
			return &usageError{"import: no files"}
		}
		if *passFile != "" {
			b, err := os.ReadFile(*passFile)
			if err != nil {
				return err
			}
			for _, l := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n") {
				if l != "" {
					passes = append(passes, l)
				}
			}
		}
		req := ImportRequest{Passphrases: passes, Partial: *partial}
		for _, f := range files {
			data, name, err := c.readFile(f)
			if err != nil {
				return err
			}
			req.Files = append(req.Files, File{Name: name, Data: data})
		}
		var rep store.Report
		if err := c.call(ctx, "import", req, &rep); err != nil {
			return err
		}
		return c.printReport(&rep)
	case "list":
		var r ListRequest
		fs.StringVar(&r.Email, "email", "", "only entries naming this address")
		fs.StringVar(&r.Kind, "kind", "", "cert, ca, smime or pgp")
		fs.IntVar(&r.ExpiringDays, "expiring", 0, "only entries expiring within DAYS")
		fs.BoolVar(&r.HasPrivateKey, "has-key", false, "only entries with a private key")
		if pos, err := c.parse(fs, args); err != nil {
			return err
		} else if len(pos) > 0 {
			return &usageError{"list takes no arguments"}
		}
		l := store.Listing{Certs: []store.CertInfo{}, PGP: []store.PGPInfo{}}
		err := c.stream(ctx, "list", r, func(data []byte) error {
			var page store.Listing
			if err := json.Unmarshal(data, &page); err != nil {
				return err
			}
			l.Certs = append(l.Certs, page.Certs...)
			l.PGP = append(l.PGP, page.PGP...)
			return nil
		})
		if err != nil {
			return err
		}
		return c.printList(&l)
	case "show":
		ids, err := c.parse(fs, args)
		if err != nil {
			return err
		}
		if len(ids) != 1 {
			return &usageError{"show: one ID"}
		}
		var r ShowResponse
		if err := c.call(ctx, "show", IDRequest{ID: ids[0]}, &r); err != nil {
			return err
		}
		return c.printShow(&r)
	case "export":
		var r ExportRequest
		fs.StringVar(&r.Format, "format", "pem", "pem or der")
		fs.BoolVar(&r.Chain, "chain", false, "append the issuers (PEM)")
		fs.BoolVar(&r.PrivateKey, "key", false, "the private key as uploaded")
		out := fs.String("o", "", "output file (default stdout)")
		ids, err := c.parse(fs, args)
		if err != nil {
			return err
		}
		if len(ids) != 1 {
			return &usageError{"export: one ID"}
		}
		r.ID = ids[0]
		var resp ExportResponse
		if err := c.call(ctx, "export", r, &resp); err != nil {
			return err
		}
		if *out != "" {
			mode := os.FileMode(0o644)
			if r.PrivateKey {
				mode = 0o600
			}
			return os.WriteFile(*out, resp.Data, mode)
		}
		_, err = c.stdout.Write(resp.Data)
		return err
	case "delete":
		ids, err := c.parse(fs, args)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return &usageError{"delete: at least one ID"}
		}
		for _, id := range ids {
			var r ShowResponse
			if err := c.call(ctx, "delete", IDRequest{ID: id}, &r); err != nil {
				return err
			}
			if c.json {
				if err := json.NewEncoder(c.stdout).Encode(r); err != nil {
					return err
				}
			} else if r.Certificate != nil {
				fmt.Fprintf(c.stdout, "deleted %s %s\n", r.Certificate.Fingerprint, r.Certificate.Subject)
			} else {
				fmt.Fprintf(c.stdout, "deleted %s %s\n", r.PGP.Fingerprint, strings.Join(r.PGP.UIDs, ", "))
			}
		}
		return nil
	case "attach":
		var r AttachRequest
		fs.StringVar(&r.Token, "token", "", "label of the PKCS#11 token")
		fs.StringVar(&r.Key, "key", "", "label or hex CKA_ID of the key in the token")
		ids, err := c.parse(fs, args)
		if err != nil {
			return err
		}
		if len(ids) != 1 {
			return &usageError{"attach: one certificate ID"}
		}
		if r.Token == "" || r.Key == "" {
			return &usageError{"attach needs --token LABEL and --key LABEL|HEXID"}
		}
		r.ID = ids[0]
		var a store.Attachment
		if err := c.call(ctx, "attach", r, &a); err != nil {
			return err
		}
		if c.json {
			return json.NewEncoder(c.stdout).Encode(a)
		}
		verb := "attached"
		switch a.Status {
		case store.StatusPresent:
			verb = "already attached"
		case store.StatusUpdated:
			verb = "re-attached"
		}
		fmt.Fprintf(c.stdout, "%s %s %s to %s\n", verb, a.Certificate.Fingerprint, a.Certificate.Subject, a.Token)
		return nil
	case "crl":
		files, err := c.parse(fs, args)
		if err != nil {
			return err
		}
		if len(files) > 0 && files[0] == "import" {
			files = files[1:]
		}
		if len(files) == 0 {
			return &usageError{"crl import: no files"}
		}
		failed := false
		for _, f := range files {
			data, name, err := c.readFile(f)
			if err != nil {
				return err
			}
			var rep store.Report
			if err := c.call(ctx, "crl.import", File{Name: name, Data: data}, &rep); err != nil {
				return err
			}
			if err := c.printReport(&rep); errors.Is(err, errFailedEntries) {
				failed = true
			} else if err != nil {
				return err
			}
		}
		if failed {
			return errFailedEntries
		}
		return nil
	case "group":
		sign := fs.String("sign", "", "true or false (empty: unset)")
		encrypt := fs.String("encrypt", "", "true or false (empty: unset)")
		typ := fs.String("type", "", "S/MIME or PGP")
		pos, err := c.parse(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 2 || (pos[0] != "set" && pos[0] != "get") {
			return &usageError{"group set|get NAME"}
		}
		req := GroupRequest{Group: pos[1]}
		var resp GroupResponse
		if pos[0] == "set" {
			if req.Defaults.Sign, err = optBool(*sign); err != nil {
				return &usageError{"--sign: " + err.Error()}
			}
			if req.Defaults.Encrypt, err = optBool(*encrypt); err != nil {
				return &usageError{"--encrypt: " + err.Error()}
			}
			req.Defaults.Type = *typ
			err = c.call(ctx, "group.set", req, &resp)
		} else {
			err = c.call(ctx, "group.get", req, &resp)
		}
		if err != nil {
			return err
		}
		if c.json {
			return json.NewEncoder(c.stdout).Encode(resp)
		}
		if !resp.Found {
			fmt.Fprintf(c.stdout, "group %q: no defaults set (global defaults apply)\n", resp.Group)
			return nil
		}
		fmt.Fprintf(c.stdout, "group %q: sign=%s encrypt=%s type=%s\n", resp.Group, boolStr(resp.Defaults.Sign), boolStr(resp.Defaults.Encrypt), orDefault(resp.Defaults.Type))
		return nil
	case "rotate-master-key":
		oldF := fs.String("old-key-file", "", "current master key file")
		newF := fs.String("new-key-file", "", "new master key file")
		bucket := fs.String("bucket", store.DefaultBucket, "KV bucket")
		if _, err := c.parse(fs, args); err != nil {
			return err
		}
		if *oldF == "" || *newF == "" {
			return &usageError{"rotate-master-key needs --old-key-file and --new-key-file"}
		}
		oldK, err := store.LoadMasterKey(*oldF)
		if err != nil {
			return err
		}
		newK, err := store.LoadMasterKey(*newF)
		if err != nil {
			return err
		}
		nc, err := c.connect()
		if err != nil {
			return err
		}
		defer nc.Close()
		ctx, cancel := context.WithTimeout(ctx, 10*c.timeout)
		defer cancel()
		// A permission violation ends the operation at once instead of
		// after the time-out.
		ctx, stop := context.WithCancelCause(ctx)
		defer stop(nil)
		nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				stop(fmt.Errorf("not allowed (rotation needs the worker's credentials): %w", err))
			}
		})
		st, err := store.Open(ctx, nc, store.Config{Bucket: *bucket, MasterKey: oldK})
		if err != nil {
			if cause := context.Cause(ctx); cause != nil {
				return cause
			}
			return err
		}
		n, err := st.RotateMasterKey(store.WithIdentity(ctx, c.who()), oldK, newK)
		if err != nil {
			if cause := context.Cause(ctx); cause != nil {
				err = cause
			}
			return fmt.Errorf("after re-sealing %d records: %w", n, err)
		}
		fmt.Fprintf(c.stdout, "re-sealed %d records under master key %s; deploy the new key to the workers\n", n, newK.ID())
		return nil
	}
	return &usageError{fmt.Sprintf("unknown command %q", cmd)}
}

func (c *cli) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	pos, err := parse(fs, args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return nil, &usageError{err.Error()}
	}
	return pos, err
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func optBool(s string) (*bool, error) {
	if s == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return nil, err
	}
	return &b, nil
}

func boolStr(b *bool) string {
	if b == nil {
		return "default"
	}
	return strconv.FormatBool(*b)
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

func (c *cli) readFile(name string) ([]byte, string, error) {
	if name == "-" {
		b, err := io.ReadAll(io.LimitReader(c.stdin, MaxFileSize+1))
		return b, "stdin", err
	}
	fi, err := os.Stat(name)
	if err != nil {
		return nil, "", err
	}
	if fi.Size() > MaxFileSize {
		return nil, "", fmt.Errorf("%s: %d bytes exceeds the limit of %d bytes", name, fi.Size(), MaxFileSize)
	}
	b, err := os.ReadFile(name)
	return b, filepath.Base(name), err
}

func (c *cli) who() string {
	if c.identity != "" {
		return c.identity
	}
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

func (c *cli) connect() (*nats.Conn, error) {
	opts := []nats.Option{nats.Name("worker certs"), nats.Timeout(c.timeout)}
	if c.creds != "" {
		opts = append(opts, nats.UserCredentials(c.creds))
	}
	if c.nkey != "" {
		o, err := nats.NkeyOptionFromSeed(c.nkey)
		if err != nil {
			return nil, fmt.Errorf("nkey: %w", err)
		}
		opts = append(opts, o)
	}
	if c.tlsCA != "" {
		opts = append(opts, nats.RootCAs(c.tlsCA))
	}
	if c.tlsCert != "" || c.tlsKey != "" {
		opts = append(opts, nats.ClientCert(c.tlsCert, c.tlsKey))
	}
	nc, err := nats.Connect(c.natsURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", redactURL(c.natsURL), err)
	}
	return nc, nil
}

func redactURL(u string) string {
	if at := strings.LastIndexByte(u, '@'); at >= 0 {
		if i := strings.Index(u, "://"); i >= 0 && i < at {
			return u[:i+3] + "***" + u[at:]
		}
	}
	return u
}

// call makes one request to the service and decodes the JSON answer.
func (c *cli) call(ctx context.Context, op string, req, resp any) error {
	return c.stream(ctx, op, req, func(data []byte) error { return json.Unmarshal(data, resp) })
}

// stream makes one request and hands each reply message to each, until a
// message without the MoreHeader (list answers come in pages).
func (c *cli) stream(ctx context.Context, op string, req any, each func([]byte) error) error {
	nc, err := c.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	// Permission violations arrive asynchronously; report them instead of
	// a bare time-out.
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			stop(fmt.Errorf("not allowed: %w", err))
		}
	})
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if max := nc.MaxPayload(); max > 0 && int64(len(data)) > max-1024 {
		return fmt.Errorf("the request is %d bytes, more than the server's max_payload of %d: import fewer or smaller files at a time, or raise max_payload", len(data), max)
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(SubjectPrefix + "." + op)
	msg.Data = data
	msg.Reply = inbox
	msg.Header.Set(IdentityHeader, c.who())
	if err := nc.PublishMsg(msg); err != nil {
		return err
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.DeadlineExceeded) && !errors.Is(cause, context.Canceled) {
				return cause
			}
			return fmt.Errorf("no answer from %s: %w", ServiceName, err)
		}
		if m.Header.Get("Status") == "503" {
			return fmt.Errorf("no %s service is running (or you may not call it): %w", ServiceName, nats.ErrNoResponders)
		}
		if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
			return fmt.Errorf("%s (%s)", m.Header.Get(micro.ErrorHeader), code)
		}
		if err := each(m.Data); err != nil {
			return err
		}
		if m.Header.Get(MoreHeader) == "" {
			return nil
		}
	}
}

func (c *cli) printReport(rep *store.Report) error {
	if c.json {
		if err := json.NewEncoder(c.stdout).Encode(rep); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STATUS\tKIND\tID\tSUBJECT\tSOURCE\tNOTE")
		for _, e := range rep.Entries {
			note := e.Warning
			if e.Error != "" {
				note = e.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Status, e.Kind, short(e.ID), e.Subject, e.Source, note)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if !rep.Applied {
			fmt.Fprintln(c.stdout, "nothing was imported: fix the errors, or use --partial to import the valid entries")
		}
	}
	if rep.Failed() {
		return errFailedEntries
	}
	return nil
}

func short(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

func (c *cli) printList(l *store.Listing) error {
	if c.json {
		enc := json.NewEncoder(c.stdout)
		for _, ci := range l.Certs {
			if err := enc.Encode(ci); err != nil {
				return err
			}
		}
		for _, p := range l.PGP {
			if err := enc.Encode(p); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FINGERPRINT\tKIND\tSUBJECT\tEMAILS\tNOT AFTER\tKEY")
	for _, ci := range l.Certs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", short(ci.Fingerprint), ci.Kind, ci.Subject, strings.Join(ci.Emails, ","), ci.NotAfter.Format(time.DateOnly), keyCell(ci))
	}
	for _, p := range l.PGP {
		exp := "never"
		if p.Expires != nil {
			exp = p.Expires.Format(time.DateOnly)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", short(p.Fingerprint), p.Kind, strings.Join(p.UIDs, "; "), strings.Join(p.Emails, ","), exp, yes(p.Secret))
	}
	return tw.Flush()
}

// keyCell is the KEY column: "yes" for a key in the store, "token" for
// one in a PKCS#11 token.
func keyCell(ci store.CertInfo) string {
	if ci.KeyLocation == store.KeyInToken {
		return "token"
	}
	return yes(ci.HasPrivateKey)
}

// privateKeyRow is the "Private key" line of show.
func privateKeyRow(ci *store.CertInfo) string {
	if ci.Token != nil {
		return "in PKCS#11 " + ci.Token.String()
	}
	return yes(ci.HasPrivateKey)
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

func (c *cli) printShow(r *ShowResponse) error {
	if c.json {
		return json.NewEncoder(c.stdout).Encode(r)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 1, ' ', 0)
	if ci := r.Certificate; ci != nil {
		rows := [][2]string{
			{"Fingerprint (SHA-256)", ci.Fingerprint}, {"Kind", ci.Kind}, {"Subject", ci.Subject}, {"Issuer", ci.Issuer},
			{"Serial", ci.Serial}, {"E-mails", strings.Join(ci.Emails, ", ")},
			{"Not before", ci.NotBefore.Format(time.RFC3339)}, {"Not after", ci.NotAfter.Format(time.RFC3339)},
			{"Key usage", strings.Join(append(append([]string(nil), ci.KeyUsage...), ci.ExtKeyUsage...), ", ")},
			{"Public key", ci.PublicKeyAlgorithm}, {"Private key", privateKeyRow(ci)},
			{"SKI", ci.SKI}, {"S/MIME capabilities", strings.Join(ci.SMIMECapabilities, ", ")},
		}
		for _, row := range rows {
			fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		_, err := fmt.Fprint(c.stdout, r.PEM)
		return err
	}
	p := r.PGP
	exp := "never"
	if p.Expires != nil {
		exp = p.Expires.Format(time.RFC3339)
	}
	rows := [][2]string{
		{"Fingerprint", p.Fingerprint}, {"Key IDs", strings.Join(p.KeyIDs, ", ")}, {"User IDs", strings.Join(p.UIDs, "; ")},
		{"E-mails", strings.Join(p.Emails, ", ")}, {"Created", p.Created.Format(time.RFC3339)}, {"Expires", exp},
		{"Secret key", yes(p.Secret)},
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprint(c.stdout, r.Armor)
	return err
}
