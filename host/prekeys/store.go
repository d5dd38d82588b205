package prekeys

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/host/identity"
	"github.com/agentmesh/agentmesh-go/host/ratchet"
	"github.com/agentmesh/agentmesh-go/internal/safefile"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// Upkeep targets (PROTOCOL.md §0.5, §3.1).
const (
	// Target is how many one-time prekeys a refill brings the registry's
	// supply to.
	Target = 100
	// RefillBelow is the registry count of one-time prekeys below which
	// Maintain refills. The registry's low_prekeys notification comes
	// later, below registry.LowPrekeyThreshold.
	RefillBelow = 20
)

// Defaults of Options (PROTOCOL.md §0.5, §3.1).
const (
	// DefaultBatch is how many one-time prekeys a new store starts with:
	// a full supply.
	DefaultBatch = Target
	// DefaultSignedPrekeyLifetime is the age at which the signed prekey is
	// rotated, as in the original SDKs.
	DefaultSignedPrekeyLifetime = 7 * 24 * time.Hour
	// DefaultGrace is how long the previous signed prekey keeps answering
	// once its successor is on the registry, as in the original SDKs.
	DefaultGrace = 24 * time.Hour
	// DefaultCheckInterval is how long Run waits between two rounds of
	// upkeep.
	DefaultCheckInterval = 6 * time.Hour
)

// MaxOneTimePrekeys bounds the one-time prekeys a Store keeps: as many as
// the registry may hold unconsumed, plus as many again that it has handed
// out to initiators whose KNOCK may still come.
const MaxOneTimePrekeys = 2 * registry.MaxUnconsumedPrekeys

// Options configures a Store. The zero value gives the defaults.
type Options struct {
	// Rand is the source of new keys. Default crypto/rand.Reader; tests
	// may pass a deterministic reader.
	Rand io.Reader
	// Now reads the clock for rotation, grace periods and the times kept
	// in the file. Default time.Now.
	Now func() time.Time
	// Batch is how many one-time prekeys a new store starts with, at most
	// registry.MaxUnconsumedPrekeys. Refills do not use it: they bring the
	// registry's supply to Target. Default DefaultBatch.
	Batch int
	// SignedPrekeyLifetime is the age at which Maintain rotates the signed
	// prekey. Default DefaultSignedPrekeyLifetime.
	SignedPrekeyLifetime time.Duration
	// Grace is how long the previous signed prekey keeps answering after
	// its successor was published. Default DefaultGrace.
	Grace time.Duration
	// CounterPath is the file that keeps the id the next one-time prekey
	// gets. Default: prekey_counter in the directory above the store's
	// file when that file lies in a directory named prekeys (so
	// DefaultPath(home) goes with DefaultCounterPath(home)), otherwise
	// beside the file.
	CounterPath string
	// CheckInterval is how long Run waits after a round of upkeep before
	// the next. Default DefaultCheckInterval.
	CheckInterval time.Duration
	// After returns a channel that receives once d has passed, as
	// time.After does; Run waits on it between rounds and before each
	// retry. Default time.After; tests pass channels they control.
	After func(d time.Duration) <-chan time.Time
	// Logger receives Run's and Maintain's account of their work: a
	// warning for each failed round before its retry. Nothing logged
	// holds key material. Default: no logging.
	Logger hclog.Logger
}

