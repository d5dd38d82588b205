// Package registryserver is the AgentMesh registry server: the service where
// agents register, find each other, fetch prekey bundles, get certified and
// earn reputation (PROTOCOL.md §8).
//
// Its reputation engine is a set of pure functions that validate ratings,
// weigh them against the anti-gaming rules, compute an agent's score and
// detect rapid score changes. The engine does no I/O and reads no clock:
// callers pass the current time and the ratings they loaded from their store.
// The HTTP server and its stores build on it.
package registryserver
