package session

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/agentmesh/agentmesh-go/internal/safefile"
)

// DefaultNonceWindow is how long a NonceStore remembers a nonce when
// OpenNonceStore is given no window. A KNOCK is fresh for ±5 minutes around
// its timestamp (PROTOCOL.md §6.1), so a nonce can be replayed for at most
// 10 minutes after it is first seen.
const DefaultNonceWindow = 10 * time.Minute

// Limits of the nonce store.
const (
	// MaxNonceLen bounds the nonces Seen accepts.
	MaxNonceLen = 256
	// maxNonceFileSize bounds the file OpenNonceStore reads.
	maxNonceFileSize = 64 << 20
	// minCompactRecords is the fewest records at which the file is
	// compacted.
	minCompactRecords = 1024
)

// ErrNonceStoreClosed is returned by Seen after Close.
var ErrNonceStoreClosed = errors.New("nonce store closed")

// NonceStore remembers the KNOCK nonces seen within a window, on disk, so
// that a restart does not reopen replays (DESIGN.md §4 item 3). Its methods
// are safe for concurrent use.
//
// The file holds one record per line, "<unix milliseconds> <nonce>\n". Seen
// appends a record and syncs it before reporting a nonce fresh; the file is
// rewritten atomically with only the remembered nonces when it has grown to
// twice their number, and on open. A line without its final newline, as a
// crash in the middle of an append leaves, is ignored, as is any other
// malformed line.
type NonceStore struct {
	path   string
	window time.Duration

	mu      sync.Mutex
	f       *os.File // the file, opened for appending; nil if it must be reopened
	closed  bool
	seen    map[string]time.Time // nonce → when first seen
	newest  time.Time            // the latest time recorded
	records int                  // records in the file
	limit   int                  // records at which to compact

	batch    *nonceBatch // records not yet handed to a flush
	flushing bool        // a batch is being written and synced
	flushed  sync.Cond   // signalled when a flush ends
}

// OpenNonceStore opens, or creates, the nonce store at path, remembering
// nonces for window (DefaultNonceWindow when zero or less). The directory
// of path is created with mode 0700 if needed, the file has mode 0600.
func OpenNonceStore(path string, window time.Duration) (*NonceStore, error) {
	if window <= 0 {
		window = DefaultNonceWindow
	}
	s := &NonceStore{path: path, window: window, seen: make(map[string]time.Time)}
	s.flushed.L = &s.mu
	if err := safefile.MkdirAll(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("opening the nonce store: %w", err)
	}
	data, err := safefile.ReadFile(path, maxNonceFileSize)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("opening the nonce store: %w", err)
	}
	s.load(data)
	// Rewriting at once drops expired records and a torn last line, so
	// that later appends start on a line of their own.
	if err := s.compact(); err != nil {
		return nil, fmt.Errorf("opening the nonce store: %w", err)
	}
	return s, nil
}

// load fills the store from the file's records, skipping malformed lines
// and forgetting records older than the window before the newest one.
func (s *NonceStore) load(data []byte) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break // a torn last line
		}
		line := data[:i]
		data = data[i+1:]
		at, nonce, ok := parseNonceRecord(line)
		if !ok {
			continue
		}
		if prev, dup := s.seen[nonce]; !dup || at.Before(prev) {
			s.seen[nonce] = at
		}
		if at.After(s.newest) {
			s.newest = at
		}
	}
	s.prune()
}

func parseNonceRecord(line []byte) (time.Time, string, bool) {
	ms, nonce, ok := bytes.Cut(line, []byte{' '})
	if !ok || len(ms) == 0 || len(ms) > 18 || !validNonce(nonce) {
		return time.Time{}, "", false
	}
	for _, c := range ms {
		if c < '0' || c > '9' {
			return time.Time{}, "", false
		}
	}
	n, err := strconv.ParseInt(string(ms), 10, 64)
	if err != nil {
		return time.Time{}, "", false
	}
	return time.UnixMilli(n), string(nonce), true
}

// validNonce reports whether n can be stored: 1 to MaxNonceLen printable
// ASCII characters other than space.
func validNonce[T string | []byte](n T) bool {
	if len(n) == 0 || len(n) > MaxNonceLen {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] <= ' ' || n[i] > '~' {
			return false
		}
	}
	return true
}

