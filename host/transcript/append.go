package transcript

import (
	"bytes"
	"crypto/cipher"
	"errors"
	"fmt"
	"os"

	"golang.org/x/crypto/chacha20poly1305"
)

// Append adds e to the transcript of session id, creating the file when it
// is the session's first entry. It checks e (see [Entry]), seals it and
// writes it as one line at the end of the file; earlier records are never
// rewritten. A file still holding plaintext from an older version is
// migrated first, and the torn remains of an interrupted append are cut
// off. Append refuses, with a *FileError wrapping ErrDecrypt, a file whose
// first record does not open with the store's key: a record added under
// another key would leave the file readable by no identity. An append that
// would take the file past Options.MaxFileSize fails with ErrFull and writes
// nothing.
func (s *Store) Append(id string, e Entry) error {
	if err := s.begin(id); err != nil {
		return err
	}
	defer s.end()

	var buf bytes.Buffer
	buf.Grow(256 + len(e.Message) + chacha20poly1305.Overhead)
	if err := appendEntry(&buf, &e, id, s.opts.Now(), s.opts.MaxMessageSize); err != nil {
		return fmt.Errorf("transcript: session %q: %w", id, err)
	}
	aead, err := sessionAEAD(s.secret, id)
	if err != nil {
		return err
	}
	line := sealLine(aead, buf.Bytes())

	unlock := s.files.lock(id)
	defer unlock()
	path := s.path(id)
	f, size, err := s.openForAppend(id, path, aead)
	if err != nil {
		return err
	}
	defer f.Close()
	if size+int64(len(line)) > s.opts.MaxFileSize {
		return &FileError{Path: path, Err: fmt.Errorf("%w: %d bytes, and a record of %d would pass the limit of %d",
			ErrFull, size, len(line), s.opts.MaxFileSize)}
	}
	if n, err := f.Write(line); err != nil {
		if n > 0 {
			// Leave no torn line behind when the write fails part-way.
			f.Truncate(size)
		}
		return fmt.Errorf("transcript: appending to %s: %w", path, err)
	}
	if s.opts.Sync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("transcript: syncing %s: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("transcript: closing %s: %w", path, err)
	}
	return nil
}

// openForAppend opens session id's file for appending and returns it with
// its size, after making it ready: every line a record that aead opens, the
// last one complete with its newline. The caller holds the file's lock.
func (s *Store) openForAppend(id, path string, aead cipher.AEAD) (*os.File, int64, error) {
	const flags = os.O_RDWR | os.O_CREATE | os.O_APPEND
	f, fi, err := openNoFollow(path, flags)
	if err != nil {
		return nil, 0, fmt.Errorf("transcript: opening %s: %w", path, err)
	}
	size := fi.Size()
	ok, err := s.appendReady(f, size, aead)
	if err != nil {
		f.Close()
		var fe *FileError
		if errors.As(err, &fe) {
			fe.Path = path
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("transcript: reading %s: %w", path, err)
	}
	if ok {
		return f, size, nil
	}

	// The slow path: the file holds plaintext, a record written in another
	// form or a broken last line.
	if size > s.opts.MaxFileSize {
		f.Close()
		return nil, 0, &FileError{Path: path, Err: fmt.Errorf("%w: %d bytes, limit %d", ErrFull, size, s.opts.MaxFileSize)}
	}
	data, err := readAll(f, size)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("transcript: reading %s: %w", path, err)
	}
	c, err := parseFile(data)
	if err != nil {
		f.Close()
		err.(*FileError).Path = path
		return nil, 0, err
	}
	if c.plain > 0 {
		f.Close()
		if _, err := s.decodeAll(id, path, c); err != nil {
			return nil, 0, err
		}
		if err := s.migrate(id, path, c); err != nil {
			return nil, 0, err
		}
		if f, fi, err = openNoFollow(path, flags); err != nil {
			return nil, 0, fmt.Errorf("transcript: opening %s: %w", path, err)
		}
		return f, fi.Size(), nil
	}
	if len(c.items) > 0 {
		if _, err := openRecord(aead, c.items[0].rec); err != nil {
			f.Close()
			return nil, 0, &FileError{Path: path, Line: c.items[0].line, Err: err}
		}
	}
	switch {
	case c.torn:
		err = f.Truncate(c.end)
		size = c.end
	case c.unterminated:
		_, err = f.Write([]byte{'\n'})
		size++
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("transcript: repairing the end of %s: %w", path, err)
	}
	return f, size, nil
}

// headSize is how much of a file appendReady reads to find its first
// line, which is enough for a record of a typical message.
const headSize = 4 << 10

// appendReady reports whether a file of size bytes can take a record at
// its end as it is: it is empty, or its first line is a record in the form
// Append writes that opens with aead and its last byte is a newline. A
// first record that does not open is a *FileError wrapping ErrDecrypt,
// without a path. Any other file takes the slow path, which reads it
// whole.
func (s *Store) appendReady(f *os.File, size int64, aead cipher.AEAD) (bool, error) {
	if size == 0 {
		return true, nil
	}
	var buf [headSize]byte
	head := buf[:min(size, headSize)]
	if _, err := f.ReadAt(head, 0); err != nil {
		return false, err
	}
	end := bytes.IndexByte(head, '\n')
	if end < 0 && size > headSize {
		// A long first record: read as far as the longest one can go.
		maxLine := int64(encodedLen(s.opts.MaxMessageSize+maxEntryOverhead)) + 1
		head = make([]byte, min(size, maxLine))
		if _, err := f.ReadAt(head, 0); err != nil {
			return false, err
		}
		end = bytes.IndexByte(head, '\n')
	}
	if end < 0 {
		return false, nil
	}
	r, ok, err := parseCanonical(head[:end])
	if !ok || err != nil {
		return false, nil
	}
	if _, err := openRecord(aead, r); err != nil {
		return false, &FileError{Line: 1, Err: err}
	}
	if size <= int64(len(head)) {
		return head[size-1] == '\n', nil
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], size-1); err != nil {
		return false, err
	}
	return last[0] == '\n', nil
}
