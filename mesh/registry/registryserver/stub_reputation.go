package registryserver

import (
	"context"
	"net/http"

	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

func (s *Server) handleReputation(w http.ResponseWriter, r *http.Request)      { notImplemented(w, r) }
func (s *Server) handleReputationScore(w http.ResponseWriter, r *http.Request) { notImplemented(w, r) }
func (s *Server) handleReputationFeedback(w http.ResponseWriter, r *http.Request) {
	notImplemented(w, r)
}
func (s *Server) handleReputationSession(w http.ResponseWriter, r *http.Request) {
	notImplemented(w, r)
}
func (s *Server) handleLeaderboard(w http.ResponseWriter, r *http.Request) { notImplemented(w, r) }

// flagsOf returns the agent's active flags (rapid reputation changes) as
// lookups show them.
func (s *Server) flagsOf(ctx context.Context, amid string) ([]registry.AgentFlag, error) {
	return nil, nil
}
