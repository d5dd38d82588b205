//go:build !unix

package transcript

// noFollow is 0 where open cannot refuse a symbolic link itself;
// openNoFollow checks with Lstat first.
const noFollow = 0
