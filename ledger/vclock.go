package ledger

import "sort"

// vclock is a vector clock: for each author (by index), the highest seq of
// that author inside a causal past (raw), and the highest seq up to which the
// author's chain there is its winning chain (eff: equal to raw unless the
// past holds a losing equivocation). Sorted by author index.
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

// merge returns the pointwise maximum of v and w (a new slice).
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

// with returns v with author ix raised to raw and eff (a new slice).
func (v vclock) with(ix uint32, raw, eff uint64) vclock {
	return v.merge(vclock{{ix, raw, eff}})
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
