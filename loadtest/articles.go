package main

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/secmail/secmail/mailgen"
)

// share is one weighted choice.
type share[T any] struct {
	Value  T
	Weight float64
}

// size is a body size and an optional attachment.
type size struct {
	Body       int `json:"body"`
	Attachment int `json:"attachment"`
}

func (s size) String() string {
	if s.Attachment > 0 {
		return fmtBytes(s.Body) + "+" + fmtBytes(s.Attachment)
	}
	return fmtBytes(s.Body)
}

// DefaultMix is a helpdesk's inbox and outbox as we see it: mostly
// signed-then-encrypted S/MIME, some signed-only, some OpenPGP and plain
// mail, a few failures, and replies.
const DefaultMix = "smime-signed-encrypted=45,smime-signed=10,smime-encrypted=5,pgp-signed-encrypted=8," +
	"plain=10,smime-tampered=2,smime-not-for-us=2,pgp-unknown-signer=2,reply-smime=10,reply-pgp=4,reply-no-certificate=2"

// DefaultSizes spans a few KiB to several MiB, weighted to small mail so
// a default run stays quick.
const DefaultSizes = "4KiB=60,32KiB=25,8KiB+256KiB=12,8KiB+3MiB=3"

func parseMix(s string) ([]share[string], error) {
	known := map[string]bool{}
	for _, k := range mailgen.Kinds {
		known[k] = true
	}
	return parseShares(s, func(v string) (string, error) {
		if !known[v] {
			return "", fmt.Errorf("unknown kind %q (known: %s)", v, strings.Join(mailgen.Kinds, ", "))
		}
		return v, nil
	})
}

func parseSizes(s string) ([]share[size], error) {
	return parseShares(s, func(v string) (size, error) {
		body, att, _ := strings.Cut(v, "+")
		var sz size
		var err error
		if sz.Body, err = parseBytes(body); err != nil {
			return sz, err
		}
		if att != "" {
			if sz.Attachment, err = parseBytes(att); err != nil {
				return sz, err
			}
		}
		return sz, nil
	})
}

func parseShares[T any](s string, parse func(string) (T, error)) ([]share[T], error) {
	var out []share[T]
	total := 0.0
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		name, w, ok := strings.Cut(f, "=")
		weight := 1.0
		if ok {
			var err error
			if weight, err = strconv.ParseFloat(w, 64); err != nil || weight < 0 {
				return nil, fmt.Errorf("%q: share is not a non-negative number", f)
			}
		}
		v, err := parse(strings.TrimSpace(name))
		if err != nil {
			return nil, err
		}
		if weight > 0 {
			out = append(out, share[T]{v, weight})
			total += weight
		}
	}
	if total == 0 {
		return nil, fmt.Errorf("%q: no positive shares", s)
	}
	return out, nil
}

func parseBytes(s string) (int, error) {
	s = strings.TrimSpace(s)
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"K", 1 << 10}, {"M", 1 << 20}, {"k", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 || n*float64(mult) > 64<<20 {
		return 0, fmt.Errorf("%q is not a size between 0 and 64MiB", s)
	}
	return int(n * float64(mult)), nil
}

func fmtBytes(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func pick[T any](r *rand.Rand, shares []share[T]) T {
	total := 0.0
	for _, s := range shares {
		total += s.Weight
	}
	x := r.Float64() * total
	for _, s := range shares {
		if x < s.Weight {
			return s.Value
		}
		x -= s.Weight
	}
	return shares[len(shares)-1].Value
}

// class is a kind at a size.
type class struct {
	Kind string
	Size size
}

// articleSet is the articles of a run: each refers to one of a bounded
// number of distinct samples per class, so generating thousands of
// articles does not take longer than processing them.
type articleSet struct {
	Samples map[class][]mailgen.Sample
	Order   []ref
}

type ref struct {
	Class class
	Index int
}

func (a *articleSet) sample(r ref) *mailgen.Sample { return &a.Samples[r.Class][r.Index] }

// makeArticles draws n articles from the mix and sizes (deterministically
// for a seed) and generates their samples in parallel.
func makeArticles(w *mailgen.World, n int, mix []share[string], sizes []share[size], distinct int, seed uint64) (*articleSet, error) {
	r := rand.New(rand.NewPCG(seed, seed^0x5ec3a11))
	counts := map[class]int{}
	set := &articleSet{Samples: map[class][]mailgen.Sample{}}
	for range n {
		c := class{pick(r, mix), pick(r, sizes)}
		set.Order = append(set.Order, ref{c, counts[c] % distinct})
		counts[c]++
	}
	type job struct {
		c class
		i int
	}
	var jobs []job
	for c, k := range counts {
		set.Samples[c] = make([]mailgen.Sample, min(k, distinct))
		for i := range set.Samples[c] {
			jobs = append(jobs, job{c, i})
		}
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].c.Size.Attachment > jobs[j].c.Size.Attachment })
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan job)
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				s, err := w.Make(j.c.Kind, mailgen.Options{BodySize: j.c.Size.Body, Attachment: j.c.Size.Attachment, Seq: j.i})
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("generating %s %s: %w", j.c.Kind, j.c.Size, err))
				}
				set.Samples[j.c][j.i] = s
				mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return set, nil
}
