package main

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestEmbeddedCatalogue(t *testing.T) {
	cat, err := embeddedCatalogue()
	if err != nil {
		t.Fatalf("loadCatalogue: %v", err)
	}
	if got := len(cat.products); got < 120 {
		t.Errorf("%d products, want at least 120", got)
	}
	if got := len(cat.categories); got != 10 {
		t.Errorf("%d categories, want 10", got)
	}
	perCategory := map[string]int{}
	inStock, outOfStock := 0, 0
	for _, p := range cat.products {
		perCategory[p.Category]++
		if p.Stock > 0 {
			inStock++
		} else {
			outOfStock++
		}
		if len(p.Tags) == 0 {
			t.Errorf("product %s has no tags", p.ID)
		}
	}
	for _, c := range cat.categories {
		if perCategory[c.ID] < 10 {
			t.Errorf("category %s has %d products, want at least 10", c.ID, perCategory[c.ID])
		}
	}
	if inStock == 0 || outOfStock == 0 {
		t.Errorf("%d products in stock and %d out of stock; want some of each", inStock, outOfStock)
	}
	for _, code := range []string{"USD", "EUR", "GBP", "JPY", "CAD", "AUD", "CHF", "ILS"} {
		if cat.currencies[code] == nil {
			t.Errorf("currency %s missing", code)
		}
	}
}

// catalogueFiles is a small valid catalogue that cases below break one
// file at a time.
func catalogueFiles() map[string]string {
	return map[string]string{
		"data/categories.json": `[{"id": "books", "name": "Books", "description": "Reading"}]`,
		"data/currencies.json": `[{"code": "USD", "name": "US dollar", "per_usd": 1, "minor_units": 2}]`,
		"data/products.json": `[{"id": "bk-5008", "name": "Dune", "category": "books", "brand": "Ace", "price": 18.99,
			"stock": 55, "tags": ["fiction"], "description": "By Frank Herbert."}]`,
	}
}

func TestLoadCatalogue(t *testing.T) {
	product := func(members string) string {
		return `[{"id": "bk-5008", "name": "Dune", "category": "books", "brand": "Ace", "description": "x", "tags": [], ` + members + `}]`
	}
	tests := []struct {
		name    string
		file    string // replaced, or "" to load the valid catalogue
		content string // "" deletes the file
		wantErr string // a substring of the error; "" for success
	}{
		{"valid", "", "", ""},
		{"missing file", "data/products.json", "", "products.json"},
		{"not json", "data/categories.json", `[{`, "categories.json"},
		{"unknown member", "data/categories.json", `[{"id": "books", "name": "Books", "parent": "media"}]`, "parent"},
		{"trailing data", "data/categories.json", `[] {}`, "after the top-level value"},
		{"null category", "data/categories.json", `[null]`, "null entry"},
		{"bad category id", "data/categories.json", `[{"id": "Books", "name": "Books"}]`, `"Books"`},
		{"duplicate category", "data/categories.json", `[{"id": "books", "name": "Books"}, {"id": "books", "name": "Books"}]`, "twice"},
		{"unnamed category", "data/categories.json", `[{"id": "books"}]`, "name"},
		{"no usd", "data/currencies.json", `[{"code": "EUR", "name": "Euro", "per_usd": 0.92, "minor_units": 2}]`, "USD is missing"},
		{"bad minor units", "data/currencies.json", `[{"code": "USD", "name": "US dollar", "per_usd": 1, "minor_units": 4}]`, "minor_units"},
		{"null product", "data/products.json", `[null]`, "null entry"},
		{"bad product id", "data/products.json", `[{"id": "dune", "name": "Dune", "category": "books", "brand": "Ace", "description": "x", "price": 1, "stock": 1}]`, `"dune"`},
		{"duplicate product", "data/products.json", `[
			{"id": "bk-5008", "name": "Dune", "category": "books", "brand": "Ace", "description": "x", "price": 1, "stock": 1},
			{"id": "bk-5008", "name": "Dune", "category": "books", "brand": "Ace", "description": "x", "price": 1, "stock": 1}]`, "twice"},
		{"unknown category", "data/products.json", `[{"id": "bk-5008", "name": "Dune", "category": "novels", "brand": "Ace", "description": "x", "price": 1, "stock": 1}]`, `"novels"`},
		{"no brand", "data/products.json", `[{"id": "bk-5008", "name": "Dune", "category": "books", "description": "x", "price": 1, "stock": 1}]`, "brand"},
		{"free", "data/products.json", product(`"price": 0, "stock": 1`), "price"},
		{"fraction of a cent", "data/products.json", product(`"price": 18.999, "stock": 1`), "price"},
		{"negative stock", "data/products.json", product(`"price": 18.99, "stock": -1`), "stock"},
		{"stock not a count", "data/products.json", product(`"price": 18.99, "stock": 1.5`), "stock"},
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
				if p := cat.byID["bk-5008"]; p == nil || p.cents != 1899 {
					t.Errorf("product bk-5008 = %+v, want 1899 cents", p)
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

func TestTokens(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"Sony WH-1000XM5 Wireless Noise-Cancelling Headphones", []string{"sony", "wh", "1000xm5", "wireless", "noise", "cancelling", "headphone"}},
		{"The Go Programming Language", []string{"go", "programming", "language"}},
		{"Levi's 501 jeans", []string{"levi", "501", "jean"}},
		{"Chanel N°5", []string{"chanel", "5"}},
		{"glass bus lens", []string{"glass", "bus", "len"}},
		{"ÉCOUTEURS sans fil", []string{"écouteur", "san", "fil"}},
		{"a the of and", nil},
		{"", nil},
		{"  --  ", nil},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := tokens(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("tokens(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestMatchWord(t *testing.T) {
	set := tokenSet("wireless headphones over-ear")
	tests := []struct {
		word string
		want float64
	}{
		{"headphone", 1},
		{"wireless", 1},
		{"head", 0.5},
		{"wir", 0.5},
		{"ov", 0},  // too short for a prefix
		{"ear", 1}, // from "over-ear"
		{"headphonez", 0},
		{"zzz", 0},
	}
	for _, tt := range tests {
		t.Run(tt.word, func(t *testing.T) {
			if got := matchWord(set, tt.word); got != tt.want {
				t.Errorf("matchWord(%q, %q) = %v, want %v", set, tt.word, got, tt.want)
			}
		})
	}
}
