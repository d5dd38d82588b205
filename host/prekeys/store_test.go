package prekeys

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/host/ratchet"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// TestPublishedBundleAgreesWithStore runs X3DH from another agent against
// the bundle the registry serves, answered from the Store, then consumes
// the one-time prekey and restarts.
func TestPublishedBundleAgreesWithStore(t *testing.T) {
	c := startRegistry(t)
	bob, alice := newAgent(t, c), newAgent(t, c)
	s := openStore(t, bob, Options{Batch: 5})
	if err := s.Publish(context.Background(), c, bob.signer); err != nil {
		t.Fatal(err)
	}

	msg := agree(t, c, alice, bob, s)
	if msg.SignedPrekeyID != 1 {
		t.Errorf("X3DH used signed prekey %d, want 1", msg.SignedPrekeyID)
	}
	if msg.OneTimePrekeyID == nil || *msg.OneTimePrekeyID != 1 {
		t.Fatalf("X3DH used one-time prekey %v, want 1 (the registry hands out the lowest id)", msg.OneTimePrekeyID)
	}
	// Answering does not consume.
	if _, ok := s.OneTimePrekey(1); !ok {
		t.Fatal("OneTimePrekey(1) is gone before Consume")
	}
	if err := s.Consume(1); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.OneTimePrekey(1); ok {
		t.Fatal("OneTimePrekey(1) after Consume: still there")
	}
	_, err := respond(t, c, alice, bob, s, msg)
	wantUnknownPrekey(t, err, "replaying the X3DH message after Consume")
	wantUnknownPrekey(t, s.Consume(1), "consuming one-time prekey 1 twice")

	// After a restart: the same signed prekey, the consumed key still gone,
	// the others still there.
	spk, _ := s.SignedPrekey(1)
	otpk2, _ := s.OneTimePrekey(2)
	again := reopen(t, s)
	got, ok := again.SignedPrekey(1)
	if !ok || !got.Equal(spk) {
		t.Fatal("reopened store does not have the same signed prekey 1")
	}
	if _, ok := again.OneTimePrekey(1); ok {
		t.Fatal("reopened store has the consumed one-time prekey 1")
	}
	if got, ok := again.OneTimePrekey(2); !ok || !got.Equal(otpk2) {
		t.Fatal("reopened store lost one-time prekey 2")
	}
	// The reopened store answers the next X3DH too.
	if msg := agree(t, c, alice, bob, again); msg.OneTimePrekeyID == nil || *msg.OneTimePrekeyID != 2 {
		t.Fatalf("second X3DH used one-time prekey %v, want 2", msg.OneTimePrekeyID)
	}
}

// TestStoreWithoutOneTimePrekeysStillAgrees drains the registry's one-time
// prekeys: X3DH falls back to three DH values with the signed prekey.
func TestStoreWithoutOneTimePrekeysStillAgrees(t *testing.T) {
	c := startRegistry(t)
	bob, alice := newAgent(t, c), newAgent(t, c)
	s := openStore(t, bob, Options{Batch: 1})
	if err := s.Publish(context.Background(), c, bob.signer); err != nil {
		t.Fatal(err)
	}
	agree(t, c, alice, bob, s)
	if msg := agree(t, c, alice, bob, s); msg.OneTimePrekeyID != nil {
		t.Fatalf("X3DH used one-time prekey %d, but the registry had none left", *msg.OneTimePrekeyID)
	}
}

