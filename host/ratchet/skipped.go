package ratchet

import (
	"cmp"
	"slices"
)

// skippedID names a skipped message key: the remote ratchet key of its
// chain and its message number. The TypeScript SDK keys the same map by the
// string b64(dh) + ":" + n (PROTOCOL.md §4.2).
type skippedID struct {
	dh [keySize]byte
	n  uint32
}

// skippedEntry is a stored message key and its insertion number, which
// orders entries oldest first for trimming and serialisation.
type skippedEntry struct {
	mk  [keySize]byte
	seq uint64
}

// skippedKeys is MKSKIPPED: message keys of messages not yet received, in
// insertion order. Entries are pointers so that fmt, printing the map,
// shows addresses rather than keys.
type skippedKeys struct {
	m    map[skippedID]*skippedEntry
	next uint64
}

func newSkippedKeys() *skippedKeys {
	return &skippedKeys{m: make(map[skippedID]*skippedEntry)}
}

func (k *skippedKeys) len() int { return len(k.m) }

// get returns the key stored under id without removing it.
func (k *skippedKeys) get(id skippedID) (mk [keySize]byte, ok bool) {
	if len(k.m) == 0 {
		return mk, false
	}
	e, ok := k.m[id]
	if !ok {
		return mk, false
	}
	return e.mk, true
}

// remove deletes the key stored under id, overwriting it first.
func (k *skippedKeys) remove(id skippedID) {
	if e, ok := k.m[id]; ok {
		clear(e.mk[:])
		delete(k.m, id)
	}
}

// add stores the keys of messages first, first+1, … of the chain of dh,
// then trims as the TypeScript SDK does after every skip: once more than
// maxStoredSkipped keys are held, the oldest go until trimmedSkipped
// remain.
func (k *skippedKeys) add(dh [keySize]byte, first uint32, mks [][keySize]byte) {
	if len(mks) == 0 {
		return
	}
	for i := range mks {
		k.m[skippedID{dh, first + uint32(i)}] = &skippedEntry{mk: mks[i], seq: k.next}
		k.next++
	}
	if len(k.m) > maxStoredSkipped {
		ids := k.ordered()
		for _, id := range ids[:len(ids)-trimmedSkipped] {
			k.remove(id)
		}
	}
}

// ordered returns the ids, oldest first.
func (k *skippedKeys) ordered() []skippedID {
	ids := make([]skippedID, 0, len(k.m))
	for id := range k.m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b skippedID) int {
		return cmp.Compare(k.m[a].seq, k.m[b].seq)
	})
	return ids
}

// wipe overwrites and deletes every key.
func (k *skippedKeys) wipe() {
	for _, e := range k.m {
		clear(e.mk[:])
	}
	clear(k.m)
}
