package registry

import (
	"context"
	"errors"
	"net/http"
	"net/url"
)

// Prekey limits the registry enforces (PROTOCOL.md §8.6, W-5).
const (
	// MaxPrekeysPerUpload is the most one-time prekeys one upload may carry.
	MaxPrekeysPerUpload = 200
	// MaxUnconsumedPrekeys is the most unconsumed one-time prekeys the
	// registry holds for one agent.
	MaxUnconsumedPrekeys = 1000
)

// PrekeyThrottledHeader is set to "1" on a prekey bundle served without a
// one-time prekey because the requester fetched too many bundles of that
// agent recently.
const PrekeyThrottledHeader = "X-AgentMesh-Prekey-Throttled"

// OneTimePrekey is an X25519 one-time prekey: its id and the 32-byte public
// key in padded base64.
type OneTimePrekey struct {
	ID  int32  `json:"id"`
	Key string `json:"key"`
}

// PrekeyUploadRequest is the body of POST /v1/registry/prekeys: the agent's
// signed prekey with its signature S6 (Ed25519 by the agent's signing key
// over the 32 raw prekey bytes) and one-time prekeys to add.
type PrekeyUploadRequest struct {
	AMID                  string          `json:"amid"`
	SignedPrekey          string          `json:"signed_prekey"`
	SignedPrekeySignature string          `json:"signed_prekey_signature"`
	SignedPrekeyID        int32           `json:"signed_prekey_id"`
	OneTimePrekeys        []OneTimePrekey `json:"one_time_prekeys"`
	Signed
}

// PrekeyUploadResponse is the answer to a prekey upload.
type PrekeyUploadResponse struct {
	Success        bool  `json:"success"`
	SignedPrekeyID int32 `json:"signed_prekey_id"`
	// OneTimePrekeysStored is how many of the uploaded one-time prekeys
	// were new; ids the registry already holds are not replaced.
	OneTimePrekeysStored int            `json:"one_time_prekeys_stored"`
	Notifications        []Notification `json:"notifications,omitempty"`
}

// PrekeyBundle is what an initiator fetches to start X3DH with an agent
// (GET /v1/registry/prekeys/{amid}). Keys are unprefixed padded base64.
// The initiator must verify SignedPrekeySignature with the agent's signing
// key before using the bundle.
type PrekeyBundle struct {
	// IdentityKey is the agent's registered X25519 exchange key.
	IdentityKey           string `json:"identity_key"`
	SignedPrekey          string `json:"signed_prekey"`
	SignedPrekeySignature string `json:"signed_prekey_signature"`
	SignedPrekeyID        int32  `json:"signed_prekey_id"`
	// OneTimePrekey is the one-time prekey the registry handed out and
	// marked consumed, if it had one to give. OneTimePrekeys carries the
	// same key as a list, the form older clients read.
	OneTimePrekey  *OneTimePrekey  `json:"one_time_prekey,omitempty"`
	OneTimePrekeys []OneTimePrekey `json:"one_time_prekeys"`
}

// OneTime returns the bundle's one-time prekey from whichever member
// carries it, or nil if the bundle has none.
func (b *PrekeyBundle) OneTime() *OneTimePrekey {
	if b.OneTimePrekey != nil {
		return b.OneTimePrekey
	}
	if len(b.OneTimePrekeys) > 0 {
		k := b.OneTimePrekeys[0]
		return &k
	}
	return nil
}

// PrekeyCount is the answer to GET /v1/registry/prekeys/{amid}/count: how
// many one-time prekeys of the agent are left.
type PrekeyCount struct {
	AMID                    string         `json:"amid"`
	OneTimePrekeysRemaining int            `json:"one_time_prekeys_remaining"`
	Notifications           []Notification `json:"notifications,omitempty"`
}

// UploadPrekeys uploads the signer's signed prekey and one-time prekeys.
// It fills in req's AMID and signature.
func (c *Client) UploadPrekeys(ctx context.Context, signer *Signer, req PrekeyUploadRequest) (*PrekeyUploadResponse, error) {
	if signer == nil {
		return nil, errors.New("registry: upload prekeys: no signer")
	}
	req.AMID = string(signer.AMID)
	req.Signed = signer.Sign()
	var out PrekeyUploadResponse
	if err := c.do(ctx, http.MethodPost, "/registry/prekeys", nil, req, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return &out, nil
}

// FetchPrekeyBundle fetches the prekey bundle of agent amid, taking one of
// its one-time prekeys if the registry has one to give. It reads the
// one-time prekey from either member a registry may send it in.
func (c *Client) FetchPrekeyBundle(ctx context.Context, amid string) (*PrekeyBundle, error) {
	var out PrekeyBundle
	if err := c.do(ctx, http.MethodGet, "/registry/prekeys/"+url.PathEscape(amid), nil, nil, &out, http.StatusOK); err != nil {
		return nil, err
	}
	if out.OneTimePrekey == nil && len(out.OneTimePrekeys) > 0 {
		out.OneTimePrekey = &out.OneTimePrekeys[0]
	}
	if out.OneTimePrekey != nil && len(out.OneTimePrekeys) == 0 {
		out.OneTimePrekeys = []OneTimePrekey{*out.OneTimePrekey}
	}
	return &out, nil
}

// PrekeyCount asks how many one-time prekeys of the signer's agent the
// registry still holds.
func (c *Client) PrekeyCount(ctx context.Context, signer *Signer) (*PrekeyCount, error) {
	if signer == nil {
		return nil, errors.New("registry: prekey count: no signer")
	}
	sig := signer.Sign()
	q := url.Values{"timestamp": {sig.Timestamp}, "signature": {sig.Signature}}
	var out PrekeyCount
	path := "/registry/prekeys/" + url.PathEscape(string(signer.AMID)) + "/count"
	if err := c.do(ctx, http.MethodGet, path, q, nil, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return &out, nil
}
