package transcript

import (
	"errors"
	"fmt"
	"strings"
)

// Errors returned by a Store, wrapped with the session or the file they
// concern. Test for them with errors.Is.
var (
	// ErrNotFound reports a session that has no transcript.
	ErrNotFound = errors.New("no transcript for this session")
	// ErrDecrypt reports a record that does not open with the store's key:
	// the transcript belongs to another identity, or the record was
	// altered.
	ErrDecrypt = errors.New("record does not open with this identity's key")
	// ErrFull reports an append that would take a transcript past
	// Options.MaxFileSize.
	ErrFull = errors.New("transcript file is full")
	// ErrClosed reports a call on a closed Store.
	ErrClosed = errors.New("transcript store is closed")
)

// FileError reports a transcript file that cannot be used. It names the
// file and, when one line is at fault, its number. It never quotes a key or
// the content of an entry.
type FileError struct {
	// Path is the file.
	Path string
	// Line is the 1-based number of the offending line, or 0 when the
	// problem is with the file as a whole.
	Line int
	// Err says what is wrong.
	Err error
}

// Error names the file, the line and the problem.
func (e *FileError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("transcript: file %s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("transcript: file %s: line %d: %v", e.Path, e.Line, e.Err)
}

// Unwrap returns the underlying error.
func (e *FileError) Unwrap() error { return e.Err }

// ReencryptError lists the transcripts that Store.Reencrypt left under the
// old key. Each file is as it was; an identity holding the old key still
// reads it.
type ReencryptError struct {
	// Failed holds one error per file, a *FileError where a file or line
	// was at fault.
	Failed []error
}

// Error counts the files and names each problem.
func (e *ReencryptError) Error() string {
	msgs := make([]string, len(e.Failed))
	for i, err := range e.Failed {
		msgs[i] = err.Error()
	}
	return fmt.Sprintf("transcript: %d transcript(s) not re-encrypted: %s", len(e.Failed), strings.Join(msgs, "; "))
}

// Unwrap returns the per-file errors.
func (e *ReencryptError) Unwrap() []error { return e.Failed }

// lineErr returns a *FileError for line n of a file whose path the caller
// fills in.
func lineErr(n int, format string, args ...any) *FileError {
	return &FileError{Line: n, Err: fmt.Errorf(format, args...)}
}
