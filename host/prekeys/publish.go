package prekeys

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentmesh/agentmesh-go/host/ratchet"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// Publish uploads the current signed prekey and every one-time prekey the
// registry has not stored yet (PROTOCOL.md §8.6), at most
// registry.MaxPrekeysPerUpload per request; each request carries the signed
// prekey. What each request stored is recorded in the file before the next
// one goes out, so an interrupted Publish resumes where it stopped. Uploading
// a key twice is harmless: the registry keeps the first copy of an id.
//
// Publishing the current signed prekey starts the grace period of the
// previous one. signer must sign for the store's agent.
func (s *Store) Publish(ctx context.Context, c *registry.Client, signer *registry.Signer) error {
	if err := s.checkRegistry(c, signer); err != nil {
		return err
	}
	s.upkeep.Lock()
	defer s.upkeep.Unlock()
	return s.publish(ctx, c, signer)
}

// Maintain runs one round of upkeep against the registry:
//
//   - it rotates the signed prekey once it is older than
//     Options.SignedPrekeyLifetime, and drops a previous signed prekey whose
//     grace is over;
//   - it asks the registry how many one-time prekeys it still holds, and
//     marks consumed the ones that count shows it handed out;
//   - when the registry holds fewer than RefillBelow, it generates enough
//     to bring the supply to Target, counting keys generated but not yet
//     published, with ids from the counter file, which it advances first;
//   - it publishes.
//
// A failure leaves what was done before it in place; the next round goes
// on from there. Run calls Maintain at start, on its interval, on a
// low_prekeys notification and, after a failure, on a backoff schedule.
func (s *Store) Maintain(ctx context.Context, c *registry.Client, signer *registry.Signer) error {
	if err := s.checkRegistry(c, signer); err != nil {
		return err
	}
	s.upkeep.Lock()
	defer s.upkeep.Unlock()
	if err := s.rotate(); err != nil {
		return err
	}
	count, err := c.PrekeyCount(ctx, signer)
	if err != nil {
		return fmt.Errorf("prekeys: counting one-time prekeys on %s: %w", c.BaseURL(), err)
	}
	remaining := max(count.OneTimePrekeysRemaining, 0)
	if err := s.markConsumed(remaining); err != nil {
		return err
	}
	if remaining < RefillBelow {
		if err := s.refillFrom(remaining); err != nil {
			return err
		}
	}
	return s.publish(ctx, c, signer)
}

func (s *Store) checkRegistry(c *registry.Client, signer *registry.Signer) error {
	switch {
	case c == nil:
		return errors.New("prekeys: no registry client")
	case signer == nil:
		return errors.New("prekeys: no registry signer")
	case signer.AMID != s.amid:
		return fmt.Errorf("prekeys: the registry signer signs for %s, not for this store's agent %s", signer.AMID, s.amid)
	}
	return nil
}

// publish is Publish with s.upkeep held.
func (s *Store) publish(ctx context.Context, c *registry.Client, signer *registry.Signer) error {
	st := s.state()
	spk := st.current.key
	var pending []*ratchet.OneTimePrekey
	for _, id := range st.sortedIDs() {
		if e := st.oneTime[id]; !e.published() {
			pending = append(pending, e.key)
		}
	}
	req := registry.PrekeyUploadRequest{
		SignedPrekey:          spk.PublicKey().String(),
		SignedPrekeySignature: protocol.B64.EncodeToString(spk.Signature()),
		SignedPrekeyID:        int32(spk.ID),
	}
	for first := true; first || len(pending) > 0; first = false {
		n := min(len(pending), registry.MaxPrekeysPerUpload)
		chunk := pending[:n]
		pending = pending[n:]
		req.OneTimePrekeys = make([]registry.OneTimePrekey, len(chunk))
		for i, k := range chunk {
			req.OneTimePrekeys[i] = registry.OneTimePrekey{ID: int32(k.ID), Key: k.PublicKey().String()}
		}
		if _, err := c.UploadPrekeys(ctx, signer, req); err != nil {
			return fmt.Errorf("prekeys: uploading signed prekey %d and %d one-time prekeys to %s: %w",
				spk.ID, len(chunk), c.BaseURL(), err)
		}
		if err := s.markPublished(spk.ID, chunk); err != nil {
			return err
		}
	}
	return nil
}

// markPublished records that the registry stored signed prekey spkID and
// the one-time prekeys in chunk.
func (s *Store) markPublished(spkID uint32, chunk []*ratchet.OneTimePrekey) error {
	now := s.opts.Now().UTC()
	return s.update(func(next *state) (bool, error) {
		changed := false
		if next.current.key.ID == spkID {
			if !next.current.published() {
				next.current.uploaded, changed = now, true
			}
			// The registry now hands out the successor: the previous
			// key's grace starts.
			if p := next.previous; p != nil && p.expires.IsZero() {
				p.expires, changed = now.Add(s.opts.Grace), true
			}
		}
		for _, k := range chunk {
			if e, ok := next.oneTime[k.ID]; ok && !e.published() {
				e.uploaded = now
				next.oneTime[k.ID] = e
				changed = true
			}
		}
		return changed, nil
	})
}

