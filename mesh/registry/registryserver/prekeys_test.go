package registryserver

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// newPrekey returns a fresh X25519 public key: raw and padded base64.
func newPrekey(t testing.TB) ([]byte, string) {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw := k.PublicKey().Bytes()
	return raw, protocol.B64.EncodeToString(raw)
}

// prekeyUpload builds a valid upload for a: a signed prekey with id spkID
// signed by a, and fresh one-time prekeys with the given ids.
func prekeyUpload(t testing.TB, a *testAgent, spkID int32, ids ...int32) registry.PrekeyUploadRequest {
	t.Helper()
	raw, b64 := newPrekey(t)
	req := registry.PrekeyUploadRequest{
		AMID:                  a.AMID,
		SignedPrekey:          b64,
		SignedPrekeySignature: protocol.SignPrekey(a.Signing, raw),
		SignedPrekeyID:        spkID,
		OneTimePrekeys:        []registry.OneTimePrekey{},
	}
	for _, id := range ids {
		_, k := newPrekey(t)
		req.OneTimePrekeys = append(req.OneTimePrekeys, registry.OneTimePrekey{ID: id, Key: k})
	}
	return req
}

// idRange returns the ids from..to inclusive.
func idRange(from, to int32) []int32 {
	var ids []int32
	for i := from; i <= to; i++ {
		ids = append(ids, i)
	}
	return ids
}

// upload uploads req through the client and fails the test on error.
func (e *testEnv) upload(a *testAgent, req registry.PrekeyUploadRequest) *registry.PrekeyUploadResponse {
	e.t.Helper()
	resp, err := e.client.UploadPrekeys(context.Background(), a.Signer, req)
	if err != nil {
		e.t.Fatalf("UploadPrekeys: %v", err)
	}
	return resp
}

