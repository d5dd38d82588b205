package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/sdk"
)

var embeddedCatalogue = sync.OnceValues(func() (*catalogue, error) { return loadCatalogue(data) })

// newTestSearcher returns a searcher over the embedded catalogue whose
// clock stands still at now.
func newTestSearcher(t testing.TB, now time.Time) *searcher {
	t.Helper()
	cat, err := embeddedCatalogue()
	if err != nil {
		t.Fatalf("loadCatalogue: %v", err)
	}
	return &searcher{cat: cat, now: func() time.Time { return now }, maxResults: 20, currency: "USD"}
}

// testNow is the default clock of these tests: well before every date
// they search.
var testNow = time.Date(2030, time.June, 1, 12, 0, 0, 0, time.UTC)

func noProgress(float64, string) {}

func passengers(n float64) *float64 { return &n }

// brief is the part of a result most tests compare.
type brief struct {
	flight    string
	direction string
	price     float64
	dep, arr  string
	seats     int
}

func briefs(results []flightResult) []brief {
	out := make([]brief, len(results))
	for i, r := range results {
		out[i] = brief{r.FlightNumber, r.Direction, r.Price, r.DepartureTime, r.ArrivalTime, r.SeatsAvailable}
	}
	return out
}

func TestSearchLondonNewYork(t *testing.T) {
	s := newTestSearcher(t, testNow)
	got, err := s.search(context.Background(), searchParams{
		Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17", // a Monday
	}, noProgress)
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	// AA101 is sold out in economy that day; the rest sort by price.
	want := []brief{
		{"BA113", "outbound", 538, "2030-06-17T18:30:00+01:00", "2030-06-17T21:25:00-04:00", 7},
		{"DL4", "outbound", 556, "2030-06-17T16:40:00+01:00", "2030-06-17T19:40:00-04:00", 6},
		{"BA175", "outbound", 574, "2030-06-17T13:25:00+01:00", "2030-06-17T16:25:00-04:00", 7},
		{"BA117", "outbound", 612, "2030-06-17T08:20:00+01:00", "2030-06-17T11:30:00-04:00", 9},
	}
	if g := briefs(got.Results); !slices.Equal(g, want) {
		t.Errorf("results:\n got %+v\nwant %+v", g, want)
	}
	first := got.Results[0]
	if first.Airline != "British Airways" || first.AirlineCode != "BA" || first.Currency != "USD" ||
		first.CabinClass != "economy" || first.Stops != 0 || first.DurationMinutes != 475 ||
		first.Origin != "LHR" || first.Destination != "JFK" || first.PricePerPassenger != 538 {
		t.Errorf("first result = %+v", first)
	}
	if got.Action != "search" || got.Passengers != 1 || got.CabinClass != "economy" || got.Currency != "USD" ||
		got.Origin != "LHR" || got.Destination != "JFK" || got.DepartureDate != "2030-06-17" || got.ReturnDate != "" {
		t.Errorf("echoed search = %+v", got)
	}
}

