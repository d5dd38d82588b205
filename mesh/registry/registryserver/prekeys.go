package registryserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// One-time prekey fetch limit (W-4), Signal's rule: a requester may take
// PrekeyFetchBurst one-time prekeys of one agent at once and one more every
// PrekeyFetchRefill. Past that it gets the bundle without a one-time prekey.
const (
	PrekeyFetchBurst  = 6
	PrekeyFetchRefill = 10 * time.Minute
)

// prekeyKeySize is the length of an X25519 public key.
const prekeyKeySize = 32

// initPrekeyLimits sets up the per requester and target limit on one-time
// prekey fetches.
func (s *Server) initPrekeyLimits() {
	s.prekeys = newLimiterSet(1, PrekeyFetchRefill, PrekeyFetchBurst)
}

// handlePrekeyUpload serves POST /v1/registry/prekeys: the agent stores its
// signed prekey and adds one-time prekeys (PROTOCOL.md §8.6). Unlike the
// original registry it checks what it stores (W-5): the signature S6, the
// key lengths and the ids.
func (s *Server) handlePrekeyUpload(w http.ResponseWriter, r *http.Request) {
	var req registry.PrekeyUploadRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeAPIError(w, err)
		return
	}
	ctx := r.Context()
	a, err := s.authenticate(ctx, req.AMID, req.Signed)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.refuseRevoked(ctx, a.AMID); err != nil {
		s.fail(w, r, err)
		return
	}
	signingKey, err := storedSigningKey(a.AMID, a.SigningPublicKey)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	spk, otpks, apiErr := validatePrekeyUpload(&req, signingKey)
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	stored, unconsumed, err := s.store.StorePrekeys(ctx, a.AMID, spk, otpks, registry.MaxUnconsumedPrekeys, s.now())
	switch {
	case errors.Is(err, ErrNotFound):
		s.fail(w, r, errAgentNotFound)
		return
	case errors.Is(err, ErrTooManyPrekeys):
		s.fail(w, r, errorf(http.StatusBadRequest, "too_many_prekeys",
			"an agent may hold at most %d unconsumed one-time prekeys: %v", registry.MaxUnconsumedPrekeys, err))
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, registry.PrekeyUploadResponse{
		Success:              true,
		SignedPrekeyID:       spk.ID,
		OneTimePrekeysStored: stored,
		Notifications:        lowPrekeyNotifications(unconsumed),
	})
}

// validatePrekeyUpload checks an upload and returns its keys in the stored
// form: padded base64 of the raw 32 bytes, without a key prefix.
func validatePrekeyUpload(req *registry.PrekeyUploadRequest, signingKey []byte) (SignedPrekey, []registry.OneTimePrekey, *apiError) {
	invalidSPK := func(format string, args ...any) *apiError {
		return errorf(http.StatusBadRequest, "invalid_signed_prekey", format, args...)
	}
	raw, err := decodePrekey(req.SignedPrekey)
	if err != nil {
		return SignedPrekey{}, nil, invalidSPK("signed_prekey: %v", err)
	}
	if req.SignedPrekeySignature == "" {
		return SignedPrekey{}, nil, invalidSPK("signed_prekey_signature is empty: sign the 32 raw signed prekey bytes with the agent's signing key")
	}
	if protocol.VerifyPrekey(signingKey, raw, req.SignedPrekeySignature) != nil {
		return SignedPrekey{}, nil, invalidSPK("signed_prekey_signature is not a valid Ed25519 signature by the agent's signing key over the 32 raw signed prekey bytes")
	}
	if req.SignedPrekeyID < 0 {
		return SignedPrekey{}, nil, invalidSPK("signed_prekey_id %d is negative", req.SignedPrekeyID)
	}
	spk := SignedPrekey{ID: req.SignedPrekeyID, PublicKey: protocol.B64.EncodeToString(raw), Signature: req.SignedPrekeySignature}

	if len(req.OneTimePrekeys) > registry.MaxPrekeysPerUpload {
		return SignedPrekey{}, nil, errorf(http.StatusBadRequest, "too_many_prekeys",
			"one upload may carry at most %d one-time prekeys, this one has %d", registry.MaxPrekeysPerUpload, len(req.OneTimePrekeys))
	}
	invalidOTPK := func(i int, format string, args ...any) *apiError {
		return errorf(http.StatusBadRequest, "invalid_one_time_prekey", "one_time_prekeys[%d]: %s", i, fmt.Sprintf(format, args...))
	}
	otpks := make([]registry.OneTimePrekey, len(req.OneTimePrekeys))
	seen := make(map[int32]int, len(req.OneTimePrekeys))
	for i, k := range req.OneTimePrekeys {
		if k.ID < 0 {
			return SignedPrekey{}, nil, invalidOTPK(i, "id %d is negative", k.ID)
		}
		if j, dup := seen[k.ID]; dup {
			return SignedPrekey{}, nil, invalidOTPK(i, "id %d is also the id of one_time_prekeys[%d]", k.ID, j)
		}
		seen[k.ID] = i
		raw, err := decodePrekey(k.Key)
		if err != nil {
			return SignedPrekey{}, nil, invalidOTPK(i, "key: %v", err)
		}
		otpks[i] = registry.OneTimePrekey{ID: k.ID, Key: protocol.B64.EncodeToString(raw)}
	}
	return spk, otpks, nil
}

