package prekeys

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// TestRunRefillsDrainedRegistry starts Run on a new store, drains the
// registry to 19 one-time prekeys as initiators do, and lets the check
// interval pass: the registry holds exactly 100 again, with ids continuing
// past every earlier one, and the keys it handed out are marked consumed.
func TestRunRefillsDrainedRegistry(t *testing.T) {
	c := startRegistry(t)
	bob := newAgent(t, c)
	tm := newTimer(t)
	s := openStore(t, bob, Options{After: tm.After})
	run(t, s, c, bob.signer)

	w := tm.next()
	if w.d != 6*time.Hour {
		t.Fatalf("after the start-up round Run waits %v, want 6h", w.d)
	}
	if got := registryCount(t, c, bob); got != 100 {
		t.Fatalf("after start-up the registry holds %d one-time prekeys, want 100", got)
	}
	checkCounter(t, s, 101)

	earlier := map[uint32]bool{}
	for _, k := range s.OneTimePrekeys() {
		earlier[k.ID] = true
	}
	handedOut := drainTo(t, c, bob, 19)
	for i, id := range handedOut {
		if id != uint32(i+1) {
			t.Fatalf("the registry handed out one-time prekey %d as number %d, want the lowest first", id, i+1)
		}
	}

	w.elapse()
	if w = tm.next(); w.d != 6*time.Hour {
		t.Fatalf("after the periodic round Run waits %v, want 6h", w.d)
	}
	if got := registryCount(t, c, bob); got != 100 {
		t.Fatalf("after the refill the registry holds %d one-time prekeys, want 100", got)
	}
	info := s.OneTimePrekeys()
	if len(info) != 181 {
		t.Fatalf("the store holds %d one-time prekeys, want 181", len(info))
	}
	var fresh []uint32
	for i, k := range info {
		if k.ID != uint32(i+1) || k.Uploaded.IsZero() {
			t.Fatalf("one-time prekey record %d = %+v, want id %d uploaded", i, k, i+1)
		}
		if !earlier[k.ID] {
			fresh = append(fresh, k.ID)
		}
		if want := k.ID <= 81; k.Consumed != want {
			t.Fatalf("one-time prekey %d consumed = %v, want %v (the registry handed out 1 to 81)", k.ID, k.Consumed, want)
		}
	}
	// The refill made 81 keys, with ids past every earlier one.
	if len(fresh) != 81 || fresh[0] != 101 || fresh[80] != 181 {
		t.Fatalf("the refill made the ids %v, want 101 to 181", fresh)
	}
	if st := s.Status(); st.NextPrekeyID != 182 || st.ConsumedOneTimePrekeys != 81 || st.UnpublishedOneTimePrekeys != 0 {
		t.Fatalf("after the refill: %+v, want next id 182, 81 consumed, none unpublished", st)
	}
	checkCounter(t, s, 182)
	// Keys handed out stay until their KNOCK comes.
	if _, ok := s.OneTimePrekey(1); !ok {
		t.Fatal("one-time prekey 1, handed out by the registry, was dropped")
	}
	// What the store marked agrees with the registry: it hands out 82 next.
	if ids := drainTo(t, c, bob, 99); ids[0] != 82 {
		t.Fatalf("the registry hands out %d next, want 82", ids[0])
	}
	// The marks survive a restart.
	checkInfo(t, reopen(t, s).OneTimePrekeys(), info)
}

// TestRunChecksOnItsInterval counts the registry requests of Run: one round
// at start, one each time the interval passes, one at once on Refill.
func TestRunChecksOnItsInterval(t *testing.T) {
	c := startRegistry(t)
	bob := newAgent(t, c)
	tr := &flakyTransport{}
	tm := newTimer(t)
	s := openStore(t, bob, Options{After: tm.After, CheckInterval: 90 * time.Minute})
	run(t, s, tr.client(t, c), bob.signer)

	w := tm.next()
	if w.d != 90*time.Minute || tr.counts.Load() != 1 {
		t.Fatalf("after start-up: wait %v, %d count requests; want 90m and 1", w.d, tr.counts.Load())
	}
	for want := int32(2); want <= 3; want++ {
		w.elapse()
		if w = tm.next(); w.d != 90*time.Minute || tr.counts.Load() != want {
			t.Fatalf("after the interval: wait %v, %d count requests; want 90m and %d", w.d, tr.counts.Load(), want)
		}
	}
	// Refill starts a round without the interval passing: the wait above
	// never elapses.
	s.Refill()
	if w := tm.next(); w.d != 90*time.Minute || tr.counts.Load() != 4 {
		t.Fatalf("after Refill: wait %v, %d count requests; want 90m and 4", w.d, tr.counts.Load())
	}
	// Above the threshold nothing was generated.
	if st := s.Status(); st.OneTimePrekeys != 100 || st.NextPrekeyID != 101 {
		t.Fatalf("rounds with 100 on the registry generated keys: %+v", st)
	}
}

