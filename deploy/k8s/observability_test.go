package k8s

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	"sigs.k8s.io/yaml"
)

// The PromQL check below is lexical, not a full parse: it knows every metric
// the dashboard and the rules may use, with its labels, and every function.
// github.com/prometheus/prometheus/promql/parser would parse fully, but it
// pulls in the prometheus module and protobuf for one test; the lexical check
// catches what goes wrong in practice (a misspelt metric, label or function,
// an unbalanced bracket) and promtool can be run on the rules in addition.

// metricLabels: every series the PromQL may select, with its own labels.
var metricLabels = map[string][]string{
	// The worker's /metrics.
	"secmail_articles_processed_total":             {"direction", "type", "outcome", "reason"},
	"secmail_processing_duration_seconds_bucket":   {"direction", "le"},
	"secmail_processing_duration_seconds_sum":      {"direction"},
	"secmail_processing_duration_seconds_count":    {"direction"},
	"secmail_articles_in_flight":                   {"direction"},
	"secmail_redeliveries_total":                   {"direction"},
	"secmail_dead_letters_total":                   {"direction", "code"},
	"secmail_cache_requests_total":                 {"tier", "result"},
	"secmail_store_lookup_duration_seconds_bucket": {"op", "le"},
	"secmail_store_lookup_duration_seconds_sum":    {"op"},
	"secmail_store_lookup_duration_seconds_count":  {"op"},
	"secmail_certificate_expiry_timestamp_seconds": {"email", "fingerprint", "kind"},
	"secmail_build_info":                           {"version", "goversion", "key_backend"},
	// prometheus-nats-exporter with -jsz=all -prefix=nats (collector/jsz.go).
	"nats_consumer_num_pending": {"server_id", "server_name", "cluster", "domain", "meta_leader", "is_meta_leader",
		"account", "account_id", "stream_name", "stream_leader", "is_stream_leader",
		"consumer_name", "consumer_leader", "is_consumer_leader", "consumer_desc", "consumer_created"},
	// kube-state-metrics.
	"kube_pod_status_ready":                     {"namespace", "pod", "uid", "condition"},
	"kube_deployment_status_replicas_available": {"namespace", "deployment"},
	"kube_deployment_spec_replicas":             {"namespace", "deployment"},
	// Prometheus itself.
	"up": {},
}

// targetLabels are attached by Prometheus (ServiceMonitor discovery) to every
// scraped series.
var targetLabels = []string{"job", "instance", "namespace", "pod", "service", "container", "endpoint"}

// The worker metrics every dashboard must show (issue 6's list).
var workerMetrics = []string{
	"secmail_articles_processed_total", "secmail_processing_duration_seconds_bucket",
	"secmail_articles_in_flight", "secmail_redeliveries_total", "secmail_dead_letters_total",
	"secmail_cache_requests_total", "secmail_store_lookup_duration_seconds_bucket",
	"secmail_certificate_expiry_timestamp_seconds", "secmail_build_info", "nats_consumer_num_pending",
}

var promFuncs = map[string]bool{
	// Aggregations.
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "group": true, "stddev": true,
	"stdvar": true, "topk": true, "bottomk": true, "quantile": true, "count_values": true,
	// Functions.
	"rate": true, "irate": true, "increase": true, "delta": true, "idelta": true, "deriv": true,
	"histogram_quantile": true, "absent": true, "absent_over_time": true, "time": true, "vector": true,
	"scalar": true, "clamp_min": true, "clamp_max": true, "clamp": true, "round": true, "abs": true,
	"ceil": true, "floor": true, "sort": true, "sort_desc": true, "label_replace": true, "label_join": true,
	"max_over_time": true, "min_over_time": true, "avg_over_time": true, "last_over_time": true,
	"predict_linear": true, "changes": true, "resets": true, "timestamp": true,
	// Grafana's label_values() in template variable queries.
	"label_values": true,
}

var (
	promGrouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true, "atan2": true}
	grafanaVars  = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "6h")
)

type promToken struct {
	kind byte // 'i' ident, 's' string, 'n' number/duration, 'p' punctuation
	text string
}

func lexPromQL(expr string) ([]promToken, error) {
	var toks []promToken
	s := grafanaVars.Replace(expr)
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			toks = append(toks, promToken{'s', s[i+1 : j]})
			i = j + 1
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			j := i
			for j < len(s) && (isIdent(s[j]) && s[j] != ':' || s[j] == '.') {
				j++
			}
			toks = append(toks, promToken{'n', s[i:j]})
			i = j
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			toks = append(toks, promToken{'i', s[i:j]})
			i = j
		default:
			if i+1 < len(s) && slices.Contains([]string{"==", "!=", "=~", "!~", ">=", "<="}, s[i:i+2]) {
				toks = append(toks, promToken{'p', s[i : i+2]})
				i += 2
				continue
			}
			if !strings.ContainsRune("(){}[],+-*/%^<>=@:", rune(c)) {
				return nil, fmt.Errorf("unexpected character %q at %d", c, i)
			}
			toks = append(toks, promToken{'p', string(c)})
			i++
		}
	}
	return toks, nil
}

