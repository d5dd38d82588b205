package registryserver

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiterSet is a token bucket per key (a client address, a requester and
// target pair…): each key may spend burst tokens at once and regains n
// tokens per period. Buckets idle long enough to be full again are
// forgotten, so the set stays as small as its active keys.
type limiterSet struct {
	limit rate.Limit
	burst int
	idle  time.Duration // a bucket unused this long is full again

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newLimiterSet(n int, period time.Duration, burst int) *limiterSet {
	lim := rate.Limit(float64(n) / period.Seconds())
	return &limiterSet{
		limit:   lim,
		burst:   burst,
		idle:    time.Duration(float64(burst)/float64(lim)*float64(time.Second)) + time.Second,
		buckets: make(map[string]*bucket),
	}
}

// allow spends one token of key's bucket at time now, reporting whether
// there was one.
func (ls *limiterSet) allow(key string, now time.Time) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if now.Sub(ls.swept) > ls.idle {
		for k, b := range ls.buckets {
			if now.Sub(b.last) > ls.idle {
				delete(ls.buckets, k)
			}
		}
		ls.swept = now
	}
	b, ok := ls.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(ls.limit, ls.burst)}
		ls.buckets[key] = b
	}
	b.last = now
	return b.lim.AllowN(now, 1)
}
