package skills

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Limits on the archives Install extracts.
const (
	// MaxArchiveEntrySize is the largest file an archive may hold.
	MaxArchiveEntrySize = 64 << 20
	// MaxArchiveSize bounds the sum of the sizes of an archive's files.
	MaxArchiveSize = 256 << 20
	// MaxArchiveEntries bounds the number of entries of an archive.
	MaxArchiveEntries = 10_000
)

// archiveLimits bound what extractArchive accepts.
type archiveLimits struct {
	entrySize int64 // largest file
	totalSize int64 // sum of the files' sizes
	entries   int   // number of entries
	// stream bounds the whole uncompressed tar stream: the files plus room
	// for headers, padding and extended-header records, so that no gzip
	// stream makes the reader decompress more than this, whatever the
	// entries claim.
	stream int64
}

// defaultLimits are the limits of Install.
var defaultLimits = archiveLimits{
	entrySize: MaxArchiveEntrySize,
	totalSize: MaxArchiveSize,
	entries:   MaxArchiveEntries,
	stream:    MaxArchiveSize + 64<<20,
}

// ErrUnsafeArchive is wrapped by every refusal of an archive entry; the
// *ArchiveEntryError carrying it names the entry.
var ErrUnsafeArchive = errors.New("unsafe archive")

// ArchiveEntryError reports an archive entry that Install refuses to
// extract: an absolute name, a name with "..", a link, a device or other
// special file, or an entry past a size or count limit.
type ArchiveEntryError struct {
	// Entry is the entry's name as the archive gives it.
	Entry string
	// Problem says what is wrong with it.
	Problem string
}

func (e *ArchiveEntryError) Error() string {
	return fmt.Sprintf("archive entry %q: %s", truncate(e.Entry), e.Problem)
}

// Unwrap returns ErrUnsafeArchive.
func (e *ArchiveEntryError) Unwrap() error { return ErrUnsafeArchive }

func refuse(entry, format string, args ...any) error {
	return &ArchiveEntryError{Entry: entry, Problem: fmt.Sprintf(format, args...)}
}

// extractArchive extracts the gzip-compressed tar stream r into the
// directory dst, which should be empty, within the limits lim. Every file and directory is
// created through an os.Root on dst, so nothing can land outside it, and
// with modes 0600 and 0700. It refuses, naming the entry, absolute names,
// names with "..", links, devices and other special files, files over the
// entry size limit, more bytes of files in all than the total limit, more
// entries than the entry limit, and an entry that names a file twice. On
// error, dst may hold part of the archive; the caller removes it.
func extractArchive(r io.Reader, dst string, lim archiveLimits) error {
	root, err := os.OpenRoot(dst)
	if err != nil {
		return err
	}
	defer root.Close()
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("reading the archive: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(&capReader{r: zr, left: lim.stream})
	var total int64
	for entries := 1; ; entries++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the archive: %w", err)
		}
		if entries > lim.entries {
			return refuse(hdr.Name, "more than %d entries in the archive", lim.entries)
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if name == "." {
				continue
			}
			if err := root.MkdirAll(name, 0o700); err != nil {
				return fmt.Errorf("archive entry %q: %w", truncate(hdr.Name), err)
			}
		case tar.TypeReg, '\x00': // '\x00' is the pre-POSIX regular file
			if name == "." {
				return refuse(hdr.Name, "a file with no name")
			}
			if hdr.Size > lim.entrySize {
				return refuse(hdr.Name, "%d bytes, limit %d", hdr.Size, lim.entrySize)
			}
			total += hdr.Size
			if total > lim.totalSize {
				return refuse(hdr.Name, "the archive's files exceed %d bytes", lim.totalSize)
			}
			if err := extractFile(root, name, hdr.Name, tr); err != nil {
				return err
			}
		case tar.TypeSymlink:
			return refuse(hdr.Name, "a symbolic link (to %q)", truncate(hdr.Linkname))
		case tar.TypeLink:
			return refuse(hdr.Name, "a hard link (to %q)", truncate(hdr.Linkname))
		case tar.TypeChar, tar.TypeBlock:
			return refuse(hdr.Name, "a device")
		case tar.TypeFifo:
			return refuse(hdr.Name, "a named pipe")
		default:
			return refuse(hdr.Name, "unsupported entry type %q", hdr.Typeflag)
		}
	}
}

// extractFile writes one regular file; it must not exist yet.
func extractFile(root *os.Root, name, entry string, r io.Reader) error {
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("archive entry %q: %w", truncate(entry), err)
		}
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return refuse(entry, "names a file or directory that is already in the archive")
	}
	if err != nil {
		return fmt.Errorf("archive entry %q: %w", truncate(entry), err)
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("archive entry %q: %w", truncate(entry), err)
	}
	return nil
}

// entryName turns an archive entry's name into a clean slash-separated
// path relative to the archive root, or "." for the root itself. It refuses
// absolute names, backslashes and any ".." element; leading "./" and a
// trailing "/" are allowed, as tar writes them.
func entryName(raw string) (string, error) {
	switch {
	case raw == "":
		return "", refuse(raw, "an empty name")
	case strings.HasPrefix(raw, "/"):
		return "", refuse(raw, "an absolute path")
	case strings.Contains(raw, `\`):
		return "", refuse(raw, "a backslash in the name")
	case strings.ContainsRune(raw, 0):
		return "", refuse(raw, "a NUL byte in the name")
	}
	for _, elem := range strings.Split(raw, "/") {
		if elem == ".." {
			return "", refuse(raw, "a path that leaves the archive root (..)")
		}
	}
	name := raw
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	name = strings.TrimSuffix(name, "/")
	if name == "" || name == "." {
		return ".", nil
	}
	if !fs.ValidPath(name) {
		return "", refuse(raw, "not a clean relative path")
	}
	return name, nil
}

// capReader reads from r until left bytes have been read, then fails.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("%w: the archive is larger than the limit when uncompressed", ErrUnsafeArchive)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
