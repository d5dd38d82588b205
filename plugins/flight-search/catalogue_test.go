package main

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestEmbeddedCatalogue(t *testing.T) {
	cat, err := embeddedCatalogue()
	if err != nil {
		t.Fatalf("loadCatalogue: %v", err)
	}
	if got := len(cat.airports); got < 40 {
		t.Errorf("%d airports, want at least 40", got)
	}
	if got := len(cat.airlines); got < 25 {
		t.Errorf("%d airlines, want at least 25", got)
	}
	for _, code := range []string{"USD", "EUR", "GBP", "JPY", "CAD", "AUD", "CHF", "ILS"} {
		if cat.currencies[code] == nil {
			t.Errorf("currency %s missing", code)
		}
	}

	// Every airport and airline is used, and every airport can be left
	// and reached.
	departs, arrives, flies := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for key, routes := range cat.routes {
		departs[key[0]] = true
		arrives[key[1]] = true
		for _, r := range routes {
			flies[r.airline.Code] = true
		}
	}
	for code := range cat.airports {
		if !departs[code] || !arrives[code] {
			t.Errorf("airport %s: departures %v, arrivals %v", code, departs[code], arrives[code])
		}
	}
	for code := range cat.airlines {
		if !flies[code] {
			t.Errorf("airline %s has no flights", code)
		}
	}
}

// catalogueFiles is a small valid catalogue that cases below break one
// file at a time.
func catalogueFiles() map[string]string {
	return map[string]string{
		"data/airports.json": `[
			{"code": "LHR", "name": "London Heathrow Airport", "city": "London", "country": "GB", "timezone": "Europe/London"},
			{"code": "JFK", "name": "John F. Kennedy International Airport", "city": "New York", "country": "US", "timezone": "America/New_York"}]`,
		"data/airlines.json":   `[{"code": "BA", "name": "British Airways"}]`,
		"data/currencies.json": `[{"code": "USD", "name": "US dollar", "per_usd": 1, "minor_units": 2}]`,
		"data/routes.json": `[{"flight": "BA117", "from": "LHR", "to": "JFK", "departs": "08:20", "minutes": 490,
			"days": "1234567", "fares": {"economy": 612}}]`,
	}
}

