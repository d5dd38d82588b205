package main

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/sdk"
)

// FuzzSearch decodes parameters as the SDK does and checks that a search
// either fails with a coded error naming its field or returns results
// that keep every promise of the package documentation.
func FuzzSearch(f *testing.F) {
	for _, seed := range []string{
		`{"origin": "LHR", "destination": "JFK", "departure_date": "2030-06-17"}`,
		`{"action": "search", "origin": "JFK", "destination": "CDG", "departure_date": "2030-06-13", "return_date": "2030-06-20", "passengers": 2, "cabin_class": "business", "currency": "EUR"}`,
		`{"origin": "SYD", "destination": "LHR", "departure_date": "2030-01-10", "cabin_class": "first", "passengers": 9, "currency": "JPY"}`,
		`{"action": "book"}`,
		`{"origin": "LHR", "destination": "LHR", "departure_date": "2030-06-17"}`,
		`{"origin": "LHR", "destination": "JFK", "departure_date": "2029-12-31", "passengers": 1.5}`,
		`{"origin": "AKL", "destination": "CAI", "departure_date": "9999-12-31", "return_date": "9999-12-31"}`,
	} {
		f.Add(seed)
	}
	cat, err := embeddedCatalogue()
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2030, time.January, 1, 6, 0, 0, 0, time.UTC)
	s := &searcher{cat: cat, now: func() time.Time { return now }, maxResults: 3, currency: "USD"}

	f.Fuzz(func(t *testing.T, params string) {
		var p searchParams
		if json.Unmarshal([]byte(params), &p) != nil {
			return // the SDK answers these itself
		}
		resp, err := s.search(context.Background(), p, func(fraction float64, msg string) {
			if fraction < 0 || fraction > 1 || msg == "" {
				t.Errorf("progress(%v, %q)", fraction, msg)
			}
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
		if resp.Results == nil {
			t.Fatal("results is nil")
		}
		count := map[string]int{}
		for i, r := range resp.Results {
			count[r.Direction]++
			if i > 0 && compareResults(resp.Results[i-1], r) > 0 {
				t.Errorf("results %d and %d out of order", i-1, i)
			}
			from, to := resp.Origin, resp.Destination
			if r.Direction == directionReturn {
				from, to = to, from
			}
			if r.Origin != from || r.Destination != to || r.Currency != resp.Currency || r.CabinClass != resp.CabinClass {
				t.Errorf("result %+v does not fit the search %+v", r, resp)
			}
			if r.SeatsAvailable < resp.Passengers || r.SeatsAvailable > maxSeatsShown || !(r.PricePerPassenger > 0) ||
				math.Abs(r.Price-r.PricePerPassenger*float64(resp.Passengers)) > 1e-9*r.Price {
				t.Errorf("result %+v: seats or price wrong for %d passengers", r, resp.Passengers)
			}
			dep, err1 := time.Parse(time.RFC3339, r.DepartureTime)
			arr, err2 := time.Parse(time.RFC3339, r.ArrivalTime)
			if err1 != nil || err2 != nil || arr.Sub(dep) != time.Duration(r.DurationMinutes)*time.Minute || dep.Before(now) {
				t.Errorf("result %+v: times %v, %v", r, err1, err2)
			}
		}
		for dir, n := range count {
			if n > s.maxResults {
				t.Errorf("%d %s results, want at most %d", n, dir, s.maxResults)
			}
		}
		if _, err := json.Marshal(resp); err != nil {
			t.Errorf("results do not marshal: %v", err)
		}
	})
}
