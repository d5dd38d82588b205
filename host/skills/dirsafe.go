package skills

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Errors of the checks on the skills directory and what it holds; each is
// wrapped in an error naming the path.
var (
	// ErrInsecurePath reports a skills directory, skill directory or
	// binary that is a symbolic link, that another user owns, or that
	// group or others may write.
	ErrInsecurePath = errors.New("insecure path")
)

// writableBits are the permission bits that let group or others change a
// file or a directory's entries.
const writableBits fs.FileMode = 0o022

// checkOwnedPrivate reports an ErrInsecurePath unless fi, as returned by
// Lstat for path, is not a symbolic link, is owned by the current user and
// cannot be written by group or others. want is fs.ModeDir for a directory
// and 0 for a regular file.
func checkOwnedPrivate(path string, fi fs.FileInfo, want fs.FileMode) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s: %w: a symbolic link", path, ErrInsecurePath)
	case want == fs.ModeDir && !fi.IsDir():
		return fmt.Errorf("%s: %w: not a directory", path, ErrInsecurePath)
	case want == 0 && !fi.Mode().IsRegular():
		return fmt.Errorf("%s: %w: not a regular file", path, ErrInsecurePath)
	case !ownedByCurrentUser(fi):
		return fmt.Errorf("%s: %w: owned by another user", path, ErrInsecurePath)
	case permsEnforced && fi.Mode().Perm()&writableBits != 0:
		return fmt.Errorf("%s: %w: mode %04o lets group or others write it", path, ErrInsecurePath, uint32(fi.Mode().Perm()))
	}
	return nil
}

// prepareSkillsDir makes sure dir exists as a private directory: it is
// created with mode 0700, or, if it exists, it must be a directory (not a
// link) owned by the current user that group and others cannot write; any
// read or search bits they have are cleared.
func prepareSkillsDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating the skills directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if err := checkOwnedPrivate(dir, fi, fs.ModeDir); err != nil {
		return err
	}
	if permsEnforced && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, fi.Mode().Perm()&0o700); err != nil {
			return fmt.Errorf("making the skills directory private: %w", err)
		}
	}
	return nil
}

// checkTree checks, without following links, every element of rel below
// the trusted directory base: each directory and the final file must pass
// checkOwnedPrivate. rel is slash-separated; the last element is a regular
// file when file is true and a directory otherwise.
func checkTree(base, rel string, file bool) error {
	elems := strings.Split(rel, "/")
	p := base
	for i, e := range elems {
		p = filepath.Join(p, e)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		want := fs.ModeDir
		if file && i == len(elems)-1 {
			want = 0
		}
		if err := checkOwnedPrivate(p, fi, want); err != nil {
			return err
		}
	}
	return nil
}
