package registryserver

import (
	"context"
	"net/http"

	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

func (s *Server) initPrekeyLimits() {}

func (s *Server) handlePrekeyUpload(w http.ResponseWriter, r *http.Request) { notImplemented(w, r) }
func (s *Server) handlePrekeyFetch(w http.ResponseWriter, r *http.Request)  { notImplemented(w, r) }
func (s *Server) handlePrekeyCount(w http.ResponseWriter, r *http.Request)  { notImplemented(w, r) }

// notificationsFor returns what the registry has to tell agent amid in the
// response to one of its own signed requests (a low_prekeys warning).
func (s *Server) notificationsFor(ctx context.Context, amid string) []registry.Notification {
	return nil
}
