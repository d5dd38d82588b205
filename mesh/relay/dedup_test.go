package relay

import (
	"strconv"
	"testing"
)

func TestDedupSet(t *testing.T) {
	d := newDedupSet(3)
	for i := range 3 {
		if got := d.arrive(strconv.Itoa(i)); got != arrivalNew {
			t.Fatalf("first arrival of %d: %v, want new", i, got)
		}
	}
	if got := d.arrive("1"); got != arrivalQueued {
		t.Errorf("repeat of a queued id: %v, want queued", got)
	}
	d.take("1")
	if got := d.arrive("1"); got != arrivalTaken {
		t.Errorf("repeat of a taken id: %v, want taken", got)
	}
	d.take("unknown") // must not add it
	if got := d.arrive("3"); got != arrivalNew {
		t.Errorf("new id: %v", got)
	}
	// "0", the oldest, was evicted to make room for "3"; the rest remain.
	if got := d.arrive("0"); got != arrivalNew {
		t.Errorf("evicted id: %v, want new", got)
	}
	if got := d.arrive("3"); got != arrivalQueued {
		t.Errorf("recent id: %v, want queued", got)
	}
	if len(d.taken) != 3 || len(d.order) != 3 {
		t.Errorf("set holds %d ids in a ring of %d, want 3 and 3", len(d.taken), len(d.order))
	}
}
