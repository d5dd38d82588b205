package transcript

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSearchLimit(t *testing.T) {
	s, home, peer := newStore(t, Options{})
	dir := filepath.Join(home, DirName)
	const n = DefaultSearchLimit + 1
	// Transcript i was last modified at minute i: 0 is the oldest. The
	// oldest and the two newest mention the needle.
	for i := range n {
		sid := fmt.Sprintf("sess_%03d", i)
		e := message(peer.AMID(), i)
		if i == 0 || i >= n-2 {
			e.Message = json.RawMessage(fmt.Sprintf(`{"intent":"search","note":"a NeedLe in transcript %d"}`, i))
		}
		if err := s.Append(sid, e); err != nil {
			t.Fatal(err)
		}
		touch(t, filepath.Join(dir, sid+".jsonl"), i)
	}

	res, err := s.Search("needle")
	if err != nil {
		t.Fatal(err)
	}
	if !res.More || res.Searched != DefaultSearchLimit || len(res.Unreadable) != 0 {
		t.Errorf("Search: More %v, Searched %d, Unreadable %v; want true, %d, none", res.More, res.Searched, res.Unreadable, DefaultSearchLimit)
	}
	if got := matchedSessions(res); !slices.Equal(got, []string{"sess_100", "sess_099"}) {
		t.Errorf("matches in %v, want the two newest, newest first, and not the oldest", got)
	}

	// With one transcript fewer, the oldest is searched too.
	if err := s.Delete("sess_050"); err != nil {
		t.Fatal(err)
	}
	res, err = s.Search("needle")
	if err != nil {
		t.Fatal(err)
	}
	if res.More || res.Searched != DefaultSearchLimit {
		t.Errorf("Search over %d transcripts: More %v, Searched %d", DefaultSearchLimit, res.More, res.Searched)
	}
	if got := matchedSessions(res); !slices.Equal(got, []string{"sess_100", "sess_099", "sess_000"}) {
		t.Errorf("matches in %v, want sess_100, sess_099, sess_000", got)
	}
}

func matchedSessions(res Result) []string {
	var ids []string
	for _, m := range res.Matches {
		ids = append(ids, m.SessionID)
	}
	return ids
}

func TestSearchMatches(t *testing.T) {
	home := t.TempDir()
	id, peer, other := newIdentity(t), newIdentity(t), newIdentity(t)
	s := openStore(t, home, id, Options{})
	entries := []Entry{
		{Direction: Sent, Peer: peer.AMID(), Type: "request", Time: t0, Message: json.RawMessage(`{"text":"caf\u00e9 au lait"}`)},
		{Direction: Received, Peer: peer.AMID(), Type: "response", Time: t0, Message: json.RawMessage(`{"results":[{"price":4.25}]}`)},
		{Direction: Sent, Peer: peer.AMID(), Type: "close", Time: t0, Message: json.RawMessage(`{"reason":"completed"}`)},
	}
	for _, e := range entries {
		if err := s.Append("sess_s", e); err != nil {
			t.Fatal(err)
		}
	}
	// A transcript of another identity is reported, not fatal.
	appendN(t, openStore(t, home, other, Options{}), "sess_foreign", peer.AMID(), 1)

	tests := []struct {
		query string
		want  []int
	}{
		{"CAFÉ", []int{0}},                    // an unescaped string value, any case
		{"4.25", []int{1}},                    // a number as written
		{"results", []int{1}},                 // a member name
		{"RESPONSE", []int{1}},                // the message type
		{string(peer.AMID()), []int{0, 1, 2}}, // the peer
		{"nowhere", nil},
		{`\u00e9`, nil}, // the escaped form is not searched
	}
	for _, tc := range tests {
		res, err := s.Search(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, m := range res.Matches {
			if m.SessionID != "sess_s" {
				t.Errorf("Search(%q) matched in %s", tc.query, m.SessionID)
				continue
			}
			if d := sameEntry(m.Entry, entries[m.Index], "sess_s"); d != "" {
				t.Errorf("Search(%q): match %d: %s", tc.query, m.Index, d)
			}
			got = append(got, m.Index)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Search(%q) matched entries %v, want %v", tc.query, got, tc.want)
		}
		if len(res.Unreadable) != 1 || !errors.Is(res.Unreadable[0], ErrDecrypt) {
			t.Errorf("Search(%q): unreadable %v, want the foreign transcript", tc.query, res.Unreadable)
		}
	}
	if _, err := s.Search(""); err == nil {
		t.Error("Search accepted an empty query")
	}
}

func TestExport(t *testing.T) {
	s, _, peer := newStore(t, Options{})
	want := map[string][]Entry{
		"sess_b": appendN(t, s, "sess_b", peer.AMID(), 3),
		"sess_a": appendN(t, s, "sess_a", peer.AMID(), 2),
		"sess_c": appendN(t, s, "sess_c", peer.AMID(), 1),
	}

	tests := []struct {
		name  string
		ids   []string
		order []string
	}{
		{"all", nil, []string{"sess_a", "sess_b", "sess_c"}},
		{"some", []string{"sess_c", "sess_a"}, []string{"sess_c", "sess_a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := s.Export(&out, tc.ids...); err != nil {
				t.Fatal(err)
			}
			var got []Entry
			sc := bufio.NewScanner(&out)
			for sc.Scan() {
				var e Entry
				dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&e); err != nil {
					t.Fatalf("export line %q: %v", sc.Bytes(), err)
				}
				got = append(got, e)
			}
			var wantAll []Entry
			for _, sid := range tc.order {
				wantAll = append(wantAll, want[sid]...)
			}
			if len(got) != len(wantAll) {
				t.Fatalf("%d exported entries, want %d", len(got), len(wantAll))
			}
			i := 0
			for _, sid := range tc.order {
				checkEntries(t, got[i:i+len(want[sid])], want[sid], sid)
				i += len(want[sid])
			}
		})
	}

	var out bytes.Buffer
	if err := s.Export(&out, "sess_a", "sess_missing"); !errors.Is(err, ErrNotFound) || out.Len() != 0 {
		t.Errorf("Export naming a missing session: %v, %d bytes written; want ErrNotFound and nothing", err, out.Len())
	}
}

func TestExportMigratesPlaintext(t *testing.T) {
	s, home, peer := newStore(t, Options{})
	path := filepath.Join(home, DirName, "sess_p.jsonl")
	line := fmt.Sprintf(`{"direction":"sent","peer_amid":%q,"message_type":"request","message":{"k":"plain-marker"},"timestamp":"2025-01-01T00:00:00Z"}`, peer.AMID())
	if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := s.Export(&out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out.Bytes(), []byte("plain-marker")) || !bytes.Contains(out.Bytes(), []byte(`"session_id":"sess_p"`)) {
		t.Errorf("export %s lacks the plaintext entry", out.Bytes())
	}
	if bytes.Contains(readFile(t, path), []byte("plain-marker")) {
		t.Error("Export left the plaintext on disk")
	}
}