// decodePrekey reads an X25519 public key in padded base64, with or without
// a key prefix.
func decodePrekey(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("is empty")
	}
	body, _ := protocol.StripKeyPrefix(s)
	return protocol.DecodeB64(body, prekeyKeySize)
}

// handlePrekeyFetch serves GET /v1/registry/prekeys/{amid}: anyone may
// fetch an agent's bundle, which hands out (consumes) the agent's
// lowest-id unconsumed one-time prekey, at most PrekeyFetchBurst to one
// requester at once (W-4). Revoked agents have no bundle (W-7).
func (s *Server) handlePrekeyFetch(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	amid := r.PathValue("amid")
	if err := checkAMID(amid); err != nil {
		s.fail(w, r, err)
		return
	}
	exchangeKey, spk, err := s.store.PrekeyOwner(ctx, amid)
	if err != nil {
		s.fail(w, r, orNotFound(err, errAgentNotFound))
		return
	}
	if err := s.refuseRevoked(ctx, amid); err != nil {
		s.fail(w, r, err)
		return
	}
	if spk == nil {
		writeAPIError(w, errorf(http.StatusNotFound, "no_prekeys", "No prekeys available for this agent"))
		return
	}
	identityKey, _ := protocol.StripKeyPrefix(exchangeKey)
	bundle := registry.PrekeyBundle{
		IdentityKey:           identityKey,
		SignedPrekey:          spk.PublicKey,
		SignedPrekeySignature: spk.Signature,
		SignedPrekeyID:        spk.ID,
		OneTimePrekeys:        []registry.OneTimePrekey{},
	}
	now := s.now()
	if s.prekeys.allow(s.clientIP(r)+" "+amid, now) {
		otpk, err := s.store.ConsumeOneTimePrekey(ctx, amid, now)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if otpk != nil {
			bundle.OneTimePrekey = otpk
			bundle.OneTimePrekeys = []registry.OneTimePrekey{*otpk}
		}
	} else {
		w.Header().Set(registry.PrekeyThrottledHeader, "1")
	}
	// Every answer hands out a different one-time prekey: never cache it.
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, bundle)
}

// handlePrekeyCount serves GET /v1/registry/prekeys/{amid}/count, signed by
// the agent in the timestamp and signature query parameters: how many
// one-time prekeys it has left.
func (s *Server) handlePrekeyCount(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	amid := r.PathValue("amid")
	q := r.URL.Query()
	sig := registry.Signed{Timestamp: q.Get("timestamp"), Signature: q.Get("signature")}
	if sig.Timestamp == "" || sig.Signature == "" {
		writeAPIError(w, errorf(http.StatusBadRequest, "missing_signature",
			"the timestamp and signature query parameters are required"))
		return
	}
	if _, err := s.authenticate(ctx, amid, sig); err != nil {
		s.fail(w, r, err)
		return
	}
	n, err := s.store.UnconsumedPrekeys(ctx, amid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, registry.PrekeyCount{
		AMID:                    amid,
		OneTimePrekeysRemaining: n,
		Notifications:           lowPrekeyNotifications(n),
	})
}

// notificationsFor returns what the registry has to tell agent amid in the
// response to one of its own signed requests (a low_prekeys warning). A
// failure to read the count is logged and gives no notification.
func (s *Server) notificationsFor(ctx context.Context, amid string) []registry.Notification {
	n, err := s.store.UnconsumedPrekeys(ctx, amid)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			s.log.Warn("cannot count one-time prekeys for notifications", "amid", amid, "error", err)
		}
		return []registry.Notification{}
	}
	return lowPrekeyNotifications(n)
}

// lowPrekeyNotifications is the low_prekeys notification for an agent with
// n unconsumed one-time prekeys, if n is below the threshold.
func lowPrekeyNotifications(n int) []registry.Notification {
	if n >= registry.LowPrekeyThreshold {
		return []registry.Notification{}
	}
	return []registry.Notification{{
		Type:                    registry.NotificationLowPrekeys,
		OneTimePrekeysRemaining: &n,
		Threshold:               registry.LowPrekeyThreshold,
	}}
}