// withDefaults checks o and fills in the defaults, with the counter beside
// the store's file at path.
func (o Options) withDefaults(path string) (Options, error) {
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	switch {
	case o.Batch < 0 || o.Batch > registry.MaxUnconsumedPrekeys:
		return o, fmt.Errorf("prekeys: Options.Batch %d is not between 1 and %d", o.Batch, registry.MaxUnconsumedPrekeys)
	case o.Batch == 0:
		o.Batch = DefaultBatch
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"SignedPrekeyLifetime", &o.SignedPrekeyLifetime, DefaultSignedPrekeyLifetime},
		{"Grace", &o.Grace, DefaultGrace},
		{"CheckInterval", &o.CheckInterval, DefaultCheckInterval},
	} {
		switch {
		case *d.v < 0:
			return o, fmt.Errorf("prekeys: Options.%s %v is negative", d.name, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if o.CounterPath == "" {
		o.CounterPath = counterPathFor(path)
	}
	if filepath.Clean(o.CounterPath) == filepath.Clean(path) {
		return o, fmt.Errorf("prekeys: Options.CounterPath %s is the prekey file itself", o.CounterPath)
	}
	return o, nil
}

// DefaultPath returns where the Go host keeps its prekeys under the
// AgentMesh home directory: home/prekeys/prekeys.json.
func DefaultPath(home string) string {
	return filepath.Join(home, "prekeys", "prekeys.json")
}

// Store is the agent's private prekey state, kept in one file, with the
// next one-time prekey id in a second. Its methods are safe for concurrent
// use. Lookups never wait for the network: Publish and Maintain hold the
// state's lock only to read it and to commit.
type Store struct {
	path string
	id   *identity.Identity
	amid protocol.AMID
	opts Options
	log  hclog.Logger

	// upkeep serialises Publish and Maintain, the only writers besides
	// Consume, so that a rotation or refill never races an upload, and
	// guards the counter file.
	upkeep sync.Mutex

	// running is set while Run runs; refill asks it for a round now.
	running atomic.Bool
	refill  chan struct{}

	mu sync.RWMutex
	st *state // replaced, never modified, once visible
}

var _ ratchet.PrekeySource = (*Store)(nil)

// state is one version of the prekey file's content.
type state struct {
	current  signedEntry
	previous *signedEntry
	oneTime  map[uint32]oneTimeEntry
	nextID   uint32 // the id the next one-time prekey gets
}

type signedEntry struct {
	key     *ratchet.SignedPrekey
	created time.Time
	// uploaded is when the registry stored the key; zero until then, and
	// always for the previous key.
	uploaded time.Time
	// expires ends a previous key's grace; zero until its successor is
	// published.
	expires time.Time
}

func (e *signedEntry) published() bool { return !e.uploaded.IsZero() }

type oneTimeEntry struct {
	key      *ratchet.OneTimePrekey
	created  time.Time
	uploaded time.Time // zero until the registry stored the key
	// consumed is set once the registry's count shows it handed the key
	// out.
	consumed bool
}

func (e oneTimeEntry) published() bool { return !e.uploaded.IsZero() }

func (st *state) clone() *state {
	c := *st
	if st.previous != nil {
		p := *st.previous
		c.previous = &p
	}
	c.oneTime = maps.Clone(st.oneTime)
	return &c
}

func (st *state) unpublished() int {
	n := 0
	for _, e := range st.oneTime {
		if !e.published() {
			n++
		}
	}
	return n
}

// Open loads the prekey file at path, written for the identity id, or
// creates it when it does not exist: signed prekey 1 and opts.Batch one-time
// prekeys, none published yet. One-time prekey ids continue from the
// counter file (Options.CounterPath), so that they are never reused even
// when the prekey file was lost; a new counter starts at 1. The directories
// are created with mode 0700 (an existing one is tightened), the files with
// mode 0600.
//
// A prekey file or counter file that exists but cannot be read as such, or
// a prekey file of another identity, is an error, a *FileError when its
// content is at fault; Open never replaces it.
func Open(path string, id *identity.Identity, opts Options) (*Store, error) {
	if id == nil {
		return nil, errors.New("prekeys: open: no identity")
	}
	opts, err := opts.withDefaults(path)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, id: id, amid: id.AMID(), opts: opts, log: opts.Logger, refill: make(chan struct{}, 1)}
	for _, p := range []string{path, opts.CounterPath} {
		if err := safefile.MkdirAll(filepath.Dir(p)); err != nil {
			return nil, fmt.Errorf("prekeys: creating the directory of %s: %w", p, err)
		}
	}
	counter, err := readCounter(opts.CounterPath)
	if err != nil {
		return nil, err
	}
	data, err := safefile.ReadFile(path, MaxFileSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st, err := s.create(max(counter, 1))
		if err != nil {
			return nil, err
		}
		// The counter moves past the new ids before any file holds them.
		if err := writeCounter(opts.CounterPath, st.nextID); err != nil {
			return nil, err
		}
		if err := s.write(st); err != nil {
			return nil, err
		}
		s.st = st
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("prekeys: reading %s: %w", path, err)
	}
	defer clear(data)
	st, err := parseState(data, s.amid, id.SigningPublicKey(), opts.Now())
	if err != nil {
		var fe *FileError
		if errors.As(err, &fe) {
			fe.Path = path
		}
		return nil, err
	}
	// A file others could read (copied in, or written by another tool) is
	// made private; the keys are only worth keeping if they stayed secret.
	if err := safefile.MakePrivate(path); err != nil {
		return nil, fmt.Errorf("prekeys: making %s private: %w", path, err)
	}
	switch {
	case counter > st.nextID:
		// The file is older than the counter (restored from a backup, or
		// written before a crash): ids it never saw may be in use.
		st.nextID = counter
	case counter < st.nextID:
		// No counter yet, or one that fell behind: it catches up.
		if err := writeCounter(opts.CounterPath, st.nextID); err != nil {
			return nil, err
		}
	}
	s.st = st
	return s, nil
}

// create generates the state of a new store whose one-time prekey ids
// start at next.
func (s *Store) create(next uint32) (*state, error) {
	spk, err := ratchet.GenerateSignedPrekey(s.opts.Rand, 1, s.id.Signer())
	if err != nil {
		return nil, fmt.Errorf("prekeys: generating signed prekey 1: %w", err)
	}
	now := s.opts.Now().UTC()
	st := &state{
		current: signedEntry{key: spk, created: now},
		oneTime: make(map[uint32]oneTimeEntry, s.opts.Batch),
		nextID:  next,
	}
	keys, err := s.generateOneTime(st.nextID, s.opts.Batch)
	if err != nil {
		return nil, err
	}
	if err := addOneTime(st, keys, now); err != nil {
		return nil, err
	}
	return st, nil
}

// generateOneTime makes n one-time prekeys with the ids from start on.
func (s *Store) generateOneTime(start uint32, n int) ([]*ratchet.OneTimePrekey, error) {
	if uint64(start)+uint64(n)-1 > maxID {
		return nil, fmt.Errorf("prekeys: one-time prekey ids are exhausted (next id %d)", start)
	}
	keys, err := ratchet.GenerateOneTimePrekeys(s.opts.Rand, start, n)
	if err != nil {
		return nil, fmt.Errorf("prekeys: generating %d one-time prekeys: %w", n, err)
	}
	return keys, nil
}

// addOneTime puts keys, made by generateOneTime from st.nextID at created,
// into st.
func addOneTime(st *state, keys []*ratchet.OneTimePrekey, created time.Time) error {
	if len(keys) == 0 {
		return nil
	}
	if keys[0].ID != st.nextID {
		return fmt.Errorf("prekeys: one-time prekeys from id %d generated for next id %d", keys[0].ID, st.nextID)
	}
	for _, k := range keys {
		st.oneTime[k.ID] = oneTimeEntry{key: k, created: created}
	}
	st.nextID += uint32(len(keys))
	return nil
}

// write stores st in the file atomically.
func (s *Store) write(st *state) error {
	data, err := encodeState(st, s.amid)
	if err != nil {
		return err
	}
	defer clear(data)
	if err := safefile.WriteFile(s.path, data); err != nil {
		return fmt.Errorf("prekeys: writing %s: %w", s.path, err)
	}
	return nil
}

// update applies change to a copy of the state, writes the copy and only
// then makes it the state. When change reports no change, nothing is
// written.
func (s *Store) update(change func(next *state) (changed bool, err error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.st.clone()
	changed, err := change(next)
	if err != nil || !changed {
		return err
	}
	if err := s.write(next); err != nil {
		return err
	}
	s.st = next
	return nil
}

func (s *Store) state() *state {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st
}

// SignedPrekey returns the private key of the signed prekey with the given
// id: the current one, or the previous one until its grace period ends.
func (s *Store) SignedPrekey(id uint32) (*ratchet.PrivateKey, bool) {
	st := s.state()
	if st.current.key.ID == id {
		return st.current.key.PrivateKey(), true
	}
	if p := st.previous; p != nil && p.key.ID == id && p.honoured(s.opts.Now()) {
		return p.key.PrivateKey(), true
	}
	return nil, false
}

// honoured reports whether a previous signed prekey still answers at now.
func (e *signedEntry) honoured(now time.Time) bool {
	return e.expires.IsZero() || now.Before(e.expires)
}

// OneTimePrekey returns the private key of the unconsumed one-time prekey
// with the given id. It does not consume it: see Consume.
func (s *Store) OneTimePrekey(id uint32) (*ratchet.PrivateKey, bool) {
	e, ok := s.state().oneTime[id]
	if !ok {
		return nil, false
	}
	return e.key.PrivateKey(), true
}

// Consume forgets the one-time prekey with the given id for good, once a
// session has used it. The file no longer holds it when Consume returns
// nil. A key that is not held, never was or was consumed already, gives an
// error wrapping ratchet.ErrUnknownPrekey: of two sessions racing for one
// one-time prekey, exactly one consumes it. When the file cannot be written
// the key stays.
func (s *Store) Consume(id uint32) error {
	return s.update(func(next *state) (bool, error) {
		if _, ok := next.oneTime[id]; !ok {
			return false, fmt.Errorf("prekeys: consuming one-time prekey %d: %w", id, ratchet.ErrUnknownPrekey)
		}
		delete(next.oneTime, id)
		return true, nil
	})
}

// Status describes a Store's prekeys, without key material.
type Status struct {
	// SignedPrekeyID is the current signed prekey's id.
	SignedPrekeyID uint32
	// SignedPrekeyCreated is when the current signed prekey was made.
	SignedPrekeyCreated time.Time
	// SignedPrekeyPublished reports whether the registry has stored the
	// current signed prekey.
	SignedPrekeyPublished bool
	// PreviousSignedPrekeyID is the id of the previous signed prekey while
	// it is honoured, else 0.
	PreviousSignedPrekeyID uint32
	// PreviousSignedPrekeyExpires is when the previous signed prekey stops
	// answering; zero while its successor is not published, or when there
	// is none.
	PreviousSignedPrekeyExpires time.Time
	// OneTimePrekeys counts the one-time prekeys held: those no session
	// has consumed.
	OneTimePrekeys int
	// UnpublishedOneTimePrekeys counts those not yet uploaded.
	UnpublishedOneTimePrekeys int
	// ConsumedOneTimePrekeys counts those the registry has handed out to
	// initiators, as far as its count shows: their KNOCKs may still come.
	ConsumedOneTimePrekeys int
	// NextPrekeyID is the id the next one-time prekey will get.
	NextPrekeyID uint32
}

// Status returns a summary of the store's prekeys.
func (s *Store) Status() Status {
	st := s.state()
	out := Status{
		SignedPrekeyID:            st.current.key.ID,
		SignedPrekeyCreated:       st.current.created,
		SignedPrekeyPublished:     st.current.published(),
		OneTimePrekeys:            len(st.oneTime),
		UnpublishedOneTimePrekeys: st.unpublished(),
		NextPrekeyID:              st.nextID,
	}
	for _, e := range st.oneTime {
		if e.consumed {
			out.ConsumedOneTimePrekeys++
		}
	}
	if p := st.previous; p != nil && p.honoured(s.opts.Now()) {
		out.PreviousSignedPrekeyID = p.key.ID
		out.PreviousSignedPrekeyExpires = p.expires
	}
	return out
}

// OneTimePrekeyInfo is what the file records of a one-time prekey besides
// its private key.
type OneTimePrekeyInfo struct {
	// ID is the prekey's id.
	ID uint32
	// Created is when the key was generated. For a key carried over from
	// a version 1 file, which kept no such time, it is when that file was
	// read.
	Created time.Time
	// Uploaded is when the registry stored the key; zero until then. For
	// a key carried over from a version 1 file it is when that file was
	// read.
	Uploaded time.Time
	// Consumed reports that the registry has handed the key out to an
	// initiator, as its count of unconsumed keys shows.
	Consumed bool
}

// OneTimePrekeys returns what the store records of each one-time prekey it
// holds, in ascending id order.
func (s *Store) OneTimePrekeys() []OneTimePrekeyInfo {
	st := s.state()
	out := make([]OneTimePrekeyInfo, 0, len(st.oneTime))
	for _, id := range st.sortedIDs() {
		e := st.oneTime[id]
		out = append(out, OneTimePrekeyInfo{ID: id, Created: e.created, Uploaded: e.uploaded, Consumed: e.consumed})
	}
	return out
}

// Path returns the file the store keeps its prekeys in.
func (s *Store) Path() string { return s.path }

// CounterPath returns the file the store keeps the next one-time prekey id
// in.
func (s *Store) CounterPath() string { return s.opts.CounterPath }

// String names the store by its agent and file; it never prints keys.
func (s *Store) String() string {
	return fmt.Sprintf("prekeys.Store(%s, %s)", s.amid, s.path)
}

// Format prints String for every verb, so that no verb (%#v, %x) can reach
// the keys.
func (s *Store) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }
