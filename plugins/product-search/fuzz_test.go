package main

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/agentmesh/agentmesh-go/sdk"
)

// FuzzSearch decodes parameters as the SDK does and checks that a search
// either fails with a coded error naming its field or returns results
// that keep every promise of the package documentation.
func FuzzSearch(f *testing.F) {
	for _, seed := range []string{
		`{"query": "noise cancelling"}`,
		`{"action": "search", "query": "Head", "category": "Electronics", "min_price": 100, "max_price": 400, "currency": "EUR"}`,
		`{"category": "books", "currency": "JPY"}`,
		`{"action": "details", "product_id": "el-1001", "currency": "GBP"}`,
		`{"action": "details", "query": "OF-10011"}`,
		`{"action": "purchase", "product_id": "el-1001"}`,
		`{"query": "the of a", "min_price": 5, "max_price": 1}`,
		`{"query": "ÉCOUTEURS N°5 wi-fi", "category": "garden"}`,
	} {
		f.Add(seed)
	}
	cat, err := embeddedCatalogue()
	if err != nil {
		f.Fatal(err)
	}
	s := &searcher{cat: cat, maxResults: 5, currency: "USD"}

	f.Fuzz(func(t *testing.T, params string) {
		var p searchParams
		if json.Unmarshal([]byte(params), &p) != nil {
			return // the SDK answers these itself
		}
		last := 0.0
		resp, err := s.search(context.Background(), p, func(fraction float64, msg string) {
			if fraction <= last || fraction > 1 || msg == "" {
				t.Errorf("progress(%v, %q) after %v", fraction, msg, last)
			}
			last = fraction
		})
		if err != nil {
			var serr *sdk.Error
			if !errors.As(err, &serr) || !serr.Code.Known() || resp != nil {
				t.Fatalf("search = %v, %v; want a coded *sdk.Error alone", resp, err)
			}
			if d, ok := serr.Details.(fieldDetails); ok && !strings.HasPrefix(serr.Message, d.Field+": ") {
				t.Errorf("error %q does not start with its field %q", serr.Message, d.Field)
			}
			return
		}
		if resp.Results == nil || resp.Total < len(resp.Results) || len(resp.Results) > s.maxResults {
			t.Fatalf("%d results of %d", len(resp.Results), resp.Total)
		}
		query := tokens(p.Query)
		for i, r := range resp.Results {
			if i > 0 && compareResults(resp.Results[i-1], r) > 0 {
				t.Errorf("results %d and %d out of order", i-1, i)
			}
			prod := cat.byID[r.ProductID]
			if prod == nil || r.Currency != resp.Currency || !(r.Price > 0) || r.InStock != (prod.Stock > 0) {
				t.Errorf("result %+v does not match the catalogue", r)
				continue
			}
			if resp.Action == actionDetails {
				if len(resp.Results) != 1 || r.Stock == nil || *r.Stock != prod.Stock || !slices.Equal(r.Tags, prod.Tags) {
					t.Errorf("details result %+v", r)
				}
				continue
			}
			if (resp.MinPrice != nil && r.Price < *resp.MinPrice) || (resp.MaxPrice != nil && r.Price > *resp.MaxPrice) ||
				(resp.Category != "" && r.Category != resp.Category) {
				t.Errorf("result %+v outside the search %+v", r, resp)
			}
			if _, ok := prod.score(query); !ok || (len(query) > 0) != (r.Relevance > 0) || r.Relevance > 1 {
				t.Errorf("result %+v does not match query %q", r, query)
			}
		}
		if _, err := json.Marshal(resp); err != nil {
			t.Errorf("results do not marshal: %v", err)
		}
	})
}
