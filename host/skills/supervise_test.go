package skills

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
)

// fakeConn is a plugin process that lives until killed or crashed.
type fakeConn struct {
	id int

	mu      sync.Mutex
	dead    bool
	killed  bool
	pingErr error
}

func (c *fakeConn) handle(ctx context.Context, req *skillpb.HandleRequest, onStatus func(*skillpb.Status)) (*skillpb.HandleEvent, error) {
	if c.exited() {
		return nil, errors.New("connection refused")
	}
	return &skillpb.HandleEvent{Event: &skillpb.HandleEvent_Response{Response: &skillpb.Response{Status: "success"}}}, nil
}

func (c *fakeConn) ping(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return errors.New("connection refused")
	}
	return c.pingErr
}

func (c *fakeConn) exited() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead
}

func (c *fakeConn) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dead, c.killed = true, true
}

func (c *fakeConn) pid() int { return c.id }

func (c *fakeConn) crash() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dead = true
}

// fakeStarter starts fakeConns, or fails with the next queued error.
type fakeStarter struct {
	mu     sync.Mutex
	starts int
	conns  []*fakeConn
	errs   []error
}

func (f *fakeStarter) start(ctx context.Context) (conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	c := &fakeConn{id: 1000 + f.starts}
	f.conns = append(f.conns, c)
	return c, nil
}

func (f *fakeStarter) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts
}

func (f *fakeStarter) last() *fakeConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns[len(f.conns)-1]
}

var testPolicy = RestartPolicy{InitialBackoff: 100 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, MaxCrashes: 3, Window: time.Minute}

// newFakeSupervisor returns a supervisor over f, in a synctest bubble;
// the returned stop function closes it and waits for its goroutines.
func newFakeSupervisor(t *testing.T, f *fakeStarter) (*supervisor, func()) {
	var wg sync.WaitGroup
	done := make(chan struct{})
	s := &supervisor{
		name:         "fake",
		log:          hclog.NewNullLogger(),
		policy:       testPolicy.withDefaults(),
		start:        f.start,
		startTimeout: time.Minute,
		spawn:        wg.Go,
		done:         done,
		state:        StateStopped,
		changed:      make(chan struct{}),
	}
	return s, func() {
		close(done)
		wg.Wait()
	}
}

func mustAcquire(t *testing.T, s *supervisor) *proc {
	t.Helper()
	p, err := s.acquire(t.Context())
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	p.release()
	return p
}

func wantState(t *testing.T, s *supervisor, want State) {
	t.Helper()
	synctest.Wait()
	if got, reason, _ := s.status(); got != want {
		t.Fatalf("state = %s (%s), want %s", got, reason, want)
	}
}

func TestSupervisorStartsOnFirstUseAndStaysWarm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStarter{}
		s, stop := newFakeSupervisor(t, f)
		defer stop()
		wantState(t, s, StateStopped)
		p1 := mustAcquire(t, s)
		p2 := mustAcquire(t, s)
		if p1 != p2 || f.count() != 1 {
			t.Errorf("two acquires started %d processes, want 1 kept warm", f.count())
		}
		wantState(t, s, StateRunning)
	})
}

func TestSupervisorRestartsWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStarter{}
		s, stop := newFakeSupervisor(t, f)
		defer stop()
		// Crash twice within the window: the second wait doubles.
		for i, backoff := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond} {
			p := mustAcquire(t, s)
			f.last().crash()
			if !s.failed(p, errors.New("stream broken"), time.Second) {
				t.Fatalf("crash %d not recognised", i+1)
			}
			wantState(t, s, StateRestarting)
			if !f.last().killed {
				t.Errorf("crash %d: the crashed process was not reaped", i+1)
			}
			time.Sleep(backoff - time.Millisecond)
			wantState(t, s, StateRestarting)
			time.Sleep(time.Millisecond)
			wantState(t, s, StateRunning)
			if got := f.count(); got != i+2 {
				t.Fatalf("after crash %d: %d starts, want %d", i+1, got, i+2)
			}
		}
	})
}

func TestSupervisorQuarantinesCrashLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStarter{}
		s, stop := newFakeSupervisor(t, f)
		defer stop()
		for range testPolicy.MaxCrashes {
			p := mustAcquire(t, s)
			f.last().crash()
			s.failed(p, errors.New("stream broken"), time.Second)
		}
		wantState(t, s, StateQuarantined)
		_, reason, _ := s.status()
		if !strings.Contains(reason, "crashed 3 times within 1m0s") {
			t.Errorf("reason = %q, want it to count the crashes", reason)
		}
		_, err := s.acquire(t.Context())
		if !errors.Is(err, ErrQuarantined) || !strings.Contains(err.Error(), "crashed 3 times") {
			t.Errorf("acquire error = %v, want ErrQuarantined with the reason", err)
		}
		starts := f.count()
		time.Sleep(time.Hour)
		if f.count() != starts {
			t.Errorf("a quarantined skill was restarted")
		}
		s.enable()
		mustAcquire(t, s)
		wantState(t, s, StateRunning)
	})
}

func TestSupervisorCrashWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStarter{}
		s, stop := newFakeSupervisor(t, f)
		defer stop()
		// Crashes further apart than the window never add up.
		for i := range 2 * testPolicy.MaxCrashes {
			p := mustAcquire(t, s)
			f.last().crash()
			s.failed(p, errors.New("stream broken"), time.Second)
			wantState(t, s, StateRestarting)
			time.Sleep(testPolicy.InitialBackoff - time.Millisecond)
			wantState(t, s, StateRestarting)
			time.Sleep(time.Millisecond)
			wantState(t, s, StateRunning)
			if i < 2*testPolicy.MaxCrashes-1 {
				time.Sleep(testPolicy.Window)
			}
		}
	})
}

func TestSupervisorStartFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStarter{errs: []error{errors.New("handshake failed")}}
		s, stop := newFakeSupervisor(t, f)
		defer stop()
		// A failed start counts as a crash, and the restart succeeds.
		mustAcquire(t, s)
		if got := f.count(); got != 2 {
			t.Errorf("starts = %d, want 2", got)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		mismatch := fmt.Errorf("skill fake: %w: binary has SHA-256 1234…", ErrChecksumMismatch)
		f := &fakeStarter{errs: []error{&quarantineError{mismatch, peerChecksum}}}
		s, stop := newFakeSupervisor(t, f)
		defer stop()
		// A start that must not be retried quarantines at once.
		_, err := s.acquire(t.Context())
		if !errors.Is(err, ErrQuarantined) || !errors.Is(err, ErrChecksumMismatch) {
			t.Fatalf("acquire error = %v, want ErrQuarantined and ErrChecksumMismatch", err)
		}
		if got := s.quarantinedFor(); got != peerChecksum {
			t.Errorf("peer reason = %q, want %q", got, peerChecksum)
		}
		time.Sleep(time.Hour)
		if got := f.count(); got != 1 {
			t.Errorf("starts = %d, want 1: a mismatched binary is not retried", got)
		}
	})
}

func TestSupervisorStopAbandonsRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStarter{}
		s, stop := newFakeSupervisor(t, f)
		defer stop()
		p := mustAcquire(t, s)
		f.last().crash()
		s.failed(p, errors.New("stream broken"), time.Second)
		s.stop(t.Context(), StateDisabled)
		time.Sleep(time.Hour)
		wantState(t, s, StateDisabled)
		if got := f.count(); got != 1 {
			t.Errorf("starts = %d, want 1: a stopped skill must not restart", got)
		}
		if _, err := s.acquire(t.Context()); !errors.Is(err, ErrDisabled) {
			t.Errorf("acquire error = %v, want ErrDisabled", err)
		}
	})
}

func TestSupervisorStopDrainsInflight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStarter{}
		s, stop := newFakeSupervisor(t, f)
		defer stop()
		p, err := s.acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		stopped := make(chan struct{})
		go func() {
			s.stop(context.Background(), StateStopped)
			close(stopped)
		}()
		synctest.Wait()
		if f.last().killed {
			t.Fatal("stop killed the process with a request in flight")
		}
		p.release()
		<-stopped
		if !f.last().killed {
			t.Error("stop did not kill the process once drained")
		}
	})
}

func TestSupervisorHealthCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStarter{}
		s, stop := newFakeSupervisor(t, f)
		defer stop()
		mustAcquire(t, s)
		s.healthCheck(time.Second)
		wantState(t, s, StateRunning)
		c := f.last()
		c.mu.Lock()
		c.pingErr = errors.New("not serving")
		c.mu.Unlock()
		s.healthCheck(time.Second)
		wantState(t, s, StateRestarting)
		if !c.killed {
			t.Error("an unhealthy process was not killed")
		}
		time.Sleep(testPolicy.InitialBackoff)
		wantState(t, s, StateRunning)
	})
}

func TestSupervisorAcquireHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var wg sync.WaitGroup
		done := make(chan struct{})
		s := &supervisor{
			name: "slow", log: hclog.NewNullLogger(), policy: testPolicy.withDefaults(),
			start: func(ctx context.Context) (conn, error) {
				<-release
				return &fakeConn{id: 1}, nil
			},
			startTimeout: time.Minute, spawn: wg.Go, done: done, state: StateStopped, changed: make(chan struct{}),
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if _, err := s.acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("acquire error = %v, want DeadlineExceeded", err)
		}
		close(release)
		mustAcquire(t, s)
		close(done)
		wg.Wait()
	})
}

func TestRestartPolicyBackoff(t *testing.T) {
	p := RestartPolicy{InitialBackoff: time.Second, MaxBackoff: 5 * time.Second}.withDefaults()
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second, 40: 5 * time.Second} {
		if got := p.backoff(n); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}
}
