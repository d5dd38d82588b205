package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // the skill carries its own zone database
)

// data holds the offline catalogue: airports.json, airlines.json,
// routes.json and currencies.json.
//
//go:embed data/*.json
var data embed.FS

// Cabin classes of the flight-search schema.
const (
	cabinEconomy  = "economy"
	cabinBusiness = "business"
	cabinFirst    = "first"
)

// airport is one entry of data/airports.json.
type airport struct {
	Code     string `json:"code"`
	Name     string `json:"name"`
	City     string `json:"city"`
	Country  string `json:"country"`
	Timezone string `json:"timezone"`

	loc *time.Location
}

// airline is one entry of data/airlines.json.
type airline struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

// fares holds a route's one-way base fares per passenger, in whole US
// dollars. A zero fare means the cabin is not offered on that flight.
type fares struct {
	Economy  int `json:"economy"`
	Business int `json:"business"`
	First    int `json:"first"`
}

// forCabin returns the fare of cabin, and false when the flight has no
// such cabin.
func (f fares) forCabin(cabin string) (int, bool) {
	var v int
	switch cabin {
	case cabinEconomy:
		v = f.Economy
	case cabinBusiness:
		v = f.Business
	case cabinFirst:
		v = f.First
	}
	return v, v > 0
}

// route is one scheduled flight of data/routes.json: a flight number
// flown between two airports at the same local time on some days of the
// week.
type route struct {
	Flight string `json:"flight"`
	From   string `json:"from"`
	To     string `json:"to"`
	// Via lists intermediate stops; the flight keeps its number.
	Via []string `json:"via"`
	// Departs is the local departure time at From, "HH:MM".
	Departs string `json:"departs"`
	// Minutes is the scheduled elapsed time, stops included.
	Minutes int `json:"minutes"`
	// Days lists the ISO weekdays of operation (1 Monday … 7 Sunday) of
	// the local departure date, e.g. "1357".
	Days  string `json:"days"`
	Fares fares  `json:"fares"`

	airline  *airline
	from, to *airport
	depHour  int
	depMin   int
	weekdays [7]bool // indexed by time.Weekday
}

// operatesOn reports whether the flight departs on local date day.
func (r *route) operatesOn(day time.Weekday) bool { return r.weekdays[day] }

// currency is one entry of data/currencies.json. Rates are fixed and
// illustrative only: they let results be priced in the caller's currency
// without a network, not track any market.
type currency struct {
	Code string `json:"code"`
	Name string `json:"name"`
	// PerUSD is how many units of the currency one US dollar buys.
	PerUSD float64 `json:"per_usd"`
	// MinorUnits is the number of decimals of the currency (ISO 4217).
	MinorUnits int `json:"minor_units"`
}

// catalogue is the parsed, cross-checked offline catalogue.
type catalogue struct {
	airports   map[string]*airport
	airlines   map[string]*airline
	currencies map[string]*currency
	// routes maps origin and destination codes to the flights between
	// them, in file order.
	routes map[[2]string][]*route
	// nRoutes counts all routes.
	nRoutes int
}

var (
	airportCode  = regexp.MustCompile(`^[A-Z]{3}$`)
	airlineCode  = regexp.MustCompile(`^[A-Z0-9]{2}$`)
	flightNumber = regexp.MustCompile(`^[A-Z0-9]{2}[1-9][0-9]{0,3}$`)
	currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)
	clockTime    = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	weekdayList  = regexp.MustCompile(`^1?2?3?4?5?6?7?$`)
)

// loadCatalogue reads and checks the catalogue files in fsys.
func loadCatalogue(fsys fs.FS) (*catalogue, error) {
	c := &catalogue{
		airports:   make(map[string]*airport),
		airlines:   make(map[string]*airline),
		currencies: make(map[string]*currency),
		routes:     make(map[[2]string][]*route),
	}

	var airports []*airport
	if err := decodeFile(fsys, "data/airports.json", &airports); err != nil {
		return nil, err
	}
	for i, a := range airports {
		if err := c.addAirport(a); err != nil {
			return nil, fmt.Errorf("data/airports.json: entry %d: %w", i, err)
		}
	}

	var airlines []*airline
	if err := decodeFile(fsys, "data/airlines.json", &airlines); err != nil {
		return nil, err
	}
	for i, a := range airlines {
		if err := c.addAirline(a); err != nil {
			return nil, fmt.Errorf("data/airlines.json: entry %d: %w", i, err)
		}
	}

	var currencies []*currency
	if err := decodeFile(fsys, "data/currencies.json", &currencies); err != nil {
		return nil, err
	}
	for i, cur := range currencies {
		if err := c.addCurrency(cur); err != nil {
			return nil, fmt.Errorf("data/currencies.json: entry %d: %w", i, err)
		}
	}
	if _, ok := c.currencies["USD"]; !ok {
		return nil, errors.New("data/currencies.json: USD is missing")
	}

	var routes []*route
	if err := decodeFile(fsys, "data/routes.json", &routes); err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(routes))
	for i, r := range routes {
		if seen[r.Flight] {
			return nil, fmt.Errorf("data/routes.json: entry %d: flight %q listed twice", i, r.Flight)
		}
		seen[r.Flight] = true
		if err := c.addRoute(r); err != nil {
			return nil, fmt.Errorf("data/routes.json: entry %d (%s): %w", i, r.Flight, err)
		}
	}
	return c, nil
}

