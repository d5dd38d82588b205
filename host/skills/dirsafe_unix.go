//go:build unix

package skills

import (
	"io/fs"
	"os"
	"syscall"
)

// permsEnforced reports whether the platform has Unix permission bits.
const permsEnforced = true

// ownedByCurrentUser reports whether the effective user owns fi.
func ownedByCurrentUser(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int64(st.Uid) == int64(os.Geteuid())
}

// lockDir takes an exclusive advisory lock on the directory dir, so that
// two processes do not change the skills lock at the same time. The lock
// ends when unlock is called or the process exits.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, &fs.PathError{Op: "flock", Path: dir, Err: err}
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
