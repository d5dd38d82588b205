package main

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strings"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Actions of the product-search schema. Search and details are served.
const (
	actionSearch   = "search"
	actionDetails  = "details"
	actionPurchase = "purchase"
)

// searchParams are the REQUEST parameters: the fields of the
// agentmesh/commerce/product-search/v1 schema, plus product_id, an
// extension member naming the product of a details request.
type searchParams struct {
	Action   string   `json:"action"`
	Query    string   `json:"query"`
	Category string   `json:"category"`
	MinPrice *float64 `json:"min_price"`
	MaxPrice *float64 `json:"max_price"`
	Currency string   `json:"currency"`

	ProductID string `json:"product_id"`
}

// searchResponse is the RESPONSE results object. It echoes the search,
// with defaults applied, beside the results, so that it too validates
// against the product-search schema.
type searchResponse struct {
	Action   string   `json:"action"`
	Query    string   `json:"query,omitempty"`
	Category string   `json:"category,omitempty"`
	MinPrice *float64 `json:"min_price,omitempty"`
	MaxPrice *float64 `json:"max_price,omitempty"`
	Currency string   `json:"currency"`
	// Total counts the matching products, of which Results holds at most
	// the configured max_results.
	Total int `json:"total"`
	// Results is sorted by relevance, then in-stock products first, then
	// price and product id.
	Results []productResult `json:"results"`
}

// productResult is one item of results. The first six members are the
// schema's; the others are extensions the schema allows.
type productResult struct {
	ProductID   string  `json:"product_id"`
	Name        string  `json:"name"`
	Price       float64 `json:"price"`
	Currency    string  `json:"currency"`
	Description string  `json:"description"`
	InStock     bool    `json:"in_stock"`

	Category string `json:"category"`
	Brand    string `json:"brand"`
	// Relevance, from 0 to 1, is present when the request had a query.
	Relevance float64 `json:"relevance,omitempty"`
	// Stock and Tags are present in details results only.
	Stock *int     `json:"stock,omitempty"`
	Tags  []string `json:"tags,omitempty"`

	// Sort keys.
	score float64
	minor int64
}

// progressFunc receives progress between 0 and 1 with a short message.
type progressFunc func(fraction float64, message string)

// searcher answers product searches from a catalogue.
type searcher struct {
	cat *catalogue
	// maxResults bounds the results; 0 means no bound.
	maxResults int
	// currency is used when a request names none.
	currency string
}

