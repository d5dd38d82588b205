package session

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/agentmesh/agentmesh-go/internal/safefile"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Session cache (PROTOCOL.md §6.6 [SPEC]): which open session serves a
// peer for an intent category, so that a later conversation on the same
// subject skips the KNOCK.
const (
	// DefaultSessionCacheTTL is how long a cache entry lives.
	DefaultSessionCacheTTL = 24 * time.Hour
	// SessionCacheSize bounds the cache; the least recently used entry
	// goes first.
	SessionCacheSize = 1000
	// revocationRecheck is how often a cache hit asks the registry whether
	// the peer was revoked.
	revocationRecheck = time.Hour
	cacheFileName     = "cache"
)

type cacheKey struct {
	Our, Peer protocol.AMID
	Category  string
}

type cacheEntry struct {
	Key       cacheKey  `json:"key"`
	SessionID string    `json:"session_id"`
	Expires   time.Time `json:"expires_at"`
	Checked   time.Time `json:"revocation_checked_at"`
}

// sessionCache is an LRU of cache entries, saved (sealed) beside the
// session files when those are kept.
type sessionCache struct {
	mu    sync.Mutex
	ttl   time.Duration
	order *list.List // of *cacheEntry, most recent first
	byKey map[cacheKey]*list.Element
	files *sessionFiles // nil: memory only
	// onSaveError reports a failed save; the cache goes on in memory.
	onSaveError func(error)
}

func newSessionCache(ttl time.Duration, files *sessionFiles) *sessionCache {
	if ttl <= 0 {
		ttl = DefaultSessionCacheTTL
	}
	return &sessionCache{ttl: ttl, order: list.New(), byKey: make(map[cacheKey]*list.Element), files: files}
}

// get returns the live entry of k, moved to the front.
func (c *sessionCache) get(k cacheKey, now time.Time) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[k]
	if !ok {
		return cacheEntry{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.Expires) {
		c.order.Remove(el)
		delete(c.byKey, k)
		return cacheEntry{}, false
	}
	c.order.MoveToFront(el)
	return *e, true
}

// put records e, evicting the least recently used entry beyond the size.
func (c *sessionCache) put(e cacheEntry) {
	c.mu.Lock()
	if el, ok := c.byKey[e.Key]; ok {
		*el.Value.(*cacheEntry) = e
		c.order.MoveToFront(el)
	} else {
		c.byKey[e.Key] = c.order.PushFront(&e)
		for c.order.Len() > SessionCacheSize {
			last := c.order.Back()
			c.order.Remove(last)
			delete(c.byKey, last.Value.(*cacheEntry).Key)
		}
	}
	c.mu.Unlock()
	c.persist()
}

// persist saves the cache, reporting a failure.
func (c *sessionCache) persist() {
	if err := c.save(); err != nil && c.onSaveError != nil {
		c.onSaveError(err)
	}
}

// drop removes the entries for which match is true and reports how many.
func (c *sessionCache) drop(match func(cacheEntry) bool) int {
	c.mu.Lock()
	n := 0
	for el := c.order.Front(); el != nil; {
		next := el.Next()
		if e := el.Value.(*cacheEntry); match(*e) {
			c.order.Remove(el)
			delete(c.byKey, e.Key)
			n++
		}
		el = next
	}
	c.mu.Unlock()
	if n > 0 {
		c.persist()
	}
	return n
}

// rename points the entries of session old at session id.
func (c *sessionCache) rename(old, id string) {
	c.mu.Lock()
	n := 0
	for el := c.order.Front(); el != nil; el = el.Next() {
		if e := el.Value.(*cacheEntry); e.SessionID == old {
			e.SessionID = id
			n++
		}
	}
	c.mu.Unlock()
	if n > 0 {
		c.persist()
	}
}

