package main

import "math"

// pow10 returns 10**n for the small n of ISO 4217 minor units.
func pow10(n int) int64 {
	p := int64(1)
	for range n {
		p *= 10
	}
	return p
}

// fromUSDCents converts an amount in US cents to the currency's minor
// units at the fixed rate, rounding half away from zero.
func (c *currency) fromUSDCents(cents int64) int64 {
	return int64(math.Round(float64(cents) * c.PerUSD * float64(pow10(c.MinorUnits)) / 100))
}

// amount returns minor units of the currency as a decimal amount, the
// shape of a price in results.
func (c *currency) amount(minor int64) float64 {
	return float64(minor) / float64(pow10(c.MinorUnits))
}
