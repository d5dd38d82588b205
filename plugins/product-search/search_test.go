package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/sdk"
)

var embeddedCatalogue = sync.OnceValues(func() (*catalogue, error) { return loadCatalogue(data) })

// newTestSearcher returns a searcher over the embedded catalogue.
func newTestSearcher(t testing.TB) *searcher {
	t.Helper()
	cat, err := embeddedCatalogue()
	if err != nil {
		t.Fatalf("loadCatalogue: %v", err)
	}
	return &searcher{cat: cat, maxResults: 20, currency: "USD"}
}

func noProgress(float64, string) {}

func price(v float64) *float64 { return &v }

// hit is the part of a result most tests compare.
type hit struct {
	id        string
	price     float64
	relevance float64
	inStock   bool
}

func hits(results []productResult) []hit {
	out := make([]hit, len(results))
	for i, r := range results {
		out[i] = hit{r.ProductID, r.Price, r.Relevance, r.InStock}
	}
	return out
}

func TestSearch(t *testing.T) {
	tests := []struct {
		name      string
		params    searchParams
		max       int
		want      []hit
		wantTotal int // when different from len(want)
	}{
		{"name beats tags beats description",
			searchParams{Query: "noise cancelling"}, 20,
			[]hit{
				{"el-1001", 399.99, 1, true},
				{"el-1002", 249, 0.667, true},  // tags
				{"el-1003", 299, 0.667, false}, // tags, but out of stock
				{"of-10011", 249, 0.333, true}, // description only
			}, 0},
		{"every word must match",
			searchParams{Query: "wireless headphones"}, 20,
			[]hit{{"el-1001", 399.99, 1, true}}, 0},
		{"prefix matches count half",
			searchParams{Query: "head"}, 20,
			[]hit{
				{"sp-7005", 49.95, 0.5, true}, {"of-10011", 249, 0.5, true}, {"el-1001", 399.99, 0.5, true}, // headlamp, headset, headphones
				{"hk-4005", 449.99, 0.333, true}, // "tilt-head" in the description: exact, but weight 1
			}, 0},
		{"plurals fold",
			searchParams{Query: "Shoes"}, 5,
			[]hit{
				// "Running Shoes" in the name.
				{"cl-6005", 190, 1, true},
				// The "shoes" tag.
				{"cl-6006", 98, 0.667, true}, {"cl-6004", 115, 0.667, true}, {"cl-6012", 135, 0.667, true},
				// The category "Clothing & Shoes" only.
				{"cl-6008", 19.99, 0.333, true},
			}, 12},
		{"brand in any case",
			searchParams{Query: "lego"}, 20,
			[]hit{{"tg-8002", 59.99, 1, true}, {"tg-8001", 169.99, 1, true}}, 0},
		{"author in the description",
			searchParams{Query: "Kahneman"}, 20,
			[]hit{{"bk-5011", 20, 0.333, true}}, 0},
		{"query within a category",
			searchParams{Query: "wireless", Category: "office"}, 20,
			[]hit{{"of-10011", 249, 1, true}, {"of-10006", 139.99, 0.667, true}, {"of-10007", 279.99, 0.667, true}}, 0},
		{"empty query lists the category",
			searchParams{Category: "books"}, 20,
			[]hit{
				{"bk-5010", 14.99, 0, true}, {"bk-5008", 18.99, 0, true}, {"bk-5009", 19.99, 0, true},
				{"bk-5011", 20, 0, true}, {"bk-5006", 24.99, 0, true}, {"bk-5007", 27, 0, true},
				{"bk-5012", 37.5, 0, true}, {"bk-5002", 39.99, 0, true}, {"bk-5001", 49.99, 0, true},
				{"bk-5005", 50, 0, true}, {"bk-5003", 59.99, 0, true}, {"bk-5004", 44.99, 0, false},
			}, 0},
		{"max results keeps the total",
			searchParams{Category: "books"}, 3,
			[]hit{{"bk-5010", 14.99, 0, true}, {"bk-5008", 18.99, 0, true}, {"bk-5009", 19.99, 0, true}}, 12},
		{"category by name",
			searchParams{Category: "home & KITCHEN", Query: "cast iron"}, 20,
			[]hit{{"hk-4008", 39.9, 1, true}, {"hk-4007", 419.95, 1, true}}, 0},
		{"price range",
			searchParams{Category: "computers", MinPrice: price(500), MaxPrice: price(1300)}, 20,
			[]hit{{"co-2010", 579.99, 0, true}, {"co-2006", 599, 0, true}, {"co-2001", 1099, 0, true}, {"co-2003", 1299.99, 0, true}, {"co-2007", 799.99, 0, false}}, 0},
		{"bounds are inclusive",
			searchParams{MinPrice: price(1099), MaxPrice: price(1099)}, 20,
			[]hit{{"co-2001", 1099, 0, true}}, 0},
		{"price bounds in the requested currency",
			searchParams{Query: "smartwatch", Currency: "EUR", MaxPrice: price(400)}, 20,
			[]hit{{"el-1010", 394.68, 0.667, true}}, 0},
		{"same bound in dollars",
			searchParams{Query: "smartwatch", MaxPrice: price(400)}, 20,
			nil, 0},
		{"yen round half away from zero",
			searchParams{Query: "WH-1000XM5", Currency: "JPY"}, 20,
			[]hit{{"el-1001", 59999, 1, true}}, 0},
		{"no match",
			searchParams{Query: "submarine"}, 20,
			nil, 0},
		{"stop words alone list everything",
			searchParams{Query: "the", Category: "beauty"}, 1,
			[]hit{{"be-9011", 12.99, 0, true}}, 12}, // be-9006 is cheaper but out of stock
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSearcher(t)
			s.maxResults = tt.max
			got, err := s.search(context.Background(), tt.params, noProgress)
			if err != nil {
				t.Fatalf("search: %v", err)
			}
			if got.Results == nil {
				t.Fatal("results is nil, want an empty list at least")
			}
			wantTotal := tt.wantTotal
			if wantTotal == 0 {
				wantTotal = len(tt.want)
			}
			if g := hits(got.Results); !slices.Equal(g, tt.want) {
				t.Errorf("results:\n got %+v\nwant %+v", g, tt.want)
			}
			if got.Total != wantTotal {
				t.Errorf("total = %d, want %d", got.Total, wantTotal)
			}
		})
	}
}

