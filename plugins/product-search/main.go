// Command product-search is the AgentMesh skill that answers
// commerce/products/search REQUESTs (schema
// agentmesh/commerce/product-search/v1) from an offline catalogue it
// carries: 120 products in ten categories, each with a brand, tags, a
// price in US dollars and a stock count. It needs no network and no host
// service. The host starts it as a plugin; run alone, it says so and
// exits.
//
// # Requests
//
// Every member of the schema is honoured:
//
//   - action: "search" (the default) or "details". "purchase" is answered
//     with ERROR unsupported_operation.
//   - query: words matched, ignoring case, against each product's name,
//     brand, tags, category and description. Every word must match
//     somewhere; a word of three letters or more also matches the start of
//     a longer word, at half weight; a plural "s" and words such as "the"
//     and "for" are ignored. An empty query matches every product.
//   - category: a category id such as "home-kitchen" or its name, "Home &
//     Kitchen", in any case. An unknown category is invalid_parameter, and
//     the message lists the known ids.
//   - min_price and max_price: inclusive bounds in the response currency;
//     negative bounds, or min_price above max_price, are invalid_parameter.
//   - currency: the currency of prices, overriding the configured one; an
//     unknown code is invalid_parameter and the message lists the known
//     ones. Exchange rates are fixed and illustrative only.
//
// A details request names its product with product_id, an extension
// member, or else with a query that is exactly a product id ("el-1001").
// Its one result adds the stock count and the tags. A missing id is
// missing_parameter; an unknown one is not_found.
//
// # Results
//
// The RESPONSE results are an object that echoes the search (with its
// defaults), counts the matches in total, and holds results, whose items
// carry the schema's product_id, name, price, currency, description and
// in_stock, plus category, brand and, for a query, relevance: from 0 to 1,
// the matched words' weights (name and brand 3, tags 2, category and
// description 1) over the best possible. Results are sorted by relevance,
// then in-stock products first, then by price and id, and hold at most the
// max_results option's number of products.
package main

import (
	"context"
	_ "embed"
	"os"

	"github.com/agentmesh/agentmesh-go/sdk"
)

//go:embed skill.json
var manifest []byte

// intent is the intent the skill serves.
const intent = "commerce/products/search"

// Bounds of the max_results option, as skill.json declares them.
const (
	defaultMaxResults = 20
	maxMaxResults     = 100
)

func main() {
	os.Exit(newSkill().Main())
}

// newSkill returns the skill.
func newSkill() *sdk.Skill {
	cat, err := loadCatalogue(data)
	if err != nil {
		// The catalogue is built in: a bad one is a mistake the tests catch.
		panic("product-search: " + err.Error())
	}
	s := sdk.New(manifest)
	sdk.Handle(s, intent, func(ctx context.Context, req *sdk.Request[searchParams]) (*searchResponse, error) {
		sr := searcher{
			cat:        cat,
			maxResults: clampMaxResults(s.Config().Int("max_results")),
			currency:   s.Config().String("currency"),
		}
		resp, err := sr.search(ctx, req.Params, req.Progress)
		if err != nil {
			return nil, err
		}
		sdk.Logger(ctx).Debug("products found", "total", resp.Total, "results", len(resp.Results))
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