// remaining counts a's unconsumed one-time prekeys in the store.
func (e *testEnv) remaining(a *testAgent) int {
	e.t.Helper()
	n, err := e.store.UnconsumedPrekeys(context.Background(), a.AMID)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// fetchRaw fetches a's bundle over raw HTTP, from requester address xff
// when it is not empty (the server must trust X-Forwarded-For).
func (e *testEnv) fetchRaw(amid, xff string) (status int, hdr http.Header, body []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.http.URL+"/v1/registry/prekeys/"+amid, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

func TestPrekeyUploadAndFetch(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		ctx := context.Background()
		a := e.addAgent(registry.TierAnonymous)

		req := prekeyUpload(t, a, 1, 3, 1, 2)
		// A prefixed key is accepted and stored without its prefix.
		req.OneTimePrekeys[0].Key = protocol.ExchangeKeyPrefix + req.OneTimePrekeys[0].Key
		resp := e.upload(a, req)
		if !resp.Success || resp.SignedPrekeyID != 1 || resp.OneTimePrekeysStored != 3 {
			t.Fatalf("upload = %+v", resp)
		}
		keys := map[int32]string{}
		for _, k := range req.OneTimePrekeys {
			keys[k.ID], _ = protocol.StripKeyPrefix(k.Key)
		}

		signing := a.Signing.Public().(ed25519.PublicKey)
		for _, want := range []int32{1, 2, 3} {
			b, err := e.client.FetchPrekeyBundle(ctx, a.AMID)
			if err != nil {
				t.Fatal(err)
			}
			if b.IdentityKey != protocol.B64.EncodeToString(a.Exchange.PublicKey().Bytes()) {
				t.Fatalf("identity_key = %q, want the raw unprefixed exchange key", b.IdentityKey)
			}
			if b.SignedPrekey != req.SignedPrekey || b.SignedPrekeyID != 1 || b.SignedPrekeySignature != req.SignedPrekeySignature {
				t.Fatalf("signed prekey = %q #%d", b.SignedPrekey, b.SignedPrekeyID)
			}
			spk, err := protocol.DecodeB64(b.SignedPrekey, 32)
			if err != nil {
				t.Fatal(err)
			}
			if err := protocol.VerifyPrekey(signing, spk, b.SignedPrekeySignature); err != nil {
				t.Fatalf("bundle signature: %v", err)
			}
			otpk := b.OneTime()
			if otpk == nil || otpk.ID != want || otpk.Key != keys[want] {
				t.Fatalf("one-time prekey = %+v, want id %d key %s", otpk, want, keys[want])
			}
			if len(b.OneTimePrekeys) != 1 || b.OneTimePrekeys[0] != *otpk {
				t.Fatalf("one_time_prekeys = %+v, want [%+v]", b.OneTimePrekeys, *otpk)
			}
		}

		// None left: the bundle comes without, as an empty list.
		status, _, body := e.fetchRaw(a.AMID, "")
		if status != http.StatusOK {
			t.Fatalf("fetch: %d %s", status, body)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Fatal(err)
		}
		if _, ok := raw["one_time_prekey"]; ok || string(raw["one_time_prekeys"]) != "[]" {
			t.Fatalf("exhausted bundle = %s, want no one_time_prekey and one_time_prekeys []", body)
		}
		if strings.Contains(string(raw["identity_key"]), protocol.ExchangeKeyPrefix) {
			t.Fatalf("identity_key is prefixed: %s", raw["identity_key"])
		}

		// Ids already held (even consumed) are kept; only new ones count.
		again := prekeyUpload(t, a, 1, 1, 2, 3, 4)
		resp = e.upload(a, again)
		if resp.OneTimePrekeysStored != 1 {
			t.Fatalf("re-upload stored %d, want 1", resp.OneTimePrekeysStored)
		}
		b, err := e.client.FetchPrekeyBundle(ctx, a.AMID)
		if err != nil {
			t.Fatal(err)
		}
		if b.OneTime() == nil || b.OneTime().ID != 4 || b.OneTime().Key != again.OneTimePrekeys[3].Key {
			t.Fatalf("after re-upload got %+v, want the new id 4", b.OneTime())
		}
		// Same signed prekey id: key and signature replaced.
		if b.SignedPrekey != again.SignedPrekey || b.SignedPrekeySignature != again.SignedPrekeySignature {
			t.Fatalf("signed prekey #1 not replaced")
		}

		// The highest signed prekey id is served, whatever the upload order.
		spk2 := prekeyUpload(t, a, 2)
		spk2.SignedPrekey = protocol.ExchangeKeyPrefix + spk2.SignedPrekey
		e.upload(a, spk2)
		e.upload(a, prekeyUpload(t, a, 1))
		b, err = e.client.FetchPrekeyBundle(ctx, a.AMID)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := protocol.StripKeyPrefix(spk2.SignedPrekey); b.SignedPrekeyID != 2 || b.SignedPrekey != want {
			t.Fatalf("signed prekey = #%d %s, want #2 %s", b.SignedPrekeyID, b.SignedPrekey, want)
		}
	})
}

