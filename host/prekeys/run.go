package prekeys

import (
	"context"
	"fmt"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// The retry schedule of Run after a failed round: FirstRetryDelay, then
// twice the previous delay, at most MaxRetryDelay (1, 2, 4, 8, 16, 32, 60,
// 60 … seconds).
const (
	FirstRetryDelay = time.Second
	MaxRetryDelay   = time.Minute
)

// Run keeps the store's prekeys in order on the registry until ctx ends. It
// runs a round of upkeep (Maintain) at once, then Options.CheckInterval
// after each round, and at once when asked by Refill or by a low_prekeys
// notification given to Notify. A round that fails is retried after
// FirstRetryDelay, then after delays that double up to MaxRetryDelay, with
// a warning on Options.Logger before each retry, until it succeeds or ctx
// ends.
//
// Run returns ctx's error once ctx ends, or at once an error for arguments
// Maintain refuses or when another Run of the store is running. signer
// must sign for the store's agent.
func (s *Store) Run(ctx context.Context, c *registry.Client, signer *registry.Signer) error {
	if err := s.checkRegistry(c, signer); err != nil {
		return err
	}
	if !s.running.CompareAndSwap(false, true) {
		return fmt.Errorf("prekeys: Run: already running for %s", s.path)
	}
	defer s.running.Store(false)
	for {
		// A refill asked for before this round is done by it.
		select {
		case <-s.refill:
		default:
		}
		if err := s.maintainUntilDone(ctx, c, signer); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.opts.After(s.opts.CheckInterval):
		case <-s.refill:
			s.log.Info("one-time prekey refill asked for: checking the registry now")
		}
	}
}

// maintainUntilDone runs Maintain until it succeeds, waiting on the retry
// schedule between attempts. It fails only when ctx ends.
func (s *Store) maintainUntilDone(ctx context.Context, c *registry.Client, signer *registry.Signer) error {
	delay := FirstRetryDelay
	for attempt := 1; ; attempt++ {
		err := s.Maintain(ctx, c, signer)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Errors name ids, files and the registry, never keys.
		s.log.Warn("prekey upkeep failed; retrying", "attempt", attempt, "retry_in", delay, "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.opts.After(delay):
		}
		delay = min(2*delay, MaxRetryDelay)
	}
}

// Refill asks a running Run for a round of upkeep now instead of at its
// next interval. It never blocks: requests made while one is pending, or
// while a round is under way, are served by that one round. A request made
// while Run is not running is served by its next first round.
func (s *Store) Refill() {
	select {
	case s.refill <- struct{}{}:
	default:
	}
}

// Notify hands the store the notifications of a registry response to one of
// the agent's own signed requests (registry.SuccessResponse and others carry
// them). A registry.NotificationLowPrekeys notification makes a running Run
// refill at once, as Refill does; other notifications are ignored.
func (s *Store) Notify(notifications []registry.Notification) {
	for _, n := range notifications {
		if n.Type == registry.NotificationLowPrekeys {
			s.log.Info("the registry reports few one-time prekeys left", "remaining", remainingOf(n))
			s.Refill()
			return
		}
	}
}

// remainingOf is the count a low_prekeys notification carries, or -1.
func remainingOf(n registry.Notification) int {
	if n.OneTimePrekeysRemaining == nil {
		return -1
	}
	return *n.OneTimePrekeysRemaining
}
