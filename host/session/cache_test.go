package session

import (
	"fmt"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

func TestSessionCacheLRUAndTTL(t *testing.T) {
	files, _ := testFiles(t)
	c := newSessionCache(time.Hour, files)
	now := time.Now()
	key := func(i int) cacheKey {
		return cacheKey{Our: "us", Peer: protocol.AMID(fmt.Sprintf("peer%d", i)), Category: "travel"}
	}
	for i := range SessionCacheSize {
		c.put(cacheEntry{Key: key(i), SessionID: fmt.Sprint(i), Expires: now.Add(time.Hour)})
	}
	// Touch the oldest, then overflow by one: the second oldest goes.
	if _, ok := c.get(key(0), now); !ok {
		t.Fatal("entry 0 missing")
	}
	c.put(cacheEntry{Key: key(SessionCacheSize), SessionID: "new", Expires: now.Add(time.Hour)})
	if c.len() != SessionCacheSize {
		t.Fatalf("cache holds %d entries, want %d", c.len(), SessionCacheSize)
	}
	if _, ok := c.get(key(1), now); ok {
		t.Fatal("the least recently used entry was kept")
	}
	if _, ok := c.get(key(0), now); !ok {
		t.Fatal("a recently used entry was evicted")
	}
	if _, ok := c.get(key(2), now.Add(time.Hour)); ok {
		t.Fatal("an expired entry was returned")
	}

	// Saved sealed and loaded again, in the same order of use.
	c2 := newSessionCache(time.Hour, files)
	if err := c2.load(now); err != nil {
		t.Fatal(err)
	}
	if c2.len() != SessionCacheSize {
		t.Fatalf("loaded %d entries, want %d", c2.len(), SessionCacheSize)
	}
	if _, ok := c2.get(key(1), now); ok {
		t.Fatal("the evicted entry came back from the file")
	}
	if e, ok := c2.get(key(SessionCacheSize), now); !ok || e.SessionID != "new" {
		t.Fatalf("loaded entry %+v, %v", e, ok)
	}
	if n := c2.drop(func(e cacheEntry) bool { return e.Key.Peer == "peer3" }); n != 1 {
		t.Fatalf("dropped %d entries", n)
	}
	// Another identity's files cannot read it: the cache starts empty.
	other, err := openSessionFiles(files.dir, mustIdentity(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := newSessionCache(time.Hour, other).load(now); err == nil {
		t.Fatal("another identity read the session cache")
	}
}