func TestPrekeyUploadRejectsInvalid(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		ctx := context.Background()
		other := newTestAgent(t)
		tooMany := idRange(1, registry.MaxPrekeysPerUpload+1)
		short := protocol.B64.EncodeToString(make([]byte, 31))
		long := protocol.B64.EncodeToString(make([]byte, 33))

		cases := []struct {
			name   string
			mutate func(a *testAgent, r *registry.PrekeyUploadRequest)
			code   string
			msg    string
		}{
			{"forged signature", func(a *testAgent, r *registry.PrekeyUploadRequest) {
				raw, _ := protocol.DecodeB64(r.SignedPrekey, 32)
				r.SignedPrekeySignature = protocol.SignPrekey(other.Signing, raw)
			}, "invalid_signed_prekey", "not a valid Ed25519 signature"},
			{"signature over another key", func(a *testAgent, r *registry.PrekeyUploadRequest) {
				raw, _ := newPrekey(t)
				r.SignedPrekeySignature = protocol.SignPrekey(a.Signing, raw)
			}, "invalid_signed_prekey", "not a valid Ed25519 signature"},
			{"empty signature", func(a *testAgent, r *registry.PrekeyUploadRequest) {
				r.SignedPrekeySignature = ""
			}, "invalid_signed_prekey", "signed_prekey_signature is empty"},
			{"signature not base64", func(a *testAgent, r *registry.PrekeyUploadRequest) {
				r.SignedPrekeySignature = "!!!"
			}, "invalid_signed_prekey", "not a valid Ed25519 signature"},
			{"empty signed prekey", func(a *testAgent, r *registry.PrekeyUploadRequest) {
				r.SignedPrekey = ""
			}, "invalid_signed_prekey", "signed_prekey: is empty"},
			{"31-byte signed prekey", func(a *testAgent, r *registry.PrekeyUploadRequest) {
				r.SignedPrekey = short
				r.SignedPrekeySignature = protocol.SignPrekey(a.Signing, make([]byte, 31))
			}, "invalid_signed_prekey", "decodes to 31 bytes, want 32"},
			{"33-byte signed prekey", func(a *testAgent, r *registry.PrekeyUploadRequest) {
				r.SignedPrekey = long
				r.SignedPrekeySignature = protocol.SignPrekey(a.Signing, make([]byte, 33))
			}, "invalid_signed_prekey", "decodes to 33 bytes, want 32"},
			{"negative signed prekey id", func(a *testAgent, r *registry.PrekeyUploadRequest) {
				r.SignedPrekeyID = -1
			}, "invalid_signed_prekey", "signed_prekey_id -1 is negative"},
			{"31-byte one-time prekey", func(a *testAgent, r *registry.PrekeyUploadRequest) {
				r.OneTimePrekeys[1].Key = short
			}, "invalid_one_time_prekey", "one_time_prekeys[1]: key: decodes to 31 bytes"},
			{"33-byte one-time prekey", func(a *testAgent, r *registry.PrekeyUploadRequest) {
				r.OneTimePrekeys[2].Key = long
			}, "invalid_one_time_prekey", "one_time_prekeys[2]: key: decodes to 33 bytes"},
			{"unpadded one-time prekey", func(a *testAgent, r *registry.PrekeyUploadRequest) {
				r.OneTimePrekeys[0].Key = strings.TrimRight(r.OneTimePrekeys[0].Key, "=")
			}, "invalid_one_time_prekey", "one_time_prekeys[0]: key: not standard padded base64"},
			{"negative one-time prekey id", func(a *testAgent, r *registry.PrekeyUploadRequest) {
				r.OneTimePrekeys[2].ID = -5
			}, "invalid_one_time_prekey", "one_time_prekeys[2]: id -5 is negative"},
			{"duplicate ids", func(a *testAgent, r *registry.PrekeyUploadRequest) {
				r.OneTimePrekeys[2].ID = r.OneTimePrekeys[0].ID
			}, "invalid_one_time_prekey", "one_time_prekeys[2]: id 1 is also the id of one_time_prekeys[0]"},
			{"too many in one upload", func(a *testAgent, r *registry.PrekeyUploadRequest) {
				*r = prekeyUpload(t, a, 1, tooMany...)
			}, "too_many_prekeys", "at most 200"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				a := e.addAgent(registry.TierAnonymous)
				req := prekeyUpload(t, a, 1, 1, 2, 3)
				tc.mutate(a, &req)
				_, err := e.client.UploadPrekeys(ctx, a.Signer, req)
				ae := wantAPIError(t, err, http.StatusBadRequest, tc.code)
				if !strings.Contains(ae.Message, tc.msg) {
					t.Errorf("message %q does not say %q", ae.Message, tc.msg)
				}
				if n := e.remaining(a); n != 0 {
					t.Errorf("%d one-time prekeys stored after a refused upload", n)
				}
				if _, spk, err := st.PrekeyOwner(ctx, a.AMID); err != nil || spk != nil {
					t.Errorf("signed prekey stored after a refused upload: %+v %v", spk, err)
				}
			})
		}

		t.Run("held limit", func(t *testing.T) {
			a := e.addAgent(registry.TierAnonymous)
			for i := range int32(5) {
				e.upload(a, prekeyUpload(t, a, 1, idRange(i*200+1, i*200+200)...))
			}
			if n := e.remaining(a); n != registry.MaxUnconsumedPrekeys {
				t.Fatalf("remaining = %d", n)
			}
			// Ids already held do not count against the limit.
			if resp := e.upload(a, prekeyUpload(t, a, 1, idRange(1, 200)...)); resp.OneTimePrekeysStored != 0 {
				t.Fatalf("stored %d known ids", resp.OneTimePrekeysStored)
			}
			// One more is refused, with the signed prekey of the same upload.
			_, err := e.client.UploadPrekeys(ctx, a.Signer, prekeyUpload(t, a, 7, 1001))
			wantAPIError(t, err, http.StatusBadRequest, "too_many_prekeys")
			if n := e.remaining(a); n != registry.MaxUnconsumedPrekeys {
				t.Fatalf("remaining = %d after refused upload", n)
			}
			if _, spk, err := st.PrekeyOwner(ctx, a.AMID); err != nil || spk.ID != 1 {
				t.Fatalf("signed prekey = %+v, %v; want #1 kept", spk, err)
			}
			// Once one is consumed, there is room for one.
			if _, err := e.client.FetchPrekeyBundle(ctx, a.AMID); err != nil {
				t.Fatal(err)
			}
			if resp := e.upload(a, prekeyUpload(t, a, 7, 1001)); resp.OneTimePrekeysStored != 1 {
				t.Fatalf("stored %d", resp.OneTimePrekeysStored)
			}
		})
	})
}

