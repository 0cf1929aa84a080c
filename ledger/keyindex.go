package ledger

import "hash/maphash"

// keyIndex finds a record by its digest: an open-addressing hash table of
// record indexes that compares against the records' own keys, so a slot
// costs 4 bytes instead of a map entry's copy of the 32-byte key. The hash
// is seeded per process, so nobody can grind entries whose digests pile up
// in one run of slots.
type keyIndex struct {
	seed  maphash.Seed
	slots []uint32 // record index + 1; 0 is empty
	n     int
}

func newKeyIndex() keyIndex { return keyIndex{seed: maphash.MakeSeed()} }

func (x *keyIndex) slot(k *key) int { return int(maphash.Bytes(x.seed, k[:]) & uint64(len(x.slots)-1)) }

// find returns the index of the record with key k.
func (x *keyIndex) find(recs []rec, k *key) (uint32, bool) {
	if len(x.slots) == 0 {
		return noIx, false
	}
	mask := len(x.slots) - 1
	for s := x.slot(k); ; s = (s + 1) & mask {
		v := x.slots[s]
		if v == 0 {
			return noIx, false
		}
		if recs[v-1].key == *k {
			return v - 1, true
		}
	}
}

// add records that recs[i] has key k; k must not be present yet.
func (x *keyIndex) add(recs []rec, k *key, i uint32) {
	if 2*(x.n+1) > len(x.slots) {
		old := x.slots
		x.slots = make([]uint32, max(64, 2*len(old)))
		for _, v := range old {
			if v != 0 {
				x.put(&recs[v-1].key, v)
			}
		}
	}
	x.put(k, i+1)
	x.n++
}

func (x *keyIndex) put(k *key, v uint32) {
	mask := len(x.slots) - 1
	s := x.slot(k)
	for x.slots[s] != 0 {
		s = (s + 1) & mask
	}
	x.slots[s] = v
}