func TestLoadCatalogue(t *testing.T) {
	tests := []struct {
		name    string
		file    string // replaced, or "" to load the valid catalogue
		content string
		wantErr string // a substring of the error; "" for success
	}{
		{"valid", "", "", ""},
		{"missing file", "data/routes.json", "", "routes.json"},
		{"not json", "data/airlines.json", `[{"code": "BA",`, "airlines.json"},
		{"unknown member", "data/airlines.json", `[{"code": "BA", "name": "British Airways", "alliance": "oneworld"}]`, "alliance"},
		{"trailing data", "data/airlines.json", `[{"code": "BA", "name": "British Airways"}] []`, "after the top-level value"},
		{"null airline", "data/airlines.json", `[null]`, "null entry"},
		{"bad airport code", "data/airports.json", `[{"code": "lhr", "name": "x", "city": "x", "country": "GB", "timezone": "Europe/London"}]`, `"lhr"`},
		{"unknown zone", "data/airports.json", `[{"code": "LHR", "name": "x", "city": "x", "country": "GB", "timezone": "Europe/Atlantis"}]`, "Europe/Atlantis"},
		{"local zone", "data/airports.json", `[{"code": "LHR", "name": "x", "city": "x", "country": "GB", "timezone": "Local"}]`, "time zone"},
		{"duplicate airport", "data/airports.json", `[
			{"code": "LHR", "name": "x", "city": "x", "country": "GB", "timezone": "Europe/London"},
			{"code": "LHR", "name": "x", "city": "x", "country": "GB", "timezone": "Europe/London"}]`, "twice"},
		{"no usd", "data/currencies.json", `[{"code": "EUR", "name": "Euro", "per_usd": 0.92, "minor_units": 2}]`, "USD is missing"},
		{"zero rate", "data/currencies.json", `[{"code": "USD", "name": "US dollar", "per_usd": 0, "minor_units": 2}]`, "per_usd"},
		{"unknown airline", "data/routes.json", `[{"flight": "XX1", "from": "LHR", "to": "JFK", "departs": "08:20", "minutes": 490, "days": "1", "fares": {"economy": 1}}]`, `airline "XX"`},
		{"bad flight number", "data/routes.json", `[{"flight": "BA0117", "from": "LHR", "to": "JFK", "departs": "08:20", "minutes": 490, "days": "1", "fares": {"economy": 1}}]`, "flight number"},
		{"duplicate flight", "data/routes.json", `[
			{"flight": "BA1", "from": "LHR", "to": "JFK", "departs": "08:20", "minutes": 490, "days": "1", "fares": {"economy": 1}},
			{"flight": "BA1", "from": "JFK", "to": "LHR", "departs": "08:20", "minutes": 490, "days": "1", "fares": {"economy": 1}}]`, "twice"},
		{"unknown origin", "data/routes.json", `[{"flight": "BA1", "from": "CDG", "to": "JFK", "departs": "08:20", "minutes": 490, "days": "1", "fares": {"economy": 1}}]`, `origin "CDG"`},
		{"unknown destination", "data/routes.json", `[{"flight": "BA1", "from": "LHR", "to": "CDG", "departs": "08:20", "minutes": 490, "days": "1", "fares": {"economy": 1}}]`, `destination "CDG"`},
		{"round trip to nowhere", "data/routes.json", `[{"flight": "BA1", "from": "LHR", "to": "LHR", "departs": "08:20", "minutes": 490, "days": "1", "fares": {"economy": 1}}]`, "same"},
		{"stop at the origin", "data/routes.json", `[{"flight": "BA1", "from": "LHR", "to": "JFK", "via": ["LHR"], "departs": "08:20", "minutes": 490, "days": "1", "fares": {"economy": 1}}]`, "stop"},
		{"bad time", "data/routes.json", `[{"flight": "BA1", "from": "LHR", "to": "JFK", "departs": "24:00", "minutes": 490, "days": "1", "fares": {"economy": 1}}]`, "HH:MM"},
		{"no duration", "data/routes.json", `[{"flight": "BA1", "from": "LHR", "to": "JFK", "departs": "08:20", "minutes": 0, "days": "1", "fares": {"economy": 1}}]`, "minutes"},
		{"no days", "data/routes.json", `[{"flight": "BA1", "from": "LHR", "to": "JFK", "departs": "08:20", "minutes": 490, "days": "", "fares": {"economy": 1}}]`, "days"},
		{"day eight", "data/routes.json", `[{"flight": "BA1", "from": "LHR", "to": "JFK", "departs": "08:20", "minutes": 490, "days": "78", "fares": {"economy": 1}}]`, "days"},
		{"days out of order", "data/routes.json", `[{"flight": "BA1", "from": "LHR", "to": "JFK", "departs": "08:20", "minutes": 490, "days": "31", "fares": {"economy": 1}}]`, "days"},
		{"no fares", "data/routes.json", `[{"flight": "BA1", "from": "LHR", "to": "JFK", "departs": "08:20", "minutes": 490, "days": "1", "fares": {}}]`, "fares"},
		{"negative fare", "data/routes.json", `[{"flight": "BA1", "from": "LHR", "to": "JFK", "departs": "08:20", "minutes": 490, "days": "1", "fares": {"economy": 10, "first": -1}}]`, "fares"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := catalogueFiles()
			if tt.file != "" {
				if tt.content == "" {
					delete(files, tt.file)
				} else {
					files[tt.file] = tt.content
				}
			}
			fsys := fstest.MapFS{}
			for name, content := range files {
				fsys[name] = &fstest.MapFile{Data: []byte(content)}
			}
			cat, err := loadCatalogue(fsys)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("loadCatalogue: %v", err)
				}
				if cat.nRoutes != 1 || len(cat.routes[[2]string{"LHR", "JFK"}]) != 1 {
					t.Errorf("catalogue routes = %v", cat.routes)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("loadCatalogue error = %v, want one mentioning %q", err, tt.wantErr)
			}
			if cat != nil {
				t.Error("catalogue returned with an error")
			}
		})
	}
}

func TestRouteWeekdays(t *testing.T) {
	tests := []struct {
		days string
		want [7]bool // Sunday first, as time.Weekday
	}{
		{"1234567", [7]bool{true, true, true, true, true, true, true}},
		{"12345", [7]bool{false, true, true, true, true, true, false}},
		{"7", [7]bool{true, false, false, false, false, false, false}},
		{"1357", [7]bool{true, true, false, true, false, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.days, func(t *testing.T) {
			files := catalogueFiles()
			files["data/routes.json"] = `[{"flight": "BA1", "from": "LHR", "to": "JFK", "departs": "08:20", "minutes": 490, "days": "` + tt.days + `", "fares": {"economy": 1}}]`
			fsys := fstest.MapFS{}
			for name, content := range files {
				fsys[name] = &fstest.MapFile{Data: []byte(content)}
			}
			cat, err := loadCatalogue(fsys)
			if err != nil {
				t.Fatalf("loadCatalogue: %v", err)
			}
			if got := cat.routes[[2]string{"LHR", "JFK"}][0].weekdays; got != tt.want {
				t.Errorf("weekdays = %v, want %v", got, tt.want)
			}
		})
	}
}
