package session_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/host/session"
	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// restart stops h, as a killed process stops (every message it handled is
// already in its session files), and starts its agent again on the same
// state directory.
func (m *mesh) restart(t testing.TB, h *host, o hostOptions) *host {
	t.Helper()
	h.stop()
	o.id, o.home, o.persist, o.published = h.id, h.home, true, true
	return m.newHost(t, o)
}

// sessionFiles lists the session files under h's home.
func sessionFiles(t testing.TB, h *host) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(h.home, "sessions", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// openPersisted starts a mesh with an echoing receiver b and an initiator
// a whose frames pa records, both keeping their sessions in files, and
// returns a session from a to b that has carried one REQUEST.
func openPersisted(t testing.TB) (m *mesh, a, b *host, pa *tap, s *session.Session) {
	t.Helper()
	m = newMesh(t)
	b = m.newHost(t, hostOptions{handler: echoHandler{}, persist: true})
	pa = &tap{}
	a = m.newHost(t, hostOptions{persist: true, tap: pa})
	s, err := a.Open(t.Context(), b.id.AMID(), echoCaps)
	if err != nil {
		t.Fatal(err)
	}
	mustRequest(t, s, "before")
	return m, a, b, pa, s
}

func TestSessionsResumeAfterBothRestart(t *testing.T) {
	m := newMesh(t)
	b := m.newHost(t, hostOptions{handler: echoHandler{}, persist: true})
	a := m.newHost(t, hostOptions{persist: true})
	s, err := a.Open(t.Context(), b.id.AMID(), echoCaps)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"one", "two"} {
		if got := echoed(t, mustRequest(t, s, w)); got != w {
			t.Fatalf("echo %q", got)
		}
	}
	files := sessionFiles(t, a)
	if len(files) != 1 {
		t.Fatalf("initiator keeps %d session files, want 1", len(files))
	}
	fi, err := os.Stat(files[0])
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("session file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if di, err := os.Stat(filepath.Dir(files[0])); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("session directory mode %v (%v), want 0700", di.Mode().Perm(), err)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if string(raw[:4]) != "AMS1" || raw[12] != 1 || strings.Contains(string(raw), s.ID()) || strings.Contains(string(raw), "ratchet") {
		t.Fatal("session file is not a sealed session file: its content is readable")
	}

	pa := &tap{}
	b2 := m.restart(t, b, hostOptions{handler: echoHandler{}})
	a2 := m.restart(t, a, hostOptions{tap: pa})
	s2 := a2.Session(s.ID())
	if s2 == nil || b2.Session(s.ID()) == nil {
		t.Fatalf("session %s not resumed on both sides (%v, %v)", s.ID(), s2, b2.Session(s.ID()))
	}
	if !s2.Initiator() || s2.Peer() != b.id.AMID() || len(s2.Capabilities()) != 1 {
		t.Fatalf("resumed session lost its state: initiator %v peer %s capabilities %v", s2.Initiator(), s2.Peer(), s2.Capabilities())
	}
	for _, w := range []string{"three", "four"} {
		if got := echoed(t, mustRequest(t, s2, w)); got != w {
			t.Fatalf("echo %q after the restart", got)
		}
	}
	if n := len(pa.frames(true, protocol.MessageTypeKnock)); n != 0 {
		t.Fatalf("the resumed session sent %d KNOCKs", n)
	}
	if strings.Contains(b2.logs.String(), "dropped message") {
		t.Fatalf("a message was dropped after the restart:\n%s", b2.logs.String())
	}
}

func TestLostSessionIsOpenedAgain(t *testing.T) {
	m, a, b, pa, s := openPersisted(t)
	first := s.ID()

	// The receiver loses its session file.
	b.stop()
	if err := os.RemoveAll(filepath.Join(b.home, "sessions")); err != nil {
		t.Fatal(err)
	}
	b2 := m.restart(t, b, hostOptions{handler: echoHandler{}})
	if len(b2.Sessions()) != 0 {
		t.Fatal("the receiver still holds the session")
	}

	if got := echoed(t, mustRequest(t, s, "after")); got != "after" {
		t.Fatalf("echo %q on the session opened again", got)
	}
	if s.ID() == first {
		t.Fatal("the session kept its old id: no new handshake")
	}
	if n := len(pa.frames(false, protocol.MessageTypeStatus)); n != 1 {
		t.Fatalf("received %d session_not_found frames, want 1", n)
	}
	if n := len(pa.frames(true, protocol.MessageTypeKnock)); n != 2 {
		t.Fatalf("sent %d KNOCKs, want 2 (the first and the new one)", n)
	}
	if b2.Session(s.ID()) == nil || a.Session(s.ID()) != s {
		t.Fatal("both sides do not hold the new session under its new id")
	}
	if files := sessionFiles(t, a); len(files) != 1 || filepath.Base(files[0]) != s.ID() {
		t.Fatalf("initiator's session files %v, want only the new session's", files)
	}
}

