package pipeline

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/secmail/secmail/article"
	"github.com/secmail/secmail/metrics"
	"github.com/secmail/secmail/reason"
)

// TestMixedBatch: every article of a mixed batch gets exactly one correct,
// schema-valid result, including ones that fail transiently first.
func TestMixedBatch(t *testing.T) {
	e := newEnv(t, 0)
	nc, js := e.connect()
	e.setup(js)
	markers := []string{"plain", "SIGNED", "BADSIG", "FLAKY", "BCC"}
	type sent struct {
		dir    article.Direction
		id     string
		marker string
	}
	var all []sent
	for i := range 30 {
		dir := article.Inbound
		if i%2 == 1 {
			dir = article.Outbound
		}
		s := sent{dir: dir, id: "a" + strconv.Itoa(i), marker: markers[i%len(markers)]}
		data := articleJSON(t, s.id, mail(s.id, s.marker))
		validate(t, "article.v1.schema.json", data)
		publish(t, js, e.cfg.InputSubject(dir), data)
		all = append(all, s)
	}
	h := newTestHandler()
	m := metrics.New("test", "test-1", "go")
	p, err := New(js, nc, h, e.cfg, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	res := results(t, collect(t, js, "SECMAIL_RESULTS", len(all), 20*time.Second))
	for _, s := range all {
		r := res[string(s.dir)+"/"+s.id]
		if r == nil {
			t.Errorf("%s/%s: no result", s.dir, s.id)
			continue
		}
		if r.Status != StatusDone || r.Error != nil || r.Security == nil {
			t.Errorf("%s: status %s error %+v", s.id, r.Status, r.Error)
			continue
		}
		if want := bytes.ToUpper(mail(s.id, s.marker)); !bytes.Equal(r.Raw, want) {
			t.Errorf("%s: raw %q, want %q", s.id, r.Raw, want)
		}
		if r.TicketID != "T-"+s.id || r.Worker.Version != "test" || r.Worker.Instance != "test-1" {
			t.Errorf("%s: ticket %q worker %+v", s.id, r.TicketID, r.Worker)
		}
		switch s.dir {
		case article.Outbound:
			if len(r.Recipients) == 0 || r.Recipients[0].Address != "bob@example.org" {
				t.Errorf("%s: recipients %+v", s.id, r.Recipients)
			}
			if s.marker == "BCC" && (len(r.Copies) != 1 || !bytes.Equal(r.Copies[0].Raw, bytes.ToLower(mail(s.id, s.marker)))) {
				t.Errorf("%s: copies %+v", s.id, r.Copies)
			}
		case article.Inbound:
			if r.Recipients != nil || r.Copies != nil {
				t.Errorf("%s: inbound result with recipients or copies", s.id)
			}
		}
		if s.marker == "FLAKY" && h.count(s.id) != 3 {
			t.Errorf("%s: handled %d times, want 3 (two transient failures)", s.id, h.count(s.id))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := streamMsgs(t, js, "SECMAIL_RESULTS"); n != uint64(len(all)) {
		t.Errorf("result stream holds %d messages, want %d", n, len(all))
	}
	waitInput(t, js, 0)
	if n := streamMsgs(t, js, "SECMAIL_DEAD"); n != 0 {
		t.Errorf("%d dead letters", n)
	}
	// Metrics: every article counted once with a bounded outcome.
	counts := gather(t, m, "secmail_articles_processed_total")
	if got := counts[""]; got != float64(len(all)) {
		t.Errorf("processed_total sums to %v, want %d (%v)", got, len(all), counts)
	}
	if got := counts["direction=inbound,outcome=failed,reason=bad-signature,type=pgp"]; got == 0 {
		t.Errorf("no failed bad-signature series: %v", counts)
	}
	if got := gather(t, m, "secmail_redeliveries_total")[""]; got < 12 {
		t.Errorf("redeliveries %v, want >= 12 (6 flaky articles × 2)", got)
	}
}

// gather sums a metric family: "" is the total, each label set its own.
func gather(t *testing.T, m *metrics.Metrics, name string) map[string]float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := mt.GetCounter().GetValue() + mt.GetGauge().GetValue()
			out[strings.Join(labels, ",")] += v
			out[""] += v
		}
	}
	return out
}