func TestPrekeyUploadAuthentication(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		ctx := context.Background()
		a := e.addAgent(registry.TierAnonymous)

		// Unknown agent.
		stranger := newTestAgent(t)
		_, err := e.client.UploadPrekeys(ctx, stranger.Signer, prekeyUpload(t, stranger, 1, 1))
		if ae := wantAPIError(t, err, http.StatusNotFound, "agent_not_found"); ae.Message != "Agent not found" {
			t.Fatalf("message = %q", ae.Message)
		}

		// Signed by another key.
		req := prekeyUpload(t, a, 1, 1)
		req.Signed = e.sign(stranger)
		if status, er := e.postRaw("/v1/registry/prekeys", req); status != http.StatusUnauthorized || er.Code != "invalid_signature" {
			t.Fatalf("wrong key: %d %+v", status, er)
		}
		// Stale.
		req.Signed = registry.Signed{Timestamp: protocol.FormatSigningTimestamp(e.clock.Now().Add(-10 * time.Minute))}
		req.Signature = protocol.SignTimestamp(a.Signing, req.Timestamp)
		if status, er := e.postRaw("/v1/registry/prekeys", req); status != http.StatusUnauthorized {
			t.Fatalf("stale: %d %+v", status, er)
		}
		if n := e.remaining(a); n != 0 {
			t.Fatalf("%d stored by refused uploads", n)
		}

		// A replayed request is refused, even with other prekeys in it.
		req.Signed = e.sign(a)
		if status, er := e.postRaw("/v1/registry/prekeys", req); status != http.StatusOK {
			t.Fatalf("first: %d %+v", status, er)
		}
		replay := prekeyUpload(t, a, 1, 2, 3)
		replay.Signed = req.Signed
		if status, er := e.postRaw("/v1/registry/prekeys", replay); status != http.StatusUnauthorized || er.Code != "invalid_signature" {
			t.Fatalf("replay: %d %+v", status, er)
		}
		if n := e.remaining(a); n != 1 {
			t.Fatalf("remaining = %d after a replay, want 1", n)
		}

		// Malformed bodies.
		for _, body := range []string{``, `{`, `[]`, `{"amid":5}`, `{"signed_prekey_id":4294967296}`, `{"amid":"x"}`} {
			if status, er := e.postRaw("/v1/registry/prekeys", []byte(body)); status != http.StatusBadRequest {
				t.Errorf("body %q: %d %+v, want 400", body, status, er)
			}
		}
	})
}

// revoke marks agent amid revoked directly in the store.
func (e *testEnv) revoke(amid string) {
	e.t.Helper()
	if _, err := e.store.db.ExecContext(context.Background(),
		`INSERT INTO revocations (id, amid, reason, revoked_by, revoked_at) VALUES ($1, $2, $3, $4, $5)`,
		"rev-"+amid, amid, "key_compromise", amid, millis(e.clock.Now())); err != nil {
		e.t.Fatal(err)
	}
}

