package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"regexp"
	"slices"
	"strings"
)

// data holds the offline catalogue: categories.json, products.json and
// currencies.json.
//
//go:embed data/*.json
var data embed.FS

// category is one entry of data/categories.json.
type category struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

// product is one entry of data/products.json.
type product struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Category    string   `json:"category"`
	Brand       string   `json:"brand"`
	Description string   `json:"description"`
	Price       float64  `json:"price"` // US dollars, whole cents
	Stock       int      `json:"stock"`
	Tags        []string `json:"tags"`

	cents int64
	// fields holds the product's search tokens, one entry per weighted
	// field.
	fields [len(fieldWeights)][]string
}

// currency is one entry of data/currencies.json. Rates are fixed and
// illustrative only: they let prices be shown in the caller's currency
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
	categories []*category // file order
	byCategory map[string]*category
	products   []*product // file order
	byID       map[string]*product
	currencies map[string]*currency
}

var (
	categoryID   = regexp.MustCompile(`^[a-z]+(-[a-z]+)*$`)
	productID    = regexp.MustCompile(`^[a-z]{2}-[0-9]{4,5}$`)
	currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)
)

// loadCatalogue reads and checks the catalogue files in fsys.
func loadCatalogue(fsys fs.FS) (*catalogue, error) {
	c := &catalogue{
		byCategory: make(map[string]*category),
		byID:       make(map[string]*product),
		currencies: make(map[string]*currency),
	}

	if err := decodeFile(fsys, "data/categories.json", &c.categories); err != nil {
		return nil, err
	}
	for i, cat := range c.categories {
		if err := c.addCategory(cat); err != nil {
			return nil, fmt.Errorf("data/categories.json: entry %d: %w", i, err)
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

	if err := decodeFile(fsys, "data/products.json", &c.products); err != nil {
		return nil, err
	}
	for i, p := range c.products {
		if err := c.addProduct(p); err != nil {
			return nil, fmt.Errorf("data/products.json: entry %d: %w", i, err)
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

func (c *catalogue) addCategory(cat *category) error {
	if cat == nil {
		return errors.New("null entry")
	}
	if !categoryID.MatchString(cat.ID) {
		return fmt.Errorf("id %q is not lower-case words joined by hyphens", cat.ID)
	}
	if _, dup := c.byCategory[cat.ID]; dup {
		return fmt.Errorf("category %s listed twice", cat.ID)
	}
	if cat.Name == "" {
		return fmt.Errorf("category %s: name is required", cat.ID)
	}
	c.byCategory[cat.ID] = cat
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

func (c *catalogue) addProduct(p *product) error {
	if p == nil {
		return errors.New("null entry")
	}
	if !productID.MatchString(p.ID) {
		return fmt.Errorf("id %q is not two letters, a hyphen and four or five digits", p.ID)
	}
	if _, dup := c.byID[p.ID]; dup {
		return fmt.Errorf("product %s listed twice", p.ID)
	}
	cat := c.byCategory[p.Category]
	if cat == nil {
		return fmt.Errorf("product %s: unknown category %q", p.ID, p.Category)
	}
	if p.Name == "" || p.Brand == "" || p.Description == "" {
		return fmt.Errorf("product %s: name, brand and description are required", p.ID)
	}
	cents := math.Round(p.Price * 100)
	if !(p.Price > 0) || math.Abs(p.Price*100-cents) > 1e-6 {
		return fmt.Errorf("product %s: price %v is not a positive amount in whole cents", p.ID, p.Price)
	}
	if p.Stock < 0 {
		return fmt.Errorf("product %s: negative stock", p.ID)
	}
	p.cents = int64(cents)
	p.fields = [len(fieldWeights)][]string{
		fieldName:        tokenSet(p.Name),
		fieldBrand:       tokenSet(p.Brand),
		fieldTags:        tokenSet(strings.Join(p.Tags, " ")),
		fieldCategory:    tokenSet(cat.ID + " " + cat.Name),
		fieldDescription: tokenSet(p.Description),
	}
	c.byID[p.ID] = p
	return nil
}

// categoryIDs returns the category ids in catalogue order.
func (c *catalogue) categoryIDs() []string {
	ids := make([]string, len(c.categories))
	for i, cat := range c.categories {
		ids[i] = cat.ID
	}
	return ids
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
