package registryserver

import (
	"context"
	"crypto/ed25519"
	"net/http"

	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// Authority is the registry's root certificate authority.
type Authority struct{}

func (s *Server) initAuthority() error { return nil }

func (s *Server) handleCACertificates(w http.ResponseWriter, r *http.Request)  { notImplemented(w, r) }
func (s *Server) handleCRL(w http.ResponseWriter, r *http.Request)             { notImplemented(w, r) }
func (s *Server) handleOrgRegister(w http.ResponseWriter, r *http.Request)     { notImplemented(w, r) }
func (s *Server) handleOrgVerify(w http.ResponseWriter, r *http.Request)       { notImplemented(w, r) }
func (s *Server) handleOrgAgents(w http.ResponseWriter, r *http.Request)       { notImplemented(w, r) }
func (s *Server) handleOrgLookup(w http.ResponseWriter, r *http.Request)       { notImplemented(w, r) }
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request)          { notImplemented(w, r) }
func (s *Server) handleRevocation(w http.ResponseWriter, r *http.Request)      { notImplemented(w, r) }
func (s *Server) handleRevocationsBulk(w http.ResponseWriter, r *http.Request) { notImplemented(w, r) }
func (s *Server) handleRevocations(w http.ResponseWriter, r *http.Request)     { notImplemented(w, r) }

// issueAgentCertificate certifies the agent amid, whose signing key is pub,
// as a verified agent signed by the root CA. It returns the certificate as
// PEM and the chain, leaf first, as padded base64 DER.
func (s *Server) issueAgentCertificate(ctx context.Context, amid string, pub ed25519.PublicKey, tier registry.Tier) (pem string, chain []string, err error) {
	return "", nil, nil
}

// certificateOf returns the agent's current, unrevoked certificate (PEM) and
// its chain, leaf first, as padded base64 DER; empty if it has none.
func (s *Server) certificateOf(ctx context.Context, amid string) (pem string, chain []string, err error) {
	return "", nil, nil
}

// isRevoked reports whether the agent amid has been revoked.
func (s *Server) isRevoked(ctx context.Context, amid string) (bool, error) { return false, nil }