// TestBadInput: each kind of bad input gives an error result and a dead
// letter, and the worker goes on with the next article.
func TestBadInput(t *testing.T) {
	e := newEnv(t, 0)
	e.cfg.MaxMessageBytes = 4096
	nc, js := e.connect()
	e.setup(js)
	b64 := func(b []byte) *string { s := base64.StdEncoding.EncodeToString(b); return &s }
	enc := func(a Article) []byte {
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := func(id string) Article {
		return Article{Schema: SchemaArticleV1, ArticleID: id, Raw: b64(mail(id, "plain"))}
	}
	with := func(id string, f func(*Article)) []byte { a := good(id); f(&a); return enc(a) }
	psmime := "smime"
	cases := []struct {
		name, id, code string
		payload        []byte
	}{
		{"invalid JSON", "", "malformed", []byte(`{"schema": "secmail.article.v1", "article_id": "x1",`)},
		{"not an object", "", "malformed", []byte(`[1,2,3]`)},
		{"missing article_id", "", CodeInvalidRequest, with("", func(a *Article) {})},
		{"article_id with newline", "", CodeInvalidRequest, with("bad\r\nid", func(a *Article) {})},
		{"unknown schema", "b-schema", CodeUnknownSchema, with("b-schema", func(a *Article) { a.Schema = "secmail.article.v2" })},
		{"missing schema", "b-noschema", CodeUnknownSchema, with("b-noschema", func(a *Article) { a.Schema = "" })},
		{"bad base64", "b-base64", "malformed", with("b-base64", func(a *Article) { s := "not base64!!"; a.Raw = &s })},
		{"neither raw nor raw_ref", "b-noraw", CodeInvalidRequest, with("b-noraw", func(a *Article) { a.Raw = nil })},
		{"raw and raw_ref", "b-both", CodeInvalidRequest, with("b-both", func(a *Article) { a.RawRef = &ObjectRef{Bucket: "secmail_raw", Name: "x"} })},
		{"raw_ref to a missing object", "b-noobj", CodeMissingObject, with("b-noobj", func(a *Article) {
			a.Raw, a.RawRef = nil, &ObjectRef{Bucket: "secmail_raw", Name: "articles/none"}
		})},
		{"raw_ref to a missing bucket", "b-nobucket", CodeMissingObject, with("b-nobucket", func(a *Article) {
			a.Raw, a.RawRef = nil, &ObjectRef{Bucket: "nosuchbucket", Name: "x"}
		})},
		{"too large", "b-large", "too-large", with("b-large", func(a *Article) { a.Raw = b64(bytes.Repeat([]byte("x"), 5000)) })},
		{"unknown type", "b-type", CodeInvalidRequest, with("b-type", func(a *Article) { a.Options.Type = &psmime })},
		{"handler panic", "b-panic", CodeHandlerPanic, with("b-panic", func(a *Article) { a.Raw = b64(mail("b-panic", "PANIC")) })},
		{"handler permanent error", "b-broken", string(reason.Malformed), with("b-broken", func(a *Article) { a.Raw = b64(mail("b-broken", "BROKEN")) })},
	}
	for i, c := range cases {
		publish(t, js, e.cfg.InputSubject(article.Inbound), c.payload)
		publish(t, js, e.cfg.InputSubject(article.Inbound), enc(good("g"+strconv.Itoa(i))))
	}
	m := metrics.New("test", "test-1", "go")
	p, err := New(js, nc, newTestHandler(), e.cfg, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	msgs := collect(t, js, "SECMAIL_RESULTS", 2*len(cases), 20*time.Second)
	dead := collect(t, js, "SECMAIL_DEAD", len(cases), 10*time.Second)
	// Results in one map keyed by code+id (the id is empty for some).
	byKey := map[string]*Result{}
	for _, msg := range msgs {
		validate(t, "result.v1.schema.json", msg.data)
		var r Result
		if err := json.Unmarshal(msg.data, &r); err != nil {
			t.Fatal(err)
		}
		code := ""
		if r.Error != nil {
			code = r.Error.Code
		}
		byKey[code+"/"+r.ArticleID] = &r
	}
	deadBy := map[string]int{}
	for _, d := range dead {
		if d.subject != "article.dead.inbound" {
			t.Errorf("dead letter on %s", d.subject)
		}
		if d.header.Get(HeaderError) == "" || d.header.Get(HeaderDeliveries) != "1" {
			t.Errorf("dead letter headers %v", d.header)
		}
		deadBy[d.header.Get(HeaderErrorCode)+"/"+string(d.data)]++
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := byKey[c.code+"/"+c.id]
			if r == nil {
				t.Fatalf("no error result with code %s for %q", c.code, c.id)
			}
			if r.Status != StatusError || r.Security != nil || r.Raw != nil || r.Error.Message == "" {
				t.Errorf("result %+v", r)
			}
			if deadBy[c.code+"/"+string(c.payload)] != 1 {
				t.Errorf("no dead letter with code %s and the original payload", c.code)
			}
			if g := byKey["/g"+strconv.Itoa(i)]; g == nil || g.Status != StatusDone {
				t.Errorf("the next good article g%d was not processed", i)
			}
		})
	}
	if n := gather(t, m, "secmail_dead_letters_total")[""]; n != float64(len(cases)) {
		t.Errorf("dead_letters_total %v, want %d", n, len(cases))
	}
}

