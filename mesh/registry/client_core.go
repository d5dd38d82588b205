package registry

import (
	"context"
	"crypto/ecdh"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Register registers the agent that signer signs for. It fills the AMID,
// the signing public key and a fresh signature into req; the caller sets
// the exchange public key and any optional fields.
//
// An AMID that is registered already gives an *APIError with StatusCode
// 409 (IsStatus(err, http.StatusConflict)). Registration cannot be
// repeated or undone, so callers that register on every start may treat
// that error as "already registered" and go on.
func (c *Client) Register(ctx context.Context, signer *Signer, req RegisterRequest) (*RegisterResponse, error) {
	if signer == nil {
		return nil, errors.New("registry: register: no signer")
	}
	req.AMID = string(signer.AMID)
	req.SigningPublicKey = signer.PublicKey()
	req.Signed = signer.Sign()
	var resp RegisterResponse
	if err := c.do(ctx, http.MethodPost, "/registry/register", nil, &req, &resp, http.StatusCreated); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Lookup returns the registry's description of the agent amid. An unknown
// agent gives an *APIError with StatusCode 404.
func (c *Client) Lookup(ctx context.Context, amid string) (*AgentLookup, error) {
	var out AgentLookup
	if err := c.do(ctx, http.MethodGet, "/registry/lookup", url.Values{"amid": {amid}}, nil, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return &out, nil
}

// Search finds agents that declare q.Capability. Zero fields of q are
// left out of the request, so the registry's defaults apply.
func (c *Client) Search(ctx context.Context, q SearchQuery) (*SearchResponse, error) {
	v := url.Values{"capability": {q.Capability}}
	if q.TierMin != 0 {
		v.Set("tier_min", strconv.Itoa(q.TierMin))
	}
	if q.ReputationMin != 0 {
		v.Set("reputation_min", strconv.FormatFloat(q.ReputationMin, 'g', -1, 64))
	}
	if q.Status != "" {
		v.Set("status", q.Status)
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Offset != 0 {
		v.Set("offset", strconv.Itoa(q.Offset))
	}
	var out SearchResponse
	if err := c.do(ctx, http.MethodGet, "/registry/search", v, nil, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateStatus sets the presence status ("online", "away", "offline" or
// "dnd") of the agent that signer signs for.
func (c *Client) UpdateStatus(ctx context.Context, signer *Signer, status string) (*SuccessResponse, error) {
	if signer == nil {
		return nil, errors.New("registry: update status: no signer")
	}
	req := StatusRequest{AMID: string(signer.AMID), Status: status, Signed: signer.Sign()}
	var out SuccessResponse
	if err := c.do(ctx, http.MethodPost, "/registry/status", nil, &req, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateCapabilities replaces the capabilities of the agent that signer
// signs for; an empty list declares none.
func (c *Client) UpdateCapabilities(ctx context.Context, signer *Signer, caps []string) (*SuccessResponse, error) {
	if signer == nil {
		return nil, errors.New("registry: update capabilities: no signer")
	}
	if caps == nil {
		caps = []string{}
	}
	req := CapabilitiesRequest{AMID: string(signer.AMID), Capabilities: caps, Signed: signer.Sign()}
	var out SuccessResponse
	if err := c.do(ctx, http.MethodPost, "/registry/capabilities", nil, &req, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateExchangeKey replaces the registered X25519 exchange key of the
// agent that signer signs for with key, so that lookups, DID documents and
// prekey bundles name it from then on. The request carries a fresh
// timestamp signature and a key signature over ExchangeKeySigningBytes.
func (c *Client) UpdateExchangeKey(ctx context.Context, signer *Signer, key *ecdh.PublicKey) (*SuccessResponse, error) {
	if signer == nil {
		return nil, errors.New("registry: update exchange key: no signer")
	}
	if key == nil || key.Curve() != ecdh.X25519() {
		return nil, errors.New("registry: update exchange key: key must be an X25519 public key")
	}
	req := ExchangeKeyUpdate{
		AMID:              string(signer.AMID),
		ExchangePublicKey: protocol.EncodeExchangePublicKey(key),
		Signed:            signer.Sign(),
	}
	req.KeySignature = signer.SignBytes(ExchangeKeySigningBytes(req.AMID, req.ExchangePublicKey, req.Timestamp))
	var out SuccessResponse
	if err := c.do(ctx, http.MethodPost, "/registry/exchange-key", nil, &req, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return &out, nil
}

// DID returns the W3C DID document of the agent amid, did:agentmesh:<amid>,
// as the registry sent it.
func (c *Client) DID(ctx context.Context, amid string) (json.RawMessage, error) {
	var out json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/registry/did/"+url.PathEscape(amid), nil, nil, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return out, nil
}

// Health returns the registry's health and agent counts.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var out Health
	if err := c.do(ctx, http.MethodGet, "/health", nil, nil, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return &out, nil
}

// Stats returns the registry's agent statistics.
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	var out Stats
	if err := c.do(ctx, http.MethodGet, "/registry/stats", nil, nil, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return &out, nil
}