// TestLowPrekeysNotificationRefillsAtOnce drains the registry below its
// own threshold, takes the low_prekeys notification from a real response
// and hands it to Notify: Run refills without the interval passing.
func TestLowPrekeysNotificationRefillsAtOnce(t *testing.T) {
	ctx := context.Background()
	c := startRegistry(t)
	bob := newAgent(t, c)
	tm := newTimer(t)
	s := openStore(t, bob, Options{After: tm.After})

	// Notifications of other kinds ask for nothing.
	s.Notify(nil)
	s.Notify([]registry.Notification{{Type: "reputation_changed"}})
	if len(s.refill) != 0 {
		t.Fatal("Notify without a low_prekeys notification asked for a refill")
	}

	run(t, s, c, bob.signer)
	tm.next() // never elapses
	drainTo(t, c, bob, 9)
	resp, err := c.UpdateStatus(ctx, bob.signer, "online")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Notifications) != 1 || resp.Notifications[0].Type != registry.NotificationLowPrekeys {
		t.Fatalf("the registry's notifications at 9 one-time prekeys: %+v, want low_prekeys", resp.Notifications)
	}
	s.Notify(resp.Notifications)
	if w := tm.next(); w.d != DefaultCheckInterval {
		t.Fatalf("after the refill Run waits %v, want %v", w.d, DefaultCheckInterval)
	}
	if got := registryCount(t, c, bob); got != 100 {
		t.Fatalf("after the notification the registry holds %d one-time prekeys, want 100", got)
	}
	if st := s.Status(); st.NextPrekeyID != 192 {
		t.Fatalf("after refilling from 9: next id %d, want 192", st.NextPrekeyID)
	}
}

// TestRunRetriesUploadsWithBackoff fails every prekey upload: Run retries
// after 1, 2, 4 … seconds, at most a minute apart, with a warning each
// time; once uploads go through it goes back to its interval, and the next
// failure starts the schedule again.
func TestRunRetriesUploadsWithBackoff(t *testing.T) {
	c := startRegistry(t)
	bob := newAgent(t, c)
	tr := &flakyTransport{}
	tr.down.Store(true)
	tm := newTimer(t)
	logs := new(logtest.Buffer)
	log := hclog.New(&hclog.LoggerOptions{Name: "prekeys", Level: hclog.Debug, Output: logs})
	s := openStore(t, bob, Options{After: tm.After, Logger: log})
	stop := run(t, s, tr.client(t, c), bob.signer)

	schedule := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60}
	var w wait
	for i, d := range schedule {
		d *= time.Second
		if i > 0 {
			w.elapse()
		}
		w = tm.next()
		if w.d != d {
			t.Fatalf("retry %d waits %v, want %v", i+1, w.d, d)
		}
		if got := tr.uploads.Load(); got != int32(i+1) {
			t.Fatalf("before retry %d: %d uploads tried, want %d", i+1, got, i+1)
		}
		warnings := logs.Lines("[WARN]")
		if len(warnings) != i+1 {
			t.Fatalf("before retry %d: %d warnings, want %d:\n%s", i+1, len(warnings), i+1, strings.Join(warnings, "\n"))
		}
		if last := warnings[i]; !strings.Contains(last, "retry_in="+d.String()) || !strings.Contains(last, "registry unreachable") {
			t.Fatalf("warning before retry %d does not say when and why: %s", i+1, last)
		}
	}
	if got := registryCount(t, c, bob); got != 0 {
		t.Fatalf("while uploads fail the registry holds %d one-time prekeys", got)
	}

	tr.down.Store(false)
	w.elapse()
	if w = tm.next(); w.d != DefaultCheckInterval {
		t.Fatalf("after a successful retry Run waits %v, want %v", w.d, DefaultCheckInterval)
	}
	if got := registryCount(t, c, bob); got != 100 {
		t.Fatalf("after the retry the registry holds %d one-time prekeys, want 100", got)
	}
	if n := len(logs.Lines("[WARN]")); n != len(schedule) {
		t.Fatalf("%d warnings, want %d: one per retry", n, len(schedule))
	}

	tr.down.Store(true)
	w.elapse()
	if w = tm.next(); w.d != time.Second {
		t.Fatalf("the first retry after a success waits %v, want 1s", w.d)
	}
	// Run stops while it waits to retry.
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run stopped during a retry wait returned %v, want context.Canceled", err)
	}
	for _, secret := range privateKeyStrings(t, s.Path()) {
		if strings.Contains(logs.String(), secret) {
			t.Fatal("the log holds a private key")
		}
	}
}