// TestPoisonMessage: an article failing transiently every time reaches the
// dead-letter subject at MaxDeliver, with one error result.
func TestPoisonMessage(t *testing.T) {
	e := newEnv(t, 0)
	_, js := e.connect()
	e.setup(js)
	h := newTestHandler()
	publish(t, js, e.cfg.InputSubject(article.Outbound), articleJSON(t, "poison", mail("poison", "POISON")))
	publish(t, js, e.cfg.InputSubject(article.Outbound), articleJSON(t, "fine", mail("fine", "plain")))
	r := e.run(h, e.cfg)
	dead := collect(t, js, "SECMAIL_DEAD", 1, 10*time.Second)
	if d := dead[0]; d.subject != "article.dead.outbound" ||
		d.header.Get(HeaderErrorCode) != CodeRetriesExhausted ||
		d.header.Get(HeaderDeliveries) != strconv.Itoa(e.cfg.MaxDeliver) ||
		d.header.Get(HeaderArticleID) != "poison" {
		t.Errorf("dead letter %s %v", d.subject, d.header)
	}
	res := results(t, collect(t, js, "SECMAIL_RESULTS", 2, 10*time.Second))
	if p := res["outbound/poison"]; p == nil || p.Error == nil || p.Error.Code != CodeRetriesExhausted {
		t.Errorf("poison result %+v", p)
	}
	if f := res["outbound/fine"]; f == nil || f.Status != StatusDone {
		t.Errorf("fine result %+v", f)
	}
	if n := h.count("poison"); n != e.cfg.MaxDeliver {
		t.Errorf("poison handled %d times, want %d", n, e.cfg.MaxDeliver)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	waitInput(t, js, 0)
}

// TestLargeMailObjectStore: mail over the server's max payload travels
// through the object store both ways.
func TestLargeMailObjectStore(t *testing.T) {
	e := newEnv(t, 64<<10)
	_, js := e.connect()
	e.setup(js)
	big := append(mail("big", "BCC"), bytes.Repeat([]byte("line of text\r\n"), 20000)...) // ~280 KiB
	ctx := context.Background()
	for _, dir := range []article.Direction{article.Inbound, article.Outbound} {
		if _, err := Submit(ctx, js, e.cfg, dir, &article.Request{ArticleID: "big", Raw: big}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Submit(ctx, js, e.cfg, article.Inbound, &article.Request{ArticleID: "small", Raw: mail("small", "plain")}); err != nil {
		t.Fatal(err)
	}
	// The inputs themselves: claim check for big, inline for small.
	// (A work-queue stream allows no second consumer: read by sequence.)
	stream, err := js.Stream(ctx, e.cfg.InputStream)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		validate(t, "article.v1.schema.json", m.Data)
		var a Article
		if err := json.Unmarshal(m.Data, &a); err != nil {
			t.Fatal(err)
		}
		if (a.ArticleID == "big") != (a.RawRef != nil) {
			t.Errorf("article %s: raw_ref %v", a.ArticleID, a.RawRef)
		}
	}
	e.run(newTestHandler(), e.cfg)
	res := results(t, collect(t, js, "SECMAIL_RESULTS", 3, 20*time.Second))
	for _, key := range []string{"inbound/big", "outbound/big"} {
		r := res[key]
		if r == nil || r.Status != StatusDone {
			t.Fatalf("%s: %+v", key, r)
		}
		if r.RawRef == nil || r.Raw != nil {
			t.Fatalf("%s: large result not claim-checked", key)
		}
		raw, err := Load(ctx, js, r.Raw, r.RawRef)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, bytes.ToUpper(big)) {
			t.Errorf("%s: claim-checked raw differs", key)
		}
		if key == "outbound/big" {
			if len(r.Copies) != 1 || r.Copies[0].RawRef == nil {
				t.Fatalf("copies %+v", r.Copies)
			}
			cp, err := Load(ctx, js, r.Copies[0].Raw, r.Copies[0].RawRef)
			if err != nil || !bytes.Equal(cp, bytes.ToLower(big)) {
				t.Errorf("copy: %v", err)
			}
		}
	}
	if r := res["inbound/small"]; r == nil || r.RawRef != nil || r.Raw == nil {
		t.Errorf("small result: %+v", r)
	}
}

// TestKillConnectionMidBatch: the worker's connection dies mid-batch; a
// new worker finishes it: nothing lost, no article with two results.
func TestKillConnectionMidBatch(t *testing.T) {
	e := newEnv(t, 0)
	_, js := e.connect()
	e.setup(js)
	const n = 60
	e.publishPlain(t, js, "k", n)
	h := newTestHandler()
	h.delay = 10 * time.Millisecond
	nc1, js1 := e.connect()
	first := e.runOn(nc1, js1, h, e.cfg)
	waitFor(t, 10*time.Second, "some results", func() bool { return streamMsgs(t, js, "SECMAIL_RESULTS") >= 10 })
	nc1.Close()
	select {
	case err := <-first.done:
		if err == nil {
			t.Error("Run returned nil after its connection was closed")
		}
		first.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its connection was closed")
	}
	done := streamMsgs(t, js, "SECMAIL_RESULTS")
	if done >= n {
		t.Fatalf("batch finished before the connection was killed (%d results)", done)
	}
	e.run(h, e.cfg)
	res := results(t, collect(t, js, "SECMAIL_RESULTS", n, 30*time.Second))
	for i := range n {
		if r := res["inbound/k"+strconv.Itoa(i)]; r == nil || r.Status != StatusDone {
			t.Errorf("k%d: %+v", i, r)
		}
	}
	waitFor(t, 10*time.Second, "input stream empty", func() bool { return streamMsgs(t, js, "SECMAIL_ARTICLES") == 0 })
	if got := streamMsgs(t, js, "SECMAIL_RESULTS"); got != n {
		t.Errorf("%d results for %d articles", got, n)
	}
}

// TestRedeliveryPublishesNoSecondResult: a redelivered article whose
// result is already stored (the ack was lost) is acknowledged without a
// second result, even though handling again gives a different output.
func TestRedeliveryPublishesNoSecondResult(t *testing.T) {
	e := newEnv(t, 0)
	nc, js := e.connect()
	e.setup(js)
	h := newTestHandler()
	p, err := New(js, nc, h, e.cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload := articleJSON(t, "dup", mail("dup", "plain"))
	publish(t, js, e.cfg.InputSubject(article.Inbound), payload)
	ctx := context.Background()
	c, err := js.Consumer(ctx, e.cfg.InputStream, e.cfg.InboundDurable)
	if err != nil {
		t.Fatal(err)
	}
	// First delivery: process and publish, but "lose" the ack.
	b, err := c.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m1 := <-b.Messages()
	v := p.process(ctx, article.Inbound, m1.Data(), 1)
	if err := p.publishResult(ctx, article.Inbound, v); err != nil {
		t.Fatal(err)
	}
	// Second delivery after AckWait: the full path, with another output.
	b, err = c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m2, ok := <-b.Messages()
	if !ok {
		t.Fatal("no redelivery")
	}
	if md, _ := m2.Metadata(); md.NumDelivered != 2 {
		t.Fatalf("delivery %d", md.NumDelivered)
	}
	p.work(ctx, ctx, article.Inbound, m2, newBacklog(), func() {})
	res := results(t, collect(t, js, "SECMAIL_RESULTS", 1, 5*time.Second))
	if !bytes.Equal(res["inbound/dup"].Raw, bytes.ToUpper(mail("dup", "plain"))) {
		t.Error("result changed")
	}
	if n := streamMsgs(t, js, "SECMAIL_RESULTS"); n != 1 {
		t.Errorf("%d results", n)
	}
	waitInput(t, js, 0)
	if h.count("dup") != 2 {
		t.Errorf("handled %d times", h.count("dup"))
	}
}

// TestLongWorkIsKeptAlive: an article handled for several AckWaits is not
// redelivered, because the worker keeps telling the server it is in
// progress; it is handled once and has one result.
func TestLongWorkIsKeptAlive(t *testing.T) {
	e := newEnv(t, 0)
	_, js := e.connect()
	e.cfg.AckWait = 300 * time.Millisecond
	e.setup(js)
	h := newTestHandler()
	publish(t, js, e.cfg.InputSubject(article.Inbound), articleJSON(t, "long", mail("long", "SLOW")))
	e.run(h, e.cfg)
	if id := <-h.started; id != "long" {
		t.Fatalf("started %q", id)
	}
	time.Sleep(4 * e.cfg.AckWait)
	close(h.release)
	res := results(t, collect(t, js, "SECMAIL_RESULTS", 1, 5*time.Second))
	if r := res["inbound/long"]; r == nil || r.Status != StatusDone {
		t.Fatalf("result %+v", r)
	}
	waitInput(t, js, 0)
	if n := h.count("long"); n != 1 {
		t.Errorf("handled %d times: redelivered while in progress", n)
	}
}

// TestGracefulShutdown: cancelling Run while an article is in the handler
// lets it finish (result published, acked) and returns the article that
// had not started to the queue.
func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t, 0)
	_, js := e.connect()
	e.setup(js)
	cfg := e.cfg
	cfg.Concurrency = 1
	cfg.AckWait = 30 * time.Second
	h := newTestHandler()
	publish(t, js, cfg.InputSubject(article.Inbound), articleJSON(t, "slow1", mail("slow1", "SLOW")))
	publish(t, js, cfg.InputSubject(article.Inbound), articleJSON(t, "slow2", mail("slow2", "SLOW")))
	r := e.run(h, cfg)
	var first string
	select {
	case first = <-h.started:
	case <-time.After(10 * time.Second):
		t.Fatal("handler not started")
	}
	r.cancel()
	// Still working after the cancellation: Run must wait for it.
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-r.done:
		t.Fatalf("Run returned (%v) with work in flight", err)
	default:
	}
	close(h.release)
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	res := results(t, collect(t, js, "SECMAIL_RESULTS", 1, 5*time.Second))
	if res["inbound/"+first] == nil {
		t.Fatalf("no result for the in-flight article %s", first)
	}
	if n := streamMsgs(t, js, "SECMAIL_RESULTS"); n != 1 {
		t.Errorf("%d results, want 1", n)
	}
	// The other article is back in the queue, deliverable at once.
	waitInput(t, js, 1)
	// AckWait is 30s here, so getting it within 3s means it was nak'ed.
	c, err := js.Consumer(context.Background(), cfg.InputStream, cfg.InboundDurable)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Fetch(1, jetstream.FetchMaxWait(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m, ok := <-b.Messages()
	if !ok {
		t.Fatal("the article that had not started was not returned to the queue")
	}
	var a Article
	if err := json.Unmarshal(m.Data(), &a); err != nil || a.ArticleID == first {
		t.Errorf("redelivered %q, the in-flight one was %q", a.ArticleID, first)
	}
}

// TestShutdownGraceExpires: work that outlives ShutdownGrace is cancelled
// and nak'ed, and Run returns.
func TestShutdownGraceExpires(t *testing.T) {
	e := newEnv(t, 0)
	_, js := e.connect()
	e.setup(js)
	cfg := e.cfg
	cfg.ShutdownGrace = 200 * time.Millisecond
	h := newTestHandler()
	publish(t, js, cfg.InputSubject(article.Inbound), articleJSON(t, "stuck", mail("stuck", "SLOW")))
	r := e.run(h, cfg)
	select {
	case <-h.started:
	case <-time.After(10 * time.Second):
		t.Fatal("handler not started")
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, js, "SECMAIL_RESULTS"); n != 0 {
		t.Errorf("%d results", n)
	}
	waitInput(t, js, 1)
}

// TestTwoPipelinesShareConsumer: two workers on the same durable consumers
// split the load.
func TestTwoPipelinesShareConsumer(t *testing.T) {
	e := newEnv(t, 0)
	_, js := e.connect()
	e.setup(js)
	const n = 80
	for i := range n {
		id := "s" + strconv.Itoa(i)
		dir := article.Inbound
		if i%2 == 0 {
			dir = article.Outbound
		}
		publish(t, js, e.cfg.InputSubject(dir), articleJSON(t, id, mail(id, "plain")))
	}
	h := newTestHandler()
	h.delay = 5 * time.Millisecond
	for _, inst := range []string{"w1", "w2"} {
		cfg := e.cfg
		cfg.Concurrency, cfg.Instance = 2, inst
		e.run(h, cfg)
	}
	res := results(t, collect(t, js, "SECMAIL_RESULTS", n, 20*time.Second))
	per := map[string]int{}
	for _, r := range res {
		per[r.Worker.Instance]++
	}
	if per["w1"] == 0 || per["w2"] == 0 || per["w1"]+per["w2"] != n {
		t.Errorf("load split %v", per)
	}
	t.Logf("load split %v", per)
}

// TestVerifyOnly: without stream management a worker refuses to start on
// an unprepared server and runs once an operator has set it up.
func TestVerifyOnly(t *testing.T) {
	e := newEnv(t, 0)
	nc, js := e.connect()
	cfg := e.cfg
	cfg.ManageStreams = false
	p, err := New(js, nc, newTestHandler(), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Run(ctx); err == nil || !strings.Contains(err.Error(), "not set up") {
		t.Fatalf("Run on an empty server: %v", err)
	}
	if err := p.Ready(ctx); err == nil {
		t.Error("ready without consumers")
	}
	for range 2 { // idempotent
		if err := Setup(ctx, js, cfg); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, js, cfg.InputSubject(article.Inbound), articleJSON(t, "v1", mail("v1", "plain")))
	r := e.runOn(nc, js, newTestHandler(), cfg)
	collect(t, js, "SECMAIL_RESULTS", 1, 10*time.Second)
	waitFor(t, 5*time.Second, "ready", func() bool { return r.p.Ready(ctx) == nil })
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg := Config{}.Defaults()
	if cfg.DuplicateWindow < cfg.AckWait*time.Duration(cfg.MaxDeliver) {
		t.Errorf("duplicate window %s shorter than ack wait × max deliver", cfg.DuplicateWindow)
	}
	if cfg.InputSubject(article.Inbound) != "article.inbound" ||
		cfg.ResultSubject(article.Outbound) != "article.outbound.result" ||
		cfg.DeadSubject(article.Inbound) != "article.dead.inbound" {
		t.Error("subjects")
	}
	tests := []struct {
		n    int
		want time.Duration
	}{{1, time.Second}, {2, 5 * time.Second}, {4, 2 * time.Minute}, {9, 2 * time.Minute}}
	for _, tc := range tests {
		if got := cfg.backoff(tc.n); got != tc.want {
			t.Errorf("backoff(%d) = %s, want %s", tc.n, got, tc.want)
		}
	}
	if _, err := New(nil, nil, nil, cfg, nil, nil); err == nil {
		t.Error("New without connection")
	}
	bad := []Config{
		{SubjectPrefix: "article.*"},
		{SubjectPrefix: "a..b"},
		{SubjectPrefix: "has space"},
		{AckWait: time.Millisecond},
		{MaxDeliver: -1},
		{Concurrency: -2},
		{Backoff: []time.Duration{-time.Second}},
	}
	for _, c := range bad {
		if err := c.Defaults().validate(); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
	if err := (Config{SubjectPrefix: "acme.helpdesk"}).Defaults().validate(); err != nil {
		t.Errorf("multi-token prefix: %v", err)
	}
}

func TestPreflight(t *testing.T) {
	e := newEnv(t, 0)
	nc, _ := e.connect()
	svc, err := ServePreflight(nc, func(ctx context.Context, req json.RawMessage) (any, error) {
		var in struct{ To []string }
		if err := json.Unmarshal(req, &in); err != nil {
			return nil, err
		}
		switch {
		case len(in.To) == 0:
			return nil, reason.New(reason.Malformed, "no recipients")
		case in.To[0] == "slow@example.org":
			return nil, fmt.Errorf("%w: store", article.ErrTransient)
		case in.To[0] == "crash@example.org":
			panic("boom")
		}
		return map[string]any{"encrypt": true, "recipients": in.To}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	tests := []struct {
		req, code, body string
	}{
		{`{"to": ["bob@example.org"]}`, "", `{"encrypt":true,"recipients":["bob@example.org"]}`},
		{`{"to": []}`, "malformed", ""},
		{`{"to": ["slow@example.org"]}`, PreflightCodeUnavailable, ""},
		{`{"to": ["crash@example.org"]}`, PreflightCodeInternal, ""},
		{`not json`, "malformed", ""},
	}
	for _, tc := range tests {
		resp, err := nc.Request(PreflightSubject, []byte(tc.req), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("Nats-Service-Error-Code"); got != tc.code {
			t.Errorf("%s: error code %q, want %q (%s)", tc.req, got, tc.code, resp.Header.Get("Nats-Service-Error"))
		}
		if tc.body != "" && string(resp.Data) != tc.body {
			t.Errorf("%s: body %s", tc.req, resp.Data)
		}
	}
	if errors.Is(nil, article.ErrTransient) {
		t.Fatal("unreachable")
	}
}

// TestReadyzAndMetrics: /readyz is 503 until the pipeline consumes, and
// /metrics shows the pipeline's series.
func TestReadyzAndMetrics(t *testing.T) {
	e := newEnv(t, 0)
	nc, js := e.connect()
	m := metrics.New("test", "test-1", "go")
	p, err := New(js, nc, newTestHandler(), e.cfg, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() {
		served <- metrics.ServeListener(ctx, ln, m, func(ctx context.Context) map[string]error {
			return map[string]error{"pipeline": p.Ready(ctx)}
		})
	}()
	url := "http://" + ln.Addr().String()
	status := func(path string) (int, string) {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := status("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, `"pipeline":"consumers not bound"`) {
		t.Errorf("/readyz before Run: %d %s", code, body)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(ctx) }()
	waitFor(t, 10*time.Second, "/readyz 200", func() bool { code, _ := status("/readyz"); return code == http.StatusOK })
	publish(t, js, e.cfg.InputSubject(article.Inbound), articleJSON(t, "m1", mail("m1", "SIGNED")))
	publish(t, js, e.cfg.InputSubject(article.Inbound), []byte("garbage"))
	collect(t, js, "SECMAIL_RESULTS", 2, 10*time.Second)
	waitFor(t, 5*time.Second, "metrics", func() bool {
		_, text := status("/metrics")
		return strings.Contains(text, `secmail_articles_processed_total{direction="inbound",outcome="ok",reason="",type="smime"} 1`) &&
			strings.Contains(text, `secmail_articles_processed_total{direction="inbound",outcome="error",reason="malformed",type="none"} 1`) &&
			strings.Contains(text, `secmail_dead_letters_total{code="malformed",direction="inbound"} 1`) &&
			strings.Contains(text, `secmail_processing_duration_seconds_count{direction="inbound"} 2`) &&
			strings.Contains(text, `secmail_articles_in_flight{direction="inbound"} 0`)
	})
	cancel()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// TestCrashedWorkerAtLastDelivery: a worker that dies holding an article
// at its last delivery leaves no ack and no term; the server's
// max-deliveries advisory makes a running worker dead-letter it and
// remove it from the work queue.
func TestCrashedWorkerAtLastDelivery(t *testing.T) {
	e := newEnv(t, 0)
	_, js := e.connect()
	e.cfg.MaxDeliver = 2
	// The worker below must be subscribed before the last delivery's
	// AckWait ends; 2s leaves room on a loaded machine.
	e.cfg.AckWait = 2 * time.Second
	e.setup(js)
	publish(t, js, e.cfg.InputSubject(article.Inbound), articleJSON(t, "crash", mail("crash", "plain")))
	c, err := js.Consumer(context.Background(), e.cfg.InputStream, e.cfg.InboundDurable)
	if err != nil {
		t.Fatal(err)
	}
	// The "crashing" worker takes both deliveries and never answers.
	for i := range e.cfg.MaxDeliver {
		b, err := c.Fetch(1, jetstream.FetchMaxWait(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := <-b.Messages(); !ok {
			t.Fatalf("delivery %d missing", i+1)
		}
	}
	// Two replicas: both get the advisory, one dead letter results.
	h := newTestHandler()
	var ms []*metrics.Metrics
	for range 2 {
		nc, js := e.connect()
		m := metrics.New("test", "r", "go")
		ms = append(ms, m)
		p, err := New(js, nc, h, e.cfg, m, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	dead := collect(t, js, "SECMAIL_DEAD", 1, 10*time.Second)
	if d := dead[0]; d.header.Get(HeaderErrorCode) != CodeRetriesExhausted || d.header.Get(HeaderDeliveries) != "2" ||
		d.header.Get(HeaderArticleID) != "crash" || d.header.Get(HeaderSubject) != "article.inbound" {
		t.Errorf("dead letter headers %v", d.header)
	}
	res := results(t, collect(t, js, "SECMAIL_RESULTS", 1, 5*time.Second))
	if r := res["inbound/crash"]; r == nil || r.Error == nil || r.Error.Code != CodeRetriesExhausted || r.TicketID != "T-crash" {
		t.Errorf("result %+v", r)
	}
	waitFor(t, 5*time.Second, "article removed from the work queue", func() bool {
		return streamMsgs(t, js, "SECMAIL_ARTICLES") == 0
	})
	if h.count("crash") != 0 {
		t.Error("handler ran after max deliveries")
	}
	if n := streamMsgs(t, js, "SECMAIL_DEAD"); n != 1 {
		t.Errorf("%d dead letters", n)
	}
	deadCount := func() float64 {
		return gather(t, ms[0], "secmail_dead_letters_total")[""] + gather(t, ms[1], "secmail_dead_letters_total")[""]
	}
	waitFor(t, 5*time.Second, "dead letter counted", func() bool { return deadCount() >= 1 })
	if n := deadCount(); n != 1 {
		t.Errorf("dead letter counted %v times across replicas", n)
	}
}

// waitInput waits until the input stream holds want messages: the server
// applies acks and terms asynchronously, after Run has flushed them.
func waitInput(t *testing.T, js jetstream.JetStream, want uint64) {
	t.Helper()
	waitFor(t, 5*time.Second, fmt.Sprintf("input stream holding %d", want), func() bool {
		return streamMsgs(t, js, "SECMAIL_ARTICLES") == want
	})
}

// TestPullsInBatches: while articles wait for a handler, freed slots are
// gathered into pull requests of half the window instead of one request
// per freed slot (each costs a subscription and a request on both ends).
func TestPullsInBatches(t *testing.T) {
	e := newEnv(t, 0)
	nc, js := e.connect()
	e.setup(js)
	const n = 120
	e.publishPlain(t, js, "b", n)
	// Pull requests are ordinary messages on the consumer's API subject,
	// so a plain subscription sees them too.
	var (
		mu      sync.Mutex
		batches []int
	)
	sub, err := nc.Subscribe("$JS.API.CONSUMER.MSG.NEXT."+e.cfg.InputStream+"."+e.cfg.InboundDurable, func(m *nats.Msg) {
		var req struct{ Batch int }
		if err := json.Unmarshal(m.Data, &req); err != nil {
			t.Errorf("pull request %q: %v", m.Data, err)
		}
		mu.Lock()
		batches = append(batches, req.Batch)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Concurrency, cfg.Prefetch = 1, 7 // window 8: pulls of at least 4 while a backlog waits
	h := newTestHandler()
	h.delay = 5 * time.Millisecond // longer than a pull's round trip, even under -race
	r := e.run(h, cfg)
	if got := len(results(t, collect(t, js, "SECMAIL_RESULTS", n, 20*time.Second))); got != n {
		t.Fatalf("%d results", got)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	small := 0
	for _, b := range batches {
		if b < 4 {
			small++
		}
	}
	// One request per article would be ~n requests of 1. Requests of fewer
	// than 4 go out only when the backlog ran dry (and at the very end).
	if len(batches) > n/3 || small > len(batches)/3 {
		t.Fatalf("%d pull requests for %d articles, %d of them for fewer than 4: %v", len(batches), n, small, batches)
	}
	t.Logf("%d pull requests for %d articles: %v", len(batches), n, batches)
}

// TestPlace: an article leaves the fetch window when its handler is done,
// so the window has room again while it waits for its PubAck and ack.
func TestPlace(t *testing.T) {
	window, finishing := make(chan struct{}, 1), make(chan struct{}, 1)
	pl := &place{window: window, finishing: finishing}
	for _, handled := range []bool{true, false, true} {
		window <- struct{}{} // the consume loop reserves the window place
		if handled {
			pl.leaveWindow()
			if len(window) != 0 || len(finishing) != 1 {
				t.Fatalf("after its handler: window %d, finishing %d", len(window), len(finishing))
			}
		}
		pl.release()
		if len(window) != 0 || len(finishing) != 0 {
			t.Fatalf("released (handled %v): window %d, finishing %d", handled, len(window), len(finishing))
		}
	}
}