func TestPrekeyFetchErrors(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		ctx := context.Background()

		for _, amid := range []string{"not-an-amid", "0OIl", strings.Repeat("z", 60)} {
			_, err := e.client.FetchPrekeyBundle(ctx, amid)
			wantAPIError(t, err, http.StatusBadRequest, "invalid_amid")
		}
		_, err := e.client.FetchPrekeyBundle(ctx, newTestAgent(t).AMID)
		if ae := wantAPIError(t, err, http.StatusNotFound, "agent_not_found"); ae.Message != "Agent not found" {
			t.Fatalf("message = %q", ae.Message)
		}
		a := e.addAgent(registry.TierAnonymous)
		_, err = e.client.FetchPrekeyBundle(ctx, a.AMID)
		if ae := wantAPIError(t, err, http.StatusNotFound, "no_prekeys"); ae.Message != "No prekeys available for this agent" {
			t.Fatalf("message = %q", ae.Message)
		}

		// A revoked agent has no bundle and can upload no prekeys (W-7).
		e.upload(a, prekeyUpload(t, a, 1, 1, 2))
		e.revoke(a.AMID)
		_, err = e.client.FetchPrekeyBundle(ctx, a.AMID)
		wantAPIError(t, err, http.StatusForbidden, "agent_revoked")
		_, err = e.client.UploadPrekeys(ctx, a.Signer, prekeyUpload(t, a, 2, 3))
		wantAPIError(t, err, http.StatusForbidden, "agent_revoked")
		if n := e.remaining(a); n != 2 {
			t.Fatalf("remaining = %d, want 2 (nothing handed out or added)", n)
		}
	})
}

func TestPrekeyFetchConcurrent(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st, func(c *Config) { c.TrustForwardedFor = true })
		a := e.addAgent(registry.TierAnonymous)
		const keys, fetchers = 40, 60
		e.upload(a, prekeyUpload(t, a, 1, idRange(1, keys)...))

		type result struct {
			status int
			body   []byte
		}
		results := make([]result, fetchers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range fetchers {
			wg.Go(func() {
				req, err := http.NewRequest(http.MethodGet, e.http.URL+"/v1/registry/prekeys/"+a.AMID, nil)
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
				<-start
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				results[i] = result{resp.StatusCode, body}
			})
		}
		close(start)
		wg.Wait()

		seen := map[int32]bool{}
		without := 0
		for i, r := range results {
			if r.status != http.StatusOK {
				t.Fatalf("fetch %d: %d %s", i, r.status, r.body)
			}
			var b registry.PrekeyBundle
			if err := json.Unmarshal(r.body, &b); err != nil {
				t.Fatal(err)
			}
			k := b.OneTime()
			if k == nil {
				without++
				continue
			}
			if seen[k.ID] {
				t.Fatalf("one-time prekey %d handed out twice", k.ID)
			}
			seen[k.ID] = true
		}
		if len(seen) != keys || without != fetchers-keys {
			t.Fatalf("%d distinct one-time prekeys and %d bundles without, want %d and %d", len(seen), without, keys, fetchers-keys)
		}
		for id := int32(1); id <= keys; id++ {
			if !seen[id] {
				t.Fatalf("id %d never handed out", id)
			}
		}
		c, err := e.client.PrekeyCount(context.Background(), a.Signer)
		if err != nil {
			t.Fatal(err)
		}
		if c.OneTimePrekeysRemaining != 0 {
			t.Fatalf("count = %d, want 0", c.OneTimePrekeysRemaining)
		}
	})
}

// TestConsumeOneTimePrekeyRace races fetches on the store with its
// connections open beforehand, so that they meet in the database rather
// than queue for new connections: every round must hand out each one-time
// prekey exactly once and never come back empty while one is left.
func TestConsumeOneTimePrekeyRace(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		const keys, fetchers, rounds = 20, 32, 3
		e := newEnv(t, st)
		ctx := context.Background()
		open := fetchers
		if m := st.db.Stats().MaxOpenConnections; m > 0 {
			open = min(open, m)
		}
		st.db.SetMaxIdleConns(open)
		conns := make([]*sql.Conn, 0, open)
		for range open {
			c, err := st.db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Close()
		}

		for round := range rounds {
			a := e.addAgent(registry.TierAnonymous)
			e.upload(a, prekeyUpload(t, a, 1, idRange(1, keys)...))
			got := make([]*registry.OneTimePrekey, fetchers)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range fetchers {
				wg.Go(func() {
					<-start
					k, err := st.ConsumeOneTimePrekey(ctx, a.AMID, e.clock.Now())
					if err != nil {
						t.Error(err)
					}
					got[i] = k
				})
			}
			close(start)
			wg.Wait()
			seen := map[int32]bool{}
			for _, k := range got {
				if k == nil {
					continue
				}
				if seen[k.ID] {
					t.Fatalf("round %d: one-time prekey %d handed out twice", round, k.ID)
				}
				seen[k.ID] = true
			}
			if len(seen) != keys {
				t.Fatalf("round %d: %d one-time prekeys handed out, want all %d", round, len(seen), keys)
			}
		}
	})
}

