package registry

import (
	"context"
	"net/http"
	"net/url"
)

// OAuth providers the registry knows by name (PROTOCOL.md §8.11). A
// registry may offer others under their own names.
const (
	OAuthProviderGitHub = "github"
	OAuthProviderGoogle = "google"
)

// OAuthStateTTL is how long, in seconds, the state of an authorization
// stays usable: the owner has that long to sign in with the provider.
const OAuthStateTTL = 600

// OAuthProviderInfo describes one provider in GET /v1/auth/oauth/providers.
type OAuthProviderInfo struct {
	Name string `json:"name"`
	// Enabled reports whether the registry is configured for the provider.
	Enabled     bool   `json:"enabled"`
	DisplayName string `json:"display_name"`
}

// OAuthProvidersResponse is the body of GET /v1/auth/oauth/providers.
type OAuthProvidersResponse struct {
	Providers []OAuthProviderInfo `json:"providers"`
}

// OAuthAuthorizeRequest is the body of POST /v1/auth/oauth/authorize: the
// agent asks to be verified through its owner's account with Provider.
type OAuthAuthorizeRequest struct {
	AMID     string `json:"amid"`
	Provider string `json:"provider"`
	Signed
}

// OAuthAuthorizeResponse is the answer to authorize. The agent's owner
// opens AuthorizationURL in a browser; the provider then sends the browser
// to the registry's callback with State.
type OAuthAuthorizeResponse struct {
	AuthorizationURL string `json:"authorization_url"`
	State            string `json:"state"`
	// ExpiresIn is how many seconds State stays usable.
	ExpiresIn int `json:"expires_in"`
}

// VerifiedIdentityInfo is the account a provider vouched for. Email,
// Username and DisplayName are null when the provider did not say.
type VerifiedIdentityInfo struct {
	Provider    string  `json:"provider"`
	ProviderID  string  `json:"provider_id"`
	Email       *string `json:"email"`
	Username    *string `json:"username"`
	DisplayName *string `json:"display_name"`
	// VerifiedAt is when the registry verified the account (T-SERDE).
	VerifiedAt string `json:"verified_at"`
}

// OAuthCallbackResponse is the body of a successful GET
// /v1/auth/oauth/callback: the agent is now verified.
type OAuthCallbackResponse struct {
	Success          bool                  `json:"success"`
	AMID             string                `json:"amid"`
	Provider         string                `json:"provider"`
	VerifiedIdentity *VerifiedIdentityInfo `json:"verified_identity"`
	// Certificate is the agent's certificate (PEM), empty if the registry
	// issued none.
	Certificate string `json:"certificate"`
	// CertificateChain is the certificate and its issuers up to the root,
	// each padded base64 of DER, leaf first.
	CertificateChain []string `json:"certificate_chain"`
	Error            *string  `json:"error"`
}

// OAuthProviders lists the OAuth providers of the registry and whether each
// is enabled.
func (c *Client) OAuthProviders(ctx context.Context) (*OAuthProvidersResponse, error) {
	var out OAuthProvidersResponse
	if err := c.do(ctx, http.MethodGet, "/auth/oauth/providers", nil, nil, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return &out, nil
}

// OAuthAuthorize starts the verification of the signer's agent through
// provider, such as OAuthProviderGitHub. Its owner must then open the
// returned AuthorizationURL within ExpiresIn seconds.
func (c *Client) OAuthAuthorize(ctx context.Context, signer *Signer, provider string) (*OAuthAuthorizeResponse, error) {
	req := OAuthAuthorizeRequest{AMID: string(signer.AMID), Provider: provider, Signed: signer.Sign()}
	var out OAuthAuthorizeResponse
	if err := c.do(ctx, http.MethodPost, "/auth/oauth/authorize", nil, req, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return &out, nil
}

// OAuthCallback completes a verification with the code and state the
// provider sent the browser back with. A browser normally calls the
// callback itself; this method serves hosts that receive the redirect.
func (c *Client) OAuthCallback(ctx context.Context, code, state string) (*OAuthCallbackResponse, error) {
	q := url.Values{"code": {code}, "state": {state}}
	var out OAuthCallbackResponse
	if err := c.do(ctx, http.MethodGet, "/auth/oauth/callback", q, nil, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return &out, nil
}
