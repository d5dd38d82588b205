package transcript

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/agentmesh/agentmesh-go/host/identity"
	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// t0 is the clock of the tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newIdentity generates a fresh identity.
func newIdentity(t testing.TB) *identity.Identity {
	t.Helper()
	id, err := identity.Generate(nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// openStore opens the transcripts under home for id, logging to the test.
func openStore(t testing.TB, home string, id *identity.Identity, opts Options) *Store {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return t0 }
	}
	if opts.Logger == nil {
		opts.Logger = logtest.Logger(t, "", hclog.Debug)
	}
	s, err := Open(home, id, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newStore opens a store with opts under a new home for a fresh identity,
// and returns it with its home and a fresh peer to write sessions with.
func newStore(t testing.TB, opts Options) (s *Store, home string, peer *identity.Identity) {
	t.Helper()
	home = t.TempDir()
	id, peer := newIdentity(t), newIdentity(t)
	return openStore(t, home, id, opts), home, peer
}

// message returns the entry number n of a session with peer, alternating
// directions, with a message that names n.
func message(peer protocol.AMID, n int) Entry {
	dir := Sent
	if n%2 == 1 {
		dir = Received
	}
	return Entry{
		Direction: dir,
		Peer:      peer,
		Type:      "request",
		Message:   json.RawMessage(fmt.Sprintf(`{"intent": "weather.forecast", "parameters": {"city": "Lyon", "n": %d}}`, n)),
		Time:      t0.Add(time.Duration(n) * time.Second),
	}
}

// appendN appends n messages to session id.
func appendN(t testing.TB, s *Store, id string, peer protocol.AMID, n int) []Entry {
	t.Helper()
	var es []Entry
	for i := range n {
		e := message(peer, i)
		if err := s.Append(id, e); err != nil {
			t.Fatalf("Append(%q, #%d): %v", id, i, err)
		}
		es = append(es, e)
	}
	return es
}

// sameEntry reports how got differs from want, an entry given to Append
// for session id; "" when it does not.
func sameEntry(got, want Entry, id string) string {
	var compact bytes.Buffer
	if err := json.Compact(&compact, want.Message); err != nil {
		return err.Error()
	}
	switch {
	case got.Direction != want.Direction:
		return fmt.Sprintf("direction %q, want %q", got.Direction, want.Direction)
	case got.Peer != want.Peer:
		return fmt.Sprintf("peer %q, want %q", got.Peer, want.Peer)
	case got.SessionID != id:
		return fmt.Sprintf("session %q, want %q", got.SessionID, id)
	case got.Type != want.Type:
		return fmt.Sprintf("type %q, want %q", got.Type, want.Type)
	case !bytes.Equal(got.Message, compact.Bytes()):
		return fmt.Sprintf("message %s, want %s", got.Message, compact.Bytes())
	case !got.Time.Equal(want.Time):
		return fmt.Sprintf("time %v, want %v", got.Time, want.Time)
	}
	return ""
}

// checkEntries fails the test unless got are the entries want given to
// Append for session id.
func checkEntries(t testing.TB, got, want []Entry, id string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if d := sameEntry(got[i], want[i], id); d != "" {
			t.Errorf("entry %d: %s", i, d)
		}
	}
}

// readFile returns the content of the file at path.
func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// lines splits a file into its lines, without the newlines; a last line
// without a newline is included.
func lines(data []byte) [][]byte {
	ls := bytes.Split(data, []byte("\n"))
	if len(ls) > 0 && len(ls[len(ls)-1]) == 0 {
		ls = ls[:len(ls)-1]
	}
	return ls
}

// openWithKey opens every line of a transcript file as a record with key
// (standard base64), using nothing of this package: it is how an auditor
// given the key reads the file.
func openWithKey(t testing.TB, data []byte, key string) [][]byte {
	t.Helper()
	raw, err := protocol.B64.DecodeString(key)
	if err != nil {
		t.Fatalf("key is not base64: %v", err)
	}
	aead, err := chacha20poly1305.NewX(raw)
	if err != nil {
		t.Fatal(err)
	}
	var plains [][]byte
	for i, l := range lines(data) {
		var rec struct {
			Ciphertext string `json:"ciphertext"`
			Nonce      string `json:"nonce"`
			Version    int    `json:"version"`
		}
		dec := json.NewDecoder(bytes.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			t.Fatalf("line %d is not a record: %v", i+1, err)
		}
		if rec.Version != 1 {
			t.Fatalf("line %d: version %d", i+1, rec.Version)
		}
		ct, err1 := protocol.B64.DecodeString(rec.Ciphertext)
		nonce, err2 := protocol.B64.DecodeString(rec.Nonce)
		if err1 != nil || err2 != nil {
			t.Fatalf("line %d: bad base64: %v %v", i+1, err1, err2)
		}
		plain, err := aead.Open(nil, nonce, ct, nil)
		if err != nil {
			t.Fatalf("line %d does not open with the key: %v", i+1, err)
		}
		plains = append(plains, plain)
	}
	return plains
}

// modeOf returns the permission bits of path.
func modeOf(t testing.TB, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}