func TestDamagedSessionFilesAreSkipped(t *testing.T) {
	m := newMesh(t)
	b := m.newHost(t, hostOptions{handler: echoHandler{}, persist: true})
	a := m.newHost(t, hostOptions{persist: true})
	var sessions []*session.Session
	for range 3 {
		s, err := a.Open(t.Context(), b.id.AMID(), echoCaps)
		if err != nil {
			t.Fatal(err)
		}
		mustRequest(t, s, "hello")
		sessions = append(sessions, s)
	}
	b.stop()
	dir := filepath.Join(b.home, "sessions", string(a.id.AMID()))
	truncated := filepath.Join(dir, sessions[0].ID())
	flipped := filepath.Join(dir, sessions[1].ID())
	data, err := os.ReadFile(truncated)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(truncated, data[:len(data)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	data, err = os.ReadFile(flipped)
	if err != nil {
		t.Fatal(err)
	}
	// Damage the record in each slot.
	size := int(binary.BigEndian.Uint32(data[4:8]))
	data[8+4+50] ^= 0x04
	data[8+size+4+50] ^= 0x04
	if err := os.WriteFile(flipped, data, 0o600); err != nil {
		t.Fatal(err)
	}

	b2 := m.restart(t, b, hostOptions{handler: echoHandler{}})
	logs := b2.logs.String()
	for _, f := range []string{truncated, flipped} {
		if !strings.Contains(logs, "skipped a session file") || !strings.Contains(logs, f) {
			t.Fatalf("no warning naming %s:\n%s", f, logs)
		}
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("damaged file %s was removed: %v", f, err)
		}
	}
	if len(b2.Sessions()) != 1 || b2.Session(sessions[2].ID()) == nil {
		t.Fatalf("receiver resumed %d sessions, want only the intact one", len(b2.Sessions()))
	}
	if got := echoed(t, mustRequest(t, sessions[2], "still here")); got != "still here" {
		t.Fatalf("echo %q on the intact session", got)
	}
}

func TestIdleSessionFilesAreDeleted(t *testing.T) {
	m := newMesh(t)
	long := session.Permissive()
	long.MaxSessionTTL = int64((30 * 24 * time.Hour).Seconds())
	b := m.newHost(t, hostOptions{handler: echoHandler{}, persist: true, policy: long})
	a := m.newHost(t, hostOptions{persist: true})
	opts := echoCaps
	opts.TTL = 30 * 24 * time.Hour
	stale, err := a.Open(t.Context(), b.id.AMID(), opts)
	if err != nil {
		t.Fatal(err)
	}
	mustRequest(t, stale, "old")
	m.offset.Store(int64(6 * 24 * time.Hour))
	fresh, err := a.Open(t.Context(), b.id.AMID(), opts)
	if err != nil {
		t.Fatal(err)
	}
	mustRequest(t, fresh, "new")
	m.offset.Store(int64(8 * 24 * time.Hour))

	b.stop()
	dir := filepath.Join(b.home, "sessions", string(a.id.AMID()))
	// A second name for the stale file shows what happens to its bytes.
	witness := filepath.Join(t.TempDir(), "witness")
	if err := os.Link(filepath.Join(dir, stale.ID()), witness); err != nil {
		t.Fatal(err)
	}
	b2 := m.restart(t, b, hostOptions{handler: echoHandler{}, policy: long})
	if data, err := os.ReadFile(witness); err != nil || len(data) == 0 || strings.Trim(string(data), "\x00") != "" {
		t.Fatalf("the stale file was not overwritten before it was unlinked (%d bytes, %v)", len(data), err)
	}
	if _, err := os.Stat(filepath.Join(dir, stale.ID())); !os.IsNotExist(err) {
		t.Fatalf("the session unused for 8 days kept its file (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, fresh.ID())); err != nil {
		t.Fatalf("the session used 2 days ago lost its file: %v", err)
	}
	if !strings.Contains(b2.logs.String(), "deleted a session file") {
		t.Fatal("the deletion was not logged")
	}
	if b2.Session(fresh.ID()) == nil || b2.Session(stale.ID()) != nil {
		t.Fatal("resumed the wrong sessions")
	}
}

func TestRequestSentWhileReceiverIsDown(t *testing.T) {
	m, _, b, pa, s := openPersisted(t)
	b.stop()

	// The REQUEST goes out while the receiver is down: the relay keeps it.
	type result struct {
		answer protocol.Payload
		err    error
	}
	done := make(chan result, 1)
	go func() {
		answer, err := s.Request(t.Context(), echoRequest("while down"), "", nil)
		done <- result{answer, err}
	}()
	logtest.Eventually(t, "the REQUEST to be sent", func() bool { return len(pa.frames(true, protocol.MessageTypeMessage)) >= 2 })

	b2 := m.restart(t, b, hostOptions{handler: echoHandler{}})
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := echoed(t, r.answer); got != "while down" {
		t.Fatalf("echo %q", got)
	}
	if n := len(pa.frames(true, protocol.MessageTypeKnock)); n != 1 {
		t.Fatalf("%d KNOCKs, want only the first", n)
	}
	if strings.Contains(b2.logs.String(), "does not decrypt") || strings.Contains(b2.logs.String(), "duplicate") {
		t.Fatalf("the restarted receiver dropped a message:\n%s", b2.logs.String())
	}
}
