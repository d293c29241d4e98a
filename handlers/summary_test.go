package handlers

import (
	"crypto/x509"
	"fmt"
	"reflect"
	"testing"

	"github.com/secmail/secmail/demopki"
	"github.com/secmail/secmail/result"
)

// TestSummaryCache: a cached summary equals result.Summarize, each caller
// gets its own copy, and the cache stays bounded.
func TestSummaryCache(t *testing.T) {
	pki, err := demopki.New("Summary")
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for i := 0; i < 3; i++ {
		id, err := pki.Leaf(fmt.Sprintf("s%d@customer.example", i), demopki.LeafOptions{})
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, id.Cert)
	}
	var c summaryCache
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		want *result.Certificate
	}{
		{"nil", nil, nil},
		{"first", certs[0], result.Summarize(certs[0])},
		{"second", certs[1], result.Summarize(certs[1])},
		{"first again", certs[0], result.Summarize(certs[0])},
	} {
		if got := c.summarize(tc.cert); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	a := c.summarize(certs[2])
	a.Subject = "changed by a caller"
	if b := c.summarize(certs[2]); b.Subject == a.Subject {
		t.Error("callers share one summary")
	}
	for i := 0; i < 2*maxSummaries; i++ {
		c.summarize(&x509.Certificate{Raw: []byte{byte(i)}, SerialNumber: certs[0].SerialNumber})
		if len(c.m) > maxSummaries {
			t.Fatalf("%d summaries kept, bound %d", len(c.m), maxSummaries)
		}
	}
}