func TestSearchPricing(t *testing.T) {
	tests := []struct {
		name       string
		params     searchParams
		currency   string // configured currency
		wantEach   float64
		wantTotal  float64
		wantCurrcy string
	}{
		{"monday base fare", searchParams{DepartureDate: "2030-06-17"}, "USD", 538, 538, "USD"},
		// Friday fares are 12% higher: 538 × 1.12 = 602.56.
		{"friday surcharge", searchParams{DepartureDate: "2030-06-14"}, "USD", 602.56, 602.56, "USD"},
		{"total for passengers", searchParams{DepartureDate: "2030-06-17", Passengers: passengers(3)}, "USD", 538, 1614, "USD"},
		{"integral float passengers", searchParams{DepartureDate: "2030-06-17", Passengers: passengers(2.0)}, "USD", 538, 1076, "USD"},
		// 538 × 0.92 = 494.96 per passenger.
		{"euros from request", searchParams{DepartureDate: "2030-06-17", Passengers: passengers(2), Currency: "EUR"}, "USD", 494.96, 989.92, "EUR"},
		{"euros from config", searchParams{DepartureDate: "2030-06-17"}, "EUR", 494.96, 494.96, "EUR"},
		{"request overrides config", searchParams{DepartureDate: "2030-06-17", Currency: "USD"}, "EUR", 538, 538, "USD"},
		// Yen have no minor unit: 538 × 150 = 80700.
		{"yen", searchParams{DepartureDate: "2030-06-17", Currency: "JPY"}, "USD", 80700, 80700, "JPY"},
		// 602.56 × 3.7 = 2229.472, rounded to 2229.47.
		{"shekels rounded", searchParams{DepartureDate: "2030-06-14", Currency: "ILS"}, "USD", 2229.47, 2229.47, "ILS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSearcher(t, testNow)
			s.currency = tt.currency
			p := tt.params
			p.Origin, p.Destination = "LHR", "JFK"
			got, err := s.search(context.Background(), p, noProgress)
			if err != nil {
				t.Fatalf("search: %v", err)
			}
			var r *flightResult
			for i := range got.Results {
				if got.Results[i].FlightNumber == "BA113" {
					r = &got.Results[i]
				}
			}
			if r == nil {
				t.Fatalf("BA113 missing from %+v", briefs(got.Results))
			}
			if r.PricePerPassenger != tt.wantEach || r.Price != tt.wantTotal || r.Currency != tt.wantCurrcy || got.Currency != tt.wantCurrcy {
				t.Errorf("BA113 priced %v each, %v total in %s (response %s); want %v, %v in %s",
					r.PricePerPassenger, r.Price, r.Currency, got.Currency, tt.wantEach, tt.wantTotal, tt.wantCurrcy)
			}
		})
	}
}

func TestSearchTimeZones(t *testing.T) {
	tests := []struct {
		name              string
		origin, dest      string
		date, cabin       string
		flight            string
		wantDep, wantArr  string
		wantStops         int
		wantDurationInMin int
	}{
		{"london winter to new york", "LHR", "JFK", "2030-01-14", "economy", "BA117",
			"2030-01-14T08:20:00+00:00", "2030-01-14T11:30:00-05:00", 0, 490},
		{"sydney summer arrives earlier by the clock", "SYD", "LAX", "2030-01-14", "business", "QF11",
			"2030-01-14T09:50:00+11:00", "2030-01-14T04:40:00-08:00", 0, 830},
		{"sydney winter", "SYD", "LAX", "2030-07-15", "economy", "QF11",
			"2030-07-15T09:50:00+10:00", "2030-07-15T06:40:00-07:00", 0, 830},
		{"arrives as europe springs forward", "JFK", "LHR", "2030-03-30", "economy", "DL1",
			"2030-03-30T22:10:00-04:00", "2030-03-31T10:00:00+01:00", 0, 410},
		{"half-hour offset", "DEL", "LHR", "2030-06-17", "economy", "AI111",
			"2030-06-17T14:10:00+05:30", "2030-06-17T19:40:00+01:00", 0, 600},
		{"across the date line", "AKL", "LAX", "2030-07-15", "economy", "NZ5",
			"2030-07-15T19:30:00+12:00", "2030-07-15T12:40:00-07:00", 0, 730},
		{"overnight with a stop", "SYD", "LHR", "2030-06-17", "economy", "QF1",
			"2030-06-17T16:15:00+10:00", "2030-06-18T07:00:00+01:00", 1, 1425},
		{"no daylight saving in brazil", "LHR", "GRU", "2030-06-17", "economy", "LA8085",
			"2030-06-17T21:45:00+01:00", "2030-06-18T05:35:00-03:00", 0, 710},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSearcher(t, time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC))
			got, err := s.search(context.Background(), searchParams{
				Origin: tt.origin, Destination: tt.dest, DepartureDate: tt.date, CabinClass: tt.cabin,
			}, noProgress)
			if err != nil {
				t.Fatalf("search: %v", err)
			}
			i := slices.IndexFunc(got.Results, func(r flightResult) bool { return r.FlightNumber == tt.flight })
			if i < 0 {
				t.Fatalf("%s missing from %+v", tt.flight, briefs(got.Results))
			}
			r := got.Results[i]
			if r.DepartureTime != tt.wantDep || r.ArrivalTime != tt.wantArr {
				t.Errorf("%s departs %s, arrives %s; want %s, %s", tt.flight, r.DepartureTime, r.ArrivalTime, tt.wantDep, tt.wantArr)
			}
			if r.Stops != tt.wantStops || len(r.Via) != tt.wantStops || r.DurationMinutes != tt.wantDurationInMin {
				t.Errorf("%s stops %d via %v in %d minutes; want %d stops in %d", tt.flight, r.Stops, r.Via, r.DurationMinutes, tt.wantStops, tt.wantDurationInMin)
			}
			dep, err1 := time.Parse(time.RFC3339, r.DepartureTime)
			arr, err2 := time.Parse(time.RFC3339, r.ArrivalTime)
			if err1 != nil || err2 != nil {
				t.Fatalf("times are not RFC 3339: %v, %v", err1, err2)
			}
			if d := arr.Sub(dep); d != time.Duration(r.DurationMinutes)*time.Minute {
				t.Errorf("arrival - departure = %v, want %d minutes", d, r.DurationMinutes)
			}
		})
	}
}

