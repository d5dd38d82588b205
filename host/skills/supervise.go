package skills

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
)

// State is where a skill's plugin is in its life.
type State string

// States of a skill.
const (
	// StateStopped: no process runs; the first REQUEST starts one.
	StateStopped State = "stopped"
	// StateStarting: the process is being started and configured.
	StateStarting State = "starting"
	// StateRunning: the process is up and takes REQUESTs.
	StateRunning State = "running"
	// StateRestarting: the process crashed and is restarted after a
	// backoff.
	StateRestarting State = "restarting"
	// StateQuarantined: the skill is refused until it is enabled again or
	// upgraded, because it crashed too often or its binary does not match
	// the lock; the skill's Reason says which.
	StateQuarantined State = "quarantined"
	// StateDisabled: the owner disabled the skill.
	StateDisabled State = "disabled"
	// StateBroken: the installed files cannot be loaded; Reason says why.
	StateBroken State = "broken"

	// stateRetired: the skill was removed or replaced; its supervisor
	// takes no more REQUESTs and Dispatch looks the intent up again.
	stateRetired State = "removed"
)

// RestartPolicy says how a crashed plugin is restarted. Zero fields take
// the defaults given.
type RestartPolicy struct {
	// InitialBackoff is the wait before the first restart after a crash
	// (default 250ms); each further crash within Window doubles it.
	InitialBackoff time.Duration
	// MaxBackoff caps the wait (default 30s).
	MaxBackoff time.Duration
	// MaxCrashes crashes within Window quarantine the skill (default 5).
	MaxCrashes int
	// Window is the span crashes are counted over (default 1m).
	Window time.Duration
}

func (p RestartPolicy) withDefaults() RestartPolicy {
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = 250 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 30 * time.Second
	}
	if p.MaxBackoff < p.InitialBackoff {
		p.MaxBackoff = p.InitialBackoff
	}
	if p.MaxCrashes <= 0 {
		p.MaxCrashes = 5
	}
	if p.Window <= 0 {
		p.Window = time.Minute
	}
	return p
}

// backoff returns the wait before restarting after the n-th crash (n ≥ 1)
// of the window.
func (p RestartPolicy) backoff(n int) time.Duration {
	d := p.InitialBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// conn is a started plugin process, as the supervisor drives it. The real
// one is *pluginProc; tests use fakes.
type conn interface {
	// handle sends one REQUEST, as skillrpc.Client.Handle does.
	handle(ctx context.Context, req *skillpb.HandleRequest, onStatus func(*skillpb.Status)) (*skillpb.HandleEvent, error)
	// ping checks that the process answers, within ctx.
	ping(ctx context.Context) error
	// exited reports whether the process has exited.
	exited() bool
	// kill stops the process and reaps it.
	kill()
	// pid is the process id, 0 if unknown.
	pid() int
}

// proc is one started process with the requests in flight on it.
type proc struct {
	conn conn
	// inflight counts the requests in flight, which stop waits for; active
	// counts them too, so that stop need not wait when there are none.
	inflight sync.WaitGroup
	active   atomic.Int64
}

// release ends one request on p, begun by acquire.
func (p *proc) release() {
	p.active.Add(-1)
	p.inflight.Done()
}

// supervisor keeps one skill's plugin process running: it starts it on
// first use, restarts it with backoff when it crashes, and quarantines the
// skill after too many crashes. It is the loop around the synchronous
// start function (STYLE.md §11).
type supervisor struct {
	name   string
	log    hclog.Logger
	policy RestartPolicy
	// start launches and configures a process; ctx bounds the start.
	start        func(ctx context.Context) (conn, error)
	startTimeout time.Duration
	// spawn runs f on a goroutine that the Manager waits for on Close.
	spawn func(f func())
	// done is closed when the Manager closes.
	done <-chan struct{}

	mu     sync.Mutex
	state  State
	reason string
	// cause is the error behind a quarantine, for errors.Is; nil after a
	// crash loop, which reason describes.
	cause error
	// peerReason is the short reason for a quarantine that peers are
	// told; reason, for the owner, may name local paths and errors.
	peerReason string
	cur        *proc
	crashes    []time.Time
	// changed is closed, and replaced, at every change of state.
	changed chan struct{}
	// gen counts stops, so that a start or restart begun before a stop
	// knows to give up.
	gen int
}

// setState changes the state and wakes everyone waiting for a change.
// s.mu must be held.
func (s *supervisor) setState(st State, reason string) {
	s.state, s.reason, s.cause, s.peerReason = st, reason, nil, ""
	close(s.changed)
	s.changed = make(chan struct{})
}

// quarantinedFor returns the reason for a quarantine that peers may be
// told.
func (s *supervisor) quarantinedFor() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peerReason
}

