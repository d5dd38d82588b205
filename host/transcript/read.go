package transcript

import (
	"cmp"
	"crypto/cipher"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/agentmesh/agentmesh-go/internal/safefile"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Read returns the entries of session id's transcript in the order they
// were appended. It fails with ErrNotFound when the session has none, and
// with a *FileError naming the file and line when a line is bad or a record
// does not open (ErrDecrypt). A file still holding plaintext is migrated
// (see the package documentation); should the migration fail, Read still
// returns the entries and logs the failure.
func (s *Store) Read(id string) ([]Entry, error) {
	if err := s.begin(id); err != nil {
		return nil, err
	}
	defer s.end()
	unlock := s.files.lock(id)
	defer unlock()
	return s.readLocked(id)
}

// readLocked reads, and migrates if need be, session id's transcript. The
// caller holds the store for reading and the file's lock.
func (s *Store) readLocked(id string) ([]Entry, error) {
	path := s.path(id)
	c, _, err := s.load(path)
	if err != nil {
		return nil, err
	}
	entries, err := s.decodeAll(id, path, c)
	if err != nil {
		return nil, err
	}
	if c.plain > 0 {
		if err := s.migrate(id, path, c); err != nil {
			s.log.Warn("could not migrate a plaintext transcript", "session", id, "error", err)
		}
	}
	return entries, nil
}

// load reads and splits the file at path, returning its size too.
func (s *Store) load(path string) (*content, int64, error) {
	data, err := safefile.ReadFile(path, s.opts.MaxFileSize)
	if notFound(err) {
		return nil, 0, fmt.Errorf("transcript: %s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, 0, &FileError{Path: path, Err: err}
	}
	c, err := parseFile(data)
	if err != nil {
		err.(*FileError).Path = path
		return nil, 0, err
	}
	return c, int64(len(data)), nil
}

// decodeAll opens every record of c, the file at path of session id, with
// the store's key and reads every entry.
func (s *Store) decodeAll(id, path string, c *content) ([]Entry, error) {
	aead, err := sessionAEAD(s.secret, id)
	if err != nil {
		return nil, err
	}
	entries, _, err := decode(aead, id, path, c, false)
	return entries, err
}

// decode opens every record of c, the file at path of session id, with
// aead and reads every entry. With keepPlain it also returns the plaintext
// of each line, which the caller clears.
func decode(aead cipher.AEAD, id, path string, c *content, keepPlain bool) ([]Entry, [][]byte, error) {
	entries := make([]Entry, 0, len(c.items))
	var plains [][]byte
	for _, it := range c.items {
		data := it.plain
		if data == nil {
			var err error
			if data, err = openRecord(aead, it.rec); err != nil {
				clearAll(plains)
				return nil, nil, &FileError{Path: path, Line: it.line, Err: err}
			}
		}
		e, err := parseEntry(data, id)
		if err != nil {
			clearAll(plains)
			return nil, nil, &FileError{Path: path, Line: it.line, Err: err}
		}
		entries = append(entries, e)
		if keepPlain {
			// Clipped, so that sealing it in place cannot write into
			// the lines that follow it in the file's buffer.
			plains = append(plains, slices.Clip(data))
		} else if it.plain == nil {
			clear(data)
		}
	}
	return entries, plains, nil
}

// clearAll clears each of bufs.
func clearAll(bufs [][]byte) {
	for _, b := range bufs {
		clear(b)
	}
}

// migrate replaces the file at path, whose content c holds plaintext
// entries that decodeAll has read, with the same lines sealed.
func (s *Store) migrate(id, path string, c *content) error {
	aead, err := sessionAEAD(s.secret, id)
	if err != nil {
		return err
	}
	data := c.encode(aead)
	if err := s.replace(path, data); err != nil {
		return fmt.Errorf("transcript: migrating %s: %w", path, err)
	}
	s.log.Info("encrypted a plaintext transcript", "session", id, "entries", c.plain)
	return nil
}

// Info describes one transcript.
type Info struct {
	// SessionID is the transcript's session.
	SessionID string
	// Peer is the other agent, from the first entry; empty when the
	// transcript cannot be read.
	Peer protocol.AMID
	// Entries counts the entries, readable or not.
	Entries int
	// Size is the file's size in bytes.
	Size int64
	// Modified is when the file last changed.
	Modified time.Time
	// Encrypted says that every entry is sealed; it is false for a file
	// of an older version that still holds plaintext.
	Encrypted bool
	// Decryptable says that every record opens with the store's key and
	// every entry reads.
	Decryptable bool
	// Err says why the transcript cannot be read when Decryptable is
	// false: a *FileError, wrapping ErrDecrypt when the key does not fit.
	Err error
}

// List describes every transcript, the most recently modified first. It
// opens every record, to tell whether the store can read it, but changes
// nothing: a file holding plaintext is reported with Encrypted false and
// left for Read to migrate. A file that cannot be read is listed with its
// error in Info.Err.
func (s *Store) List() ([]Info, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.secret == nil {
		return nil, ErrClosed
	}
	files, err := s.scan()
	if err != nil {
		return nil, err
	}
	infos := make([]Info, 0, len(files))
	for _, f := range files {
		info, ok := s.describe(f)
		if ok {
			infos = append(infos, info)
		}
	}
	slices.SortFunc(infos, func(a, b Info) int {
		return cmp.Or(b.Modified.Compare(a.Modified), cmp.Compare(a.SessionID, b.SessionID))
	})
	return infos, nil
}

// describe reads one transcript for List; ok is false when it vanished.
func (s *Store) describe(f transcriptFile) (info Info, ok bool) {
	unlock := s.files.lock(f.id)
	defer unlock()
	info = Info{SessionID: f.id, Size: f.info.Size(), Modified: f.info.ModTime()}
	path := s.path(f.id)
	c, size, err := s.load(path)
	if errors.Is(err, ErrNotFound) {
		return Info{}, false
	}
	if err != nil {
		info.Err = err
		return info, true
	}
	info.Size, info.Entries, info.Encrypted = size, len(c.items), c.plain == 0
	entries, err := s.decodeAll(f.id, path, c)
	if err != nil {
		info.Err = err
		return info, true
	}
	info.Decryptable = true
	if len(entries) > 0 {
		info.Peer = entries[0].Peer
	}
	return info, true
}