func TestSearchReturn(t *testing.T) {
	s := newTestSearcher(t, testNow)
	got, err := s.search(context.Background(), searchParams{
		Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17", ReturnDate: "2030-06-24",
	}, noProgress)
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	want := []brief{
		{"BA113", "outbound", 538, "2030-06-17T18:30:00+01:00", "2030-06-17T21:25:00-04:00", 7},
		{"DL4", "outbound", 556, "2030-06-17T16:40:00+01:00", "2030-06-17T19:40:00-04:00", 6},
		{"BA175", "outbound", 574, "2030-06-17T13:25:00+01:00", "2030-06-17T16:25:00-04:00", 7},
		{"BA117", "outbound", 612, "2030-06-17T08:20:00+01:00", "2030-06-17T11:30:00-04:00", 9},
		{"DL1", "return", 521, "2030-06-24T22:10:00-04:00", "2030-06-25T10:00:00+01:00", 3},
		{"BA178", "return", 543, "2030-06-24T08:15:00-04:00", "2030-06-24T20:10:00+01:00", 9},
		{"AA100", "return", 579, "2030-06-24T18:15:00-04:00", "2030-06-25T06:15:00+01:00", 9},
		{"BA112", "return", 598, "2030-06-24T18:30:00-04:00", "2030-06-25T06:30:00+01:00", 6},
	}
	if g := briefs(got.Results); !slices.Equal(g, want) {
		t.Errorf("results:\n got %+v\nwant %+v", g, want)
	}
	if got.ReturnDate != "2030-06-24" {
		t.Errorf("return_date = %q, want 2030-06-24", got.ReturnDate)
	}
}

