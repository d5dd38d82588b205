package main

import (
	"cmp"
	"context"
	"math"
	"slices"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Actions of the flight-search schema. Only search is served.
const (
	actionSearch = "search"
	actionBook   = "book"
	actionCancel = "cancel"
)

// Directions of a result: the outbound leg, or the leg back when the
// request has a return_date.
const (
	directionOutbound = "outbound"
	directionReturn   = "return"
)

// Limits of a search.
const (
	minPassengers = 1
	maxPassengers = 9
	// maxSeatsShown is the most seats a result reports, as reservation
	// systems show "9" for "9 or more".
	maxSeatsShown = 9
	// dateLayout is the schema's "date" format (RFC 3339 full-date).
	dateLayout = "2006-01-02"
	// timeLayout is RFC 3339 with the zone always written as an offset,
	// so that a local time in a zone at UTC+0 reads "+00:00", not "Z".
	timeLayout = "2006-01-02T15:04:05-07:00"
)

// dayFactor scales base fares by the weekday of the local departure date:
// Fridays and Sundays cost more, midweek less.
var dayFactor = [7]float64{
	time.Sunday:    1.10,
	time.Monday:    1.00,
	time.Tuesday:   0.95,
	time.Wednesday: 0.93,
	time.Thursday:  0.97,
	time.Friday:    1.12,
	time.Saturday:  1.04,
}

// searchParams are the REQUEST parameters: the fields of the
// agentmesh/travel/flight-search/v1 schema, plus currency, an extension
// member that overrides the configured currency for one request.
type searchParams struct {
	Action        string `json:"action"`
	Origin        string `json:"origin"`
	Destination   string `json:"destination"`
	DepartureDate string `json:"departure_date"`
	ReturnDate    string `json:"return_date"`
	// Passengers is a number so that 2.0, which the schema counts as an
	// integer, is accepted; nil means 1.
	Passengers *float64 `json:"passengers"`
	CabinClass string   `json:"cabin_class"`
	Currency   string   `json:"currency"`
}

// searchResponse is the RESPONSE results object. It echoes the search,
// with defaults applied, beside the results, so that it too validates
// against the flight-search schema.
type searchResponse struct {
	Action        string `json:"action"`
	Origin        string `json:"origin"`
	Destination   string `json:"destination"`
	DepartureDate string `json:"departure_date"`
	ReturnDate    string `json:"return_date,omitempty"`
	Passengers    int    `json:"passengers"`
	CabinClass    string `json:"cabin_class"`
	Currency      string `json:"currency"`
	// Results lists outbound flights, then return flights; each group is
	// sorted by price, then departure time, then flight number, and holds
	// at most the configured max_results.
	Results []flightResult `json:"results"`
}

// flightResult is one item of results. The first six members are the
// schema's; the others are extensions the schema allows.
type flightResult struct {
	FlightNumber string `json:"flight_number"`
	// Airline is the airline's name; AirlineCode its IATA code.
	Airline string `json:"airline"`
	// Price is the total for all passengers.
	Price    float64 `json:"price"`
	Currency string  `json:"currency"`
	// DepartureTime and ArrivalTime are local times at the airports, with
	// their UTC offsets.
	DepartureTime string `json:"departure_time"`
	ArrivalTime   string `json:"arrival_time"`

	AirlineCode       string   `json:"airline_code"`
	Origin            string   `json:"origin"`
	Destination       string   `json:"destination"`
	Direction         string   `json:"direction"`
	CabinClass        string   `json:"cabin_class"`
	PricePerPassenger float64  `json:"price_per_passenger"`
	DurationMinutes   int      `json:"duration_minutes"`
	Stops             int      `json:"stops"`
	Via               []string `json:"via,omitempty"`
	SeatsAvailable    int      `json:"seats_available"`

	// Sort keys.
	minor int64
	dep   time.Time
}

// progressFunc receives progress between 0 and 1 with a short message.
type progressFunc func(fraction float64, message string)

// searcher answers flight searches from a catalogue.
type searcher struct {
	cat *catalogue
	// now is the clock that dates are checked against.
	now func() time.Time
	// maxResults bounds each direction's results.
	maxResults int
	// currency is used when a request names none.
	currency string
}

// query is a checked request.
type query struct {
	origin, destination *airport
	departure           time.Time // civil date, at midnight UTC
	ret                 time.Time // zero without a return_date
	passengers          int
	cabin               string
	currency            *currency
}

// leg is a flight found on a date, before pricing.
type leg struct {
	r         *route
	date      time.Time // civil date of departure, at midnight UTC
	dateKey   string    // date as YYYY-MM-DD
	dep       time.Time
	direction string
}

// search runs one search. Its errors are *sdk.Error values carrying the
// ERROR code, or ctx's error.
func (s *searcher) search(ctx context.Context, p searchParams, progress progressFunc) (*searchResponse, error) {
	progress(0.1, "checking airports and dates")
	now := s.now()
	q, err := s.check(p, now)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	progress(0.5, "searching routes")
	legs := s.legs(q.origin, q.destination, q.departure, directionOutbound, now)
	if !q.ret.IsZero() {
		legs = append(legs, s.legs(q.destination, q.origin, q.ret, directionReturn, now)...)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	progress(0.9, "pricing fares")
	resp := &searchResponse{
		Action:        actionSearch,
		Origin:        q.origin.Code,
		Destination:   q.destination.Code,
		DepartureDate: q.departure.Format(dateLayout),
		Passengers:    q.passengers,
		CabinClass:    q.cabin,
		Currency:      q.currency.Code,
		Results:       make([]flightResult, 0, len(legs)),
	}
	if !q.ret.IsZero() {
		resp.ReturnDate = q.ret.Format(dateLayout)
	}
	for _, l := range legs {
		if res, ok := price(l, q); ok {
			resp.Results = append(resp.Results, res)
		}
	}
	slices.SortFunc(resp.Results, compareResults)
	resp.Results = s.truncate(resp.Results)
	return resp, nil
}

// check validates p against the catalogue and the time now and applies
// the defaults.
func (s *searcher) check(p searchParams, now time.Time) (*query, error) {
	switch p.Action {
	case "", actionSearch:
	case actionBook, actionCancel:
		return nil, paramError(protocol.CodeUnsupportedOperation, "action", "%s is not offered; this skill only searches", quote(p.Action))
	default:
		return nil, invalidParam("action", "%s is not search, book or cancel", quote(p.Action))
	}

	q := &query{passengers: 1, cabin: cabinEconomy}
	var err error
	if q.origin, err = s.airport("origin", p.Origin); err != nil {
		return nil, err
	}
	if q.destination, err = s.airport("destination", p.Destination); err != nil {
		return nil, err
	}
	if q.origin == q.destination {
		return nil, invalidParam("destination", "same airport as origin (%s)", p.Origin)
	}

	if p.DepartureDate == "" {
		return nil, missingParam("departure_date")
	}
	if q.departure, err = parseDate("departure_date", p.DepartureDate); err != nil {
		return nil, err
	}
	n := now.In(q.origin.loc)
	today := time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, time.UTC)
	if q.departure.Before(today) {
		return nil, invalidParam("departure_date", "%s is in the past (today is %s in %s)",
			p.DepartureDate, today.Format(dateLayout), q.origin.City)
	}
	if p.ReturnDate != "" {
		if q.ret, err = parseDate("return_date", p.ReturnDate); err != nil {
			return nil, err
		}
		if q.ret.Before(q.departure) {
			return nil, invalidParam("return_date", "%s is before departure_date %s", p.ReturnDate, p.DepartureDate)
		}
	}

	if p.Passengers != nil {
		v := *p.Passengers
		if v != math.Trunc(v) || v < minPassengers || v > maxPassengers {
			return nil, invalidParam("passengers", "must be a whole number from %d to %d", minPassengers, maxPassengers)
		}
		q.passengers = int(v)
	}

	switch p.CabinClass {
	case "":
	case cabinEconomy, cabinBusiness, cabinFirst:
		q.cabin = p.CabinClass
	default:
		return nil, invalidParam("cabin_class", "%s is not economy, business or first", quote(p.CabinClass))
	}

	switch {
	case p.Currency != "":
		if q.currency = s.cat.currencies[p.Currency]; q.currency == nil {
			return nil, invalidParam("currency", "unknown currency %s; known: %s", quote(p.Currency), joinCodes(s.cat.currencyCodes()))
		}
	default:
		if q.currency = s.cat.currencies[s.currency]; q.currency == nil {
			return nil, configError("currency", "unknown currency %s", quote(s.currency))
		}
	}
	return q, nil
}

// airport finds the airport of an origin or destination field.
func (s *searcher) airport(field, code string) (*airport, error) {
	if code == "" {
		return nil, missingParam(field)
	}
	if !airportCode.MatchString(code) {
		return nil, invalidParam(field, "%s is not a three-letter IATA airport code in capitals", quote(code))
	}
	a := s.cat.airports[code]
	if a == nil {
		return nil, invalidParam(field, "unknown airport %s", code)
	}
	return a, nil
}

// parseDate parses a schema "date".
func parseDate(field, v string) (time.Time, error) {
	d, err := time.Parse(dateLayout, v)
	if err != nil {
		return time.Time{}, invalidParam(field, "%s is not a date of the form YYYY-MM-DD", quote(v))
	}
	return d, nil
}

// legs returns the flights from one airport to another that leave on the
// local date day and have not left by now.
func (s *searcher) legs(from, to *airport, day time.Time, direction string, now time.Time) []leg {
	var out []leg
	key := day.Format(dateLayout)
	for _, r := range s.cat.routes[[2]string{from.Code, to.Code}] {
		if !r.operatesOn(day.Weekday()) {
			continue
		}
		dep := time.Date(day.Year(), day.Month(), day.Day(), r.depHour, r.depMin, 0, 0, from.loc)
		if dep.Before(now) {
			continue
		}
		out = append(out, leg{r: r, date: day, dateKey: key, dep: dep, direction: direction})
	}
	return out
}

// price turns a leg into a result, or reports false when the flight has
// no such cabin or too few seats left in it.
func price(l leg, q *query) (flightResult, bool) {
	fare, ok := l.r.Fares.forCabin(q.cabin)
	if !ok {
		return flightResult{}, false
	}
	seats := seatsLeft(l.r.Flight, l.dateKey, q.cabin)
	if seats < q.passengers {
		return flightResult{}, false
	}
	cents := int64(math.Round(float64(fare) * 100 * dayFactor[l.date.Weekday()]))
	each := q.currency.fromUSDCents(cents)
	total := each * int64(q.passengers)
	arr := l.dep.Add(time.Duration(l.r.Minutes) * time.Minute).In(l.r.to.loc)
	return flightResult{
		FlightNumber:      l.r.Flight,
		Airline:           l.r.airline.Name,
		Price:             q.currency.amount(total),
		Currency:          q.currency.Code,
		DepartureTime:     l.dep.Format(timeLayout),
		ArrivalTime:       arr.Format(timeLayout),
		AirlineCode:       l.r.airline.Code,
		Origin:            l.r.From,
		Destination:       l.r.To,
		Direction:         l.direction,
		CabinClass:        q.cabin,
		PricePerPassenger: q.currency.amount(each),
		DurationMinutes:   l.r.Minutes,
		Stops:             len(l.r.Via),
		Via:               l.r.Via,
		SeatsAvailable:    seats,
		minor:             total,
		dep:               l.dep,
	}, true
}

// seatsLeft is the deterministic seat count of a flight on a date
// (YYYY-MM-DD) in a cabin, 0 to maxSeatsShown: a hash stands in for a
// reservation system, so the same search always gives the same answer.
// One flight in sixteen is sold out and seven in sixteen show the maximum.
func seatsLeft(flight, date, cabin string) int {
	// FNV-1a over the three strings, separated by zero bytes.
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	z := uint64(offset)
	for n, s := range [...]string{flight, date, cabin} {
		if n > 0 {
			z *= prime // a zero byte: the xor changes nothing
		}
		for i := range len(s) {
			z ^= uint64(s[i])
			z *= prime
		}
	}
	// FNV's low bits mix poorly; the SplitMix64 finaliser spreads them.
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return min(int(z%16), maxSeatsShown)
}

// compareResults orders outbound before return, then by price, departure
// instant and flight number.
func compareResults(a, b flightResult) int {
	if a.Direction != b.Direction {
		if a.Direction == directionOutbound {
			return -1
		}
		return 1
	}
	return cmp.Or(
		cmp.Compare(a.minor, b.minor),
		a.dep.Compare(b.dep),
		cmp.Compare(a.FlightNumber, b.FlightNumber),
	)
}

// truncate keeps at most maxResults results of each direction of sorted
// results.
func (s *searcher) truncate(results []flightResult) []flightResult {
	if s.maxResults <= 0 {
		return results
	}
	out := results[:0]
	var outbound, back int
	for _, r := range results {
		n := &outbound
		if r.Direction == directionReturn {
			n = &back
		}
		if *n < s.maxResults {
			*n++
			out = append(out, r)
		}
	}
	return out
}