func TestSearchEcho(t *testing.T) {
	s := newTestSearcher(t)
	s.currency = "GBP"
	got, err := s.search(context.Background(), searchParams{Query: "Kindle", Category: "Electronics", MinPrice: price(10)}, noProgress)
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	if got.Action != "search" || got.Query != "Kindle" || got.Category != "electronics" || got.Currency != "GBP" ||
		got.MinPrice == nil || *got.MinPrice != 10 || got.MaxPrice != nil {
		t.Errorf("echoed search = %+v", got)
	}
	if len(got.Results) != 1 {
		t.Fatalf("results = %+v, want the Kindle", hits(got.Results))
	}
	r := got.Results[0]
	// 149.99 × 0.79 = 118.4921.
	want := productResult{
		ProductID: "el-1012", Name: "Amazon Kindle Paperwhite (16 GB)", Price: 118.49, Currency: "GBP",
		Description: r.Description, InStock: true, Category: "electronics", Brand: "Amazon", Relevance: 1,
	}
	r.score, r.minor = 0, 0
	if r.Description == "" || r.Stock != nil || r.Tags != nil {
		t.Errorf("search result carries details: %+v", r)
	}
	r.Stock, r.Tags = nil, nil
	if r.ProductID != want.ProductID || r.Name != want.Name || r.Price != want.Price || r.Currency != want.Currency ||
		r.InStock != want.InStock || r.Category != want.Category || r.Brand != want.Brand || r.Relevance != want.Relevance {
		t.Errorf("result = %+v, want %+v", r, want)
	}
}

func TestDetails(t *testing.T) {
	tests := []struct {
		name      string
		params    searchParams
		wantID    string
		wantStock int
		wantPrice float64
	}{
		{"by product id", searchParams{Action: "details", ProductID: "el-1003"}, "el-1003", 0, 299},
		{"by query", searchParams{Action: "details", Query: " EL-1001 "}, "el-1001", 34, 399.99},
		{"product id wins", searchParams{Action: "details", ProductID: "hk-4008", Query: "el-1001"}, "hk-4008", 140, 39.9},
		{"in the requested currency", searchParams{Action: "details", ProductID: "hk-4008", Currency: "CHF"}, "hk-4008", 140, 35.11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSearcher(t)
			got, err := s.search(context.Background(), tt.params, noProgress)
			if err != nil {
				t.Fatalf("search: %v", err)
			}
			if got.Action != "details" || got.Total != 1 || len(got.Results) != 1 {
				t.Fatalf("response = %+v, want one details result", got)
			}
			r := got.Results[0]
			if r.ProductID != tt.wantID || r.Stock == nil || *r.Stock != tt.wantStock || r.InStock != (tt.wantStock > 0) ||
				r.Price != tt.wantPrice || len(r.Tags) == 0 {
				t.Errorf("result = %+v (stock %v); want %s with stock %d at %v", r, r.Stock, tt.wantID, tt.wantStock, tt.wantPrice)
			}
			// The tags are a copy: changing them leaves the catalogue alone.
			r.Tags[0] = "changed"
			if again, _ := s.search(context.Background(), tt.params, noProgress); again.Results[0].Tags[0] == "changed" {
				t.Error("details result shares its tags with the catalogue")
			}
		})
	}
}

