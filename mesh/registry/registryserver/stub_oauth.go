package registryserver

import (
	"context"
	"errors"
	"net/http"
)

// OAuthConfig configures the OAuth providers of tier-1 verification.
type OAuthConfig struct{}

// VerifiedIdentity is who an OAuth provider says an agent's owner is.
type VerifiedIdentity struct {
	Provider    string
	ProviderID  string
	Email       string
	Username    string
	DisplayName string
}

func (s *Server) handleOAuthProviders(w http.ResponseWriter, r *http.Request) { notImplemented(w, r) }
func (s *Server) handleOAuthAuthorize(w http.ResponseWriter, r *http.Request) { notImplemented(w, r) }
func (s *Server) handleOAuthCallback(w http.ResponseWriter, r *http.Request)  { notImplemented(w, r) }

// verifyAccessToken checks an OAuth access token against the configured
// providers' user endpoints, as register's verification_token.
func (s *Server) verifyAccessToken(ctx context.Context, token string) (*VerifiedIdentity, error) {
	return nil, errors.New("oauth not configured")
}
