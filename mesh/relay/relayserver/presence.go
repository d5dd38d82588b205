package relayserver

import (
	"sync"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// maxPairs bounds the presence relation. When it is full of live pairs,
// new pairs are not recorded, and the agents concerned see each other as
// offline: the safe way to fail.
const maxPairs = 1 << 20

// pairSet remembers which agents exchanged a message through this relay,
// and when they last did, for the presence rule (see the package
// documentation). It is kept in memory; a restart forgets it.
type pairSet struct {
	window time.Duration

	mu    sync.Mutex
	pairs map[pairKey]time.Time // last exchange
}

// pairKey is an unordered pair of AMIDs: a is the smaller.
type pairKey struct{ a, b protocol.AMID }

func makePair(x, y protocol.AMID) pairKey {
	if y < x {
		x, y = y, x
	}
	return pairKey{x, y}
}

func newPairSet(window time.Duration) *pairSet {
	return &pairSet{window: window, pairs: make(map[pairKey]time.Time)}
}

// record notes a message between x and y at now.
func (p *pairSet) record(x, y protocol.AMID, now time.Time) {
	if x == y {
		return
	}
	k := makePair(x, y)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.pairs[k]; !ok && len(p.pairs) >= maxPairs {
		p.sweepLocked(now)
		if len(p.pairs) >= maxPairs {
			return
		}
	}
	p.pairs[k] = now
}

// related reports whether x and y exchanged a message within the window
// before now.
func (p *pairSet) related(x, y protocol.AMID, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	last, ok := p.pairs[makePair(x, y)]
	return ok && now.Sub(last) <= p.window
}

// sweep forgets pairs whose last exchange is older than the window.
func (p *pairSet) sweep(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweepLocked(now)
}

func (p *pairSet) sweepLocked(now time.Time) {
	for k, last := range p.pairs {
		if now.Sub(last) > p.window {
			delete(p.pairs, k)
		}
	}
}