// decodeFile strictly decodes the JSON file name of fsys into v.
func decodeFile(fsys fs.FS, name string, v any) error {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return fmt.Errorf("reading catalogue: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if dec.More() {
		return fmt.Errorf("%s: data after the top-level value", name)
	}
	return nil
}

func (c *catalogue) addAirport(a *airport) error {
	if a == nil {
		return errors.New("null entry")
	}
	if !airportCode.MatchString(a.Code) {
		return fmt.Errorf("code %q is not three capital letters", a.Code)
	}
	if _, dup := c.airports[a.Code]; dup {
		return fmt.Errorf("airport %s listed twice", a.Code)
	}
	if a.Name == "" || a.City == "" || len(a.Country) != 2 {
		return fmt.Errorf("airport %s: name, city and two-letter country are required", a.Code)
	}
	loc, err := time.LoadLocation(a.Timezone)
	if err != nil || a.Timezone == "" || a.Timezone == "Local" {
		return fmt.Errorf("airport %s: unknown time zone %q", a.Code, a.Timezone)
	}
	a.loc = loc
	c.airports[a.Code] = a
	return nil
}

func (c *catalogue) addAirline(a *airline) error {
	if a == nil {
		return errors.New("null entry")
	}
	if !airlineCode.MatchString(a.Code) {
		return fmt.Errorf("code %q is not a two-character IATA airline code", a.Code)
	}
	if _, dup := c.airlines[a.Code]; dup {
		return fmt.Errorf("airline %s listed twice", a.Code)
	}
	if a.Name == "" {
		return fmt.Errorf("airline %s: name is required", a.Code)
	}
	c.airlines[a.Code] = a
	return nil
}

func (c *catalogue) addCurrency(cur *currency) error {
	if cur == nil {
		return errors.New("null entry")
	}
	if !currencyCode.MatchString(cur.Code) {
		return fmt.Errorf("code %q is not three capital letters", cur.Code)
	}
	if _, dup := c.currencies[cur.Code]; dup {
		return fmt.Errorf("currency %s listed twice", cur.Code)
	}
	if !(cur.PerUSD > 0) || cur.MinorUnits < 0 || cur.MinorUnits > 3 {
		return fmt.Errorf("currency %s: per_usd must be positive and minor_units 0 to 3", cur.Code)
	}
	c.currencies[cur.Code] = cur
	return nil
}

func (c *catalogue) addRoute(r *route) error {
	if r == nil {
		return errors.New("null entry")
	}
	if !flightNumber.MatchString(r.Flight) {
		return fmt.Errorf("flight number %q is not an airline code and 1 to 4 digits", r.Flight)
	}
	r.airline = c.airlines[r.Flight[:2]]
	if r.airline == nil {
		return fmt.Errorf("unknown airline %q", r.Flight[:2])
	}
	if r.from = c.airports[r.From]; r.from == nil {
		return fmt.Errorf("unknown origin %q", r.From)
	}
	if r.to = c.airports[r.To]; r.to == nil {
		return fmt.Errorf("unknown destination %q", r.To)
	}
	if r.From == r.To {
		return errors.New("origin and destination are the same")
	}
	for _, v := range r.Via {
		if c.airports[v] == nil || v == r.From || v == r.To {
			return fmt.Errorf("bad stop %q", v)
		}
	}
	if !clockTime.MatchString(r.Departs) {
		return fmt.Errorf("departs %q is not HH:MM", r.Departs)
	}
	r.depHour = int(r.Departs[0]-'0')*10 + int(r.Departs[1]-'0')
	r.depMin = int(r.Departs[3]-'0')*10 + int(r.Departs[4]-'0')
	if r.Minutes <= 0 || r.Minutes > 36*60 {
		return fmt.Errorf("minutes %d out of range", r.Minutes)
	}
	if r.Days == "" || !weekdayList.MatchString(r.Days) {
		return fmt.Errorf("days %q is not ascending ISO weekdays 1 to 7", r.Days)
	}
	for _, d := range r.Days {
		r.weekdays[time.Weekday((d-'0')%7)] = true // ISO 7 is Sunday, time.Weekday 0
	}
	f := r.Fares
	if f.Economy < 0 || f.Business < 0 || f.First < 0 || f.Economy+f.Business+f.First == 0 {
		return errors.New("fares must be positive for at least one cabin and never negative")
	}
	key := [2]string{r.From, r.To}
	c.routes[key] = append(c.routes[key], r)
	c.nRoutes++
	return nil
}

// currencyCodes returns the known currency codes, sorted.
func (c *catalogue) currencyCodes() []string {
	codes := make([]string, 0, len(c.currencies))
	for code := range c.currencies {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	return codes
}

// joinCodes lists codes for an error message.
func joinCodes(codes []string) string { return strings.Join(codes, ", ") }
