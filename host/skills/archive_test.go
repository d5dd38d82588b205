package skills

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// tarEntry is one entry of a test archive. A body of a size other than
// hdr.Size is written as is after the header, so an archive can claim
// more than it holds.
type tarEntry struct {
	hdr  tar.Header
	body string
}

func file(name, body string) tarEntry {
	return tarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}, body: body}
}

func dirEntry(name string) tarEntry {
	return tarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}}
}

// tarBytes writes the entries as an uncompressed tar stream. An entry whose
// header claims more than its body stops the stream there.
func tarBytes(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := tw.WriteHeader(&e.hdr); err != nil {
			t.Fatalf("writing header %q: %v", e.hdr.Name, err)
		}
		if int64(len(e.body)) != e.hdr.Size && (e.hdr.Typeflag == tar.TypeReg) {
			return buf.Bytes()
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatalf("writing body %q: %v", e.hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	return gzipLevel(t, data, gzip.DefaultCompression)
}

func gzipLevel(t testing.TB, data []byte, level int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExtractArchive(t *testing.T) {
	small := archiveLimits{entrySize: 100, totalSize: 150, entries: 4, stream: 64 << 10}
	tests := []struct {
		name    string
		entries []tarEntry
		lim     archiveLimits
		// entry is the entry the refusal must name; "" for success.
		entry string
		want  string
	}{
		{name: "files and directories", entries: []tarEntry{
			dirEntry("./"), dirEntry("skill/"), file("skill/skill.json", "{}"), file("./skill/schemas/x/y/v1.json", "{}"),
		}},
		{name: "parent directories implied", entries: []tarEntry{file("a/b/c.txt", "x")}},
		{name: "dot-dot", entries: []tarEntry{file("../evil", "x")}, entry: "../evil", want: ".."},
		{name: "dot-dot inside", entries: []tarEntry{dirEntry("a/"), file("a/../../evil", "x")}, entry: "a/../../evil", want: ".."},
		{name: "dot-dot directory", entries: []tarEntry{dirEntry("../up/")}, entry: "../up/", want: ".."},
		{name: "absolute path", entries: []tarEntry{file("/etc/passwd", "x")}, entry: "/etc/passwd", want: "absolute"},
		{name: "backslash", entries: []tarEntry{file(`..\evil`, "x")}, entry: `..\evil`, want: "backslash"},
		{name: "symlink", entries: []tarEntry{{hdr: tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc"}}},
			entry: "link", want: "symbolic link"},
		{name: "symlink then write through it", entries: []tarEntry{
			{hdr: tar.Header{Name: "skill", Typeflag: tar.TypeSymlink, Linkname: "../.."}}, file("skill/x", "x"),
		}, entry: "skill", want: "symbolic link"},
		{name: "hard link", entries: []tarEntry{file("a", "x"), {hdr: tar.Header{Name: "b", Typeflag: tar.TypeLink, Linkname: "a"}}},
			entry: "b", want: "hard link"},
		{name: "character device", entries: []tarEntry{{hdr: tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}},
			entry: "null", want: "device"},
		{name: "block device", entries: []tarEntry{{hdr: tar.Header{Name: "sda", Typeflag: tar.TypeBlock}}}, entry: "sda", want: "device"},
		{name: "named pipe", entries: []tarEntry{{hdr: tar.Header{Name: "fifo", Typeflag: tar.TypeFifo}}}, entry: "fifo", want: "named pipe"},
		{name: "oversize entry", lim: small, entries: []tarEntry{
			{hdr: tar.Header{Name: "big", Typeflag: tar.TypeReg, Size: 101}},
		}, entry: "big", want: "101 bytes, limit 100"},
		{name: "oversize default limit", entries: []tarEntry{
			{hdr: tar.Header{Name: "huge.bin", Typeflag: tar.TypeReg, Size: MaxArchiveEntrySize + 1}},
		}, entry: "huge.bin", want: "limit 67108864"},
		{name: "oversize archive", lim: small, entries: []tarEntry{
			file("a", strings.Repeat("a", 80)), file("b", strings.Repeat("b", 80)),
		}, entry: "b", want: "exceed 150 bytes"},
		{name: "too many entries", lim: small, entries: []tarEntry{
			dirEntry("a/"), dirEntry("b/"), dirEntry("c/"), dirEntry("d/"), dirEntry("e/"),
		}, entry: "e/", want: "more than 4 entries"},
		{name: "file twice", entries: []tarEntry{file("a", "1"), file("a", "2")}, entry: "a", want: "already in the archive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := tt.lim
			if lim == (archiveLimits{}) {
				lim = defaultLimits
			}
			parent := t.TempDir()
			dst := filepath.Join(parent, "dst")
			if err := os.Mkdir(dst, 0o700); err != nil {
				t.Fatal(err)
			}
			err := extractArchive(bytes.NewReader(gzipBytes(t, tarBytes(t, tt.entries))), dst, lim)
			if tt.entry == "" {
				if err != nil {
					t.Fatalf("extractArchive: %v", err)
				}
				checkExtracted(t, parent)
				return
			}
			var ae *ArchiveEntryError
			if !errors.As(err, &ae) {
				t.Fatalf("extractArchive error = %v, want an *ArchiveEntryError", err)
			}
			if !errors.Is(err, ErrUnsafeArchive) {
				t.Errorf("error %v does not wrap ErrUnsafeArchive", err)
			}
			if ae.Entry != tt.entry {
				t.Errorf("refused entry = %q, want %q", ae.Entry, tt.entry)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), strconv.Quote(tt.entry)) {
				t.Errorf("error = %q, want it to name %q and mention %q", err, tt.entry, tt.want)
			}
			checkExtracted(t, parent)
		})
	}
}

// checkExtracted checks that parent holds only dst, and dst only regular
// files (0600) and directories (0700).
func checkExtracted(t testing.TB, parent string) {
	t.Helper()
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "dst" {
		t.Fatalf("extraction wrote outside its directory: %v", entries)
	}
	err = filepath.WalkDir(filepath.Join(parent, "dst"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir() && fi.Mode().Perm() == 0o700:
		case fi.Mode().IsRegular() && fi.Mode().Perm() == 0o600:
		default:
			t.Errorf("%s: mode %v, want a 0700 directory or a 0600 file", p, fi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestExtractArchiveStreamLimit(t *testing.T) {
	// Ten one-byte files take 10 KiB of tar stream (headers and padding):
	// within the limits on files, past the limit on the stream.
	var entries []tarEntry
	for i := range 10 {
		entries = append(entries, file(strconv.Itoa(i), "x"))
	}
	dst := t.TempDir()
	lim := archiveLimits{entrySize: 1 << 10, totalSize: 1 << 10, entries: 64, stream: 4 << 10}
	err := extractArchive(bytes.NewReader(gzipBytes(t, tarBytes(t, entries))), dst, lim)
	if !errors.Is(err, ErrUnsafeArchive) {
		t.Errorf("extractArchive error = %v, want ErrUnsafeArchive", err)
	}
}

func TestExtractArchiveNotGzip(t *testing.T) {
	err := extractArchive(strings.NewReader("not gzip"), t.TempDir(), defaultLimits)
	if err == nil || errors.Is(err, ErrUnsafeArchive) {
		t.Errorf("extractArchive error = %v, want a read error", err)
	}
}

func FuzzExtractArchive(f *testing.F) {
	f.Add(tarBytes(f, []tarEntry{dirEntry("skill/"), file("skill/skill.json", "{}")}))
	f.Add(tarBytes(f, []tarEntry{file("../x", "x")}))
	f.Add(tarBytes(f, []tarEntry{{hdr: tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/"}}, file("l/x", "x")}))
	f.Add(tarBytes(f, []tarEntry{file("a/./b", "x"), file("a//c", "y")}))
	lim := archiveLimits{entrySize: 1 << 10, totalSize: 4 << 10, entries: 64, stream: 256 << 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dst := filepath.Join(parent, "dst")
		if err := os.Mkdir(dst, 0o700); err != nil {
			t.Fatal(err)
		}
		err := extractArchive(bytes.NewReader(gzipBytes(t, data)), dst, lim)
		var ae *ArchiveEntryError
		if errors.As(err, &ae) && !strings.Contains(err.Error(), "archive entry") {
			t.Errorf("refusal %q does not name the entry", err)
		}
		checkExtracted(t, parent)
	})
}
