package transcript

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

func TestDelete(t *testing.T) {
	s, home, peer := newStore(t, Options{})
	appendN(t, s, "sess_d", peer.AMID(), 3)
	appendN(t, s, "sess_keep", peer.AMID(), 1)
	path := filepath.Join(home, DirName, "sess_d.jsonl")
	size := len(readFile(t, path))
	// A second name for the file shows what Delete did to its blocks.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Link(path, link); err != nil {
		t.Fatal(err)
	}

	if err := s.Delete("sess_d"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file is still there: %v", err)
	}
	if data := readFile(t, link); len(data) != size || !allZero(data) {
		t.Errorf("the deleted file's content was not overwritten: %d bytes, all zero %v; want %d zero bytes", len(data), allZero(data), size)
	}
	if _, err := s.Read("sess_d"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Read after Delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete("sess_d"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	if got, err := s.Read("sess_keep"); err != nil || len(got) != 1 {
		t.Errorf("the other transcript: %d entries, %v", len(got), err)
	}
}

func TestExportSessionKey(t *testing.T) {
	s, home, peer := newStore(t, Options{})
	const sid = "sess_audit"
	want := appendN(t, s, sid, peer.AMID(), 3)
	appendN(t, s, "sess_other", peer.AMID(), 1)
	audit := filepath.Join(home, DirName, AuditLogName)

	key, err := s.ExportSessionKey(sid)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := protocol.B64.DecodeString(key)
	if err != nil || len(raw) != 32 {
		t.Fatalf("key %d bytes, %v; want 32 bytes of base64", len(raw), err)
	}

	// The key alone opens every record of the file.
	plains := openWithKey(t, readFile(t, filepath.Join(home, DirName, sid+".jsonl")), key)
	var got []Entry
	for _, p := range plains {
		var e Entry
		if err := json.Unmarshal(p, &e); err != nil {
			t.Fatalf("record plaintext %q: %v", p, err)
		}
		got = append(got, e)
	}
	checkEntries(t, got, want, sid)
	// It is the key of this session only.
	otherKey, err := s.ExportSessionKey("sess_other")
	if err != nil {
		t.Fatal(err)
	}
	if otherKey == key {
		t.Error("two sessions share a key")
	}

	// The audit log names both exports and holds no key.
	log := readFile(t, audit)
	ls := lines(log)
	if len(ls) != 2 {
		t.Fatalf("audit log has %d lines, want 2:\n%s", len(ls), log)
	}
	for i, sessionID := range []string{sid, "sess_other"} {
		var ev struct {
			Time      string `json:"time"`
			Event     string `json:"event"`
			SessionID string `json:"session_id"`
		}
		dec := json.NewDecoder(bytes.NewReader(ls[i]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("audit line %q: %v", ls[i], err)
		}
		if ev.SessionID != sessionID || ev.Event != "session_key_export" || ev.Time != "2026-03-01T12:00:00Z" {
			t.Errorf("audit line %d: %+v, want the export of %s at 2026-03-01T12:00:00Z", i+1, ev, sessionID)
		}
	}
	for _, k := range []string{key, otherKey} {
		raw, _ := protocol.B64.DecodeString(k)
		for _, form := range [][]byte{[]byte(k), raw, []byte(hex.EncodeToString(raw)), []byte(strings.TrimRight(k, "="))} {
			if bytes.Contains(log, form) {
				t.Fatalf("the audit log holds a key")
			}
		}
	}

	// No transcript, no key and no audit line.
	if _, err := s.ExportSessionKey("sess_missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ExportSessionKey of a missing session: %v, want ErrNotFound", err)
	}
	if n := len(lines(readFile(t, audit))); n != 2 {
		t.Errorf("audit log has %d lines after a refused export, want 2", n)
	}
}

func TestReencrypt(t *testing.T) {
	home := t.TempDir()
	oldID, newID, stranger, peer := newIdentity(t), newIdentity(t), newIdentity(t), newIdentity(t)
	s := openStore(t, home, oldID, Options{})
	want := map[string][]Entry{
		"sess_1": appendN(t, s, "sess_1", peer.AMID(), 3),
		"sess_2": appendN(t, s, "sess_2", peer.AMID(), 2),
	}
	dir := filepath.Join(home, DirName)
	// A plaintext transcript of an older version, and one sealed by an
	// identity that is not the store's.
	legacy := fmt.Sprintf(`{"direction":"sent","peer_amid":%q,"message_type":"request","message":{"k":"legacy-marker"},"timestamp":"2025-01-01T00:00:00Z"}`, peer.AMID())
	if err := os.WriteFile(filepath.Join(dir, "sess_legacy.jsonl"), []byte(legacy+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	appendN(t, openStore(t, home, stranger, Options{}), "sess_foreign", peer.AMID(), 1)
	foreignPath := filepath.Join(dir, "sess_foreign.jsonl")
	foreign := readFile(t, foreignPath)
	oldFile := filepath.Join(t.TempDir(), "old-sess_1")
	if err := os.Link(filepath.Join(dir, "sess_1.jsonl"), oldFile); err != nil {
		t.Fatal(err)
	}

	err := s.Reencrypt(newID)
	var re *ReencryptError
	if !errors.As(err, &re) || len(re.Failed) != 1 {
		t.Fatalf("Reencrypt: %v, want a *ReencryptError for one file", err)
	}
	var fe *FileError
	if !errors.As(re.Failed[0], &fe) || fe.Path != foreignPath || !errors.Is(err, ErrDecrypt) {
		t.Errorf("failure %v, want ErrDecrypt naming %s", re.Failed[0], foreignPath)
	}
	if !bytes.Equal(readFile(t, foreignPath), foreign) {
		t.Error("Reencrypt changed a file it could not re-encrypt")
	}
	if old := readFile(t, oldFile); !allZero(old) {
		t.Error("the file under the old key was not overwritten")
	}

	// The new identity reads everything, through the switched store and a
	// fresh one; the old identity reads nothing.
	fresh := openStore(t, home, newID, Options{})
	stale := openStore(t, home, oldID, Options{})
	for sid, entries := range want {
		for name, st := range map[string]*Store{"switched store": s, "new identity": fresh} {
			got, err := st.Read(sid)
			if err != nil {
				t.Fatalf("%s: Read(%s): %v", name, sid, err)
			}
			checkEntries(t, got, entries, sid)
		}
		if _, err := stale.Read(sid); !errors.Is(err, ErrDecrypt) {
			t.Errorf("old identity: Read(%s): %v, want ErrDecrypt", sid, err)
		}
	}
	got, err := fresh.Read("sess_legacy")
	if err != nil || len(got) != 1 || !bytes.Contains(got[0].Message, []byte("legacy-marker")) {
		t.Errorf("new identity: the migrated plaintext transcript: %+v, %v", got, err)
	}
	if bytes.Contains(readFile(t, filepath.Join(dir, "sess_legacy.jsonl")), []byte("legacy-marker")) {
		t.Error("Reencrypt left plaintext on disk")
	}
	// The switched store appends under the new key.
	if err := s.Append("sess_1", message(peer.AMID(), 9)); err != nil {
		t.Fatal(err)
	}
	if got, err := fresh.Read("sess_1"); err != nil || len(got) != 4 {
		t.Errorf("new identity after an append: %d entries, %v; want 4", len(got), err)
	}

	// Run again from the old identity, as after an interruption: the files
	// already moved are left alone.
	moved := readFile(t, filepath.Join(dir, "sess_2.jsonl"))
	err = stale.Reencrypt(newID)
	if !errors.As(err, &re) || len(re.Failed) != 1 || !strings.Contains(re.Failed[0].Error(), foreignPath) {
		t.Errorf("second Reencrypt: %v, want only the foreign file to fail", err)
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, "sess_2.jsonl")), moved) {
		t.Error("a second Reencrypt rewrote a file already under the new key")
	}
}