func TestSearchFilters(t *testing.T) {
	tests := []struct {
		name   string
		now    time.Time
		params searchParams
		max    int
		want   []string // flight numbers in order
	}{
		{"first class only where offered", testNow,
			searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17", CabinClass: "first"},
			20, []string{"AA101", "BA175"}}, // BA117 is sold out, BA113 and DL4 have no first
		{"business", testNow,
			searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17", CabinClass: "business"},
			20, []string{"DL4", "BA113", "AA101", "BA175", "BA117"}},
		{"seats for the whole party", testNow,
			searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17", Passengers: passengers(7)},
			20, []string{"BA113", "BA175", "BA117"}},
		{"nine passengers", testNow,
			searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17", Passengers: passengers(9)},
			20, []string{"BA117"}},
		{"flies on a monday", testNow, // MS985 flies Monday, Wednesday, Friday and Sunday
			searchParams{Origin: "CAI", Destination: "JFK", DepartureDate: "2030-06-17"},
			20, []string{"MS985"}},
		{"does not fly on a tuesday", testNow,
			searchParams{Origin: "CAI", Destination: "JFK", DepartureDate: "2030-06-18"},
			20, nil},
		{"flights that left today are gone", time.Date(2030, time.June, 17, 10, 0, 0, 0, time.UTC), // 11:00 in London
			searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17"},
			20, []string{"BA113", "DL4", "BA175"}},
		{"max results", testNow,
			searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17"},
			2, []string{"BA113", "DL4"}},
		{"max results per direction", testNow,
			searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17", ReturnDate: "2030-06-24"},
			1, []string{"BA113", "DL1"}},
		{"same-day return", testNow,
			searchParams{Origin: "SYD", Destination: "MEL", DepartureDate: "2030-06-17", ReturnDate: "2030-06-17", CabinClass: "business"},
			20, []string{"QF409", "QF401", "QF433", "QF400", "QF430"}},
		{"no route", testNow,
			searchParams{Origin: "AKL", Destination: "CAI", DepartureDate: "2030-06-17"},
			20, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSearcher(t, tt.now)
			s.maxResults = tt.max
			got, err := s.search(context.Background(), tt.params, noProgress)
			if err != nil {
				t.Fatalf("search: %v", err)
			}
			if got.Results == nil {
				t.Fatal("results is nil, want an empty list at least")
			}
			var flights []string
			for _, r := range got.Results {
				flights = append(flights, r.FlightNumber)
				if r.SeatsAvailable < got.Passengers {
					t.Errorf("%s has %d seats for %d passengers", r.FlightNumber, r.SeatsAvailable, got.Passengers)
				}
			}
			if !slices.Equal(flights, tt.want) {
				t.Errorf("flights = %v, want %v", flights, tt.want)
			}
		})
	}
}

