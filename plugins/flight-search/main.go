// Command flight-search is the AgentMesh skill that answers
// travel/flights/search REQUESTs (schema agentmesh/travel/flight-search/v1)
// from an offline catalogue it carries: 41 airports by IATA code with
// their time zones, 31 airlines, and some 230 scheduled flights with
// fares per cabin. It needs no network and no host service. The host
// starts it as a plugin; run alone, it says so and exits.
//
// # Requests
//
// Every member of the schema is honoured:
//
//   - action: "search" (the default). "book" and "cancel" are answered
//     with ERROR unsupported_operation.
//   - origin and destination: IATA airport codes the catalogue knows
//     (ERROR invalid_parameter otherwise, or when they are the same;
//     missing_parameter when absent).
//   - departure_date: required, YYYY-MM-DD, the local date at the origin;
//     a date before today in the origin's time zone is invalid_parameter.
//     Flights of that day that have already left are not listed.
//   - return_date: optional, not before departure_date. The flights back
//     from destination to origin on that date follow the outbound ones in
//     results, marked "direction": "return"; any outbound flight may be
//     combined with any return flight.
//   - passengers: 1 to 9, default 1. A flight is listed only when its
//     cabin has a seat for everyone.
//   - cabin_class: economy (the default), business or first. Flights
//     without that cabin are not listed.
//
// An extension member, currency, prices one request in another currency
// than the configured one. A route the catalogue does not fly gives a
// RESPONSE with empty results, not an ERROR.
//
// # Results
//
// The RESPONSE results are an object that echoes the search (with its
// defaults) and holds results, whose items carry the schema's
// flight_number, airline (the airline's name), price, currency,
// departure_time and arrival_time, plus airline_code, origin, destination,
// direction, cabin_class, price_per_passenger, duration_minutes, stops,
// via and seats_available. price is the total for all passengers;
// price_per_passenger is the fare of one. Times are RFC 3339 local times
// at each airport with that airport's UTC offset on that date (the zone
// database is built in, so results do not depend on the machine). Results
// list outbound flights before return flights, each group by price, then
// departure time, then flight number, and each group holds at most the
// max_results option's number of flights.
//
// Fares depend on the route, cabin and weekday (Fridays and Sundays cost
// more); seat counts come from a hash of flight, date and cabin. Both are
// deterministic: the same search always gives the same answer. Exchange
// rates are fixed and illustrative only.
package main

import (
	"context"
	_ "embed"
	"os"
	"time"

	"github.com/agentmesh/agentmesh-go/sdk"
)

//go:embed skill.json
var manifest []byte

// intent is the intent the skill serves.
const intent = "travel/flights/search"

// Bounds of the max_results option, as skill.json declares them.
const (
	defaultMaxResults = 20
	maxMaxResults     = 100
)

func main() {
	os.Exit(newSkill(time.Now).Main())
}

// newSkill returns the skill, checking dates against the clock now.
func newSkill(now func() time.Time) *sdk.Skill {
	cat, err := loadCatalogue(data)
	if err != nil {
		// The catalogue is built in: a bad one is a mistake the tests catch.
		panic("flight-search: " + err.Error())
	}
	s := sdk.New(manifest)
	sdk.Handle(s, intent, func(ctx context.Context, req *sdk.Request[searchParams]) (*searchResponse, error) {
		sr := searcher{
			cat:        cat,
			now:        now,
			maxResults: clampMaxResults(s.Config().Int("max_results")),
			currency:   s.Config().String("currency"),
		}
		resp, err := sr.search(ctx, req.Params, req.Progress)
		if err != nil {
			return nil, err
		}
		sdk.Logger(ctx).Debug("flights found", "results", len(resp.Results))
		return resp, nil
	})
	return s
}

// clampMaxResults keeps a configured max_results within the bounds
// skill.json declares, should a host send a value outside them.
func clampMaxResults(n int64) int {
	switch {
	case n < 1:
		return defaultMaxResults
	case n > maxMaxResults:
		return maxMaxResults
	}
	return int(n)
}
