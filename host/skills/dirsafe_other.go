//go:build !unix

package skills

import "io/fs"

// permsEnforced is false where permission bits say nothing about who may
// write a file.
const permsEnforced = false

// ownedByCurrentUser accepts everything: ownership is not a uid here.
func ownedByCurrentUser(fs.FileInfo) bool { return true }

// lockDir does nothing: only one process changes the skills lock on these
// platforms.
func lockDir(string) (unlock func(), err error) { return func() {}, nil }
