package relay

import "sync"

// arrival is what the dedup set knows of a stored message's id.
type arrival int

const (
	// arrivalNew: never seen; deliver it.
	arrivalNew arrival = iota
	// arrivalQueued: an earlier copy waits in the receive queue and will be
	// acknowledged when the application takes it; drop this one.
	arrivalQueued
	// arrivalTaken: the application already has it; drop this one and
	// acknowledge again, since the earlier acknowledgement was lost.
	arrivalTaken
)

// dedupSet remembers the ids of the most recent stored messages, evicting
// the oldest beyond its capacity.
type dedupSet struct {
	mu    sync.Mutex
	max   int
	taken map[string]bool // id → taken by the application
	order []string        // ring of ids, oldest at head
	head  int
}

func newDedupSet(max int) *dedupSet {
	return &dedupSet{max: max, taken: make(map[string]bool)}
}

// arrive records a delivery of id and reports what to do with it.
func (d *dedupSet) arrive(id string) arrival {
	d.mu.Lock()
	defer d.mu.Unlock()
	if taken, ok := d.taken[id]; ok {
		if taken {
			return arrivalTaken
		}
		return arrivalQueued
	}
	if len(d.order) < d.max {
		d.order = append(d.order, id)
	} else {
		delete(d.taken, d.order[d.head])
		d.order[d.head] = id
		d.head = (d.head + 1) % d.max
	}
	d.taken[id] = false
	return arrivalNew
}

// take records that the application received id.
func (d *dedupSet) take(id string) {
	d.mu.Lock()
	if _, ok := d.taken[id]; ok {
		d.taken[id] = true
	}
	d.mu.Unlock()
}
