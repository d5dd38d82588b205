//go:build unix

package safefile

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// permsEnforced reports whether the platform has Unix permission bits worth
// checking and tightening.
const permsEnforced = true

// openNoFollow opens path without following a symbolic link in its last
// element. O_NONBLOCK keeps the open from hanging on a named pipe; it has no
// effect on regular files and directories, the only kinds callers go on to
// use.
func openNoFollow(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		// Linux and the BSDs say ELOOP; some systems say EMLINK or EFTYPE.
		// Lstat tells for certain.
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, &fs.PathError{Op: "open", Path: path, Err: ErrSymlink}
		}
		return nil, err
	}
	return f, nil
}

// syncDir flushes the directory entry changes of dir to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// checkOwner returns ErrNotOwned unless the current effective user owns fi.
func checkOwner(fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("no owner information")
	}
	if int64(st.Uid) != int64(os.Geteuid()) {
		return ErrNotOwned
	}
	return nil
}
