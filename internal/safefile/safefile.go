// Package safefile writes, reads and deletes the host's private files: the
// identity, prekey state, session files and transcripts. It is the one place
// that knows how such files must be handled on disk (DESIGN.md §4.8):
//
//   - [WriteFile] replaces a file atomically: readers see the old content or
//     the new content, never a mix, and the file is never visible with a mode
//     wider than [FileMode].
//   - [MkdirAll] creates directories with [DirMode] and tightens an existing
//     directory that group or others can enter.
//   - [ReadFile] refuses symbolic links, special files and files over a size
//     limit, so a planted link or a huge file cannot redirect or exhaust a
//     reader.
//   - [Remove] overwrites a file before unlinking it.
//
// Every function takes the path the caller chose and follows no symbolic link
// in its last element. Links in the directories above it are followed, as the
// system resolves them (for example /var on macOS).
//
// On platforms without Unix permissions (Windows, Plan 9, WebAssembly) the
// mode and ownership checks are skipped; the atomic write and the symbolic
// link checks still apply.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Modes of the files and directories this package creates.
const (
	FileMode fs.FileMode = 0o600
	DirMode  fs.FileMode = 0o700
)

// Errors wrapped, inside an *fs.PathError naming the path, by the functions of
// this package. Test for them with errors.Is.
var (
	ErrSymlink    = errors.New("is a symbolic link")
	ErrNotRegular = errors.New("not a regular file")
	ErrTooLarge   = errors.New("file too large")
	ErrNotOwned   = errors.New("not owned by the current user")
)

// ModeError reports a file or directory whose permissions let group or
// others read, write or enter it.
type ModeError struct {
	Path string
	Mode fs.FileMode
}

func (e *ModeError) Error() string {
	return fmt.Sprintf("%s: mode %04o gives access to group or others", e.Path, uint32(e.Mode.Perm()))
}

// openBits are the permission bits that make a file or directory reachable by
// anyone but its owner.
const openBits fs.FileMode = 0o077

// beforeRenameForTest, when set, runs after the temporary file of WriteFile
// is written and before it is renamed into place; an error it returns makes
// WriteFile fail at that point.
var beforeRenameForTest func(tmp string) error

// WriteFile atomically replaces the file at path with data. It writes a
// temporary file with mode [FileMode] in the same directory, syncs it, renames
// it over path and syncs the directory, so that after a crash path holds
// either its old content or data. The directory must exist (see [MkdirAll]).
// If path is a symbolic link, the link itself is replaced, not its target. On
// error the temporary file is removed and path is left as it was.
func WriteFile(path string, data []byte) error { return writeFile(path, data, true) }

// ReplaceFile atomically replaces the file at path with data as WriteFile
// does, but without syncing: after the process is killed at any point path
// holds either its old content or data, while after a power failure it may
// still hold the old content. It suits state rewritten on every message,
// where one sync per write would cost more than the work it records.
func ReplaceFile(path string, data []byte) error { return writeFile(path, data, false) }

func writeFile(path string, data []byte, durable bool) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if err := writeAndClose(f, data, durable); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	// The rename is durable only once the directory entry is on disk.
	if !durable {
		return nil
	}
	if err := syncDir(dir); err != nil {
		return &fs.PathError{Op: "sync", Path: dir, Err: err}
	}
	return nil
}

// writeAndClose fills the temporary file and makes its content durable. It
// always closes f.
func writeAndClose(f *os.File, data []byte, durable bool) error {
	// CreateTemp already asks for 0600; the umask can only narrow that, and
	// an owner who cannot read back their own file is no better served.
	err := f.Chmod(FileMode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil && beforeRenameForTest != nil {
		err = beforeRenameForTest(f.Name())
	}
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// MkdirAll creates path and any missing parents with mode [DirMode]. If path
// already exists it must be a directory owned by the current user and not a
// symbolic link; if group or others have any access to it, those bits are
// cleared. Existing parents are left as they are.
func MkdirAll(path string) error {
	if err := os.MkdirAll(path, DirMode); err != nil {
		return err
	}
	f, err := openNoFollow(path, os.O_RDONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &fs.PathError{Op: "mkdir", Path: path, Err: errors.New("not a directory")}
	}
	if err := checkOwner(fi); err != nil {
		return &fs.PathError{Op: "mkdir", Path: path, Err: err}
	}
	if permsEnforced {
		if perm := fi.Mode().Perm(); perm&openBits != 0 {
			if err := f.Chmod(perm &^ openBits); err != nil {
				return err
			}
		}
	}
	return nil
}

// ReadFile reads the regular file at path, which may hold at most max bytes.
// It refuses a symbolic link (ErrSymlink), anything but a regular file
// (ErrNotRegular) and a larger file (ErrTooLarge), and never blocks on a
// named pipe planted at path.
func ReadFile(path string, max int64) ([]byte, error) {
	if max < 0 {
		return nil, fmt.Errorf("safefile: negative size limit %d", max)
	}
	f, err := openNoFollow(path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: ErrNotRegular}
	}
	tooLarge := func(size int64) error {
		return &fs.PathError{Op: "read", Path: path,
			Err: fmt.Errorf("%w: %d bytes or more, limit %d", ErrTooLarge, size, max)}
	}
	if fi.Size() > max {
		return nil, tooLarge(fi.Size())
	}
	// The file may grow between Stat and Read: read one byte past the limit
	// to notice.
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, tooLarge(int64(len(data)))
	}
	return data, nil
}

// CheckPrivate reports, as a *ModeError, a file or directory at path that
// group or others can access. It returns ErrSymlink for a symbolic link and
// nil for a private file. It does not change anything; see [MakePrivate].
func CheckPrivate(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return &fs.PathError{Op: "check", Path: path, Err: ErrSymlink}
	}
	if permsEnforced && fi.Mode().Perm()&openBits != 0 {
		return &ModeError{Path: path, Mode: fi.Mode()}
	}
	return nil
}

// MakePrivate clears the group and others permission bits of the regular
// file or directory at path, so that a 0644 file becomes 0600. It refuses a
// symbolic link and changes the object it opened, not whatever the path
// names a moment later.
func MakePrivate(path string) error {
	f, err := openNoFollow(path, os.O_RDONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() {
		return &fs.PathError{Op: "chmod", Path: path, Err: ErrNotRegular}
	}
	if !permsEnforced || fi.Mode().Perm()&openBits == 0 {
		return nil
	}
	return f.Chmod(fi.Mode().Perm() &^ openBits)
}

// zeroChunk is the size of the buffer Remove overwrites with.
const zeroChunk = 32 << 10

// Remove overwrites the regular file at path with zeros, syncs it and then
// unlinks it. It refuses a symbolic link, so a planted link cannot make it
// wipe another file.
//
// The overwrite is best effort: on SSDs (wear levelling), copy-on-write and
// log-structured filesystems (btrfs, ZFS, APFS) and in snapshots or backups,
// the old blocks may survive. It protects against reading the file's old
// content through the filesystem, not against forensic recovery of the disk;
// full-disk encryption is the defence against that.
func Remove(path string) error {
	f, err := openNoFollow(path, os.O_WRONLY)
	if err != nil {
		return err
	}
	err = overwrite(f, path)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Remove(path)
}

func overwrite(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return &fs.PathError{Op: "remove", Path: path, Err: ErrNotRegular}
	}
	zeros := make([]byte, min(fi.Size(), zeroChunk))
	for left := fi.Size(); left > 0; {
		n, err := f.Write(zeros[:min(left, int64(len(zeros)))])
		if err != nil {
			return err
		}
		left -= int64(n)
	}
	return f.Sync()
}
