package transcript

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/internal/safefile"
)

func TestAppendReadRoundTrip(t *testing.T) {
	home := t.TempDir()
	id, peer := newIdentity(t), newIdentity(t)
	s := openStore(t, home, id, Options{})
	const sid = "sess_0123456789abcdef0123456789abcdef"
	want := appendN(t, s, sid, peer.AMID(), 5)
	// One entry without a time and with the session named: Append stamps
	// it with the store's clock.
	last := Entry{Direction: Received, Peer: peer.AMID(), SessionID: sid, Type: "close",
		Message: json.RawMessage(`{"reason": "completed", "note": "quote \" and\nnewline, é"}`)}
	if err := s.Append(sid, last); err != nil {
		t.Fatal(err)
	}
	last.Time = t0
	want = append(want, last)

	got, err := s.Read(sid)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, got, want, sid)

	// Another store over the same files, as after a restart, reads the same.
	again, err := openStore(t, home, id, Options{}).Read(sid)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, again, want, sid)

	// On disk: one record per entry, and none of the plaintext.
	data := readFile(t, filepath.Join(home, DirName, sid+".jsonl"))
	if n := len(lines(data)); n != len(want) {
		t.Errorf("%d lines in the file, want %d", n, len(want))
	}
	for _, l := range lines(data) {
		if !bytes.HasPrefix(l, []byte(`{"ciphertext":"`)) || !bytes.HasSuffix(l, []byte(`","version":1}`)) {
			t.Errorf("line is not a record: %s", l)
		}
	}
	for _, secret := range []string{"weather", "Lyon", "completed", string(peer.AMID()), "request"} {
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("the file holds %q in the clear", secret)
		}
	}
}

func TestReadUnknownSession(t *testing.T) {
	s := openStore(t, t.TempDir(), newIdentity(t), Options{})
	if _, err := s.Read("sess_none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Read of a session without transcript: %v, want %v", err, ErrNotFound)
	}
}

func TestWrongKey(t *testing.T) {
	home := t.TempDir()
	owner, other, peer := newIdentity(t), newIdentity(t), newIdentity(t)
	appendN(t, openStore(t, home, owner, Options{}), "sess_a", peer.AMID(), 3)

	s := openStore(t, home, other, Options{})
	infos, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 {
		t.Fatalf("List: %d transcripts, want 1", len(infos))
	}
	info := infos[0]
	if info.SessionID != "sess_a" || info.Entries != 3 || !info.Encrypted || info.Decryptable || info.Peer != "" {
		t.Errorf("List: %+v, want sess_a, 3 entries, encrypted, not decryptable, no peer", info)
	}
	if !errors.Is(info.Err, ErrDecrypt) {
		t.Errorf("Info.Err = %v, want %v", info.Err, ErrDecrypt)
	}

	path := filepath.Join(home, DirName, "sess_a.jsonl")
	_, err = s.Read("sess_a")
	var fe *FileError
	if !errors.As(err, &fe) || !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Read with another identity: %v, want a *FileError wrapping ErrDecrypt", err)
	}
	if fe.Path != path || fe.Line != 1 || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q names %s line %d, want %s line 1", err, fe.Path, fe.Line, path)
	}
	// The owner still reads it: nothing was changed by the failed reads.
	if _, err := openStore(t, home, owner, Options{}).Read("sess_a"); err != nil {
		t.Errorf("the owner cannot read the transcript any more: %v", err)
	}
}