// prune forgets the nonces older than the window before the newest record.
func (s *NonceStore) prune() {
	cut := s.newest.Add(-s.window)
	for n, at := range s.seen {
		if at.Before(cut) {
			delete(s.seen, n)
		}
	}
}

// Seen records nonce as seen at at (the time the KNOCK arrived) and reports
// whether it is fresh: not seen within the window before at. A fresh nonce
// is on disk before Seen returns. On error the nonce must be treated as not
// fresh.
//
// Concurrent calls share their writes: while one call syncs the file, the
// records of the calls that arrive meanwhile gather into the next batch,
// written and synced once for all of them (group commit), so a burst of
// KNOCKs does not wait for one sync per KNOCK.
func (s *NonceStore) Seen(nonce string, at time.Time) (fresh bool, err error) {
	if !validNonce(nonce) {
		return false, fmt.Errorf("nonce store: nonce of %d bytes is empty, too long or not printable ASCII", len(nonce))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrNonceStoreClosed
	}
	if s.f == nil && !s.flushing {
		// An earlier compaction replaced the file but could not reopen it.
		if err := s.compact(); err != nil {
			return false, fmt.Errorf("reopening the nonce store: %w", err)
		}
	}
	// A nonce seen "later" than at, after the clock went back, is a replay
	// too. A nonce whose record is still on its way to disk counts as
	// seen: should its write fail, it stays refused (fail closed).
	if prev, ok := s.seen[nonce]; ok && at.Sub(prev) < s.window {
		return false, nil
	}
	s.seen[nonce] = at
	if at.After(s.newest) {
		s.newest = at
	}
	b := s.batch
	if b == nil {
		b = &nonceBatch{}
		s.batch = b
	}
	b.buf = strconv.AppendInt(b.buf, at.UnixMilli(), 10)
	b.buf = append(b.buf, ' ')
	b.buf = append(b.buf, nonce...)
	b.buf = append(b.buf, '\n')
	b.n++
	for !b.done {
		if s.flushing {
			s.flushed.Wait()
			continue
		}
		s.flush()
	}
	if b.err != nil {
		return false, fmt.Errorf("recording a nonce: %w", b.err)
	}
	if !s.flushing && s.batch == nil && s.records >= s.limit {
		s.prune()
		if err := s.compact(); err != nil {
			return false, fmt.Errorf("compacting the nonce store: %w", err)
		}
	}
	return true, nil
}

// nonceBatch is records waiting to be written and synced together.
type nonceBatch struct {
	buf  []byte
	n    int
	done bool
	err  error
}

// flush writes and syncs the pending batch with s.mu released, so that
// other calls can gather the next one meanwhile; s.mu must be held.
func (s *NonceStore) flush() {
	b, f := s.batch, s.f
	s.batch = nil
	s.flushing = true
	s.mu.Unlock()
	var err error
	if f == nil {
		err = errors.New("the nonce file is not open")
	} else if _, err = f.Write(b.buf); err == nil {
		err = f.Sync()
	}
	s.mu.Lock()
	s.flushing = false
	b.done, b.err = true, err
	if err == nil {
		s.records += b.n
	}
	s.flushed.Broadcast()
}

// compact rewrites the file with the remembered nonces only and reopens it
// for appending. On failure the old file stays in use.
func (s *NonceStore) compact() error {
	var buf bytes.Buffer
	for n, at := range s.seen {
		buf.WriteString(strconv.FormatInt(at.UnixMilli(), 10))
		buf.WriteByte(' ')
		buf.WriteString(n)
		buf.WriteByte('\n')
	}
	if err := safefile.WriteFile(s.path, buf.Bytes()); err != nil {
		// Try again after as many records as now.
		s.limit = s.records * 2
		return err
	}
	// The old handle, if any, now refers to the replaced file.
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	s.f = f
	s.records = len(s.seen)
	s.limit = max(2*s.records, minCompactRecords)
	return nil
}

// Len returns the number of nonces remembered.
func (s *NonceStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// Close closes the file. Later calls to Seen fail with
// ErrNonceStoreClosed.
func (s *NonceStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for s.flushing {
		s.flushed.Wait()
	}
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