// TestRunRotatesAfterSevenDays moves the store's clock seven days on: the
// next round rotates the signed prekey, and the previous one answers X3DH
// messages that name it for 24 hours after its successor reached the
// registry, and not after.
func TestRunRotatesAfterSevenDays(t *testing.T) {
	c := startRegistry(t)
	bob, alice := newAgent(t, c), newAgent(t, c)
	clk := newClock()
	tm := newTimer(t)
	s := openStore(t, bob, Options{Now: clk.Now, After: tm.After, Batch: 20})
	run(t, s, c, bob.signer)
	w := tm.next()
	oldBundle := fetchBundle(t, c, bob)

	clk.Advance(7*24*time.Hour - time.Second)
	w.elapse()
	w = tm.next()
	if id := s.Status().SignedPrekeyID; id != 1 {
		t.Fatalf("rotated to %d before seven days passed", id)
	}

	clk.Advance(time.Second)
	rotatedAt := clk.Now()
	w.elapse()
	w = tm.next()
	st := s.Status()
	if st.SignedPrekeyID != 2 || !st.SignedPrekeyPublished || st.PreviousSignedPrekeyID != 1 {
		t.Fatalf("after seven days: %+v, want signed prekey 2 published, with previous 1", st)
	}
	if want := rotatedAt.Add(24 * time.Hour); !st.PreviousSignedPrekeyExpires.Equal(want) {
		t.Fatalf("previous key expires %v, want %v", st.PreviousSignedPrekeyExpires, want)
	}
	if msg := agree(t, c, alice, bob, s); msg.SignedPrekeyID != 2 {
		t.Fatalf("the registry's bundle names signed prekey %d, want 2", msg.SignedPrekeyID)
	}

	// A peer that fetched the bundle before the rotation.
	sk, oldMsg := initiate(t, c, alice, bob, oldBundle)
	if oldMsg.SignedPrekeyID != 1 {
		t.Fatalf("old bundle names signed prekey %d, want 1", oldMsg.SignedPrekeyID)
	}
	clk.Set(rotatedAt.Add(24*time.Hour - time.Nanosecond))
	resp, err := respond(t, c, alice, bob, s, oldMsg)
	if err != nil {
		t.Fatalf("within grace: %v", err)
	}
	if !resp.SharedSecret.Equal(sk) {
		t.Fatal("within grace: secrets differ")
	}
	if _, ok := reopen(t, s).SignedPrekey(1); !ok {
		t.Fatal("within grace, after a restart: signed prekey 1 is gone")
	}

	clk.Set(rotatedAt.Add(24 * time.Hour))
	if _, ok := s.SignedPrekey(1); ok {
		t.Fatal("signed prekey 1 still answers after its grace")
	}
	_, err = respond(t, c, alice, bob, s, oldMsg)
	wantUnknownPrekey(t, err, "X3DH naming signed prekey 1 after its grace")
	if _, ok := s.SignedPrekey(2); !ok {
		t.Fatal("current signed prekey 2 does not answer")
	}

	// The next round forgets the expired key for good.
	w.elapse()
	tm.next()
	if strings.Contains(string(readFile(t, s.Path())), "previous_signed_prekey") {
		t.Fatal("the file still holds the expired previous signed prekey")
	}
}