func (c *sessionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// save writes the cache, sealed like a session file, most recent first.
func (c *sessionCache) save() error {
	if c.files == nil {
		return nil
	}
	c.mu.Lock()
	entries := make([]cacheEntry, 0, c.order.Len())
	for el := c.order.Front(); el != nil; el = el.Next() {
		entries = append(entries, *el.Value.(*cacheEntry))
	}
	c.mu.Unlock()
	plain, err := json.Marshal(struct {
		Version int          `json:"version"`
		Entries []cacheEntry `json:"entries"`
	}{1, entries})
	if err != nil {
		return err
	}
	f := c.files
	out := make([]byte, 1+chacha20poly1305.NonceSizeX, 1+chacha20poly1305.NonceSizeX+len(plain)+f.aead.Overhead())
	out[0] = sessionFileVersion
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		return err
	}
	out = f.aead.Seal(out, out[1:], plain, []byte("agentmesh-session-cache-v1"))
	return safefile.ReplaceFile(filepath.Join(f.dir, cacheFileName), out)
}

// load reads the saved cache, keeping the live entries.
func (c *sessionCache) load(now time.Time) error {
	if c.files == nil {
		return nil
	}
	f := c.files
	data, err := safefile.ReadFile(filepath.Join(f.dir, cacheFileName), maxSessionFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(data) < 1+chacha20poly1305.NonceSizeX+f.aead.Overhead() || data[0] != sessionFileVersion {
		return errors.New("not a session cache file")
	}
	plain, err := f.aead.Open(nil, data[1:1+chacha20poly1305.NonceSizeX], data[1+chacha20poly1305.NonceSizeX:],
		[]byte("agentmesh-session-cache-v1"))
	if err != nil {
		return errors.New("does not decrypt: damaged, or written under another key")
	}
	var saved struct {
		Entries []cacheEntry `json:"entries"`
	}
	if err := json.Unmarshal(plain, &saved); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(saved.Entries) - 1; i >= 0 && c.order.Len() < SessionCacheSize; i-- {
		e := saved.Entries[i]
		if now.Before(e.Expires) {
			if _, dup := c.byKey[e.Key]; !dup {
				c.byKey[e.Key] = c.order.PushFront(&e)
			}
		}
	}
	return nil
}

// Connect returns the open session that serves peer for the category of
// opts.Intent, from the session cache, or opens one with Open and caches
// it. A cached session is used for at most Config.SessionCacheTTL; once an
// hour a hit asks the registry whether the peer has been revoked, and a
// revoked peer's sessions are closed.
func (m *Manager) Connect(ctx context.Context, peer protocol.AMID, opts OpenOptions) (*Session, error) {
	intent := opts.Intent
	if intent == "" {
		intent = "*"
	}
	k := cacheKey{Our: m.AMID(), Peer: peer, Category: IntentCategory(intent)}
	now := m.now()
	if e, ok := m.cache.get(k, now); ok {
		if s := m.Session(e.SessionID); s != nil && s.Err() == nil {
			if now.Sub(e.Checked) < revocationRecheck {
				return s, nil
			}
			look, err := m.cfg.Directory.Lookup(ctx, string(peer))
			switch {
			case err != nil:
				return nil, fmt.Errorf("session: checking %s for revocation: %w", peer, err)
			case look.Revoked:
				m.Revoked(ctx, peer)
			default:
				e.Checked = now
				m.cache.put(e)
				return s, nil
			}
		} else {
			m.cache.drop(func(x cacheEntry) bool { return x.Key == k })
		}
	}
	s, err := m.Open(ctx, peer, opts)
	if err != nil {
		return nil, err
	}
	m.cache.put(cacheEntry{Key: k, SessionID: s.ID(), Expires: now.Add(m.cache.ttl), Checked: now})
	return s, nil
}

// Revoked forgets the cached sessions of a peer the registry revoked and
// closes every open session with it (CLOSE policy_violation).
func (m *Manager) Revoked(ctx context.Context, peer protocol.AMID) {
	m.cache.drop(func(e cacheEntry) bool { return e.Key.Peer == peer })
	for _, s := range m.Sessions() {
		if s.Peer() == peer {
			s.Close(ctx, protocol.ClosePolicyViolation)
		}
	}
	m.log.Warn("peer revoked: its sessions are closed", "peer", peer.Short())
}
