package protocol

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"
)

// The CONNECT signatures of PROTOCOL.md §2.2, made with the cross-SDK AMID
// vector's signing seed.
const (
	connectSeed  = "pjHmygmU0ZQD3QWvkb0yJRvPDh8x2z5OW3h1Ibm0/vM="
	connectAMID  = "jZ6CK1dpcZD4oPYScUJvifP7BtJ"
	connectTSRFC = "2026-02-01T16:25:10.555+00:00"
	connectSigRF = "04HZgTrSnhz+IGT/jMlOdZHK6GJNbhiwAb1OCxPHGXIiMwvVKUe6JpcsSmmPZz1jOajjEsMlKssb9CHQd9pDBQ=="
	connectTSJS  = "2026-02-01T16:25:10.555Z"
	connectSigJS = "+KJysaZUeceur/0vFTqB/86hNPbwSXwRnN2fVKRvkSJn0/O2J1Dp1YolrJVPmngFZ92GxTjCYkChpInCqwYHBg=="
)

func TestSignTimestampVectors(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(mustB64(t, connectSeed))
	for _, tt := range []struct{ ts, want string }{
		{connectTSRFC, connectSigRF},
		{connectTSJS, connectSigJS},
	} {
		if got := SignTimestamp(priv, tt.ts); got != tt.want {
			t.Errorf("SignTimestamp(%q) = %s, want %s", tt.ts, got, tt.want)
		}
	}
}

func TestVerifyTimestamp(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(mustB64(t, connectSeed))
	pub := priv.Public().(ed25519.PublicKey)
	now := time.Date(2026, 2, 1, 16, 26, 0, 0, time.UTC)
	tests := []struct {
		name, ts, sig string
		now           time.Time
		wantErr       error
	}{
		{"T-RFC signed as sent", connectTSRFC, connectSigRF, now, nil},
		{"T-JS signed as sent", connectTSJS, connectSigJS, now, nil},
		// The Rust relay verifies over the T-RFC rendering of what it
		// received, so it accepts this; so do we.
		{"T-JS sent, T-RFC signed", connectTSJS, connectSigRF, now, nil},
		{"T-RFC sent, T-JS signed", connectTSRFC, connectSigJS, now, ErrBadSignature},
		{"other timestamp", "2026-02-01T16:25:10.556+00:00", connectSigRF, now, ErrBadSignature},
		{"garbage signature", connectTSRFC, "AAAA", now, ErrBadSignature},
		// A JSON "\n" or "\r" escape must not yield a second spelling of
		// a valid signature, which would slip past a replay cache keyed by
		// the signature string.
		{"signature with a newline", connectTSRFC, connectSigRF[:40] + "\n" + connectSigRF[40:], now, ErrBadSignature},
		{"signature with CR LF", connectTSRFC, connectSigRF[:40] + "\r\n" + connectSigRF[40:], now, ErrBadSignature},
		{"signature ending in a newline", connectTSRFC, connectSigRF + "\n", now, ErrBadSignature},
		{"stale", connectTSRFC, connectSigRF, now.Add(10 * time.Minute), ErrStale},
		{"from the future", connectTSRFC, connectSigRF, now.Add(-3 * time.Minute), ErrStale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyTimestamp(pub, tt.ts, tt.sig, tt.now)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("VerifyTimestamp = %v, want %v", err, tt.wantErr)
			}
		})
	}
	if err := VerifyTimestamp(pub, "yesterday", connectSigRF, now); err == nil {
		t.Error("VerifyTimestamp accepted an unparsable timestamp")
	}
}

func TestVerifyConnect(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(mustB64(t, connectSeed))
	pub := priv.Public().(ed25519.PublicKey)
	now := time.Date(2026, 2, 1, 16, 26, 0, 0, time.UTC)
	raw := B64.EncodeToString(pub)
	for _, key := range []string{raw, EncodeSigningPublicKey(pub)} {
		got, err := VerifyConnect(connectAMID, key, connectTSRFC, connectSigRF, now)
		if err != nil || !got.Equal(pub) {
			t.Errorf("VerifyConnect(key %q) = %v", key, err)
		}
	}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)).Public().(ed25519.PublicKey)
	if _, err := VerifyConnect(connectAMID, B64.EncodeToString(other), connectTSRFC, connectSigRF, now); err == nil {
		t.Error("VerifyConnect accepted a key that does not derive the AMID")
	}
	if err := VerifyOrgRegistration(DeriveAMID(other), raw, connectTSRFC, connectSigRF, now); err == nil {
		t.Error("VerifyOrgRegistration accepted a key that does not derive the admin AMID")
	}
	if err := VerifyOrgRegistration(connectAMID, raw, connectTSRFC, connectSigRF, now); err != nil {
		t.Errorf("VerifyOrgRegistration: %v", err)
	}
}

// TestPrekeySignatureVector checks S6 against the signed prekey of the
// cross-SDK X3DH vector.
func TestPrekeySignatureVector(t *testing.T) {
	const (
		spk    = "WvzlPN0TRO4+d2V6JgoSM+93IqMTjQ5PHMgHyKTlfHc="
		sig    = "Dk+YJi1c9eZOAoKo/GNqyZ3CZfvDC2byV34JsZ4EU0IzYdvsZ5vRn5+yKeZjhNUnD0CLbqQ1GrduhPxgjwNbAA=="
		signer = "E7RAq5XydbCiV7fwsMJety83LB8m6376gWTC31Gj1Z8="
	)
	pub := ed25519.PublicKey(mustB64(t, signer))
	key := mustB64(t, spk)
	if err := VerifyPrekey(pub, key, sig); err != nil {
		t.Errorf("VerifyPrekey(vector) = %v", err)
	}
	key[0] ^= 1
	if err := VerifyPrekey(pub, key, sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("VerifyPrekey(altered key) = %v, want ErrBadSignature", err)
	}
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, 32))
	s := SignPrekey(priv, key)
	if err := VerifyPrekey(priv.Public().(ed25519.PublicKey), key, s); err != nil {
		t.Errorf("VerifyPrekey(SignPrekey) = %v", err)
	}
	if err := VerifyPrekey(priv.Public().(ed25519.PublicKey), key[:31], s); err == nil {
		t.Error("VerifyPrekey accepted a 31-byte key")
	}
}