func TestList(t *testing.T) {
	home := t.TempDir()
	id, peer1, peer2 := newIdentity(t), newIdentity(t), newIdentity(t)
	s := openStore(t, home, id, Options{})
	appendN(t, s, "sess_one", peer1.AMID(), 2)
	appendN(t, s, "sess_two", peer2.AMID(), 4)
	dir := filepath.Join(home, DirName)
	touch(t, filepath.Join(dir, "sess_one.jsonl"), 1)
	touch(t, filepath.Join(dir, "sess_two.jsonl"), 2)
	// Files that are not transcripts are not listed.
	for _, name := range []string{"notes.txt", "UPPER.jsonl", ".sess_x.jsonl.tmp123", "+!!.jsonl"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	infos, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 {
		t.Fatalf("List: %d transcripts, want 2: %+v", len(infos), infos)
	}
	for i, want := range []struct {
		id      string
		peer    string
		entries int
	}{{"sess_two", string(peer2.AMID()), 4}, {"sess_one", string(peer1.AMID()), 2}} {
		got := infos[i]
		if got.SessionID != want.id || string(got.Peer) != want.peer || got.Entries != want.entries ||
			!got.Encrypted || !got.Decryptable || got.Err != nil {
			t.Errorf("List()[%d] = %+v, want %s with peer %s and %d entries, readable", i, got, want.id, want.peer, want.entries)
		}
		fi, err := os.Stat(filepath.Join(dir, want.id+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		if got.Size != fi.Size() || !got.Modified.Equal(fi.ModTime()) {
			t.Errorf("List()[%d]: size %d, modified %v; the file has %d, %v", i, got.Size, got.Modified, fi.Size(), fi.ModTime())
		}
	}
}

// touch sets the modification time of path to minute n after t0.
func touch(t testing.TB, path string, n int) {
	t.Helper()
	mt := t0.Add(time.Duration(n) * time.Minute)
	if err := os.Chtimes(path, mt, mt); err != nil {
		t.Fatal(err)
	}
}

func TestMigratePlaintext(t *testing.T) {
	home := t.TempDir()
	id, peer := newIdentity(t), newIdentity(t)
	s := openStore(t, home, id, Options{})
	const sid = "sess_legacy"
	dir := filepath.Join(home, DirName)
	path := filepath.Join(dir, sid+".jsonl")
	// As an older version wrote it: plaintext entries, one with a member
	// this version does not know, one with spaces and a CRLF, one without
	// session id.
	legacy := []string{
		fmt.Sprintf(`{"direction":"sent","peer_amid":%q,"session_id":%q,"message_type":"request","message":{"intent":"translate","text":"the cat sleeps on the mat"},"timestamp":"2025-06-01T10:00:00Z","legacy_flag":true}`, peer.AMID(), sid),
		fmt.Sprintf(`{ "direction" : "received", "peer_amid" : %q, "message_type" : "response", "message" : {"results": "le chat dort sur le tapis"}, "timestamp" : "2025-06-01T10:00:01.5Z" }`+"\r", peer.AMID()),
		fmt.Sprintf(`{"direction":"sent","peer_amid":%q,"session_id":%q,"message_type":"close","message":{"reason":"completed"},"timestamp":"2025-06-01T10:00:02Z"}`, peer.AMID(), sid),
	}
	original := []byte(strings.Join(legacy, "\n") + "\n")
	if err := os.WriteFile(path, original, 0o600); err != nil {
		t.Fatal(err)
	}
	// A second name for the original file, to see what happens to its
	// blocks once it is replaced.
	oldLink := filepath.Join(t.TempDir(), "original")
	if err := os.Link(path, oldLink); err != nil {
		t.Fatal(err)
	}

	// List reports the file as plaintext and leaves it alone.
	infos, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Encrypted || !infos[0].Decryptable || infos[0].Entries != 3 || infos[0].Peer != peer.AMID() {
		t.Fatalf("List before migration: %+v, want one readable plaintext transcript of 3 entries", infos)
	}
	if !bytes.Equal(readFile(t, path), original) {
		t.Fatal("List changed the file")
	}

	got, err := s.Read(sid)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("Read: %d entries, want 3", len(got))
	}
	for i, want := range []struct {
		dir  Direction
		typ  string
		text string
	}{{Sent, "request", "the cat sleeps"}, {Received, "response", "le chat dort"}, {Sent, "close", "completed"}} {
		e := got[i]
		if e.Direction != want.dir || e.Type != want.typ || e.SessionID != sid || e.Peer != peer.AMID() ||
			!bytes.Contains(e.Message, []byte(want.text)) {
			t.Errorf("entry %d: %+v, want %s %s mentioning %q in session %s", i, e, want.dir, want.typ, want.text, sid)
		}
	}
	if want := time.Date(2025, 6, 1, 10, 0, 1, 5e8, time.UTC); !got[1].Time.Equal(want) {
		t.Errorf("entry 1: time %v, want 2025-06-01T10:00:01.5Z", got[1].Time)
	}

	// On disk: every line is now a record, each holding the original line
	// byte for byte, and nothing of the plaintext is left readable.
	data := readFile(t, path)
	key, err := s.ExportSessionKey(sid)
	if err != nil {
		t.Fatal(err)
	}
	plains := openWithKey(t, data, key)
	if len(plains) != len(legacy) {
		t.Fatalf("%d records after migration, want %d", len(plains), len(legacy))
	}
	for i := range plains {
		if string(plains[i]) != legacy[i] {
			t.Errorf("record %d holds %q, want the original line %q", i+1, plains[i], legacy[i])
		}
	}
	const window = 12
	for i := 0; i+window <= len(original); i++ {
		if bytes.Contains(data, original[i:i+window]) {
			t.Fatalf("the migrated file still holds %q of the original", original[i:i+window])
		}
	}
	if m := modeOf(t, path); m != 0o600 {
		t.Errorf("migrated file mode %04o, want 0600", m)
	}
	// The replaced file was overwritten with zeros.
	if old := readFile(t, oldLink); len(old) != len(original) || !allZero(old) {
		t.Errorf("the replaced file holds %q, want %d zero bytes", old, len(original))
	}

	infos, err = s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || !infos[0].Encrypted || !infos[0].Decryptable {
		t.Errorf("List after migration: %+v, want one encrypted, readable transcript", infos)
	}
	// Reading again changes nothing.
	if _, err := s.Read(sid); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, path), data) {
		t.Error("a second Read rewrote the migrated file")
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func TestMigrateOnAppend(t *testing.T) {
	s, home, peer := newStore(t, Options{})
	path := filepath.Join(home, DirName, "sess_m.jsonl")
	legacy := fmt.Sprintf(`{"direction":"received","peer_amid":%q,"session_id":"sess_m","message_type":"request","message":{"secret":"plaintext-marker"},"timestamp":"2025-01-01T00:00:00Z"}`+"\n", peer.AMID())
	if err := os.WriteFile(path, []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	e := message(peer.AMID(), 0)
	if err := s.Append("sess_m", e); err != nil {
		t.Fatal(err)
	}
	data := readFile(t, path)
	if bytes.Contains(data, []byte("plaintext-marker")) {
		t.Error("Append left the plaintext entry in the file")
	}
	got, err := s.Read("sess_m")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !bytes.Contains(got[0].Message, []byte("plaintext-marker")) {
		t.Fatalf("Read after migrating append: %+v, want the old entry then the new one", got)
	}
	if d := sameEntry(got[1], e, "sess_m"); d != "" {
		t.Errorf("appended entry: %s", d)
	}
}

func TestMigrationFailureLeavesOriginal(t *testing.T) {
	s, home, peer := newStore(t, Options{})
	path := filepath.Join(home, DirName, "sess_bad.jsonl")
	original := []byte(fmt.Sprintf(
		`{"direction":"sent","peer_amid":%[1]q,"message_type":"request","message":{},"timestamp":"2025-01-01T00:00:00Z"}`+"\n"+
			`{"direction":"sideways","peer_amid":%[1]q,"message_type":"request","message":{},"timestamp":"2025-01-01T00:00:00Z"}`+"\n", peer.AMID()))
	if err := os.WriteFile(path, original, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := s.Read("sess_bad")
	var fe *FileError
	if !errors.As(err, &fe) || fe.Path != path || fe.Line != 2 {
		t.Fatalf("Read: %v, want a *FileError for %s line 2", err, path)
	}
	if err := s.Append("sess_bad", message(peer.AMID(), 0)); !errors.As(err, &fe) || fe.Line != 2 {
		t.Fatalf("Append: %v, want a *FileError for line 2", err)
	}
	if !bytes.Equal(readFile(t, path), original) {
		t.Error("a failed migration changed the file")
	}
}

func TestTornLastLine(t *testing.T) {
	s, home, peer := newStore(t, Options{})
	want := appendN(t, s, "sess_t", peer.AMID(), 3)
	path := filepath.Join(home, DirName, "sess_t.jsonl")
	complete := readFile(t, path)

	// A crash in the middle of the fourth append.
	fourth := lines(complete)[0]
	torn := append(bytes.Clone(complete), fourth[:len(fourth)/2]...)
	if err := os.WriteFile(path, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := s.Read("sess_t")
	if err != nil {
		t.Fatalf("Read with a torn last line: %v", err)
	}
	checkEntries(t, got, want, "sess_t")
	infos, err := s.List()
	if err != nil || len(infos) != 1 || infos[0].Entries != 3 || !infos[0].Decryptable {
		t.Fatalf("List with a torn last line: %+v, %v; want 3 readable entries", infos, err)
	}

	// appendEntry appends entry n and checks that the transcript reads as
	// every entry appended so far.
	appendEntry := func(n int) {
		t.Helper()
		e := message(peer.AMID(), n)
		if err := s.Append("sess_t", e); err != nil {
			t.Fatal(err)
		}
		want = append(want, e)
		got, err := s.Read("sess_t")
		if err != nil {
			t.Fatal(err)
		}
		checkEntries(t, got, want, "sess_t")
	}

	// The next append cuts the torn line off rather than gluing onto it.
	appendEntry(3)
	data := readFile(t, path)
	if !bytes.HasPrefix(data, complete) || len(lines(data)) != 4 || data[len(data)-1] != '\n' {
		t.Errorf("after the append the file is not the 3 records and one more:\n%s", data)
	}

	// A last record whose newline is missing is still a record.
	if err := os.WriteFile(path, bytes.TrimSuffix(data, []byte("\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Read("sess_t"); err != nil || len(got) != 4 {
		t.Fatalf("Read without the final newline: %d entries, %v; want 4", len(got), err)
	}
	appendEntry(4)
}

func TestBadLines(t *testing.T) {
	s, home, peer := newStore(t, Options{})
	appendN(t, s, "sess_b", peer.AMID(), 2)
	path := filepath.Join(home, DirName, "sess_b.jsonl")
	good := lines(readFile(t, path))
	tampered := bytes.Clone(good[1])
	// Another base64 character in the ciphertext.
	if tampered[20] == 'A' {
		tampered[20] = 'B'
	} else {
		tampered[20] = 'A'
	}
	tests := map[string]struct {
		line string
		want string
	}{
		"garbage":       {"not json at all", "not a JSON object"},
		"array":         {`[1,2,3]`, "not a JSON object"},
		"version 2":     {`{"ciphertext":"AAAAAAAAAAAAAAAAAAAAAA==","nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","version":2}`, "version is not 1"},
		"short nonce":   {`{"ciphertext":"AAAAAAAAAAAAAAAAAAAAAA==","nonce":"AAAA","version":1}`, "nonce is not 24 bytes"},
		"extra member":  {`{"ciphertext":"AAAAAAAAAAAAAAAAAAAAAA==","nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","version":1,"x":0}`, `unknown member "x"`},
		"altered":       {string(tampered), ErrDecrypt.Error()},
		"not an entry":  {`{"direction":"sent","message_type":"x","timestamp":"yesterday"}`, "timestamp is not an RFC 3339 time"},
		"other session": {`{"direction":"sent","session_id":"sess_other"}`, `names session "sess_other"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			data := bytes.Join([][]byte{good[0], []byte(tc.line), good[1]}, []byte("\n"))
			if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := s.Read("sess_b")
			var fe *FileError
			if !errors.As(err, &fe) || fe.Path != path || fe.Line != 2 {
				t.Fatalf("Read: %v, want a *FileError for %s line 2", err, path)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestConcurrentAppend(t *testing.T) {
	s, _, peer := newStore(t, Options{})
	const writers, each = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers*each+writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				e := Entry{Direction: Sent, Peer: peer.AMID(), Type: "request",
					Message: json.RawMessage(fmt.Sprintf(`{"writer":%d,"i":%d,"pad":%q}`, w, i, strings.Repeat("x", 200*w)))}
				if err := s.Append("sess_shared", e); err != nil {
					errs <- err
				}
				// Another session at the same time.
				if err := s.Append(fmt.Sprintf("sess_own_%d", w), e); err != nil {
					errs <- err
				}
			}
		})
	}
	// Readers while the writers write: each sees whole entries only.
	wg.Go(func() {
		for range 20 {
			if _, err := s.Read("sess_shared"); err != nil && !errors.Is(err, ErrNotFound) {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	got, err := s.Read("sess_shared")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != writers*each {
		t.Fatalf("%d entries, want %d", len(got), writers*each)
	}
	seen := make(map[[2]int]bool)
	next := make([]int, writers)
	for _, e := range got {
		var m struct{ Writer, I int }
		if err := json.Unmarshal(e.Message, &m); err != nil {
			t.Fatal(err)
		}
		if seen[[2]int{m.Writer, m.I}] {
			t.Errorf("entry %d of writer %d appears twice", m.I, m.Writer)
		}
		seen[[2]int{m.Writer, m.I}] = true
		// Each writer's entries keep its order.
		if m.I != next[m.Writer] {
			t.Errorf("writer %d: entry %d follows %d", m.Writer, m.I, next[m.Writer]-1)
		}
		next[m.Writer] = m.I + 1
	}
	for w := range writers {
		own, err := s.Read(fmt.Sprintf("sess_own_%d", w))
		if err != nil || len(own) != each {
			t.Errorf("sess_own_%d: %d entries, %v; want %d", w, len(own), err, each)
		}
	}
}

func TestSessionIDFileNames(t *testing.T) {
	home := t.TempDir()
	id, peer := newIdentity(t), newIdentity(t)
	s := openStore(t, home, id, Options{})
	ids := []string{
		"sess_abc",
		"Sess_ABC", // differs from the first only in case
		"../../escape",
		"a/b\\c",
		"con",
		"+already-looks-encoded",
		`quote"s`,
		strings.Repeat("Z", 128),
		"550e8400-e29b-41d4-a716-446655440000",
	}
	for i, sid := range ids {
		e := message(peer.AMID(), i)
		if err := s.Append(sid, e); err != nil {
			t.Fatalf("Append(%q): %v", sid, err)
		}
	}
	for i, sid := range ids {
		got, err := s.Read(sid)
		if err != nil {
			t.Fatalf("Read(%q): %v", sid, err)
		}
		checkEntries(t, got, []Entry{message(peer.AMID(), i)}, sid)
	}
	// Every file sits in the directory itself, with a short enough name.
	des, err := os.ReadDir(filepath.Join(home, DirName))
	if err != nil {
		t.Fatal(err)
	}
	if len(des) != len(ids) {
		t.Errorf("%d directory entries for %d sessions", len(des), len(ids))
	}
	for _, de := range des {
		if !de.Type().IsRegular() || len(de.Name()) > 255 {
			t.Errorf("directory entry %q (%v)", de.Name(), de.Type())
		}
	}
	if entries, _ := os.ReadDir(home); len(entries) != 1 {
		t.Errorf("the home holds %d entries, want only %s", len(entries), DirName)
	}
	infos, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	listed := make(map[string]bool)
	for _, info := range infos {
		listed[info.SessionID] = true
	}
	for _, sid := range ids {
		if !listed[sid] {
			t.Errorf("List does not name session %q", sid)
		}
	}
	for _, bad := range []string{"", strings.Repeat("a", 129), "tab\there", "é"} {
		if err := s.Append(bad, message(peer.AMID(), 0)); err == nil {
			t.Errorf("Append accepted the session id %q", bad)
		}
	}
}

func TestAppendRejectsBadEntries(t *testing.T) {
	s, home, peer := newStore(t, Options{MaxMessageSize: 100})
	good := message(peer.AMID(), 0)
	tests := map[string]func(e *Entry){
		"direction":     func(e *Entry) { e.Direction = "sideways" },
		"peer":          func(e *Entry) { e.Peer = "not-an-amid" },
		"no type":       func(e *Entry) { e.Type = "" },
		"type":          func(e *Entry) { e.Type = "two words" },
		"no message":    func(e *Entry) { e.Message = nil },
		"bad JSON":      func(e *Entry) { e.Message = json.RawMessage(`{"a":`) },
		"large":         func(e *Entry) { e.Message = json.RawMessage(`"` + strings.Repeat("a", 100) + `"`) },
		"other session": func(e *Entry) { e.SessionID = "sess_other" },
	}
	for name, change := range tests {
		t.Run(name, func(t *testing.T) {
			e := good
			change(&e)
			if err := s.Append("sess_v", e); err == nil {
				t.Fatal("Append accepted the entry")
			}
			if _, err := os.Stat(filepath.Join(home, DirName, "sess_v.jsonl")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused entry created the file: %v", err)
			}
		})
	}
}

func TestMaxFileSize(t *testing.T) {
	home := t.TempDir()
	id, peer := newIdentity(t), newIdentity(t)
	s := openStore(t, home, id, Options{MaxFileSize: 1000})
	appendN(t, s, "sess_f", peer.AMID(), 2) // about 330 bytes each
	path := filepath.Join(home, DirName, "sess_f.jsonl")
	before := readFile(t, path)
	err := s.Append("sess_f", message(peer.AMID(), 2))
	var fe *FileError
	if !errors.Is(err, ErrFull) || !errors.As(err, &fe) || fe.Path != path {
		t.Fatalf("Append past the limit: %v, want ErrFull naming %s", err, path)
	}
	if !bytes.Equal(readFile(t, path), before) {
		t.Error("a refused append changed the file")
	}
	// A file larger than the limit is not read.
	small := openStore(t, home, id, Options{MaxFileSize: int64(len(before)) - 1})
	if _, err := small.Read("sess_f"); !errors.Is(err, safefile.ErrTooLarge) || !errors.As(err, &fe) || fe.Path != path {
		t.Errorf("Read of a file over the limit: %v, want safefile.ErrTooLarge naming %s", err, path)
	}
}

func TestClosed(t *testing.T) {
	s, _, peer := newStore(t, Options{})
	appendN(t, s, "sess_c", peer.AMID(), 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checks := map[string]error{
		"Append": s.Append("sess_c", message(peer.AMID(), 1)),
		"Delete": s.Delete("sess_c"),
		"Export": s.Export(new(bytes.Buffer)),
	}
	_, checks["Read"] = s.Read("sess_c")
	_, checks["List"] = s.List()
	_, checks["Search"] = s.Search("x")
	_, checks["ExportSessionKey"] = s.ExportSessionKey("sess_c")
	checks["Reencrypt"] = s.Reencrypt(newIdentity(t))
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want %v", name, err, ErrClosed)
		}
	}
}

func TestAppendRefusesForeignFile(t *testing.T) {
	home := t.TempDir()
	owner, other, peer := newIdentity(t), newIdentity(t), newIdentity(t)
	appendN(t, openStore(t, home, owner, Options{}), "sess_x", peer.AMID(), 2)
	path := filepath.Join(home, DirName, "sess_x.jsonl")
	before := readFile(t, path)

	s := openStore(t, home, other, Options{})
	err := s.Append("sess_x", message(peer.AMID(), 2))
	var fe *FileError
	if !errors.Is(err, ErrDecrypt) || !errors.As(err, &fe) || fe.Path != path || fe.Line != 1 {
		t.Fatalf("Append to another identity's transcript: %v, want ErrDecrypt naming %s line 1", err, path)
	}
	// Also when the file needs repair first, and when its first record is
	// longer than what the fast check reads.
	long := message(peer.AMID(), 3)
	long.Message = json.RawMessage(`{"pad":"` + strings.Repeat("p", 3*headSize) + `"}`)
	longHome := t.TempDir()
	if err := openStore(t, longHome, owner, Options{}).Append("sess_x", long); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		home string
		data []byte
	}{
		"torn":         {home, append(bytes.Clone(before), `{"cipher`...)},
		"unterminated": {home, bytes.TrimSuffix(before, []byte("\n"))},
		"long record":  {longHome, readFile(t, filepath.Join(longHome, DirName, "sess_x.jsonl"))},
	} {
		p := filepath.Join(tc.home, DirName, "sess_x.jsonl")
		if err := os.WriteFile(p, tc.data, 0o600); err != nil {
			t.Fatal(err)
		}
		err := openStore(t, tc.home, other, Options{}).Append("sess_x", message(peer.AMID(), 2))
		if !errors.Is(err, ErrDecrypt) || !errors.As(err, &fe) || fe.Path != p || fe.Line != 1 {
			t.Errorf("%s: Append: %v, want ErrDecrypt naming %s line 1", name, err, p)
		}
		if !bytes.Equal(readFile(t, p), tc.data) {
			t.Errorf("%s: a refused append changed the file", name)
		}
	}
	// The owner still reads it all.
	if got, err := openStore(t, home, owner, Options{}).Read("sess_x"); err != nil || len(got) != 2 {
		t.Errorf("owner: %d entries, %v; want 2", len(got), err)
	}
}
