//go:build !unix

package safefile

import (
	"io/fs"
	"os"
)

// permsEnforced is false where permission bits are synthesised from other
// attributes and say nothing about who can read a file.
const permsEnforced = false

// openNoFollow refuses a symbolic link found by Lstat, then opens path. Unlike
// the Unix version, a link swapped in between the two calls is followed.
func openNoFollow(path string, flag int) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, &fs.PathError{Op: "open", Path: path, Err: ErrSymlink}
	}
	return os.OpenFile(path, flag, 0)
}

// syncDir does nothing: these platforms cannot sync a directory.
func syncDir(string) error { return nil }

// checkOwner accepts everything: ownership is not a uid here.
func checkOwner(fs.FileInfo) error { return nil }