// TestRunRotatesOverdueKeyAtStartUp restarts a host whose signed prekey
// became overdue while it was down: the first round rotates it.
func TestRunRotatesOverdueKeyAtStartUp(t *testing.T) {
	c := startRegistry(t)
	bob := newAgent(t, c)
	clk := newClock()
	tm := newTimer(t)
	s := openStore(t, bob, Options{Now: clk.Now, After: tm.After, Batch: 20})
	if err := s.Publish(context.Background(), c, bob.signer); err != nil {
		t.Fatal(err)
	}

	clk.Advance(10 * 24 * time.Hour)
	again := reopen(t, s)
	run(t, again, c, bob.signer)
	tm.next()
	if st := again.Status(); st.SignedPrekeyID != 2 || !st.SignedPrekeyPublished || st.PreviousSignedPrekeyID != 1 {
		t.Fatalf("after the start-up round: %+v, want signed prekey 2 published, with previous 1", st)
	}
	if b := fetchBundle(t, c, bob); b.SignedPrekeyID != 2 {
		t.Fatalf("the registry hands out signed prekey %d, want 2", b.SignedPrekeyID)
	}
}

// TestCounterSurvivesLostPrekeyFile loses the prekey file, then restores an
// old copy of it: one-time prekey ids continue from the counter file each
// time, so the registry never sees an id twice.
func TestCounterSurvivesLostPrekeyFile(t *testing.T) {
	ctx := context.Background()
	c := startRegistry(t)
	bob := newAgent(t, c)
	home := t.TempDir()
	path := DefaultPath(home)
	s, err := Open(path, bob.id, Options{Batch: 20})
	if err != nil {
		t.Fatal(err)
	}
	if s.CounterPath() != DefaultCounterPath(home) || DefaultCounterPath(home) != filepath.Join(home, "prekey_counter") {
		t.Fatalf("counter at %s, want %s", s.CounterPath(), filepath.Join(home, "prekey_counter"))
	}
	checkCounter(t, s, 21)
	if err := s.Publish(ctx, c, bob.signer); err != nil {
		t.Fatal(err)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, bob.id, Options{Batch: 20})
	if err != nil {
		t.Fatal(err)
	}
	if info := s.OneTimePrekeys(); info[0].ID != 21 || info[19].ID != 40 {
		t.Fatalf("after losing the prekey file the new ids are %d to %d, want 21 to 40", info[0].ID, info[len(info)-1].ID)
	}
	checkCounter(t, s, 41)
	// The registry keeps the first copy of an id: had the ids started at 1
	// again, it would still hold only the lost keys.
	if err := s.Maintain(ctx, c, bob.signer); err != nil {
		t.Fatal(err)
	}
	if got := registryCount(t, c, bob); got != 40 {
		t.Fatalf("the registry holds %d one-time prekeys, want the 20 lost and the 20 new", got)
	}
	// The lost keys it still holds make its count higher than the store
	// knows of: none of the new keys is taken for handed out.
	if st := s.Status(); st.ConsumedOneTimePrekeys != 0 {
		t.Fatalf("%d one-time prekeys marked consumed, want 0", st.ConsumedOneTimePrekeys)
	}
	backup := readFile(t, path)

	// The registry hands out the 20 lost keys, then 21.
	if ids := drainTo(t, c, bob, 19); ids[20] != 21 {
		t.Fatalf("the registry handed out %v", ids)
	}
	if err := s.Maintain(ctx, c, bob.signer); err != nil {
		t.Fatal(err)
	}
	if info := s.OneTimePrekeys(); !info[0].Consumed || info[1].Consumed {
		t.Fatalf("after the registry handed out 21: 21 consumed %v, 22 consumed %v, want only 21", info[0].Consumed, info[1].Consumed)
	}
	if got := registryCount(t, c, bob); got != 100 {
		t.Fatalf("after the refill the registry holds %d one-time prekeys, want 100", got)
	}
	checkCounter(t, s, 122)

	// An old copy of the prekey file comes back, and then the counter is
	// lost too: the counter's value wins, and is written again.
	if err := os.WriteFile(path, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, bob.id, Options{Batch: 20})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Status().NextPrekeyID; got != 122 {
		t.Fatalf("after restoring an old prekey file the next id is %d, want 122 from the counter", got)
	}
	if err := s.refillFrom(0); err != nil {
		t.Fatal(err)
	}
	checkCounter(t, s, 222)
	if err := os.Remove(s.CounterPath()); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	checkCounter(t, s, 222)
}

