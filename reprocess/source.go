package reprocess

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/secmail/secmail/pipeline"
)

// Item is one article to republish.
type Item struct {
	ArticleID string
	TicketID  string
	Group     string
	Raw       []byte // nil in a counting pass
	// Where names the input position for messages ("dir/a.eml",
	// "box.mbox:120").
	Where string
}

// BadInput is an input that was skipped.
type BadInput struct {
	File string
	Line int // 0 when the whole file is meant
	Err  string
}

func (b BadInput) String() string {
	if b.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", b.File, b.Line, b.Err)
	}
	return fmt.Sprintf("%s: %s", b.File, b.Err)
}

// source yields items. withRaw false is the counting pass: it needs the
// article ids (for the set of articles whose results are awaited) but not
// the messages, and reports no bad input.
type source interface {
	scan(ctx context.Context, withRaw bool, item func(Item) error, bad func(BadInput)) error
}

// hashID is the article id of a message without one: stable, so a re-run
// publishes the same ids and finds its earlier results.
func hashID(prefix string, raw []byte) string {
	sum := sha256.Sum256(raw)
	return prefix + hex.EncodeToString(sum[:16])
}

// dirSource reads *.eml files of one directory (not recursive), in name
// order; the article id is the file name without ".eml".
type dirSource struct {
	dir      string
	maxBytes int64
}

func (s dirSource) scan(ctx context.Context, withRaw bool, item func(Item) error, bad func(BadInput)) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", s.dir, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".eml") && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		path := filepath.Join(s.dir, name)
		id := strings.TrimSuffix(name, ".eml")
		it := Item{ArticleID: id, Where: path}
		if !pipeline.ValidID(id) {
			if withRaw {
				bad(BadInput{File: path, Err: "file name is not a valid article id"})
			}
			continue
		}
		if withRaw {
			raw, err := readLimited(path, s.maxBytes)
			if err != nil {
				bad(BadInput{File: path, Err: err.Error()})
				continue
			}
			it.Raw = raw
		} else if !readable(path, s.maxBytes) {
			continue // reported by the publishing pass
		}
		if err := item(it); err != nil {
			return err
		}
	}
	return nil
}

// readable is the counting pass's cheap version of readLimited's checks.
func readable(path string, limit int64) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	return err == nil && fi.Mode().IsRegular() && fi.Size() > 0 && fi.Size() <= limit
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	switch {
	case err != nil:
		return nil, err
	case int64(len(raw)) > limit:
		return nil, fmt.Errorf("larger than %d bytes", limit)
	case len(bytes.TrimSpace(raw)) == 0:
		return nil, errors.New("empty message")
	}
	return raw, nil
}

// mboxSource reads an mboxrd file: messages start at lines beginning
// "From ", and body lines matching ^>+From have one '>' removed. The
// article id is the message's hash ("mbox-<hex>"), stable across runs.
type mboxSource struct {
	path     string
	maxBytes int64
}

