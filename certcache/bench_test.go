package certcache_test

import (
	"context"
	"flag"
	"testing"

	"github.com/secmail/secmail/certcache"
	"github.com/secmail/secmail/store"
	"github.com/secmail/secmail/store/storetest"
)

var large = flag.Bool("certcache.large", false, "also benchmark look-ups with 100,000 stored certificates")

// BenchmarkLookup measures look-ups by e-mail and by issuer+serial with
// 10,000 (and with -certcache.large 100,000) stored certificates: hot (in-
// process LRU), warm (Redis) and cold (KV).
//
//	go test -run - -bench Lookup ./certcache
func BenchmarkLookup(b *testing.B) {
	sizes := []int{10000}
	if *large {
		sizes = append(sizes, 100000)
	}
	for _, n := range sizes {
		b.Run(sizeName(n), func(b *testing.B) { benchLookup(b, n) })
	}
}

func sizeName(n int) string {
	if n >= 1000 {
		return itoa(n/1000) + "k"
	}
	return itoa(n)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var s []byte
	for ; n > 0; n /= 10 {
		s = append([]byte{byte('0' + n%10)}, s...)
	}
	return string(s)
}

func benchLookup(b *testing.B, n int) {
	fx := storetest.Fx(b)
	ns := storetest.StartNATS(b, "")
	r := storetest.StartRedis(b)
	ctx := context.Background()
	s := openStore(b, ns.Connect(), "bench", mk(b), true)
	certs, err := storetest.BulkCerts(fx, n)
	if err != nil {
		b.Fatal(err)
	}
	in := make([]store.Input, len(certs))
	for i, c := range certs {
		in[i] = store.Input{Name: "bulk", Data: c.Raw}
	}
	if rep, err := s.Import(ctx, in, store.ImportOptions{}); err != nil || rep.Failed() {
		b.Fatal(err)
	}
	hot := newCache(b, s, r.Client(), 2*n)
	warm := newCache(b, s, r.Client(), -1)
	cold := newCache(b, s, nil, -1)
	tiers := []struct {
		name string
		c    *certcache.Cache
	}{{"hot", hot}, {"warm", warm}, {"cold", cold}}
	for _, tier := range tiers {
		c := tier.c
		// Fill the tier under test for every look-up first (once: b.Run
		// calls the function repeatedly with growing b.N).
		for i := 0; i < n; i++ {
			if _, err := c.CertsByEmail(ctx, storetest.BulkEmail(i)); err != nil {
				b.Fatal(err)
			}
			if _, err := c.CertsByIssuerSerial(ctx, certs[i].RawIssuer, certs[i].SerialNumber); err != nil {
				b.Fatal(err)
			}
		}
		b.Run("email/"+tier.name, func(b *testing.B) {
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				got, err := c.CertsByEmail(ctx, storetest.BulkEmail(i%n))
				if err != nil || len(got) != 1 {
					b.Fatal(err, len(got))
				}
			}
		})
		b.Run("issuer_serial/"+tier.name, func(b *testing.B) {
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ct := certs[i%n]
				got, err := c.CertsByIssuerSerial(ctx, ct.RawIssuer, ct.SerialNumber)
				if err != nil || len(got) != 1 {
					b.Fatal(err, len(got))
				}
			}
		})
	}
}