// promRefs is what one expression refers to.
type promRefs struct {
	metrics  []string
	labels   map[string]bool // label names usable on the result (grouping and selector labels)
	problems []string
}

// checkPromQL lexes expr and checks metric names, label names, functions and
// bracket balance.
func checkPromQL(expr string) promRefs {
	refs := promRefs{labels: map[string]bool{}}
	bad := func(f string, a ...any) { refs.problems = append(refs.problems, fmt.Sprintf(f, a...)) }
	toks, err := lexPromQL(expr)
	if err != nil {
		bad("%v", err)
		return refs
	}
	var stack []string
	var grouping []string
	metric := "" // metric of the selector whose {...} we are in
	pairs := map[string]string{")": "(", "}": "{", "]": "["}
	next := func(i int) string {
		if i+1 < len(toks) {
			return toks[i+1].text
		}
		return ""
	}
	for i := 0; i < len(toks); i++ {
		tk := toks[i]
		if tk.kind == 'p' {
			switch tk.text {
			case "(", "{", "[":
				stack = append(stack, tk.text)
			case ")", "}", "]":
				if len(stack) == 0 || stack[len(stack)-1] != pairs[tk.text] {
					bad("unbalanced %q", tk.text)
					return refs
				}
				stack = stack[:len(stack)-1]
				if tk.text == "}" {
					metric = ""
				}
			}
			continue
		}
		if tk.kind != 'i' {
			continue
		}
		inBraces := len(stack) > 0 && stack[len(stack)-1] == "{"
		switch {
		case inBraces:
			if !slices.Contains([]string{"=", "!=", "=~", "!~"}, next(i)) {
				bad("label %s without a matcher", tk.text)
			}
			if metric != "" && !slices.Contains(metricLabels[metric], tk.text) && !slices.Contains(targetLabels, tk.text) {
				bad("metric %s has no label %q", metric, tk.text)
			}
		case promGrouping[tk.text]:
			if next(i) != "(" {
				if tk.text == "group_left" || tk.text == "group_right" {
					continue
				}
				bad("%s without a label list", tk.text)
				continue
			}
			i += 2
			for ; i < len(toks) && toks[i].text != ")"; i++ {
				if toks[i].kind == 'i' {
					grouping = append(grouping, toks[i].text)
				} else if toks[i].text != "," {
					bad("unexpected %q in %s (...)", toks[i].text, tk.text)
				}
			}
		case promKeywords[tk.text]:
		case next(i) == "(" || promFuncs[tk.text] && promGrouping[next(i)]:
			if !promFuncs[tk.text] {
				bad("unknown function %s", tk.text)
			}
		case len(stack) > 0 && stack[len(stack)-1] == "[":
			// A subquery step or similar; durations are lexed as numbers.
		default:
			if _, ok := metricLabels[tk.text]; !ok {
				bad("unknown metric %s", tk.text)
				continue
			}
			refs.metrics = append(refs.metrics, tk.text)
			for _, l := range metricLabels[tk.text] {
				refs.labels[l] = true
			}
			if next(i) == "{" {
				metric = tk.text
			}
		}
	}
	if len(stack) != 0 {
		bad("unclosed %v", stack)
	}
	for _, l := range targetLabels {
		refs.labels[l] = true
	}
	for _, g := range grouping {
		if !refs.labels[g] {
			bad("grouping by %q, which none of the selected metrics has", g)
		}
	}
	if len(refs.metrics) == 0 && !strings.Contains(expr, "time()") {
		bad("selects no metric")
	}
	return refs
}

