package protocol

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"
)

func TestPyKnockAndRejectRoundTrip(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, rpriv, _ := ed25519.GenerateKey(rand.Reader)
	from, to := DeriveAMID(pub), DeriveAMID(rpriv.Public().(ed25519.PublicKey))
	k := &PyKnock{
		ProtocolVersion:     ProtocolVersion,
		From:                PyAgent{AMID: from, Tier: 1.5, ReputationScore: 0.9},
		Intent:              PyIntent{Category: "travel", Subcategory: "flights"},
		SessionRequest:      PySessionRequest{Type: "request_response", TTLSeconds: 300},
		Timestamp:           FormatPYTimestamp(time.Now()),
		OfferedCapabilities: []string{"json"},
	}
	if err := k.Sign(priv, to); err != nil {
		t.Fatal(err)
	}
	b, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHandshake(b)
	if err != nil {
		t.Fatalf("parsing %s: %v", b, err)
	}
	got, ok := h.(*PyKnock)
	if !ok {
		t.Fatalf("parsed %T", h)
	}
	if got.From.Tier != 1.5 || got.Intent.Subcategory != "flights" || got.SessionRequest.TTLSeconds != 300 || got.OfferedCapabilities[0] != "json" {
		t.Fatalf("round trip lost members: %+v", got)
	}
	if err := got.Verify(pub, to); err != nil {
		t.Fatalf("signature does not survive the round trip: %v", err)
	}

	j := &PyReject{Reason: "insufficient_trust", Timestamp: FormatPYTimestamp(time.Now())}
	if err := j.Sign(rpriv, to, from); err != nil {
		t.Fatal(err)
	}
	b, err = j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h, err = ParseHandshake(b)
	if err != nil {
		t.Fatalf("parsing %s: %v", b, err)
	}
	gj, ok := h.(*PyReject)
	if !ok || gj.HumanReadable != "Connection rejected: insufficient_trust" {
		t.Fatalf("parsed %T %+v", h, h)
	}
	if err := gj.Verify(rpriv.Public().(ed25519.PublicKey), to, from); err != nil {
		t.Fatal(err)
	}
}
