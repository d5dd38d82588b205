// Package registry holds the AgentMesh registry's API (PROTOCOL.md §8): the
// JSON shapes of every endpoint and the Go client hosts use to register,
// look peers up, publish and fetch prekeys, get certified and rate each
// other.
//
// The client signs every mutation with the agent's Ed25519 key over a fresh
// timestamp (signatures S2–S5 of PROTOCOL.md §2.2). The registry refuses a
// signature it has already seen, so the client never reuses a timestamp.
package registry
