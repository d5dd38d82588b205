package transcript

import (
	"errors"
	"io"
	"io/fs"
	"os"

	"github.com/agentmesh/agentmesh-go/internal/safefile"
)

// openNoFollow opens the regular file at path without following a symbolic
// link in its last element, creating it with mode 0600 when flag says so.
// It tightens a file that group or others may access.
func openNoFollow(path string, flag int) (*os.File, fs.FileInfo, error) {
	if noFollow == 0 {
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, nil, &fs.PathError{Op: "open", Path: path, Err: safefile.ErrSymlink}
		}
	}
	f, err := os.OpenFile(path, flag|noFollow, safefile.FileMode)
	if err != nil {
		// Systems disagree on the errno of O_NOFOLLOW (ELOOP, EMLINK);
		// name the cause once.
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, nil, &fs.PathError{Op: "open", Path: path, Err: safefile.ErrSymlink}
		}
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &fs.PathError{Op: "open", Path: path, Err: safefile.ErrNotRegular}
	}
	if err == nil && fi.Mode().Perm()&0o077 != 0 {
		err = safefile.MakePrivate(path)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// readAll reads the first size bytes of f.
func readAll(f *os.File, size int64) ([]byte, error) {
	data := make([]byte, size)
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, size), data); err != nil {
		return nil, err
	}
	return data, nil
}

// replace atomically replaces the file at path with data and then
// overwrites the replaced file's blocks with zeros, so that its old
// content (plaintext, or records under a retired key) does not stay
// readable on the filesystem. A failure before the replacement leaves the
// file as it was; a failed overwrite is logged, as the new content is in
// place by then.
func (s *Store) replace(path string, data []byte) error {
	old, _, err := openNoFollow(path, os.O_RDWR)
	if err != nil {
		return err
	}
	defer old.Close()
	if err := safefile.WriteFile(path, data); err != nil {
		return err
	}
	if err := wipe(old); err != nil {
		s.log.Warn("could not overwrite the replaced transcript file", "path", path, "error", err)
	}
	return nil
}

// wipeChunk is the size of the buffer wipe writes with.
const wipeChunk = 32 << 10

// wipe overwrites the whole of f with zeros and syncs it.
func wipe(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	zeros := make([]byte, min(fi.Size(), wipeChunk))
	for off := int64(0); off < fi.Size(); {
		n, err := f.WriteAt(zeros[:min(fi.Size()-off, int64(len(zeros)))], off)
		if err != nil {
			return err
		}
		off += int64(n)
	}
	return f.Sync()
}

// notFound reports whether err says that a file does not exist.
func notFound(err error) bool { return errors.Is(err, fs.ErrNotExist) }
