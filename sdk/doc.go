// Package sdk is what a skill author imports to write an AgentMesh skill:
// a program, started by the AgentMesh host as a plugin, that answers
// REQUESTs for the intents its skill.json declares.
//
// A skill embeds its skill.json, registers one typed handler per intent
// and hands control to the SDK:
//
//	//go:embed skill.json
//	var manifest []byte
//
//	func main() {
//		s := sdk.New(manifest)
//		sdk.Handle(s, "travel/flights/search", search)
//		os.Exit(s.Main())
//	}
//
// A handler receives the REQUEST with its parameters decoded into a Go
// value and returns a Go value, which becomes the RESPONSE results. It
// reports progress with [Request.Progress] (STATUS events) and fails with
// [Errorf] (an ERROR with a protocol error code); any other error, and any
// panic, becomes an internal_error whose details stay in the skill's logs.
//
// # What the SDK takes care of
//
// The host validates every REQUEST against the capability's schema before
// the skill sees it, and the RESPONSE against its response_schema after.
// The SDK speaks the host↔skill contract (package skillrpc) over
// go-plugin: gRPC with mutual TLS on a private socket. It logs as hclog
// JSON on stderr, which the host files under the skill's name at each
// line's level; nothing is ever written to stdout, which carries the
// handshake. A skill stops cleanly on SIGTERM and exits by itself when its
// host dies.
//
// # Testing
//
// Package skilltest runs a skill in-process or as a built binary through
// the real handshake, and replays the examples of skill.json.
package sdk