// rotate replaces the signed prekey when it is due and drops a previous
// one whose grace has ended.
func (s *Store) rotate() error {
	now := s.opts.Now().UTC()
	st := s.state()
	due := !now.Before(st.current.created.Add(s.opts.SignedPrekeyLifetime))
	expired := st.previous != nil && !st.previous.honoured(now)
	if !due && !expired {
		return nil
	}
	var fresh *ratchet.SignedPrekey
	if due {
		id := st.current.key.ID
		if id >= maxID {
			return fmt.Errorf("prekeys: signed prekey ids are exhausted (current id %d)", id)
		}
		var err error
		if fresh, err = ratchet.GenerateSignedPrekey(s.opts.Rand, id+1, s.id.Signer()); err != nil {
			return fmt.Errorf("prekeys: generating signed prekey %d: %w", id+1, err)
		}
	}
	err := s.update(func(next *state) (bool, error) {
		if expired {
			next.previous = nil
		}
		if due {
			// A current key the registry never stored is unknown to every
			// peer: it is simply replaced, and the previous key, which the
			// registry still hands out, stays.
			if next.current.published() {
				prev := next.current
				prev.uploaded = time.Time{}
				next.previous = &prev
			}
			next.current = signedEntry{key: fresh, created: now}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if expired {
		s.log.Info("previous signed prekey's grace is over: forgotten", "id", st.previous.key.ID)
	}
	if due {
		s.log.Info("signed prekey rotated", "old_id", st.current.key.ID, "new_id", fresh.ID)
	}
	return nil
}

// markConsumed marks consumed the one-time prekeys that a registry holding
// remaining unconsumed ones has handed out. The registry says only how
// many it holds, not which; but it hands out the lowest id first
// (PROTOCOL.md §3.5), so of the keys it stored and has not handed out, as
// far as the store knows, the lowest beyond the remaining count are gone.
// Keys the registry holds without the store knowing (stored by an upload
// whose answer was lost, or left from a lost prekey file) only make the
// count higher, so a key is never marked while the registry still has it.
func (s *Store) markConsumed(remaining int) error {
	marked := 0
	err := s.update(func(next *state) (bool, error) {
		var onRegistry []uint32
		for _, id := range next.sortedIDs() {
			if e := next.oneTime[id]; e.published() && !e.consumed {
				onRegistry = append(onRegistry, id)
			}
		}
		marked = len(onRegistry) - remaining
		if marked <= 0 {
			return false, nil
		}
		for _, id := range onRegistry[:marked] {
			e := next.oneTime[id]
			e.consumed = true
			next.oneTime[id] = e
		}
		return true, nil
	})
	if err == nil && marked > 0 {
		s.log.Debug("one-time prekeys handed out by the registry", "count", marked, "remaining", remaining)
	}
	return err
}

// refillFrom generates one-time prekeys for a registry that holds
// remaining unconsumed ones: enough, with those not yet published, to make
// Target, and never more than the registry may hold. The counter file
// moves past the new ids before the prekey file holds them.
func (s *Store) refillFrom(remaining int) error {
	st := s.state()
	supply := remaining + st.unpublished()
	n := min(Target-supply, registry.MaxUnconsumedPrekeys-supply)
	if n <= 0 {
		return nil
	}
	// Generate outside the state's lock, so lookups never wait for it;
	// s.upkeep keeps the next id from moving meanwhile.
	keys, err := s.generateOneTime(st.nextID, n)
	if err != nil {
		return err
	}
	next := st.nextID + uint32(n)
	if err := writeCounter(s.opts.CounterPath, next); err != nil {
		return err
	}
	now := s.opts.Now().UTC()
	err = s.update(func(st *state) (bool, error) {
		if err := addOneTime(st, keys, now); err != nil {
			return false, err
		}
		evict(st)
		return true, nil
	})
	if err != nil {
		return err
	}
	s.log.Info("one-time prekeys generated", "registry_count", remaining, "count", n, "first_id", keys[0].ID, "last_id", next-1)
	return nil
}

// evict forgets the lowest-id published one-time prekeys beyond
// MaxOneTimePrekeys. The registry hands keys out lowest id first, so these
// are the ones handed out longest ago whose KNOCK never came.
func evict(st *state) {
	excess := len(st.oneTime) - MaxOneTimePrekeys
	for _, id := range st.sortedIDs() {
		if excess <= 0 {
			return
		}
		if st.oneTime[id].published() {
			delete(st.oneTime, id)
			excess--
		}
	}
}
