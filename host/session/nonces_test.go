package session

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const nonceA = "00112233445566778899aabbccddeeff"

func openNonces(t *testing.T, path string, window time.Duration) *NonceStore {
	t.Helper()
	s, err := OpenNonceStore(path, window)
	if err != nil {
		t.Fatalf("OpenNonceStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustSeen(t *testing.T, s *NonceStore, nonce string, at time.Time, want bool) {
	t.Helper()
	fresh, err := s.Seen(nonce, at)
	if err != nil {
		t.Fatalf("Seen(%q): %v", nonce, err)
	}
	if fresh != want {
		t.Fatalf("Seen(%q, %v) fresh = %v, want %v", nonce, at.Format(time.TimeOnly), fresh, want)
	}
}

func TestNonceStoreReplay(t *testing.T) {
	s := openNonces(t, filepath.Join(t.TempDir(), "nonces"), 0)
	mustSeen(t, s, nonceA, testNow, true)
	mustSeen(t, s, nonceA, testNow.Add(time.Second), false)
	mustSeen(t, s, nonceA, testNow.Add(DefaultNonceWindow-time.Millisecond), false)
	// A clock that went back does not make a nonce fresh.
	mustSeen(t, s, nonceA, testNow.Add(-time.Hour), false)
	mustSeen(t, s, "ffee", testNow, true)
	// After the window the nonce is forgotten: the KNOCK that carried it is
	// no longer fresh anyway.
	mustSeen(t, s, nonceA, testNow.Add(DefaultNonceWindow), true)
	mustSeen(t, s, nonceA, testNow.Add(DefaultNonceWindow+time.Second), false)
}

func TestNonceStoreSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "nonces")
	s := openNonces(t, path, time.Minute)
	mustSeen(t, s, nonceA, testNow, true)
	mustSeen(t, s, "bb", testNow.Add(-2*time.Minute), true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Seen("cc", testNow); !errors.Is(err, ErrNonceStoreClosed) {
		t.Errorf("Seen after Close: %v, want ErrNonceStoreClosed", err)
	}

	s2 := openNonces(t, path, time.Minute)
	mustSeen(t, s2, nonceA, testNow.Add(30*time.Second), false)
	mustSeen(t, s2, nonceA, testNow.Add(time.Minute), true)
	// "bb" was older than the window before the newest record: pruned on
	// open.
	if n := s2.Len(); n != 1 {
		t.Errorf("Len() = %d after reopening, want 1", n)
	}

	if runtime.GOOS == "windows" {
		return
	}
	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", p, fi.Mode().Perm(), want)
		}
	}
}

func TestNonceStoreTornLastLine(t *testing.T) {
	tests := []struct {
		name, tail string
	}{
		{"torn record", fmt.Sprintf("%d dead", testNow.UnixMilli())},
		{"torn timestamp", "17"},
		{"zeros", "\x00\x00\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "nonces")
			content := fmt.Sprintf("%d %s\nnot a record\n%d\n%s", testNow.UnixMilli(), nonceA, testNow.UnixMilli(), tt.tail)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			s := openNonces(t, path, 0)
			mustSeen(t, s, nonceA, testNow.Add(time.Second), false)
			// The torn fragment is not a remembered nonce.
			mustSeen(t, s, "dead", testNow.Add(time.Second), true)
			mustSeen(t, s, "beef", testNow.Add(time.Second), true)
			s.Close()
			// Appends after the torn line start on their own line.
			s2 := openNonces(t, path, 0)
			for _, n := range []string{nonceA, "dead", "beef"} {
				mustSeen(t, s2, n, testNow.Add(2*time.Second), false)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(data), "not a record") || !strings.HasSuffix(string(data), "\n") {
				t.Errorf("file after reopening:\n%q", data)
			}
		})
	}
}

func TestNonceStoreCompacts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nonces")
	s := openNonces(t, path, time.Minute)
	// 3000 nonces one second apart: at most ~60 are in the window at the
	// end, so the file must have been compacted along the way.
	const n = 3000
	for i := 0; i < n; i++ {
		mustSeen(t, s, fmt.Sprintf("n%d", i), testNow.Add(time.Duration(i)*time.Second), true)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if lines := fi.Size() / int64(len("1772366400000 n1000\n")); lines >= n {
		t.Errorf("file holds about %d records after %d, not compacted", lines, n)
	}
	if got := s.Len(); got > minCompactRecords*2 {
		t.Errorf("Len() = %d, want pruned", got)
	}
	// The most recent nonces are still remembered, on disk too.
	s.Close()
	s2 := openNonces(t, path, time.Minute)
	mustSeen(t, s2, fmt.Sprintf("n%d", n-1), testNow.Add(n*time.Second), false)
	mustSeen(t, s2, "n0", testNow.Add(n*time.Second), true)
}

func TestNonceStoreConcurrentSameNonce(t *testing.T) {
	s := openNonces(t, filepath.Join(t.TempDir(), "nonces"), 0)
	var fresh atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.Seen(nonceA, testNow)
			if err != nil {
				t.Error(err)
			}
			if ok {
				fresh.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := fresh.Load(); got != 1 {
		t.Errorf("%d concurrent Seen calls reported the nonce fresh, want exactly 1", got)
	}
}

func TestNonceStoreRefusesBadNonces(t *testing.T) {
	s := openNonces(t, filepath.Join(t.TempDir(), "nonces"), 0)
	for _, n := range []string{"", "a b", "a\nb", strings.Repeat("a", MaxNonceLen+1), "é"} {
		if fresh, err := s.Seen(n, testNow); err == nil || fresh {
			t.Errorf("Seen(%q) = %v, %v; want an error", n, fresh, err)
		}
	}
	mustSeen(t, s, strings.Repeat("a", MaxNonceLen), testNow, true)
}

func TestOpenNonceStoreErrors(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be cannot be read as the store.
	if err := os.Mkdir(filepath.Join(dir, "nonces"), 0o700); err != nil {
		t.Fatal(err)
	}
	if s, err := OpenNonceStore(filepath.Join(dir, "nonces"), 0); err == nil {
		s.Close()
		t.Error("OpenNonceStore on a directory succeeded")
	}
}

// TestNonceStoreGroupCommit checks that concurrent calls, whose records
// are written and synced in shared batches, each get the right answer and
// each fresh nonce is on disk by the time its call returns.
func TestNonceStoreGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nonces")
	s := openNonces(t, path, time.Minute)
	now := time.Now()
	const n = 200
	var wg sync.WaitGroup
	var fresh atomic.Int32
	for i := range n {
		wg.Go(func() {
			nonce := fmt.Sprintf("%032x", i%(n/2)) // every nonce twice
			ok, err := s.Seen(nonce, now)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				fresh.Add(1)
				// On disk now: a store opened from the file knows it.
				data, err := os.ReadFile(path)
				if err != nil || !strings.Contains(string(data), " "+nonce+"\n") {
					t.Errorf("fresh nonce %s not on disk when Seen returned", nonce)
				}
			}
		})
	}
	wg.Wait()
	if got := fresh.Load(); got != n/2 {
		t.Fatalf("%d nonces fresh, want %d (each of %d nonces once)", got, n/2, n/2)
	}
	s.Close()
	s2 := openNonces(t, path, time.Minute)
	if s2.Len() != n/2 {
		t.Fatalf("reopened store remembers %d nonces, want %d", s2.Len(), n/2)
	}
	if _, err := s.Seen(nonceA, now); !errors.Is(err, ErrNonceStoreClosed) {
		t.Fatalf("Seen after Close: %v", err)
	}
}