func TestSearchErrors(t *testing.T) {
	tests := []struct {
		name      string
		currency  string
		params    searchParams
		wantCode  protocol.ErrorCode
		wantField string // the message starts with it
		wantText  string // and contains it
	}{
		{"purchase", "USD", searchParams{Action: "purchase", ProductID: "el-1001"}, protocol.CodeUnsupportedOperation, "action", "purchase"},
		{"unknown action", "USD", searchParams{Action: "compare"}, protocol.CodeInvalidParameter, "action", "compare"},
		{"unknown category", "USD", searchParams{Category: "garden"}, protocol.CodeInvalidParameter, "category",
			"electronics, computers, phones, home-kitchen, books, clothing, sports-outdoors, toys-games, beauty, office"},
		{"min above max", "USD", searchParams{MinPrice: price(100), MaxPrice: price(50)}, protocol.CodeInvalidParameter, "min_price", "max_price"},
		{"negative min", "USD", searchParams{MinPrice: price(-1)}, protocol.CodeInvalidParameter, "min_price", "negative"},
		{"negative max", "USD", searchParams{MaxPrice: price(-0.01)}, protocol.CodeInvalidParameter, "max_price", "negative"},
		{"unknown currency", "USD", searchParams{Currency: "XYZ"}, protocol.CodeInvalidParameter, "currency", "EUR"},
		{"lower-case currency", "USD", searchParams{Currency: "eur"}, protocol.CodeInvalidParameter, "currency", `"eur"`},
		{"unknown configured currency", "DOGE", searchParams{}, protocol.CodeUnavailable, "config option currency", "DOGE"},
		{"details without an id", "USD", searchParams{Action: "details"}, protocol.CodeMissingParameter, "product_id", "required"},
		{"details of an unknown id", "USD", searchParams{Action: "details", ProductID: "zz-0000"}, protocol.CodeNotFound, "product_id", "zz-0000"},
		{"details of an unknown query", "USD", searchParams{Action: "details", Query: "headphones"}, protocol.CodeNotFound, "query", "headphones"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSearcher(t)
			s.currency = tt.currency
			got, err := s.search(context.Background(), tt.params, noProgress)
			var serr *sdk.Error
			if !errors.As(err, &serr) {
				t.Fatalf("search = %+v, %v; want an *sdk.Error", got, err)
			}
			if serr.Code != tt.wantCode || !strings.HasPrefix(serr.Message, tt.wantField+": ") || !strings.Contains(serr.Message, tt.wantText) {
				t.Errorf("error = %s %q; want code %s naming %s and mentioning %q", serr.Code, serr.Message, tt.wantCode, tt.wantField, tt.wantText)
			}
			var wantDetails any = fieldDetails{Field: tt.wantField}
			if tt.wantCode == protocol.CodeUnavailable {
				wantDetails = nil // a configuration problem, not a parameter
			}
			if serr.Details != wantDetails {
				t.Errorf("details = %#v, want %#v", serr.Details, wantDetails)
			}
			if got != nil {
				t.Errorf("response %+v returned with the error", got)
			}
		})
	}
}

func TestSearchProgress(t *testing.T) {
	tests := []struct {
		name   string
		params searchParams
		want   []float64
	}{
		{"search", searchParams{Query: "coffee"}, []float64{0.1, 0.4, 0.8}},
		{"details", searchParams{Action: "details", ProductID: "hk-4001"}, []float64{0.1, 0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSearcher(t)
			var got []float64
			_, err := s.search(context.Background(), tt.params, func(f float64, msg string) {
				got = append(got, f)
				if msg == "" {
					t.Error("progress without a message")
				}
			})
			if err != nil {
				t.Fatalf("search: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("progress = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSearchCancelled(t *testing.T) {
	s := newTestSearcher(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := s.search(ctx, searchParams{Query: "coffee"}, noProgress)
	if !errors.Is(err, context.Canceled) || got != nil {
		t.Errorf("search = %v, %v; want context.Canceled", got, err)
	}
}

func BenchmarkSearch(b *testing.B) {
	s := newTestSearcher(b)
	p := searchParams{Query: "wireless noise cancelling", MaxPrice: price(500), Currency: "EUR"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.search(ctx, p, noProgress); err != nil {
			b.Fatal(err)
		}
	}
}
