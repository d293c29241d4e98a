package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/secmail/secmail/store"
	"github.com/secmail/secmail/store/storetest"
)

// BenchmarkBulkImport10k imports 10,000 certificates into an empty bucket
// per iteration (file storage, as in production).
//
//	go test -run - -bench BulkImport -benchtime 1x ./store
func BenchmarkBulkImport10k(b *testing.B) {
	fx := storetest.Fx(b)
	certs, err := storetest.BulkCerts(fx, 10000)
	if err != nil {
		b.Fatal(err)
	}
	in := make([]store.Input, len(certs))
	for i, c := range certs {
		in[i] = store.Input{Name: "bulk", Data: c.Raw}
	}
	n := storetest.StartNATS(b, "")
	nc := n.Connect()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := store.Open(ctx, nc, store.Config{Bucket: fmt.Sprintf("bulk%d", i), MasterKey: testKey(b, 1)})
		if err != nil {
			b.Fatal(err)
		}
		rep, err := s.Import(ctx, in, store.ImportOptions{})
		if err != nil || rep.Failed() || rep.Counts()[store.StatusAdded] != len(in) {
			b.Fatal(err, rep.Counts())
		}
	}
	b.ReportMetric(float64(b.N*len(in))/b.Elapsed().Seconds(), "certs/s")
}