func TestPrekeyFetchRateLimit(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		a := e.addAgent(registry.TierAnonymous)
		b := e.addAgent(registry.TierAnonymous)
		e.upload(a, prekeyUpload(t, a, 1, idRange(1, 20)...))
		e.upload(b, prekeyUpload(t, b, 1, idRange(1, 20)...))

		fetch := func(target *testAgent) (otpk *registry.OneTimePrekey, throttled bool) {
			t.Helper()
			status, hdr, body := e.fetchRaw(target.AMID, "")
			if status != http.StatusOK {
				t.Fatalf("fetch: %d %s", status, body)
			}
			var bundle registry.PrekeyBundle
			if err := json.Unmarshal(body, &bundle); err != nil {
				t.Fatal(err)
			}
			if bundle.SignedPrekeyID != 1 || bundle.SignedPrekey == "" {
				t.Fatalf("bundle without its signed prekey: %s", body)
			}
			return bundle.OneTime(), hdr.Get(registry.PrekeyThrottledHeader) == "1"
		}
		for i := range PrekeyFetchBurst {
			if k, throttled := fetch(a); k == nil || throttled || k.ID != int32(i+1) {
				t.Fatalf("fetch %d: %+v throttled=%v", i+1, k, throttled)
			}
		}
		if k, throttled := fetch(a); k != nil || !throttled {
			t.Fatalf("fetch %d: %+v throttled=%v, want no one-time prekey and the header", PrekeyFetchBurst+1, k, throttled)
		}
		// The limit is per target: another agent's keys are still served.
		if k, throttled := fetch(b); k == nil || throttled {
			t.Fatalf("other target: %+v throttled=%v", k, throttled)
		}
		if n := e.remaining(a); n != 20-PrekeyFetchBurst {
			t.Fatalf("remaining = %d: a throttled fetch consumed a key", n)
		}

		e.clock.Advance(PrekeyFetchRefill)
		if k, throttled := fetch(a); k == nil || throttled || k.ID != PrekeyFetchBurst+1 {
			t.Fatalf("after refill: %+v throttled=%v", k, throttled)
		}
		if k, throttled := fetch(a); k != nil || !throttled {
			t.Fatalf("second after refill: %+v throttled=%v", k, throttled)
		}
	})
}

