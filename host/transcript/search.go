package transcript

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Result is what Search found.
type Result struct {
	// Matches are the matching entries, the most recently modified
	// transcript first and in order within each transcript.
	Matches []Match
	// Searched counts the transcripts looked at, readable or not.
	Searched int
	// More says that older transcripts exist that were not searched,
	// beyond Options.SearchLimit.
	More bool
	// Unreadable lists the searched transcripts that could not be read,
	// each as a *FileError.
	Unreadable []error
}

// Match is one entry that Search found.
type Match struct {
	// SessionID is the entry's transcript.
	SessionID string
	// Index is the entry's position in its transcript, from 0, as Read
	// returns it.
	Index int
	Entry Entry
}

// Search returns the entries that mention query, ignoring case, in their
// message type, their peer's AMID, or any member name or value of their
// message (strings after JSON unescaping, numbers as written). It reads
// the Options.SearchLimit most recently modified transcripts and sets
// Result.More when there are others. Transcripts that cannot be read are
// listed in Result.Unreadable rather than failing the search; plaintext
// ones are migrated as Read does.
func (s *Store) Search(query string) (Result, error) {
	if query == "" {
		return Result{}, errors.New("transcript: empty search query")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.secret == nil {
		return Result{}, ErrClosed
	}
	files, err := s.scan()
	if err != nil {
		return Result{}, err
	}
	slices.SortFunc(files, func(a, b transcriptFile) int {
		return cmp.Or(b.info.ModTime().Compare(a.info.ModTime()), cmp.Compare(a.id, b.id))
	})
	var res Result
	if len(files) > s.opts.SearchLimit {
		files, res.More = files[:s.opts.SearchLimit], true
	}
	q := strings.ToLower(query)
	for _, f := range files {
		unlock := s.files.lock(f.id)
		entries, err := s.readLocked(f.id)
		unlock()
		if errors.Is(err, ErrNotFound) {
			continue // deleted since the scan
		}
		res.Searched++
		if err != nil {
			res.Unreadable = append(res.Unreadable, err)
			continue
		}
		for i, e := range entries {
			if e.mentions(q) {
				res.Matches = append(res.Matches, Match{SessionID: f.id, Index: i, Entry: e})
			}
		}
	}
	return res, nil
}

// mentions reports whether e mentions q, which is in lower case.
func (e *Entry) mentions(q string) bool {
	if containsFold(e.Type, q) || containsFold(string(e.Peer), q) {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(e.Message))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch v := tok.(type) {
		case string:
			if containsFold(v, q) {
				return true
			}
		case json.Number:
			if strings.Contains(string(v), q) {
				return true
			}
		}
	}
}

// containsFold reports whether s contains q, which is in lower case,
// ignoring case.
func containsFold(s, q string) bool {
	return strings.Contains(strings.ToLower(s), q)
}

// Export writes the decrypted entries of the transcripts of the sessions
// ids, or of every transcript when none is named, to w as JSON Lines: one
// Entry as a JSON object per line, transcripts in the order named (by
// session id when none is), entries in order. A named session without a
// transcript fails with ErrNotFound before anything is written. A
// transcript that cannot be read stops the export with its error, after
// the transcripts before it were written. Plaintext transcripts are
// migrated as Read does.
func (s *Store) Export(w io.Writer, ids ...string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.secret == nil {
		return ErrClosed
	}
	all := len(ids) == 0
	if all {
		files, err := s.scan()
		if err != nil {
			return err
		}
		for _, f := range files {
			ids = append(ids, f.id)
		}
	} else {
		for _, id := range ids {
			if err := checkSessionID(id); err != nil {
				return err
			}
			if _, err := s.stat(id); err != nil {
				return err
			}
		}
	}
	bw := bufio.NewWriter(w)
	for _, id := range ids {
		unlock := s.files.lock(id)
		entries, err := s.readLocked(id)
		unlock()
		if all && errors.Is(err, ErrNotFound) {
			continue // deleted since the scan
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			line, err := json.Marshal(&e)
			if err != nil {
				return fmt.Errorf("transcript: exporting session %q: %w", id, err)
			}
			bw.Write(line)
			bw.WriteByte('\n')
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("transcript: writing the export: %w", err)
	}
	return nil
}