// status returns the state, the reason for it and the process id.
func (s *supervisor) status() (State, string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pid := 0
	if s.cur != nil {
		pid = s.cur.conn.pid()
	}
	return s.state, s.reason, pid
}

// Errors of a skill that cannot take a REQUEST now.
var (
	// ErrQuarantined reports a quarantined skill; the error wrapping it
	// gives the reason.
	ErrQuarantined = errors.New("skill is quarantined")
	// ErrDisabled reports a disabled skill.
	ErrDisabled = errors.New("skill is disabled")

	// errRetired reports a supervisor of a skill that was removed or
	// replaced.
	errRetired = errors.New("skill was removed or replaced")
)

// acquire returns a running process to send one REQUEST to, starting one
// if none runs and waiting for a start or restart under way, until ctx
// ends. The caller must release the process with p.release.
func (s *supervisor) acquire(ctx context.Context) (*proc, error) {
	for {
		s.mu.Lock()
		switch s.state {
		case StateRunning:
			p := s.cur
			if p.conn.exited() {
				s.mu.Unlock()
				s.crashed(p, "the process exited")
				continue
			}
			p.inflight.Add(1)
			p.active.Add(1)
			s.mu.Unlock()
			return p, nil
		case StateStopped:
			s.setState(StateStarting, "")
			s.spawnStart(s.gen)
		case StateQuarantined:
			reason, cause := s.reason, s.cause
			s.mu.Unlock()
			if cause != nil {
				return nil, fmt.Errorf("skill %s: %w: %w", s.name, ErrQuarantined, cause)
			}
			return nil, fmt.Errorf("skill %s: %w: %s", s.name, ErrQuarantined, reason)
		case StateDisabled:
			s.mu.Unlock()
			return nil, fmt.Errorf("skill %s: %w", s.name, ErrDisabled)
		case StateBroken:
			reason := s.reason
			s.mu.Unlock()
			return nil, fmt.Errorf("skill %s: cannot be loaded: %s", s.name, reason)
		case stateRetired:
			s.mu.Unlock()
			return nil, errRetired
		}
		// Starting or restarting: wait for the next change.
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.done:
			return nil, ErrClosed
		}
	}
}

// spawnStart starts a process in the background for generation gen. s.mu
// must be held and the state must be StateStarting.
func (s *supervisor) spawnStart(gen int) {
	s.spawn(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.startTimeout)
		defer cancel()
		go func() {
			// A Manager closing mid-start cancels it.
			select {
			case <-s.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		c, err := s.start(ctx)
		s.mu.Lock()
		defer s.mu.Unlock()
		if gen != s.gen || s.state != StateStarting {
			// Stopped while starting.
			if c != nil {
				s.spawn(c.kill)
			}
			return
		}
		var quarantine *quarantineError
		switch {
		case errors.As(err, &quarantine):
			s.log.Error("skill refused to start", "error", err)
			s.setState(StateQuarantined, err.Error())
			s.cause, s.peerReason = quarantine.err, quarantine.peer
		case err != nil:
			s.log.Error("skill failed to start", "error", err)
			s.recordCrash(fmt.Sprintf("failed to start: %v", err))
		default:
			s.cur = &proc{conn: c}
			s.log.Debug("skill started", "pid", c.pid())
			s.setState(StateRunning, "")
		}
	})
}

