package main

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Fields a query is matched against, and their weights: a word found in
// the name or brand counts three times as much as one in the description.
const (
	fieldName = iota
	fieldBrand
	fieldTags
	fieldCategory
	fieldDescription
)

var fieldWeights = [...]float64{
	fieldName:        3,
	fieldBrand:       3,
	fieldTags:        2,
	fieldCategory:    1,
	fieldDescription: 1,
}

// maxWeight is the largest field weight: the score of a word matched
// exactly in the name.
const maxWeight = 3

// minPrefix is the shortest query word that also matches as the start of
// a longer word ("head" finds "headphones"). A prefix match counts half.
const minPrefix = 3

// stopwords are ignored in queries and catalogue text alike.
var stopwords = map[string]bool{
	"a": true, "an": true, "and": true, "at": true, "by": true, "for": true,
	"from": true, "in": true, "of": true, "on": true, "or": true, "the": true,
	"to": true, "with": true,
}

// tokens splits s into lower-case words of letters and digits, dropping
// stop words and lone letters, and folds a plural "s" ("shoes" → "shoe").
func tokens(s string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if stopwords[w] {
			continue
		}
		if r, n := utf8.DecodeRuneInString(w); n == len(w) && unicode.IsLetter(r) {
			continue
		}
		out = append(out, fold(w))
	}
	return out
}

// fold removes a plural "s" from words of more than three letters, but
// not the double "ss" of "glass".
func fold(w string) string {
	if len(w) > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") {
		return w[:len(w)-1]
	}
	return w
}

// tokenSet returns the distinct tokens of s, sorted for matchWord.
func tokenSet(s string) []string {
	t := tokens(s)
	slices.Sort(t)
	return slices.Compact(t)
}

// matchWord returns 1 when the sorted set holds w, 0.5 when w is long
// enough and starts a word of the set, and 0 otherwise.
func matchWord(set []string, w string) float64 {
	i, found := slices.BinarySearch(set, w)
	if found {
		return 1
	}
	if len(w) >= minPrefix && i < len(set) && strings.HasPrefix(set[i], w) {
		return 0.5
	}
	return 0
}

// score returns how well every word of query matches p: for each word the
// best weighted match over p's fields, summed. ok is false when some word
// matches nowhere.
func (p *product) score(query []string) (score float64, ok bool) {
	for _, w := range query {
		best := 0.0
		for f, set := range p.fields {
			best = max(best, fieldWeights[f]*matchWord(set, w))
		}
		if best == 0 {
			return 0, false
		}
		score += best
	}
	return score, true
}
