//go:build unix

package transcript

import "syscall"

// noFollow makes open refuse a symbolic link in the last element.
const noFollow = syscall.O_NOFOLLOW