// TestPublishUploadsInChunksAndRemembers publishes more one-time prekeys
// than one upload may carry; a second Publish and a restart know they are
// on the registry.
func TestPublishUploadsInChunksAndRemembers(t *testing.T) {
	c := startRegistry(t)
	bob := newAgent(t, c)
	s := openStore(t, bob, Options{Batch: 2*registry.MaxPrekeysPerUpload + 50})
	if got := s.Status().UnpublishedOneTimePrekeys; got != 450 {
		t.Fatalf("new store has %d unpublished one-time prekeys, want 450", got)
	}
	// The registry refuses an upload of more than MaxPrekeysPerUpload keys.
	if err := s.Publish(context.Background(), c, bob.signer); err != nil {
		t.Fatal(err)
	}
	if got := registryCount(t, c, bob); got != 450 {
		t.Fatalf("registry holds %d one-time prekeys, want 450", got)
	}
	st := s.Status()
	if st.UnpublishedOneTimePrekeys != 0 || !st.SignedPrekeyPublished {
		t.Fatalf("after Publish: %+v, want everything published", st)
	}
	if st := reopen(t, s).Status(); st.UnpublishedOneTimePrekeys != 0 || !st.SignedPrekeyPublished {
		t.Fatalf("after a restart: %+v, want everything published", st)
	}
	if err := s.Publish(context.Background(), c, bob.signer); err != nil {
		t.Fatal(err)
	}
	if got := registryCount(t, c, bob); got != 450 {
		t.Fatalf("after a second Publish the registry holds %d one-time prekeys, want 450", got)
	}
}

// TestPreviousSignedPrekeyWaitsForItsSuccessor rotates while the registry
// is unreachable: the registry still hands out the old key, so it must keep
// answering however long that lasts, and the unpublished successor is
// replaced at the next rotation.
func TestPreviousSignedPrekeyWaitsForItsSuccessor(t *testing.T) {
	ctx := context.Background()
	c := startRegistry(t)
	bob, alice := newAgent(t, c), newAgent(t, c)
	clk := newClock()
	s := openStore(t, bob, Options{Now: clk.Now, Batch: 20})
	if err := s.Publish(ctx, c, bob.signer); err != nil {
		t.Fatal(err)
	}

	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	down, err := registry.NewClient(gone.URL + "/v1")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(DefaultSignedPrekeyLifetime)
	if err := s.Maintain(ctx, down, bob.signer); err == nil {
		t.Fatal("Maintain against an unreachable registry succeeded")
	}
	st := s.Status()
	if st.SignedPrekeyID != 2 || st.SignedPrekeyPublished || st.PreviousSignedPrekeyID != 1 || !st.PreviousSignedPrekeyExpires.IsZero() {
		t.Fatalf("after a rotation that was not published: %+v", st)
	}

	clk.Advance(100 * 24 * time.Hour)
	if msg := agree(t, c, alice, bob, s); msg.SignedPrekeyID != 1 {
		t.Fatalf("registry hands out signed prekey %d, want the old 1", msg.SignedPrekeyID)
	}

	if err := s.Maintain(ctx, c, bob.signer); err != nil {
		t.Fatal(err)
	}
	st = s.Status()
	if st.SignedPrekeyID != 3 || st.PreviousSignedPrekeyID != 1 || !st.SignedPrekeyPublished {
		t.Fatalf("after the next rotation: %+v, want signed prekey 3 published with previous 1", st)
	}
	if _, ok := s.SignedPrekey(2); ok {
		t.Fatal("the never published signed prekey 2 still answers")
	}
	if want := clk.Now().Add(DefaultGrace); !st.PreviousSignedPrekeyExpires.Equal(want) {
		t.Fatalf("previous key expires %v, want %v (grace from the successor's publication)", st.PreviousSignedPrekeyExpires, want)
	}
	if msg := agree(t, c, alice, bob, s); msg.SignedPrekeyID != 3 {
		t.Fatalf("registry hands out signed prekey %d, want 3", msg.SignedPrekeyID)
	}
}