func TestPrekeyCountAndNotifications(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		ctx := context.Background()
		a := e.addAgent(registry.TierAnonymous)

		lowPrekeys := func(ns []registry.Notification) (int, bool) {
			for _, n := range ns {
				if n.Type == registry.NotificationLowPrekeys {
					if n.OneTimePrekeysRemaining == nil || n.Threshold != registry.LowPrekeyThreshold {
						t.Fatalf("notification = %+v", n)
					}
					return *n.OneTimePrekeysRemaining, true
				}
			}
			return 0, false
		}

		resp := e.upload(a, prekeyUpload(t, a, 1, idRange(1, 4)...))
		if n, ok := lowPrekeys(resp.Notifications); !ok || n != 4 {
			t.Fatalf("upload of 4: notifications %+v", resp.Notifications)
		}
		resp = e.upload(a, prekeyUpload(t, a, 1, idRange(5, registry.LowPrekeyThreshold)...))
		if _, ok := lowPrekeys(resp.Notifications); ok {
			t.Fatalf("upload up to %d: notifications %+v", registry.LowPrekeyThreshold, resp.Notifications)
		}
		c, err := e.client.PrekeyCount(ctx, a.Signer)
		if err != nil {
			t.Fatal(err)
		}
		if c.AMID != a.AMID || c.OneTimePrekeysRemaining != registry.LowPrekeyThreshold {
			t.Fatalf("count = %+v", c)
		}
		if _, ok := lowPrekeys(c.Notifications); ok {
			t.Fatalf("count at threshold: notifications %+v", c.Notifications)
		}
		if ns := e.server.notificationsFor(ctx, a.AMID); len(ns) != 0 {
			t.Fatalf("notificationsFor at threshold = %+v", ns)
		}

		if _, err := e.client.FetchPrekeyBundle(ctx, a.AMID); err != nil {
			t.Fatal(err)
		}
		c, err = e.client.PrekeyCount(ctx, a.Signer)
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := lowPrekeys(c.Notifications); c.OneTimePrekeysRemaining != 9 || !ok || n != 9 {
			t.Fatalf("count below threshold = %+v", c)
		}
		if n, ok := lowPrekeys(e.server.notificationsFor(ctx, a.AMID)); !ok || n != 9 {
			t.Fatalf("notificationsFor below threshold: %d %v", n, ok)
		}

		// The count is the owner's: signed, fresh, not replayed.
		get := func(amid string, q string) (int, registry.ErrorResponse) {
			resp, err := e.http.Client().Get(e.http.URL + "/v1/registry/prekeys/" + amid + "/count" + q)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var er registry.ErrorResponse
			json.NewDecoder(resp.Body).Decode(&er)
			return resp.StatusCode, er
		}
		query := func(s registry.Signed) string {
			return "?timestamp=" + url.QueryEscape(s.Timestamp) + "&signature=" + url.QueryEscape(s.Signature)
		}
		if status, er := get(a.AMID, ""); status != http.StatusBadRequest || er.Code != "missing_signature" {
			t.Fatalf("unsigned: %d %+v", status, er)
		}
		stranger := newTestAgent(t)
		if status, er := get(a.AMID, query(e.sign(stranger))); status != http.StatusUnauthorized {
			t.Fatalf("signed by another: %d %+v", status, er)
		}
		if status, er := get(stranger.AMID, query(e.sign(stranger))); status != http.StatusNotFound {
			t.Fatalf("unknown agent: %d %+v", status, er)
		}
		if status, er := get("bad", query(e.sign(stranger))); status != http.StatusBadRequest {
			t.Fatalf("bad amid: %d %+v", status, er)
		}
		sig := e.sign(a)
		if status, er := get(a.AMID, query(sig)); status != http.StatusOK {
			t.Fatalf("signed: %d %+v", status, er)
		}
		if status, er := get(a.AMID, query(sig)); status != http.StatusUnauthorized {
			t.Fatalf("replayed: %d %+v", status, er)
		}
	})
}

// BenchmarkPrekeyFetch measures a bundle fetch that hands out a one-time
// prekey, through the server's handler (no network), each op from another
// requester address.
func BenchmarkPrekeyFetch(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchmarkPrekeyFetch(b, newSQLiteStore(b)) })
	b.Run("postgres", func(b *testing.B) { benchmarkPrekeyFetch(b, newPostgresStore(b)) })
}

func benchmarkPrekeyFetch(b *testing.B, st *Store) {
	e := newEnv(b, st, func(c *Config) { c.TrustForwardedFor = true })
	ctx := context.Background()
	// Each agent holds at most MaxUnconsumedPrekeys: spread b.N over agents.
	var agents []*testAgent
	for left := b.N; left > 0; left -= registry.MaxUnconsumedPrekeys {
		a := e.addAgent(registry.TierAnonymous)
		n := min(left, registry.MaxUnconsumedPrekeys)
		for from := 0; from < n; from += registry.MaxPrekeysPerUpload {
			to := min(from+registry.MaxPrekeysPerUpload, n)
			req := prekeyUpload(b, a, 1, idRange(int32(from+1), int32(to))...)
			spk, otpks, apiErr := validatePrekeyUpload(&req, a.Signing.Public().(ed25519.PublicKey))
			if apiErr != nil {
				b.Fatal(apiErr)
			}
			if _, _, err := st.StorePrekeys(ctx, a.AMID, spk, otpks, registry.MaxUnconsumedPrekeys, e.clock.Now()); err != nil {
				b.Fatal(err)
			}
		}
		agents = append(agents, a)
	}
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		r := httptest.NewRequest(http.MethodGet, "/v1/registry/prekeys/"+agents[i/registry.MaxUnconsumedPrekeys].AMID, nil)
		r.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff))
		reqs[i] = r
	}
	marker := []byte(`"one_time_prekey":{`)
	b.ResetTimer()
	for i := range b.N {
		w := httptest.NewRecorder()
		e.server.ServeHTTP(w, reqs[i])
		if w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), marker) {
			b.Fatalf("fetch %d: %d %s", i, w.Code, w.Body)
		}
	}
}
