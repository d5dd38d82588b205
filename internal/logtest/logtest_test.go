package logtest

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestBufferConcurrentWrites(t *testing.T) {
	var b Buffer
	const writers, each = 8, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				fmt.Fprintf(&b, "writer %d line %d\n", w, i)
			}
		})
	}
	wg.Wait()
	lines := b.Lines()
	if len(lines) != writers*each {
		t.Fatalf("%d lines, want %d", len(lines), writers*each)
	}
	for _, l := range lines {
		var w, i int
		if n, err := fmt.Sscanf(l, "writer %d line %d", &w, &i); n != 2 || err != nil {
			t.Fatalf("line %q is not one whole write (%v)", l, err)
		}
	}
	if got := b.String(); strings.Count(got, "\n") != writers*each {
		t.Fatalf("String holds %d newlines, want %d", strings.Count(got, "\n"), writers*each)
	}
}

func TestBufferLines(t *testing.T) {
	var b Buffer
	if got := b.Lines(); got != nil {
		t.Fatalf("an empty buffer has lines %q", got)
	}
	b.Write([]byte("[WARN] disk low: free=3\n[INFO] started\n\n[WARN] disk"))
	b.Write([]byte(" gone: free=0\n"))
	tests := []struct {
		words []string
		want  []string
	}{
		{nil, []string{"[WARN] disk low: free=3", "[INFO] started", "[WARN] disk gone: free=0"}},
		{[]string{"[WARN]"}, []string{"[WARN] disk low: free=3", "[WARN] disk gone: free=0"}},
		{[]string{"[WARN]", "free=0"}, []string{"[WARN] disk gone: free=0"}},
		{[]string{"[INFO]", "free="}, nil},
	}
	for _, tt := range tests {
		if got := b.Lines(tt.words...); !slices.Equal(got, tt.want) {
			t.Errorf("Lines(%q) = %q, want %q", tt.words, got, tt.want)
		}
	}
}

// logRecorder is a testing.TB that keeps what is logged to it and what it
// is failed with; Fatal ends the calling goroutine, as a test's does.
type logRecorder struct {
	testing.TB
	mu       sync.Mutex
	logs     []string
	fatal    string
	deadline time.Time
}

func (r *logRecorder) Helper() {}

func (r *logRecorder) Log(args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprint(args...))
}

func (r *logRecorder) Fatal(args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprint(args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *logRecorder) Deadline() (time.Time, bool) { return r.deadline, !r.deadline.IsZero() }

func TestWriterLogsEachWrite(t *testing.T) {
	r := &logRecorder{TB: t}
	w := Writer(r)
	w.Write([]byte("one\n"))
	w.Write([]byte("two\n\n"))
	w.Write([]byte("three"))
	if want := []string{"one", "two\n", "three"}; !slices.Equal(r.logs, want) {
		t.Fatalf("logged %q, want %q", r.logs, want)
	}
}

// TestWriterStopsWhenTestEnds writes through a subtest's Writer and Logger
// during the subtest, during its later cleanups and after it has ended:
// only the last is dropped.
func TestWriterStopsWhenTestEnds(t *testing.T) {
	var r *logRecorder
	var w io.Writer
	var logger hclog.Logger
	t.Run("sub", func(t *testing.T) {
		r = &logRecorder{TB: t}
		w = Writer(r)
		logger = Logger(r, "node", hclog.Info)
		t.Cleanup(func() {
			w.Write([]byte("closing\n"))
			logger.Info("shutting down")
		})
		logger.Debug("below the level")
		logger.Info("running")
	})
	w.Write([]byte("after the test\n"))
	logger.Info("after the test")
	if n, err := w.Write([]byte("x\n")); n != 2 || err != nil {
		t.Fatalf("Write after the test = %d, %v; want 2, nil", n, err)
	}
	if len(r.logs) != 3 || !strings.HasSuffix(r.logs[0], "[INFO]  node: running") || r.logs[1] != "closing" ||
		!strings.HasSuffix(r.logs[2], "[INFO]  node: shutting down") {
		t.Fatalf("logged %q, want the running line, then closing and shutting down, and nothing after the test", r.logs)
	}
}

func TestEventuallyWaitsForCondition(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 5 {
			time.Sleep(time.Millisecond)
			n.Add(1)
		}
	}()
	Eventually(t, "five steps", func() bool { return n.Load() == 5 })
	if n.Load() != 5 {
		t.Fatalf("Eventually returned at step %d", n.Load())
	}
}

// TestEventuallyFailsAtDeadline gives Eventually a test whose deadline has
// passed: it must fail it, naming what it waited for and quoting the logs.
func TestEventuallyFailsAtDeadline(t *testing.T) {
	r := &logRecorder{TB: t, deadline: time.Now()}
	var logs Buffer
	logs.Write([]byte("[WARN] peer unreachable\n"))
	checks := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		Eventually(r, "the peer", func() bool { checks++; return false }, &logs)
		t.Error("Eventually returned although the condition never held")
	}()
	<-done
	if want := "timed out waiting for the peer; log:\n[WARN] peer unreachable\n"; r.fatal != want {
		t.Fatalf("failed with %q, want %q", r.fatal, want)
	}
	if checks != 1 {
		t.Fatalf("condition checked %d times, want once before the deadline was seen", checks)
	}
}
