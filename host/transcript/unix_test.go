//go:build unix

package transcript

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/agentmesh/agentmesh-go/internal/safefile"
)

func TestRefusesSymlink(t *testing.T) {
	s, home, peer := newStore(t, Options{})
	target := filepath.Join(t.TempDir(), "elsewhere")
	content := []byte("not a transcript\n")
	if err := os.WriteFile(target, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(home, DirName, "sess_l.jsonl")); err != nil {
		t.Fatal(err)
	}

	if err := s.Append("sess_l", message(peer.AMID(), 0)); !errors.Is(err, safefile.ErrSymlink) {
		t.Errorf("Append through a symbolic link: %v, want %v", err, safefile.ErrSymlink)
	}
	if _, err := s.Read("sess_l"); !errors.Is(err, safefile.ErrSymlink) {
		t.Errorf("Read through a symbolic link: %v, want %v", err, safefile.ErrSymlink)
	}
	if err := s.Delete("sess_l"); !errors.Is(err, safefile.ErrSymlink) {
		t.Errorf("Delete through a symbolic link: %v, want %v", err, safefile.ErrSymlink)
	}
	if _, err := s.ExportSessionKey("sess_l"); err == nil {
		t.Error("ExportSessionKey of a symbolic link succeeded")
	}
	if !bytes.Equal(readFile(t, target), content) {
		t.Error("the link's target was changed")
	}
	if infos, err := s.List(); err != nil || len(infos) != 0 {
		t.Errorf("List: %+v, %v; want no transcripts", infos, err)
	}
}

func TestRefusesFIFO(t *testing.T) {
	s, home, peer := newStore(t, Options{})
	if err := syscall.Mkfifo(filepath.Join(home, DirName, "sess_p.jsonl"), 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	// Without care the open would wait for a reader forever.
	if err := s.Append("sess_p", message(peer.AMID(), 0)); !errors.Is(err, safefile.ErrNotRegular) {
		t.Errorf("Append to a FIFO: %v, want %v", err, safefile.ErrNotRegular)
	}
	if _, err := s.Read("sess_p"); !errors.Is(err, safefile.ErrNotRegular) {
		t.Errorf("Read of a FIFO: %v, want %v", err, safefile.ErrNotRegular)
	}
}

func TestModes(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, DirName)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	id, peer := newIdentity(t), newIdentity(t)
	s := openStore(t, home, id, Options{})
	if m := modeOf(t, dir); m != 0o700 {
		t.Errorf("directory mode %04o, want 0700", m)
	}
	appendN(t, s, "sess_a", peer.AMID(), 1)
	if m := modeOf(t, filepath.Join(dir, "sess_a.jsonl")); m != 0o600 {
		t.Errorf("transcript mode %04o, want 0600", m)
	}
	if _, err := s.ExportSessionKey("sess_a"); err != nil {
		t.Fatal(err)
	}
	if m := modeOf(t, filepath.Join(dir, AuditLogName)); m != 0o600 {
		t.Errorf("audit log mode %04o, want 0600", m)
	}
	// A transcript that others can read is tightened when appended to.
	loose := filepath.Join(dir, "sess_b.jsonl")
	if err := os.WriteFile(loose, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "sess_b", peer.AMID(), 1)
	if m := modeOf(t, loose); m != 0o600 {
		t.Errorf("appended transcript mode %04o, want 0600", m)
	}
	// A fresh home: both levels are created private.
	home2 := filepath.Join(t.TempDir(), "new-home")
	openStore(t, home2, id, Options{})
	for _, p := range []string{home2, filepath.Join(home2, DirName)} {
		if m := modeOf(t, p); m != 0o700 {
			t.Errorf("%s: mode %04o, want 0700", p, m)
		}
	}
}
