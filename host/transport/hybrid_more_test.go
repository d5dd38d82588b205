package transport

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// shortICE makes a lost direct connection count as failed quickly.
func shortICE(c Config) Config {
	c.ICEDisconnectedTimeout = time.Second
	c.ICEFailedTimeout = 3 * time.Second
	c.ICEKeepaliveInterval = 200 * time.Millisecond
	return c
}

func TestTURNServerStoppedFallsBackWithoutLoss(t *testing.T) {
	var seen userLog
	url, srv := startTURNServer(t, staticAuth("alice", "s3cret", &seen))
	ca := shortICE(loopbackConfig())
	ca.RelayOnly = true
	ca.TURN = []TURNServer{{URL: url, Username: "alice", Credential: "s3cret"}}
	a, b := newPair(t, ca, shortICE(loopbackConfig()))
	upgrade(t, a, b)
	if st := a.h.Stats(b.amid); st.LocalCandidate != "relay" {
		t.Fatalf("selected local candidate %q, want relay", st.LocalCandidate)
	}
	// Frames flow paced; the TURN server stops at frame 100; frames
	// 100..299 go into the dead channel, and from frame 300 on the sender
	// waits until ICE has noticed, so those go through the relay.
	const n, stopAt, waitAt = 400, 100, 300
	errc := sendN(t, a, b, n, func(i int) {
		switch i {
		case stopAt:
			if err := srv.Close(); err != nil {
				t.Errorf("closing the TURN server: %v", err)
			}
		case waitAt:
			if !eventually(func() bool { return a.h.Stats(b.amid).Path == PathRelay }) {
				t.Error("no fallback after the TURN server stopped")
			}
		}
		if i < waitAt {
			time.Sleep(5 * time.Millisecond)
		}
	})
	recvN(t, b, a, n)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	st := a.h.Stats(b.amid)
	if st.Path != PathRelay || st.Fallbacks != 1 {
		t.Fatalf("after the TURN server stopped: path %s, %d fallbacks; want relay, 1", st.Path, st.Fallbacks)
	}
	if st.SentDirect != waitAt || st.SentRelay-st.Resent != n-waitAt || st.Resent == 0 {
		t.Fatalf("sent %d direct, %d relay of which %d again; want %d direct, %d new on the relay and some again",
			st.SentDirect, st.SentRelay, st.Resent, waitAt, n-waitAt)
	}
	t.Logf("direct %d, relay %d, resent %d", st.SentDirect, st.SentRelay, st.Resent)
	waitFor(t, "b back on the relay", func() bool { return b.h.Stats(a.amid).Path == PathRelay })
	errc = sendN(t, b, a, 20, nil)
	recvN(t, a, b, 20)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// eventually reports whether cond became true within 15 seconds; unlike
// waitFor it may run outside the test's goroutine.
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func TestAnsweringSideRefreshesTURNCredentials(t *testing.T) {
	// a offers with host candidates and no TURN server of its own; b
	// answers through TURN only, with credentials lasting 4 s.
	var seen userLog
	cb := restTURNConfig(t, &seen, "bob")
	a, b := newPair(t, loopbackConfig(), cb)
	upgrade(t, a, b)
	if st := b.h.Stats(a.amid); st.LocalCandidate != "relay" {
		t.Fatalf("answering side's local candidate %q, want relay", st.LocalCandidate)
	}
	first := seen.count()
	const n = 300
	errc := sendN(t, a, b, n, func(int) { time.Sleep(10 * time.Millisecond) })
	recvN(t, b, a, n)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an ICE restart answered with fresh credentials", func() bool { return b.h.Stats(a.amid).ICERestarts > 0 })
	waitFor(t, "fresh credentials at the TURN server", func() bool { return seen.count() > first })
	seen.mu.Lock()
	for name := range seen.names {
		if !strings.HasSuffix(name, ":bob") {
			t.Errorf("the TURN server saw user %q, want only the answering side's", name)
		}
	}
	seen.mu.Unlock()
	if st := a.h.Stats(b.amid); st.ICERestarts == 0 {
		t.Fatal("the offering side restarted no ICE")
	}
	for _, x := range []struct {
		name string
		st   Stats
	}{{"offering", a.h.Stats(b.amid)}, {"answering", b.h.Stats(a.amid)}} {
		if x.st.Path != PathDirect || x.st.Fallbacks != 0 || x.st.SentRelay != 0 {
			t.Fatalf("%s side after the refresh: path %s, %d fallbacks, %d relay frames; want direct, 0, 0",
				x.name, x.st.Path, x.st.Fallbacks, x.st.SentRelay)
		}
	}
	// Frames still flow both ways over the refreshed path.
	errc = sendN(t, b, a, 50, nil)
	recvN(t, a, b, 50)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestUnackedFramesAreBounded(t *testing.T) {
	for _, tc := range []struct {
		name         string
		frames, size int
		payload      int
		want         int // frames in flight once the bound is reached
	}{
		{"frames", 16, 0, 10, 16},
		{"bytes", 0, 1000, 93, 10}, // 7 + 93 = 100 bytes a frame
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := loopbackConfig()
			ca.MaxUnackedFrames, ca.MaxUnackedBytes = tc.frames, tc.size
			a, b := newPair(t, ca, loopbackConfig())
			upgrade(t, a, b)
			pad := strings.Repeat("x", tc.payload-4)
			payload := func(i int) string { return pad + strconv.Itoa(1000+i) }
			// b does not read: once its inbound buffer is full it stops
			// acknowledging, and a's Send must stop at the bound.
			ctx := context.Background()
			i := 0
			for ; ; i++ {
				short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				err := a.h.Send(short, b.amid, protocol.MessageTypeMessage, payload(i))
				cancel()
				if errors.Is(err, context.DeadlineExceeded) {
					break
				}
				if err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				if i > inboundBuffer+4*tc.want {
					t.Fatalf("%d frames sent to a peer that reads none: no bound", i)
				}
			}
			if i < inboundBuffer {
				t.Fatalf("Send blocked after %d frames, before the peer's inbound buffer (%d) filled", i, inboundBuffer)
			}
			p := a.h.peer(b.amid)
			p.unackedMu.Lock()
			held, heldLen := len(p.unacked), p.unackedLen
			p.unackedMu.Unlock()
			if held != tc.want {
				t.Fatalf("%d frames unacknowledged (%d bytes) when Send blocked, want %d", held, heldLen, tc.want)
			}
			// The frame whose Send gave up was not sent: sending it again
			// and reading everything gives each frame once, in order.
			const more = 100
			errc := make(chan error, 1)
			go func() {
				for j := i; j < i+more; j++ {
					if err := a.h.Send(ctx, b.amid, protocol.MessageTypeMessage, payload(j)); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			for j := range i + more {
				in, err := b.h.Recv(rctx)
				if err != nil {
					t.Fatalf("recv %d: %v", j, err)
				}
				if in.Payload != payload(j) {
					t.Fatalf("frame %d: got %q, want %q", j, in.Payload[len(pad):], payload(j)[len(pad):])
				}
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if st := a.h.Stats(b.amid); st.Path != PathDirect || st.SentRelay != 0 {
				t.Fatalf("path %s with %d relay frames; want direct, 0", st.Path, st.SentRelay)
			}
		})
	}
}

func TestHeldBackFramesAreBounded(t *testing.T) {
	const bound = 8
	cb := loopbackConfig()
	cb.MaxHeldFrames = bound
	a, b := newPair(t, loopbackConfig(), cb)
	pb := b.h.peer(a.amid)
	// b's relay reader stalls at a's switch marker until released, while
	// a's frames come over the data channel: b must hold back no more
	// than the bound and stop reading the channel.
	release := make(chan struct{})
	var once sync.Once
	stall := func(k controlKind) {
		if k == controlSwitch {
			<-release
		}
	}
	b.h.beforeControl.Store(&stall)
	defer once.Do(func() { close(release) })
	upgradeA(t, a, b)
	const n = 200
	errc := sendN(t, a, b, n, nil)
	waitFor(t, "the bound of held frames", func() bool {
		pb.rxMu.Lock()
		defer pb.rxMu.Unlock()
		return len(pb.pending) == bound
	})
	// a keeps sending into the data channel; b stays at the bound.
	waitFor(t, "a to send everything", func() bool { return a.h.Stats(b.amid).SentDirect+a.h.Stats(b.amid).SentRelay >= n })
	pb.rxMu.Lock()
	held := len(pb.pending)
	pb.rxMu.Unlock()
	if held != bound {
		t.Fatalf("b holds %d frames back, want %d", held, bound)
	}
	once.Do(func() { close(release) })
	recvN(t, b, a, n)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if st := a.h.Stats(b.amid); st.SentDirect == 0 || st.Fallbacks != 0 {
		t.Fatalf("a sent %d frames direct with %d fallbacks; want some, 0", st.SentDirect, st.Fallbacks)
	}
}

// upgradeA upgrades a's frames to b to a data channel, without waiting
// for b's side.
func upgradeA(t testing.TB, a, b *host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.h.Upgrade(ctx, b.amid); err != nil {
		t.Fatalf("Upgrade: %v", err)
	}
	waitFor(t, "a direct", func() bool { return a.h.Stats(b.amid).Path == PathDirect })
}