func (s mboxSource) scan(ctx context.Context, withRaw bool, item func(Item) error, bad func(BadInput)) error {
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("opening mbox %s: %w", s.path, err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	report := func(line int, msg string) {
		if withRaw {
			bad(BadInput{File: s.path, Line: line, Err: msg})
		}
	}
	var (
		msg       bytes.Buffer
		inMsg     bool
		start     int // line of the "From " separator
		tooBig    bool
		junkLine  int // first line of text before any separator
		lineNo    int
		lineLimit = s.maxBytes + 1
	)
	flush := func() error {
		if !inMsg {
			return nil
		}
		defer func() { msg.Reset(); tooBig = false }()
		raw := msg.Bytes()
		// The blank line before the next separator belongs to the mbox.
		if bytes.HasSuffix(raw, []byte("\r\n\r\n")) {
			raw = raw[:len(raw)-2]
		} else if bytes.HasSuffix(raw, []byte("\n\n")) {
			raw = raw[:len(raw)-1]
		}
		switch {
		case tooBig:
			report(start, fmt.Sprintf("message larger than %d bytes", s.maxBytes))
			return nil
		case len(bytes.TrimSpace(raw)) == 0:
			report(start, "empty message")
			return nil
		case !looksLikeHeader(raw):
			report(start, "message does not start with a header field")
			return nil
		}
		it := Item{ArticleID: hashID("mbox-", raw), Where: fmt.Sprintf("%s:%d", s.path, start)}
		if withRaw {
			it.Raw = bytes.Clone(raw)
		}
		return item(it)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A very long line: gather it whole (bounded by the limit).
			buf := bytes.Clone(line)
			for errors.Is(err, bufio.ErrBufferFull) && int64(len(buf)) <= lineLimit {
				line, err = r.ReadSlice('\n')
				buf = append(buf, line...)
			}
			for errors.Is(err, bufio.ErrBufferFull) { // drop the rest
				_, err = r.ReadSlice('\n')
			}
			line = buf
		}
		if len(line) > 0 {
			lineNo++
			switch {
			case bytes.HasPrefix(line, []byte("From ")):
				if ferr := flush(); ferr != nil {
					return ferr
				}
				inMsg, start = true, lineNo
			case !inMsg:
				if junkLine == 0 && len(bytes.TrimSpace(line)) > 0 {
					junkLine = lineNo
					report(lineNo, `text before the first "From " line (not an mbox?)`)
				}
			default:
				if isEscapedFrom(line) {
					line = line[1:]
				}
				if !tooBig {
					msg.Write(line)
					if int64(msg.Len()) > s.maxBytes {
						tooBig = true
						msg.Reset()
					}
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading mbox %s: %w", s.path, err)
		}
	}
	return flush()
}

// isEscapedFrom matches ^>+From (mboxrd quoting).
func isEscapedFrom(line []byte) bool {
	i := 0
	for i < len(line) && line[i] == '>' {
		i++
	}
	return i > 0 && bytes.HasPrefix(line[i:], []byte("From "))
}

// looksLikeHeader reports whether raw starts with "Name:".
func looksLikeHeader(raw []byte) bool {
	i := bytes.IndexByte(raw, ':')
	if i <= 0 {
		return false
	}
	for _, c := range raw[:i] {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// jsonlSource reads a JSON Lines export, one {article_id, ticket_id,
// group, raw} object per line, raw in base64.
type jsonlSource struct {
	path     string
	maxBytes int64
}

type exportLine struct {
	ArticleID string `json:"article_id"`
	TicketID  string `json:"ticket_id"`
	Group     string `json:"group"`
	Raw       string `json:"raw"`
}

func (s jsonlSource) scan(ctx context.Context, withRaw bool, item func(Item) error, bad func(BadInput)) error {
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("opening %s: %w", s.path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), int(s.maxBytes/3*4+64<<10))
	lineNo := 0
	report := func(msg string) {
		if withRaw {
			bad(BadInput{File: s.path, Line: lineNo, Err: msg})
		}
	}
	for sc.Scan() {
		lineNo++
		if err := ctx.Err(); err != nil {
			return err
		}
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e exportLine
		if err := json.Unmarshal(line, &e); err != nil {
			report("not a JSON object: " + err.Error())
			continue
		}
		switch {
		case !pipeline.ValidID(e.ArticleID):
			report("article_id is missing or invalid")
			continue
		case e.TicketID != "" && !pipeline.ValidID(e.TicketID):
			report("ticket_id is invalid")
			continue
		case len(e.Group) > pipeline.MaxIDLen:
			report("group is too long")
			continue
		}
		it := Item{ArticleID: e.ArticleID, TicketID: e.TicketID, Group: e.Group, Where: fmt.Sprintf("%s:%d", s.path, lineNo)}
		if withRaw {
			raw, err := base64.StdEncoding.DecodeString(e.Raw)
			if err != nil {
				report("raw is not base64: " + err.Error())
				continue
			}
			if len(bytes.TrimSpace(raw)) == 0 {
				report("raw is empty")
				continue
			}
			it.Raw = raw
		}
		if err := item(it); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			// The rest of the file cannot be read line by line any more.
			if withRaw {
				bad(BadInput{File: s.path, Line: lineNo + 1, Err: "line too long; the rest of the file is skipped"})
			}
			return nil
		}
		return fmt.Errorf("reading %s: %w", s.path, err)
	}
	return nil
}

// sliceSource yields items already in memory (--only-failed-with).
type sliceSource []Item

func (s sliceSource) scan(ctx context.Context, withRaw bool, item func(Item) error, _ func(BadInput)) error {
	for _, it := range s {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !withRaw {
			it.Raw = nil
		}
		if err := item(it); err != nil {
			return err
		}
	}
	return nil
}
