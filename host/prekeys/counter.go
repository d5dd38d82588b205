package prekeys

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/agentmesh/agentmesh-go/internal/safefile"
)

// CounterFileName is the name of the file that keeps the next one-time
// prekey id, directly under the AgentMesh home directory.
const CounterFileName = "prekey_counter"

// maxCounterSize is the largest counter file read: a ten-digit number and
// a newline, with room to spare.
const maxCounterSize = 64

// DefaultCounterPath returns where the Go host keeps the next one-time
// prekey id under the AgentMesh home directory: home/prekey_counter.
func DefaultCounterPath(home string) string {
	return filepath.Join(home, CounterFileName)
}

// counterPathFor is the counter file of a store at path when
// Options.CounterPath is empty: beside the prekeys directory when the file
// lies in one, as DefaultPath lays it out, and beside the file otherwise.
func counterPathFor(path string) string {
	dir := filepath.Dir(path)
	if filepath.Base(dir) == "prekeys" {
		return filepath.Join(filepath.Dir(dir), CounterFileName)
	}
	return filepath.Join(dir, CounterFileName)
}

// readCounter returns the id the counter file at path says the next
// one-time prekey gets, or 0 when there is no counter file. A file that is
// not a counter is a *FileError; the file is made private.
func readCounter(path string) (uint32, error) {
	data, err := safefile.ReadFile(path, maxCounterSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, nil
	case errors.Is(err, safefile.ErrTooLarge):
		return 0, &FileError{Path: path, Problem: fmt.Sprintf("is longer than a prekey id counter (%d bytes at most)", maxCounterSize), Err: err}
	case err != nil:
		return 0, fmt.Errorf("prekeys: reading %s: %w", path, err)
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(string(data), "\n"), 10, 32)
	if err != nil || n < 1 || n > maxID+1 {
		return 0, &FileError{Path: path, Problem: fmt.Sprintf("is not a prekey id counter: want a decimal number between 1 and %d", uint64(maxID)+1)}
	}
	if err := safefile.MakePrivate(path); err != nil {
		return 0, fmt.Errorf("prekeys: making %s private: %w", path, err)
	}
	return uint32(n), nil
}

// writeCounter stores next, the id the next one-time prekey gets, in the
// counter file at path atomically.
func writeCounter(path string, next uint32) error {
	if err := safefile.WriteFile(path, []byte(strconv.FormatUint(uint64(next), 10)+"\n")); err != nil {
		return fmt.Errorf("prekeys: writing the prekey id counter %s: %w", path, err)
	}
	return nil
}