func TestSearchErrors(t *testing.T) {
	tests := []struct {
		name      string
		now       time.Time
		currency  string
		params    searchParams
		wantCode  protocol.ErrorCode
		wantField string // the message starts with it
	}{
		{"book", testNow, "USD", searchParams{Action: "book"}, protocol.CodeUnsupportedOperation, "action"},
		{"cancel", testNow, "USD", searchParams{Action: "cancel"}, protocol.CodeUnsupportedOperation, "action"},
		{"unknown action", testNow, "USD", searchParams{Action: "refund"}, protocol.CodeInvalidParameter, "action"},
		{"missing origin", testNow, "USD", searchParams{Destination: "JFK", DepartureDate: "2030-06-17"}, protocol.CodeMissingParameter, "origin"},
		{"missing destination", testNow, "USD", searchParams{Origin: "LHR", DepartureDate: "2030-06-17"}, protocol.CodeMissingParameter, "destination"},
		{"unknown origin", testNow, "USD", searchParams{Origin: "XXX", Destination: "JFK", DepartureDate: "2030-06-17"}, protocol.CodeInvalidParameter, "origin"},
		{"unknown destination", testNow, "USD", searchParams{Origin: "LHR", Destination: "ZZZ", DepartureDate: "2030-06-17"}, protocol.CodeInvalidParameter, "destination"},
		{"lower-case origin", testNow, "USD", searchParams{Origin: "lhr", Destination: "JFK", DepartureDate: "2030-06-17"}, protocol.CodeInvalidParameter, "origin"},
		{"four-letter destination", testNow, "USD", searchParams{Origin: "LHR", Destination: "KJFK", DepartureDate: "2030-06-17"}, protocol.CodeInvalidParameter, "destination"},
		{"same airports", testNow, "USD", searchParams{Origin: "LHR", Destination: "LHR", DepartureDate: "2030-06-17"}, protocol.CodeInvalidParameter, "destination"},
		{"missing date", testNow, "USD", searchParams{Origin: "LHR", Destination: "JFK"}, protocol.CodeMissingParameter, "departure_date"},
		{"bad date", testNow, "USD", searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "17/06/2030"}, protocol.CodeInvalidParameter, "departure_date"},
		{"impossible date", testNow, "USD", searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-02-30"}, protocol.CodeInvalidParameter, "departure_date"},
		{"past date", testNow, "USD", searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-05-31"}, protocol.CodeInvalidParameter, "departure_date"},
		// At 03:00 UTC it is already 17 June in Sydney.
		{"past in the origin's zone", time.Date(2030, time.June, 17, 3, 0, 0, 0, time.UTC), "USD",
			searchParams{Origin: "SYD", Destination: "LAX", DepartureDate: "2030-06-16"}, protocol.CodeInvalidParameter, "departure_date"},
		{"bad return date", testNow, "USD", searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17", ReturnDate: "soon"}, protocol.CodeInvalidParameter, "return_date"},
		{"return before departure", testNow, "USD", searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17", ReturnDate: "2030-06-16"}, protocol.CodeInvalidParameter, "return_date"},
		{"no passengers", testNow, "USD", searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17", Passengers: passengers(0)}, protocol.CodeInvalidParameter, "passengers"},
		{"ten passengers", testNow, "USD", searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17", Passengers: passengers(10)}, protocol.CodeInvalidParameter, "passengers"},
		{"half a passenger", testNow, "USD", searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17", Passengers: passengers(1.5)}, protocol.CodeInvalidParameter, "passengers"},
		{"unknown cabin", testNow, "USD", searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17", CabinClass: "premium"}, protocol.CodeInvalidParameter, "cabin_class"},
		{"unknown currency", testNow, "USD", searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17", Currency: "XYZ"}, protocol.CodeInvalidParameter, "currency"},
		{"unknown configured currency", testNow, "DOGE", searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17"}, protocol.CodeUnavailable, "config option currency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSearcher(t, tt.now)
			s.currency = tt.currency
			got, err := s.search(context.Background(), tt.params, noProgress)
			var serr *sdk.Error
			if !errors.As(err, &serr) {
				t.Fatalf("search = %+v, %v; want an *sdk.Error", got, err)
			}
			if serr.Code != tt.wantCode || !strings.HasPrefix(serr.Message, tt.wantField+": ") {
				t.Errorf("error = %s %q; want code %s naming %s", serr.Code, serr.Message, tt.wantCode, tt.wantField)
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
	s := newTestSearcher(t, testNow)
	var fractions []float64
	var messages []string
	_, err := s.search(context.Background(), searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17"},
		func(f float64, msg string) {
			fractions = append(fractions, f)
			messages = append(messages, msg)
		})
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	if want := []float64{0.1, 0.5, 0.9}; !slices.Equal(fractions, want) {
		t.Errorf("progress fractions = %v, want %v", fractions, want)
	}
	for _, m := range messages {
		if m == "" {
			t.Error("progress without a message")
		}
	}
}

func TestSearchCancelled(t *testing.T) {
	s := newTestSearcher(t, testNow)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := s.search(ctx, searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17"}, noProgress)
	if !errors.Is(err, context.Canceled) || got != nil {
		t.Errorf("search = %v, %v; want context.Canceled", got, err)
	}
}

func BenchmarkSearch(b *testing.B) {
	s := newTestSearcher(b, testNow)
	p := searchParams{Origin: "LHR", Destination: "JFK", DepartureDate: "2030-06-17", ReturnDate: "2030-06-24", Passengers: passengers(2), Currency: "EUR"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.search(ctx, p, noProgress); err != nil {
			b.Fatal(err)
		}
	}
}