// quarantineError is a start failure that must not be retried, such as a
// binary that does not match the lock: the skill is quarantined at once.
type quarantineError struct {
	err error
	// peer is the reason peers are told.
	peer string
}

func (e *quarantineError) Error() string { return e.err.Error() }
func (e *quarantineError) Unwrap() error { return e.err }

// crashed records that the process p failed (why says how) unless it has
// already been replaced or stopped, kills it, and schedules a restart or
// quarantines the skill.
func (s *supervisor) crashed(p *proc, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != p || s.state != StateRunning {
		return
	}
	s.cur = nil
	s.spawn(p.conn.kill)
	s.log.Warn("skill crashed", "reason", why)
	s.recordCrash(why)
}

// recordCrash counts a crash in the window and either schedules a restart
// after the backoff or quarantines the skill. s.mu must be held.
func (s *supervisor) recordCrash(why string) {
	now := time.Now()
	kept := s.crashes[:0]
	for _, t := range s.crashes {
		if now.Sub(t) < s.policy.Window {
			kept = append(kept, t)
		}
	}
	s.crashes = append(kept, now)
	n := len(s.crashes)
	if n >= s.policy.MaxCrashes {
		short := fmt.Sprintf("it crashed %d times within %v", n, s.policy.Window)
		reason := fmt.Sprintf("%s; last: %s", short, why)
		s.log.Error("skill quarantined", "reason", reason)
		s.setState(StateQuarantined, reason)
		s.peerReason = short
		return
	}
	delay := s.policy.backoff(n)
	s.log.Info("restarting skill", "after", delay, "crashes", n)
	s.setState(StateRestarting, why)
	gen := s.gen
	s.spawn(func() {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.done:
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if gen != s.gen || s.state != StateRestarting {
			return
		}
		s.setState(StateStarting, "")
		s.spawnStart(gen)
	})
}

// healthCheck pings a running process and treats a failure as a crash.
func (s *supervisor) healthCheck(timeout time.Duration) {
	s.mu.Lock()
	p := s.cur
	s.mu.Unlock()
	if p == nil {
		return
	}
	if p.conn.exited() {
		s.crashed(p, "the process exited")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := p.conn.ping(ctx); err != nil {
		s.crashed(p, fmt.Sprintf("health check failed: %v", err))
	}
}

// failed is called after a REQUEST on p broke without an answer while its
// context was live: if the process has exited or no longer answers a ping,
// it is a crash. It returns whether it was one.
func (s *supervisor) failed(p *proc, err error, pingTimeout time.Duration) bool {
	if !p.conn.exited() {
		ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
		perr := p.conn.ping(ctx)
		cancel()
		if perr == nil {
			return false
		}
	}
	s.crashed(p, fmt.Sprintf("the process died during a request: %v", err))
	return true
}

// stop stops the process, if any, letting the requests in flight finish
// until ctx ends, and leaves the skill in state st (StateStopped or
// StateDisabled). Pending restarts are abandoned.
func (s *supervisor) stop(ctx context.Context, st State) {
	s.mu.Lock()
	s.gen++
	p := s.cur
	s.cur = nil
	if st == StateStopped && s.state == StateQuarantined {
		// Stopping does not lift a quarantine; enabling does.
		st = StateQuarantined
	}
	reason, cause, peer := s.reason, s.cause, s.peerReason
	s.setState(st, "")
	if st == StateQuarantined {
		s.reason, s.cause, s.peerReason = reason, cause, peer
	}
	s.mu.Unlock()
	if p == nil {
		return
	}
	if p.active.Load() == 0 {
		p.conn.kill()
		return
	}
	drained := make(chan struct{})
	go func() {
		p.inflight.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-ctx.Done():
		s.log.Warn("stopping skill with requests in flight", "error", ctx.Err())
	}
	p.conn.kill()
}

// enable lifts a disabled state or a quarantine: the skill is stopped and
// starts on its next REQUEST, with its crash count cleared.
func (s *supervisor) enable() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == StateDisabled || s.state == StateQuarantined {
		s.crashes = nil
		s.gen++
		s.setState(StateStopped, "")
	}
}
