package ledger

import (
	"sort"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// key is the sha2-256 digest of a block: every entry's CID is CIDv1, codec
// cbor, sha2-256, so the digest alone names it.
type key [32]byte

// cidPrefix is what precedes the digest in such a CID's bytes: version 1,
// codec cbor, multihash sha2-256, length 32.
var cidPrefix = [4]byte{0x01, CodecCBOR, mh.SHA2_256, 32}

// keyOf returns the digest of an entry CID; ok is false for any CID that
// cannot name an entry.
func keyOf(c cid.Cid) (k key, ok bool) {
	s := c.KeyString()
	if len(s) != len(cidPrefix)+len(k) || s[:len(cidPrefix)] != string(cidPrefix[:]) {
		return k, false
	}
	copy(k[:], s[len(cidPrefix):])
	return k, true
}

func (k key) cid() cid.Cid {
	m := make([]byte, 2+len(k))
	m[0], m[1] = mh.SHA2_256, byte(len(k))
	copy(m[2:], k[:])
	return cid.NewCidV1(CodecCBOR, m)
}

// vclock is a vector clock: for each author (by DID index), the highest seq
// of that author inside a causal past (raw), and the highest seq up to which
// the author's chain there is its winning chain (eff: equal to raw unless
// the past holds a losing equivocation). Sorted by author index. A vclock is
// never modified once built: merge and with return new slices.
type vclock []vcEntry

type vcEntry struct {
	ix       uint32
	raw, eff uint64
}

func (v vclock) get(ix uint32) (raw, eff uint64) {
	i := sort.Search(len(v), func(i int) bool { return v[i].ix >= ix })
	if i < len(v) && v[i].ix == ix {
		return v[i].raw, v[i].eff
	}
	return 0, 0
}

// merge returns the pointwise maximum of v and w.
func (v vclock) merge(w vclock) vclock {
	if len(v) == 0 {
		return w
	}
	if len(w) == 0 {
		return v
	}
	out := make(vclock, 0, max(len(v), len(w)))
	i, j := 0, 0
	for i < len(v) || j < len(w) {
		switch {
		case j == len(w) || (i < len(v) && v[i].ix < w[j].ix):
			out = append(out, v[i])
			i++
		case i == len(v) || w[j].ix < v[i].ix:
			out = append(out, w[j])
			j++
		default:
			out = append(out, vcEntry{v[i].ix, max(v[i].raw, w[j].raw), max(v[i].eff, w[j].eff)})
			i++
			j++
		}
	}
	return out
}

// with returns v with author ix raised to raw and eff.
func (v vclock) with(ix uint32, raw, eff uint64) vclock {
	return v.merge(vclock{{ix, raw, eff}})
}

// diff returns the components of v that base (a clock v dominates) lacks
// or holds with other values: v is base.merge(diff).
func (v vclock) diff(base vclock) vclock {
	var out vclock
	j := 0
	for _, e := range v {
		for j < len(base) && base[j].ix < e.ix {
			j++
		}
		if j == len(base) || base[j] != e {
			out = append(out, e)
		}
	}
	return out
}

// Clocks are most of a ledger's memory if kept whole: one component per
// author for every entry. An entry's clock is instead stored as its
// difference from one parent's clock (the parent that makes the difference
// smallest; with parents listing the current heads it is usually one or two
// components), and whole every maxClockDepth steps along such links, or when
// the difference is not much smaller. A bounded cache holds the clocks of
// recent entries whole, since new entries build on recent ones.
const (
	maxClockDepth = 32
	// clockCacheBudget bounds one generation of the cache, in components.
	clockCacheBudget = 1 << 15
)

// clockRef says where a record's clock is.
type clockRef struct {
	base  uint32 // the record whose clock this one extends, or noIx: whole
	off   uint32 // offset of the components in clocks.pool
	n     uint32
	depth uint8 // links to follow to reach a whole clock
}

type clocks struct {
	// budget and maxDepth are clockCacheBudget and maxClockDepth, except in
	// tests that shrink them to exercise the stored differences.
	budget   int
	maxDepth uint8
	pool     []vcEntry
	// Two generations: a lookup in old promotes; when cur is full, it
	// becomes old and old is dropped.
	cur, old map[uint32]vclock
	size     int
}

func newClocks(budget int, maxDepth uint8) clocks {
	return clocks{budget: budget, maxDepth: maxDepth, cur: map[uint32]vclock{}, old: map[uint32]vclock{}}
}

func (c *clocks) cached(i uint32) (vclock, bool) {
	if v, ok := c.cur[i]; ok {
		return v, true
	}
	if v, ok := c.old[i]; ok {
		c.remember(i, v)
		return v, true
	}
	return nil, false
}

func (c *clocks) remember(i uint32, v vclock) {
	c.cur[i] = v
	c.size += len(v) + 1
	if c.size > c.budget {
		c.old, c.cur, c.size = c.cur, map[uint32]vclock{}, 0
	}
}

func (c *clocks) stored(ref clockRef) vclock {
	return c.pool[ref.off : ref.off+ref.n : ref.off+ref.n]
}

// get returns the clock of record i (its causal past, itself included).
func (c *clocks) get(l *Ledger, i uint32) vclock {
	if v, ok := c.cached(i); ok {
		return v
	}
	var path []uint32
	var v vclock
	for j := i; ; {
		if cv, ok := c.cur[j]; ok && j != i {
			v = cv
			break
		}
		ref := l.recs[j].clock
		if ref.base == noIx {
			v = c.stored(ref)
			break
		}
		path = append(path, j)
		j = ref.base
	}
	for k := len(path) - 1; k >= 0; k-- {
		v = v.merge(c.stored(l.recs[path[k]].clock))
	}
	c.remember(i, v)
	return v
}

// put stores record i's clock vc, as a difference from one of its parents'
// when that is worth it.
func (c *clocks) put(l *Ledger, i uint32, vc vclock, parents []uint32) {
	best, bestDiff := noIx, vclock(nil)
	for _, p := range parents {
		if l.recs[p].clock.depth >= c.maxDepth {
			continue
		}
		d := vc.diff(c.get(l, p))
		if best == noIx || len(d) < len(bestDiff) {
			best, bestDiff = p, d
		}
	}
	ref := clockRef{base: noIx, off: uint32(len(c.pool))}
	if best == noIx || 2*len(bestDiff) > len(vc) {
		c.pool = append(c.pool, vc...)
		ref.n = uint32(len(vc))
	} else {
		c.pool = append(c.pool, bestDiff...)
		ref.base, ref.n, ref.depth = best, uint32(len(bestDiff)), l.recs[best].clock.depth+1
	}
	l.recs[i].clock = ref
	c.remember(i, vc)
}

// prefix holds running totals of one author's postings to one account, in
// seq order.
type prefix struct {
	seqs []uint64
	sums []int64
}

func (p *prefix) add(seq uint64, amount int64) {
	total := amount
	if n := len(p.sums); n > 0 {
		total += p.sums[n-1]
		if p.seqs[n-1] == seq {
			p.sums[n-1] = total
			return
		}
	}
	p.seqs = append(p.seqs, seq)
	p.sums = append(p.sums, total)
}

// upTo is the total of the postings with seq at most s.
func (p *prefix) upTo(s uint64) int64 {
	i := sort.Search(len(p.seqs), func(i int) bool { return p.seqs[i] > s })
	if i == 0 {
		return 0
	}
	return p.sums[i-1]
}
