//go:build race

package ratchet

// The race detector changes escape analysis, so allocation counts are not
// checked under it.
func init() { raceEnabled = true }
