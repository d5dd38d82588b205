package meshtest

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// Agent is a new agent's keys, held in memory: all the mesh knows of an
// agent. It is not registered anywhere.
type Agent struct {
	// AMID is the agent's address, derived from its signing key.
	AMID protocol.AMID
	// SigningKey is the agent's Ed25519 key.
	SigningKey ed25519.PrivateKey
	// ExchangeKey is the agent's X25519 identity key.
	ExchangeKey *ecdh.PrivateKey
	// Signer signs the agent's registry requests with SigningKey.
	Signer *registry.Signer
}

// NewAgent generates an agent's keys.
func NewAgent(t testing.TB) *Agent {
	t.Helper()
	_, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("meshtest: signing key: %v", err)
	}
	xk, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("meshtest: exchange key: %v", err)
	}
	s := registry.NewSigner(sk)
	return &Agent{AMID: s.AMID, SigningKey: sk, ExchangeKey: xk, Signer: s}
}