func TestPromQLCheckCatchesMistakes(t *testing.T) {
	good := []string{
		`sum by (direction, outcome) (rate(secmail_articles_processed_total{namespace=~"$namespace"}[$__rate_interval]))`,
		`histogram_quantile(0.99, sum by (le, op) (rate(secmail_store_lookup_duration_seconds_bucket[5m])))`,
		`(max by (email) (secmail_certificate_expiry_timestamp_seconds) - time()) < 14 * 86400`,
		`absent(up{job="secmail-worker"} == 1)`,
		`up{job="a}b"} or up{job='c'}`,
	}
	for _, e := range good {
		if r := checkPromQL(e); len(r.problems) != 0 {
			t.Errorf("%s: %v", e, r.problems)
		}
	}
	bad := map[string]string{
		"misspelt metric":   `rate(secmail_article_processed_total[5m])`,
		"misspelt function": `sum(rat(secmail_redeliveries_total[5m]))`,
		"wrong label":       `secmail_dead_letters_total{reason="x"}`,
		"grouping label":    `sum by (tier) (secmail_dead_letters_total)`,
		"unbalanced":        `sum(rate(secmail_redeliveries_total[5m])`,
		"crossed brackets":  `sum(rate(secmail_redeliveries_total[5m)])`,
		"unknown external":  `jetstream_consumer_num_pending`,
		"by without list":   `sum by secmail_redeliveries_total`,
	}
	for name, e := range bad {
		if r := checkPromQL(e); len(r.problems) == 0 {
			t.Errorf("%s: %s accepted", name, e)
		}
	}
}

var (
	streamSel   = regexp.MustCompile(`stream_name\s*(=~?)\s*"([^"]*)"`)
	consumerSel = regexp.MustCompile(`consumer_name\s*(=~?)\s*"([^"]*)"`)
)

// checkJetStreamSelectors: a query on the NATS exporter's series must select
// the worker's stream and both of its consumers, and nothing else.
func checkJetStreamSelectors(t *testing.T, expr string) {
	t.Helper()
	matches := func(op, val, name string) bool {
		if op == "=" {
			return val == name
		}
		return regexp.MustCompile("^(?:" + val + ")$").MatchString(name)
	}
	for _, m := range streamSel.FindAllStringSubmatch(expr, -1) {
		if !matches(m[1], m[2], inputStream) {
			t.Errorf("%q: stream selector %s%q misses %s", expr, m[1], m[2], inputStream)
		}
	}
	for _, m := range consumerSel.FindAllStringSubmatch(expr, -1) {
		for _, c := range consumers {
			if !matches(m[1], m[2], c) {
				t.Errorf("%q: consumer selector %s%q misses %s", expr, m[1], m[2], c)
			}
		}
	}
	if strings.Contains(expr, "nats_consumer_num_pending") &&
		(!streamSel.MatchString(expr) || !consumerSel.MatchString(expr) || !strings.Contains(expr, `is_consumer_leader="true"`)) {
		t.Errorf("%q: consumer lag must select stream, consumers and the leader's report only", expr)
	}
}

// --- alert rules -------------------------------------------------------------

var promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)

// Prometheus defines these in front of every alert template.
const promTemplatePrefix = `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}`

var promTemplateFuncs = template.FuncMap{
	"humanize":           func(v any) string { return fmt.Sprint(v) },
	"humanize1024":       func(v any) string { return fmt.Sprint(v) },
	"humanizeDuration":   func(v any) string { return fmt.Sprint(v) },
	"humanizePercentage": func(v any) string { return fmt.Sprint(v) },
	"humanizeTimestamp":  func(v any) string { return fmt.Sprint(v) },
	"toUpper":            strings.ToUpper,
	"toLower":            strings.ToLower,
	"title":              strings.ToTitle,
}

func loadRules(t *testing.T) *prometheusRule {
	t.Helper()
	b, err := os.ReadFile("../prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var pr prometheusRule
	if err := yaml.UnmarshalStrict(b, &pr); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		t.Fatalf("alerts.yaml is %s %s", pr.APIVersion, pr.Kind)
	}
	return &pr
}

func TestAlertRules(t *testing.T) {
	pr := loadRules(t)
	names := map[string]bool{}
	var all []string
	for _, g := range pr.Spec.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q empty or unnamed", g.Name)
		}
		if g.Interval != "" && !promDuration.MatchString(g.Interval) {
			t.Errorf("group %s: interval %q", g.Name, g.Interval)
		}
		for _, r := range g.Rules {
			id := r.Alert + r.Record
			if (r.Alert == "") == (r.Record == "") {
				t.Errorf("rule %q must be exactly one of alert or record", id)
			}
			if names[id] {
				t.Errorf("rule %s defined twice", id)
			}
			names[id] = true
			all = append(all, r.Expr)
			checkJetStreamSelectors(t, r.Expr)
			refs := checkPromQL(r.Expr)
			for _, p := range refs.problems {
				t.Errorf("%s: %s", id, p)
			}
			for _, d := range []string{r.For, r.KeepFiringFor} {
				if d != "" && !promDuration.MatchString(d) {
					t.Errorf("%s: duration %q", id, d)
				}
			}
			if r.Alert == "" {
				continue
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q", id, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: summary and description required", id)
			}
			for k, text := range r.Annotations {
				checkAlertTemplate(t, id+"/"+k, text, refs.labels)
			}
		}
	}
	// The four situations the issue asks for, each by what it watches.
	want := []struct {
		what string
		re   *regexp.Regexp
	}{
		{"dead letters rising", regexp.MustCompile(`(increase|rate)\(secmail_dead_letters_total`)},
		{"consumer lag growing", regexp.MustCompile(`deriv\(nats_consumer_num_pending`)},
		{"certificates expiring within 14 days", regexp.MustCompile(`secmail_certificate_expiry_timestamp_seconds[^<]*<\s*14 \* 86400`)},
		{"readiness failing", regexp.MustCompile(`kube_pod_status_ready\{condition="false"`)},
		{"target down", regexp.MustCompile(`up\{job="secmail-worker"\} == 0`)},
	}
	joined := strings.Join(all, "\n")
	for _, w := range want {
		if !w.re.MatchString(joined) {
			t.Errorf("no alert for %s", w.what)
		}
	}
}