// TestRefillStaysWithinLimits checks what a refill generates: up to Target
// counting keys not yet published, and never more than MaxOneTimePrekeys
// kept, dropping the lowest published ids first.
func TestRefillStaysWithinLimits(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "prekeys.json"), goldenIdentity(t), Options{Batch: registry.MaxUnconsumedPrekeys})
	if err != nil {
		t.Fatal(err)
	}
	publishAll := func() {
		t.Helper()
		var keys []*ratchet.OneTimePrekey
		for _, e := range s.state().oneTime {
			keys = append(keys, e.key)
		}
		if err := s.markPublished(s.Status().SignedPrekeyID, keys); err != nil {
			t.Fatal(err)
		}
	}
	// Unpublished keys already make the target: nothing to add.
	if err := s.refillFrom(0); err != nil {
		t.Fatal(err)
	}
	if n := s.Status().OneTimePrekeys; n != 1000 {
		t.Fatalf("refill with 1000 keys unpublished: %d keys, want 1000", n)
	}
	publishAll()
	// The registry still holds 95: 5 make the target.
	if err := s.refillFrom(Target - 5); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.OneTimePrekeys != 1005 || st.UnpublishedOneTimePrekeys != 5 || st.NextPrekeyID != 1006 {
		t.Fatalf("refill with 95 on the registry: %+v", st)
	}
	// Unpublished keys count towards the target.
	if err := s.refillFrom(Target - 10); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.OneTimePrekeys != 1010 || st.UnpublishedOneTimePrekeys != 10 {
		t.Fatalf("refill with 90 on the registry and 5 unpublished: %+v", st)
	}
	publishAll()
	for range 10 {
		if err := s.refillFrom(0); err != nil {
			t.Fatal(err)
		}
		publishAll()
	}
	st := s.Status()
	if st.OneTimePrekeys != MaxOneTimePrekeys || st.NextPrekeyID != 2011 {
		t.Fatalf("after ten refills: %+v, want %d keys up to id 2010", st, MaxOneTimePrekeys)
	}
	if _, ok := s.OneTimePrekey(10); ok {
		t.Fatal("one-time prekey 10 kept, want the lowest ids dropped")
	}
	if _, ok := s.OneTimePrekey(11); !ok {
		t.Fatal("one-time prekey 11 dropped, want only the lowest 10 dropped")
	}
	// At the cap a refill keeps every new, unpublished key and drops
	// published ones instead.
	if err := s.refillFrom(0); err != nil {
		t.Fatal(err)
	}
	st = s.Status()
	if st.OneTimePrekeys != MaxOneTimePrekeys || st.UnpublishedOneTimePrekeys != Target {
		t.Fatalf("after a refill at the cap: %+v", st)
	}
	if _, ok := s.OneTimePrekey(2110); !ok {
		t.Fatal("new unpublished one-time prekey 2110 missing")
	}
	if got := string(readFile(t, s.CounterPath())); got != "2111\n" {
		t.Fatalf("counter file holds %q, want \"2111\\n\"", got)
	}
}

// TestConsumeIsPersistedBeforeItReturns makes the file unwritable: Consume
// fails and the key stays usable, in memory and on disk.
func TestConsumeIsPersistedBeforeItReturns(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "prekeys.json"), goldenIdentity(t), Options{Batch: 3})
	if err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	// A non-empty directory in the file's place: the atomic rename fails,
	// even for root.
	if err := os.Remove(s.Path()); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.Path(), "blocker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Consume(2); err == nil {
		t.Fatal("Consume succeeded although the file cannot be written")
	}
	if _, ok := s.OneTimePrekey(2); !ok {
		t.Fatal("a failed Consume removed the key")
	}
	if err := os.RemoveAll(s.Path()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.Path(), saved, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Consume(2); err != nil {
		t.Fatal(err)
	}
	if _, ok := reopen(t, s).OneTimePrekey(2); ok {
		t.Fatal("consumed key 2 is back after a restart")
	}
}