// TestRefillAdvancesCounterFirst makes the counter file unwritable: the
// refill fails and neither the store nor the registry gets keys whose ids
// the counter does not cover.
func TestRefillAdvancesCounterFirst(t *testing.T) {
	ctx := context.Background()
	c := startRegistry(t)
	bob := newAgent(t, c)
	s := openStore(t, bob, Options{Batch: RefillBelow})
	if err := s.Publish(ctx, c, bob.signer); err != nil {
		t.Fatal(err)
	}
	drainTo(t, c, bob, RefillBelow-1)
	before := s.Status()

	// A non-empty directory in the counter's place: the atomic rename
	// fails, even for root.
	counter := s.CounterPath()
	if err := os.Remove(counter); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(counter, "blocker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Maintain(ctx, c, bob.signer); err == nil || !strings.Contains(err.Error(), counter) {
		t.Fatalf("Maintain with an unwritable counter: %v, want an error naming %s", err, counter)
	}
	if after := s.Status(); after.NextPrekeyID != before.NextPrekeyID || after.OneTimePrekeys != before.OneTimePrekeys {
		t.Fatalf("a refill that could not advance the counter changed the store: %+v, was %+v", after, before)
	}
	if got := registryCount(t, c, bob); got != RefillBelow-1 {
		t.Fatalf("the registry holds %d one-time prekeys, want %d", got, RefillBelow-1)
	}

	if err := os.RemoveAll(counter); err != nil {
		t.Fatal(err)
	}
	if err := s.Maintain(ctx, c, bob.signer); err != nil {
		t.Fatal(err)
	}
	if got := registryCount(t, c, bob); got != Target {
		t.Fatalf("the registry holds %d one-time prekeys, want %d", got, Target)
	}
	checkCounter(t, s, RefillBelow+1+Target-(RefillBelow-1))
}

// TestRunRefusesBadArguments checks what Run refuses before it starts.
func TestRunRefusesBadArguments(t *testing.T) {
	ctx := context.Background()
	c := startRegistry(t)
	bob, alice := newAgent(t, c), newAgent(t, c)
	tm := newTimer(t)
	s := openStore(t, bob, Options{After: tm.After, Batch: 1})
	if err := s.Run(ctx, nil, bob.signer); err == nil {
		t.Fatal("Run accepted a nil client")
	}
	if err := s.Run(ctx, c, alice.signer); err == nil || !strings.Contains(err.Error(), alice.amid()) {
		t.Fatalf("Run with another agent's signer: %v", err)
	}
	run(t, s, c, bob.signer)
	tm.next()
	if err := s.Run(ctx, c, bob.signer); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("a second Run of one store: %v, want already running", err)
	}
}

// checkCounter checks the counter file's content and mode, and that the
// store's next id agrees.
func checkCounter(t *testing.T, s *Store, want uint32) {
	t.Helper()
	if got, want := string(readFile(t, s.CounterPath())), strconv.Itoa(int(want))+"\n"; got != want {
		t.Fatalf("counter file holds %q, want %q", got, want)
	}
	fi, err := os.Stat(s.CounterPath())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("counter file has mode %04o, want 0600", fi.Mode().Perm())
	}
	if got := s.Status().NextPrekeyID; got != want {
		t.Fatalf("the store's next id is %d, the counter's %d", got, want)
	}
}

// flakyTransport carries a client's requests to the registry, failing
// every prekey upload while down is set, and counts uploads tried and
// count requests.
type flakyTransport struct {
	down    atomic.Bool
	uploads atomic.Int32
	counts  atomic.Int32
}

func (f *flakyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/registry/prekeys"):
		f.uploads.Add(1)
		if f.down.Load() {
			if r.Body != nil {
				r.Body.Close()
			}
			return nil, errors.New("registry unreachable")
		}
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/count"):
		f.counts.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// client returns a client of c's registry over f.
func (f *flakyTransport) client(t *testing.T, c *registry.Client) *registry.Client {
	t.Helper()
	fc, err := registry.NewClient(c.BaseURL(), registry.WithHTTPClient(&http.Client{Transport: f}))
	if err != nil {
		t.Fatal(err)
	}
	return fc
}
