package relayserver

import (
	"sync"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// frameKind is a rate-limit budget.
type frameKind uint8

const (
	kindSend frameKind = iota
	kindKnock
	kindICE
	kindPresence
	kindControl
	numKinds
)

// rateWindow is the length of a rate-limit window.
const rateWindow = time.Minute

// limiter counts frames per AMID and kind in fixed one-minute windows, as
// the original relay does, except that the counts belong to the AMID rather
// than to a connection: reconnecting does not reset them. A window that has
// ended is the same as no window, so sweep can forget it.
type limiter struct {
	limits [numKinds]int // negative: unlimited

	mu      sync.Mutex
	windows map[limitKey]*window
}

type limitKey struct {
	amid protocol.AMID
	kind frameKind
}

type window struct {
	start time.Time
	count int
}

func newLimiter(l Limits) *limiter {
	lim := &limiter{windows: make(map[limitKey]*window)}
	lim.limits[kindSend] = l.SendsPerMinute
	lim.limits[kindKnock] = l.KnocksPerMinute
	lim.limits[kindICE] = l.ICEPerMinute
	lim.limits[kindPresence] = l.PresencePerMinute
	lim.limits[kindControl] = l.ControlPerMinute
	return lim
}

// allow counts one frame of kind from amid at now. When the budget is
// spent it returns false and the whole seconds until the window ends (at
// least 1).
func (l *limiter) allow(amid protocol.AMID, kind frameKind, now time.Time) (ok bool, retryAfter int) {
	max := l.limits[kind]
	if max < 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := limitKey{amid, kind}
	w := l.windows[k]
	if w == nil || now.Sub(w.start) >= rateWindow || now.Before(w.start) {
		w = &window{start: now}
		l.windows[k] = w
	}
	if w.count >= max {
		left := rateWindow - now.Sub(w.start)
		secs := int((left + time.Second - 1) / time.Second)
		return false, max1(secs)
	}
	w.count++
	return true, 0
}

// sweep forgets the windows that have ended.
func (l *limiter) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, w := range l.windows {
		if now.Sub(w.start) >= rateWindow {
			delete(l.windows, k)
		}
	}
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}
