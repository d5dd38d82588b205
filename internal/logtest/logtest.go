// Package logtest serves tests of code that logs and works in the
// background: a Buffer that collects log output written from several
// goroutines, a Writer and a Logger that send log lines to a test's log,
// and Eventually, which waits for a condition the code reaches on its own
// time.
package logtest

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Buffer collects what is written to it, for a test to read. It is safe
// for concurrent use; its zero value is an empty buffer.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines returns the non-empty lines written so far that contain every one
// of words, without their newlines.
func (b *Buffer) Lines(words ...string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		ok := l != ""
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// Writer returns a writer that sends each write to t's log, less one final
// newline. Once the cleanups registered after this call have run, it
// drops what it gets: a test's log must not be written after the test
// ends, and code under test may still log while it shuts down.
func Writer(t testing.TB) io.Writer {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// Logger returns a logger named name that writes the lines at level and
// above to t's log, through a Writer.
func Logger(t testing.TB, name string, level hclog.Level) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: level, Output: Writer(t)})
}

// Patience bounds the wait of Eventually: far longer than anything takes
// on a loaded machine, far shorter than a test binary's default timeout.
const Patience = time.Minute

// pollEvery is how often Eventually checks its condition.
const pollEvery = 5 * time.Millisecond

// Eventually checks cond every few milliseconds until it holds. If it
// does not hold within Patience, or by five seconds before the test's
// deadline if that comes first, Eventually fails the test with "timed out
// waiting for " and what, followed by the content of each of logs.
func Eventually(t testing.TB, what string, cond func() bool, logs ...*Buffer) {
	t.Helper()
	deadline := time.Now().Add(Patience)
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if end, ok := d.Deadline(); ok && end.Add(-5*time.Second).Before(deadline) {
			deadline = end.Add(-5 * time.Second) // leave time to report
		}
	}
	for !cond() {
		if time.Now().After(deadline) {
			var msg strings.Builder
			msg.WriteString("timed out waiting for " + what)
			for _, l := range logs {
				msg.WriteString("; log:\n" + l.String())
			}
			t.Fatal(msg.String())
		}
		time.Sleep(pollEvery)
	}
}