var labelRef = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)

// checkAlertTemplate parses and runs an annotation as Prometheus would, and
// checks that every $labels.x it uses can exist on the alert.
func checkAlertTemplate(t *testing.T, id, text string, labels map[string]bool) {
	t.Helper()
	tmpl, err := template.New(id).Funcs(promTemplateFuncs).Option("missingkey=zero").Parse(promTemplatePrefix + text)
	if err != nil {
		t.Errorf("%s: %v", id, err)
		return
	}
	data := struct {
		Labels, ExternalLabels map[string]string
		ExternalURL            string
		Value                  float64
	}{Labels: map[string]string{}, Value: 1}
	for l := range labels {
		data.Labels[l] = "x"
	}
	if err := tmpl.Execute(io.Discard, data); err != nil {
		t.Errorf("%s: %v", id, err)
	}
	for _, m := range labelRef.FindAllStringSubmatch(text, -1) {
		if !labels[m[1]] {
			t.Errorf("%s: $labels.%s is not a label of the expression (have %v)", id, m[1], slices.Sorted(maps.Keys(labels)))
		}
	}
}

// --- Grafana dashboard -------------------------------------------------------

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("../grafana/secmail-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) {
		t.Fatal("secmail-dashboard.json is not valid JSON")
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 || len(d.Panels) == 0 {
		t.Fatalf("dashboard lacks uid/title/schemaVersion/panels")
	}
	vars := map[string]bool{}
	var exprs []string
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Definition != "" {
			exprs = append(exprs, v.Definition)
		}
	}
	if !vars["datasource"] {
		t.Error("no datasource template variable: the dashboard would be bound to one Prometheus")
	}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
				t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Title == "" || len(p.Targets) == 0 {
				t.Errorf("panel %d (%q) without title or queries", p.ID, p.Title)
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q not bound to the datasource variable", p.Title)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] {
					t.Errorf("panel %q: target without expr or with duplicate refId %q", p.Title, tg.RefID)
				}
				refs[tg.RefID] = true
				exprs = append(exprs, tg.Expr)
				for _, m := range regexp.MustCompile(`\$\{?([a-z][a-zA-Z0-9_]*)`).FindAllStringSubmatch(tg.Expr, -1) {
					if !vars[m[1]] {
						t.Errorf("panel %q uses undefined variable $%s", p.Title, m[1])
					}
				}
			}
		}
	}
	walk(d.Panels)

	used := map[string]bool{}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)
	for _, e := range exprs {
		var label string
		if m := labelValues.FindStringSubmatch(e); m != nil {
			e, label = m[1], m[2]
		}
		checkJetStreamSelectors(t, e)
		refs := checkPromQL(e)
		if label != "" && !refs.labels[label] {
			t.Errorf("template query %q: no label %q", e, label)
		}
		for _, p := range refs.problems {
			t.Errorf("dashboard query %q: %s", e, p)
		}
		for _, m := range refs.metrics {
			used[m] = true
		}
	}
	for _, m := range workerMetrics {
		if !used[m] {
			t.Errorf("dashboard shows nothing of %s", m)
		}
	}
	for _, title := range []string{"Throughput", "Failure reasons", "latency", "In flight", "Redeliveries",
		"Dead letters", "Cache hit ratio", "Store lookup", "Certificate expiry", "Consumer lag"} {
		var found bool
		for _, p := range d.Panels {
			found = found || strings.Contains(strings.ToLower(p.Title), strings.ToLower(title))
		}
		if !found {
			t.Errorf("no panel for %q", title)
		}
	}
}