// TestConcurrentUse looks keys up and consumes them from many goroutines:
// each key is consumed exactly once.
func TestConcurrentUse(t *testing.T) {
	const keys, workers = 40, 8
	s, err := Open(filepath.Join(t.TempDir(), "prekeys.json"), goldenIdentity(t), Options{Batch: keys})
	if err != nil {
		t.Fatal(err)
	}
	var consumed atomic.Int32
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for id := uint32(1); id <= keys; id++ {
				s.SignedPrekey(1)
				s.OneTimePrekey(id)
				s.Status()
				if s.Consume(id) == nil {
					consumed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := consumed.Load(); got != keys {
		t.Fatalf("%d successful Consume calls for %d keys", got, keys)
	}
	if n := reopen(t, s).Status().OneTimePrekeys; n != 0 {
		t.Fatalf("%d one-time prekeys left after consuming all", n)
	}
}

// TestFileModes checks the modes of a new file and its directory, and that
// opening a file others can read makes it private.
func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home", "prekeys")
	path := filepath.Join(dir, "prekeys.json")
	s, err := Open(path, goldenIdentity(t), Options{Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %04o, want %04o", p, got, want)
		}
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	reopen(t, s)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Fatalf("after Open a 0644 file has mode %04o, want 0600", got)
	}
}

// TestOptionsAndArguments checks what Open, Publish and Maintain refuse.
func TestOptionsAndArguments(t *testing.T) {
	id := goldenIdentity(t)
	for name, opts := range map[string]Options{
		"negative batch":    {Batch: -1},
		"batch too large":   {Batch: registry.MaxUnconsumedPrekeys + 1},
		"negative lifetime": {SignedPrekeyLifetime: -time.Hour},
		"negative grace":    {Grace: -time.Hour},
		"negative interval": {CheckInterval: -time.Hour},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "prekeys.json")
			if _, err := Open(path, id, opts); err == nil {
				t.Fatal("Open accepted the options")
			}
			if _, err := os.Stat(path); err == nil {
				t.Fatal("Open created a file with refused options")
			}
		})
	}
	if _, err := Open(filepath.Join(t.TempDir(), "prekeys.json"), nil, Options{}); err == nil {
		t.Fatal("Open accepted a nil identity")
	}
	path := filepath.Join(t.TempDir(), "prekeys.json")
	if _, err := Open(path, id, Options{CounterPath: path}); err == nil {
		t.Fatal("Open accepted the prekey file as its own counter")
	}

	c := startRegistry(t)
	bob, alice := newAgent(t, c), newAgent(t, c)
	s := openStore(t, bob, Options{Batch: 1})
	ctx := context.Background()
	if err := s.Publish(ctx, c, alice.signer); err == nil || !strings.Contains(err.Error(), alice.amid()) {
		t.Fatalf("Publish with another agent's signer: %v", err)
	}
	if err := s.Maintain(ctx, c, nil); err == nil {
		t.Fatal("Maintain accepted a nil signer")
	}
	if err := s.Publish(ctx, nil, bob.signer); err == nil {
		t.Fatal("Publish accepted a nil client")
	}
	if _, err := c.FetchPrekeyBundle(ctx, bob.amid()); !registry.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("refused calls published something: fetch gives %v, want 404", err)
	}
}

// TestNothingPrintsKeys formats a Store and its Status with every common
// verb: no private key of the file appears.
func TestNothingPrintsKeys(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "prekeys.json"), goldenIdentity(t), Options{Batch: 3})
	if err != nil {
		t.Fatal(err)
	}
	secrets := privateKeyStrings(t, s.Path())
	spk, _ := s.SignedPrekey(1)
	otpk, _ := s.OneTimePrekey(1)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		for _, v := range []any{s, *s.state(), s.state().oneTime, spk, otpk, s.Status()} {
			out := fmt.Sprintf(verb, v)
			for _, secret := range secrets {
				if strings.Contains(out, secret) || strings.Contains(out, fmt.Sprintf("%x", decodeB64(t, secret))) {
					t.Fatalf("%s of %T prints a private key", verb, v)
				}
			}
		}
	}
	if got, want := s.String(), "prekeys.Store("+string(goldenIdentity(t).AMID())+", "+s.Path()+")"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}