// search runs one search or details request. Its errors are *sdk.Error
// values carrying the ERROR code, or ctx's error.
func (s *searcher) search(ctx context.Context, p searchParams, progress progressFunc) (*searchResponse, error) {
	progress(0.1, "checking the request")
	switch p.Action {
	case "", actionSearch, actionDetails:
	case actionPurchase:
		return nil, paramError(protocol.CodeUnsupportedOperation, "action", "%s is not offered; this skill only searches", quote(p.Action))
	default:
		return nil, invalidParam("action", "%s is not search, details or purchase", quote(p.Action))
	}
	cur, err := s.currencyOf(p)
	if err != nil {
		return nil, err
	}
	if p.Action == actionDetails {
		return s.details(p, cur, progress)
	}

	var cat *category
	if p.Category != "" {
		if cat = s.findCategory(p.Category); cat == nil {
			return nil, invalidParam("category", "unknown category %s; known: %s",
				quote(p.Category), strings.Join(s.cat.categoryIDs(), ", "))
		}
	}
	for _, b := range []struct {
		field string
		v     *float64
	}{{"min_price", p.MinPrice}, {"max_price", p.MaxPrice}} {
		if b.v != nil && !(*b.v >= 0) {
			return nil, invalidParam(b.field, "%v is negative", *b.v)
		}
	}
	if p.MinPrice != nil && p.MaxPrice != nil && *p.MinPrice > *p.MaxPrice {
		return nil, invalidParam("min_price", "%v is above max_price %v", *p.MinPrice, *p.MaxPrice)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	progress(0.4, "matching products")
	query := tokens(p.Query)
	resp := &searchResponse{
		Action:   actionSearch,
		Query:    p.Query,
		MinPrice: p.MinPrice,
		MaxPrice: p.MaxPrice,
		Currency: cur.Code,
		Results:  []productResult{},
	}
	if cat != nil {
		resp.Category = cat.ID
	}
	for _, prod := range s.cat.products {
		if cat != nil && prod.Category != cat.ID {
			continue
		}
		score, ok := prod.score(query)
		if !ok {
			continue
		}
		r := result(prod, cur)
		if (p.MinPrice != nil && r.Price < *p.MinPrice) || (p.MaxPrice != nil && r.Price > *p.MaxPrice) {
			continue
		}
		if len(query) > 0 {
			r.score = score
			r.Relevance = math.Round(score/(maxWeight*float64(len(query)))*1000) / 1000
		}
		resp.Results = append(resp.Results, r)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	progress(0.8, "ranking results")
	slices.SortFunc(resp.Results, compareResults)
	resp.Total = len(resp.Results)
	if s.maxResults > 0 && len(resp.Results) > s.maxResults {
		resp.Results = resp.Results[:s.maxResults]
	}
	return resp, nil
}

// details answers a details request: the product named by product_id,
// or by a query that is exactly a product id.
func (s *searcher) details(p searchParams, cur *currency, progress progressFunc) (*searchResponse, error) {
	id, field := p.ProductID, "product_id"
	if id == "" {
		id, field = strings.TrimSpace(p.Query), "query"
	}
	if id == "" {
		return nil, paramError(protocol.CodeMissingParameter, "product_id", "required for details (or a query holding a product id)")
	}
	progress(0.5, "looking up the product")
	prod := s.cat.byID[strings.ToLower(id)]
	if prod == nil {
		return nil, paramError(protocol.CodeNotFound, field, "no product with id %s", quote(id))
	}
	r := result(prod, cur)
	stock := prod.Stock
	r.Stock = &stock
	r.Tags = slices.Clone(prod.Tags)
	return &searchResponse{
		Action:   actionDetails,
		Currency: cur.Code,
		Total:    1,
		Results:  []productResult{r},
	}, nil
}

// currencyOf returns the currency of a request: its currency member, or
// else the configured one.
func (s *searcher) currencyOf(p searchParams) (*currency, error) {
	if p.Currency == "" {
		cur := s.cat.currencies[s.currency]
		if cur == nil {
			return nil, configError("currency", "unknown currency %s", quote(s.currency))
		}
		return cur, nil
	}
	cur := s.cat.currencies[p.Currency]
	if cur == nil {
		return nil, invalidParam("currency", "unknown currency %s; known: %s", quote(p.Currency), strings.Join(s.cat.currencyCodes(), ", "))
	}
	return cur, nil
}

// findCategory finds a category by id or name, ignoring case.
func (s *searcher) findCategory(v string) *category {
	v = strings.TrimSpace(v)
	for _, c := range s.cat.categories {
		if strings.EqualFold(v, c.ID) || strings.EqualFold(v, c.Name) {
			return c
		}
	}
	return nil
}

// result returns the result item of prod priced in cur.
func result(prod *product, cur *currency) productResult {
	minor := cur.fromUSDCents(prod.cents)
	return productResult{
		ProductID:   prod.ID,
		Name:        prod.Name,
		Price:       cur.amount(minor),
		Currency:    cur.Code,
		Description: prod.Description,
		InStock:     prod.Stock > 0,
		Category:    prod.Category,
		Brand:       prod.Brand,
		minor:       minor,
	}
}

// compareResults orders by score (highest first), then in-stock products
// first, then price and id.
func compareResults(a, b productResult) int {
	return cmp.Or(
		cmp.Compare(b.score, a.score),
		compareBool(b.InStock, a.InStock),
		cmp.Compare(a.minor, b.minor),
		cmp.Compare(a.ProductID, b.ProductID),
	)
}

// compareBool orders false before true.
func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	default:
		return -1
	}
}
