package registryserver

import "net/http"

func notImplemented(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotImplemented, "not implemented", "not_implemented")
}

func (s *Server) handleLiveness(w http.ResponseWriter, r *http.Request)     { notImplemented(w, r) }
func (s *Server) handleReadiness(w http.ResponseWriter, r *http.Request)    { notImplemented(w, r) }
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request)       { notImplemented(w, r) }
func (s *Server) handleStats(w http.ResponseWriter, r *http.Request)        { notImplemented(w, r) }
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request)     { notImplemented(w, r) }
func (s *Server) handleLookup(w http.ResponseWriter, r *http.Request)       { notImplemented(w, r) }
func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request)       { notImplemented(w, r) }
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request)       { notImplemented(w, r) }
func (s *Server) handleCapabilities(w http.ResponseWriter, r *http.Request) { notImplemented(w, r) }
func (s *Server) handleDID(w http.ResponseWriter, r *http.Request)          { notImplemented(w, r) }
