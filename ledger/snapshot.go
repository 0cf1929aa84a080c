package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/ipfs/go-cid"

	"github.com/intercooperative/icn/did"
)

// A snapshot is the derived state of a ledger in binary, so a store can
// reopen without decoding and re-evaluating every entry: records, pools,
// clocks, balances, indexes. Entries still pending are not in it: the store
// adds them again from their blocks (PendingCIDs). The format is private to
// this package and versioned; a snapshot of another version, or one whose
// checksum fails, is refused and the store replays its blocks instead.
//
// snapshotVersion changes whenever the format or any rule that derives
// state changes, so a snapshot never carries state an older rule derived.
// Version 2 added the display form of currency definitions.
const snapshotVersion = 2

// ErrSnapshot means a snapshot cannot be used: another version, corrupt or
// truncated.
var ErrSnapshot = errors.New("unusable ledger snapshot")

// MarshalBinary returns a snapshot of the ledger (pending entries aside).
func (l *Ledger) MarshalBinary() ([]byte, error) {
	var w snapWriter
	w.u32(snapshotVersion)
	w.u32(uint32(len(l.ids)))
	for _, d := range l.ids {
		w.raw(d.PublicKey())
	}
	w.u32(uint32(len(l.curs)))
	for _, c := range l.curs {
		iss, ok := l.idIx[c.Issuer]
		if !ok {
			return nil, fmt.Errorf("currency %s: issuer not interned", c)
		}
		w.str(c.Symbol)
		w.u32(iss)
	}
	w.u32(uint32(len(l.recs)))
	for i := range l.recs {
		r := &l.recs[i]
		w.raw(r.key[:])
		w.u64(r.seq)
		w.u32(r.author)
		w.u32(r.prev)
		w.u32(r.par)
		w.u32(r.post)
		w.u32(r.clock.base)
		w.u32(r.clock.off)
		w.u32(r.clock.n)
		w.raw([]byte{r.clock.depth, r.npar, r.npost, byte(r.kind), byte(r.status), r.flags})
	}
	w.u32(uint32(len(l.parents)))
	for _, p := range l.parents {
		w.u32(p)
	}
	w.u32(uint32(len(l.posts)))
	for _, p := range l.posts {
		w.u32(p.acct)
		w.u32(p.cur)
		w.u64(uint64(p.amount))
	}
	w.u32(uint32(len(l.defs)))
	for i, d := range l.defs {
		w.u32(i)
		w.def(d)
	}
	w.u32(uint32(len(l.reasons)))
	for i, r := range l.reasons {
		w.u32(i)
		w.str(r)
	}
	w.u32(uint32(len(l.clocks.pool)))
	for _, e := range l.clocks.pool {
		w.u32(e.ix)
		w.u64(e.raw)
		w.u64(e.eff)
	}
	w.u32(uint32(len(l.authors)))
	for ix, a := range l.authors {
		w.u32(ix)
		w.u64(a.top)
		w.raw(a.digest[:])
		w.u32(uint32(len(a.chain)))
		for _, i := range a.chain {
			w.u32(i)
		}
		w.u32(uint32(len(a.far)))
		for s, i := range a.far {
			w.u64(s)
			w.u32(i)
		}
		w.u32(uint32(len(a.twins)))
		for s, is := range a.twins {
			w.u64(s)
			w.u32(uint32(len(is)))
			for _, i := range is {
				w.u32(i)
			}
		}
	}
	w.u32(uint32(len(l.balances)))
	for k, v := range l.balances {
		w.u32(k.acct)
		w.u32(k.cur)
		w.u64(uint64(v))
	}
	w.u32(uint32(len(l.credits)))
	for k, byAuthor := range l.credits {
		w.u32(k.acct)
		w.u32(k.cur)
		w.u32(uint32(len(byAuthor)))
		for ix, p := range byAuthor {
			w.u32(ix)
			w.u32(uint32(len(p.seqs)))
			for j := range p.seqs {
				w.u64(p.seqs[j])
				w.u64(uint64(p.sums[j]))
			}
		}
	}
	w.u32(uint32(len(l.currencies)))
	for cur, cs := range l.currencies {
		w.u32(cur)
		w.def(cs.def)
		w.u64(cs.seq)
		w.u32(cs.entry)
	}
	w.u32(uint32(len(l.heads)))
	for i := range l.heads {
		w.u32(i)
	}
	w.u64(uint64(l.accepted))
	w.u64(uint64(l.transfers))
	sum := sha256.Sum256(w.b)
	return append(w.b, sum[:]...), nil
}

// Restore rebuilds a ledger from a snapshot. Indexes into tables are
// checked, so a snapshot that passes its checksum but was built wrongly
// fails with ErrSnapshot rather than a panic later.
func Restore(data []byte) (*Ledger, error) {
	if len(data) < sha256.Size {
		return nil, fmt.Errorf("%w: %d bytes", ErrSnapshot, len(data))
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(body); string(got[:]) != string(sum) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrSnapshot)
	}
	r := &snapReader{b: body}
	if v := r.u32(); v != snapshotVersion {
		return nil, fmt.Errorf("%w: version %d, this node reads %d", ErrSnapshot, v, snapshotVersion)
	}
	l := New()
	for n := r.count(32); n > 0 && r.err == nil; n-- {
		d, err := did.FromPublicKey(r.raw(32))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSnapshot, err)
		}
		l.intern(d)
	}
	ids := uint32(len(l.ids))
	for n := r.count(8); n > 0 && r.err == nil; n-- {
		sym := r.str()
		iss := r.index(ids)
		if r.err != nil {
			break
		}
		l.internCur(CurrencyID{Symbol: sym, Issuer: l.ids[iss]})
	}
	curs := uint32(len(l.curs))
	nrecs := r.count(74)
	l.recs = make([]rec, 0, nrecs)
	for i := 0; i < nrecs && r.err == nil; i++ {
		var x rec
		copy(x.key[:], r.raw(32))
		x.seq = r.u64()
		x.author = r.index(ids)
		x.prev = r.u32()
		x.par, x.post = r.u32(), r.u32()
		x.clock.base, x.clock.off, x.clock.n = r.u32(), r.u32(), r.u32()
		b := r.raw(6)
		if r.err != nil {
			break
		}
		x.clock.depth, x.npar, x.npost, x.kind, x.status, x.flags = b[0], b[1], b[2], Kind(b[3]), Status(b[4]), b[5]
		l.recs = append(l.recs, x)
		l.byKey.add(l.recs, &x.key, uint32(i))
	}
	recs := uint32(len(l.recs))
	l.parents = make([]uint32, r.count(4))
	for i := range l.parents {
		l.parents[i] = r.index(recs)
	}
	l.posts = make([]post, r.count(16))
	for i := range l.posts {
		l.posts[i] = post{r.index(ids), r.index(curs), int64(r.u64())}
	}
	for n := r.count(14); n > 0 && r.err == nil; n-- {
		i := r.index(recs)
		l.defs[i] = r.def()
	}
	for n := r.count(8); n > 0 && r.err == nil; n-- {
		i := r.index(recs)
		l.reasons[i] = r.str()
	}
	l.clocks.pool = make([]vcEntry, r.count(20))
	for i := range l.clocks.pool {
		l.clocks.pool[i] = vcEntry{r.index(ids), r.u64(), r.u64()}
	}
	for n := r.count(48); n > 0 && r.err == nil; n-- {
		a := l.author(r.index(ids))
		a.top = r.u64()
		copy(a.digest[:], r.raw(32))
		a.chain = make([]uint32, r.count(4))
		for i := range a.chain {
			if a.chain[i] = r.u32(); a.chain[i] != noIx && a.chain[i] >= recs {
				r.fail("chain entry out of range")
			}
		}
		for m := r.count(12); m > 0 && r.err == nil; m-- {
			if a.far == nil {
				a.far = map[uint64]uint32{}
			}
			s := r.u64()
			a.far[s] = r.index(recs)
		}
		for m := r.count(12); m > 0 && r.err == nil; m-- {
			if a.twins == nil {
				a.twins = map[uint64][]uint32{}
			}
			s := r.u64()
			is := make([]uint32, r.count(4))
			for i := range is {
				is[i] = r.index(recs)
			}
			a.twins[s] = is
		}
	}
	for n := r.count(16); n > 0 && r.err == nil; n-- {
		k := acctCur{r.index(ids), r.index(curs)}
		l.balances[k] = int64(r.u64())
	}
	for n := r.count(12); n > 0 && r.err == nil; n-- {
		k := acctCur{r.index(ids), r.index(curs)}
		byAuthor := map[uint32]*prefix{}
		for m := r.count(8); m > 0 && r.err == nil; m-- {
			ix := r.index(ids)
			p := &prefix{}
			for j := r.count(16); j > 0 && r.err == nil; j-- {
				p.seqs = append(p.seqs, r.u64())
				p.sums = append(p.sums, int64(r.u64()))
			}
			byAuthor[ix] = p
		}
		l.credits[k] = byAuthor
	}
	for n := r.count(29); n > 0 && r.err == nil; n-- {
		cur := r.index(curs)
		l.currencies[cur] = currencyState{def: r.def(), seq: r.u64(), entry: r.index(recs)}
	}
	for n := r.count(4); n > 0 && r.err == nil; n-- {
		l.heads[r.index(recs)] = struct{}{}
	}
	l.accepted, l.transfers = int(r.u64()), int(r.u64())
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err == nil {
		r.err = l.checkRefs()
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSnapshot, r.err)
	}
	return l, nil
}

// checkRefs checks that the records' offsets stay inside the pools.
func (l *Ledger) checkRefs() error {
	n := uint64(len(l.recs))
	for i := range l.recs {
		r := &l.recs[i]
		switch {
		case r.prev != noIx && uint64(r.prev) >= n:
			return fmt.Errorf("record %d: prev out of range", i)
		case uint64(r.par)+uint64(r.npar) > uint64(len(l.parents)):
			return fmt.Errorf("record %d: parents out of range", i)
		case uint64(r.post)+uint64(r.npost) > uint64(len(l.posts)):
			return fmt.Errorf("record %d: postings out of range", i)
		case uint64(r.clock.off)+uint64(r.clock.n) > uint64(len(l.clocks.pool)):
			return fmt.Errorf("record %d: clock out of range", i)
		case r.clock.base != noIx && uint64(r.clock.base) >= uint64(i):
			return fmt.Errorf("record %d: clock base out of range", i)
		case r.status > StatusQuarantined:
			return fmt.Errorf("record %d: status %d", i, r.status)
		}
	}
	if l.accepted < 0 || l.accepted > len(l.recs) || l.transfers < 0 || l.transfers > l.accepted {
		return errors.New("counts out of range")
	}
	return nil
}

// PendingCIDs lists the entries waiting for parents, which a snapshot
// leaves out.
func (l *Ledger) PendingCIDs() []cid.Cid {
	out := make([]cid.Cid, 0, len(l.pending))
	for k := range l.pending {
		out = append(out, k.cid())
	}
	SortCIDs(out)
	return out
}

type snapWriter struct{ b []byte }

func (w *snapWriter) raw(p []byte) { w.b = append(w.b, p...) }
func (w *snapWriter) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *snapWriter) u64(v uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *snapWriter) str(s string) { w.u32(uint32(len(s))); w.b = append(w.b, s...) }
func (w *snapWriter) def(d CurrencyDef) {
	w.str(d.Symbol)
	w.raw([]byte{d.Decimals})
	w.u64(uint64(d.CreditLimit))
	w.str(d.Display)
}

// snapReader reads what snapWriter wrote; the first error sticks and every
// later read returns zeros.
type snapReader struct {
	b   []byte
	err error
}

func (r *snapReader) fail(why string) {
	if r.err == nil {
		r.err = errors.New(why)
	}
	r.b = nil
}

func (r *snapReader) raw(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.fail("truncated")
		return make([]byte, n)
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *snapReader) u32() uint32 { return binary.LittleEndian.Uint32(r.raw(4)) }
func (r *snapReader) u64() uint64 { return binary.LittleEndian.Uint64(r.raw(8)) }

// count reads a length whose items take at least min bytes each, and
// refuses one the rest of the snapshot cannot hold.
func (r *snapReader) count(min int) int {
	n := r.u32()
	if uint64(n)*uint64(min) > uint64(len(r.b)) || n > math.MaxInt32 {
		r.fail("length beyond the end")
		return 0
	}
	return int(n)
}

// index reads an index that must be below n.
func (r *snapReader) index(n uint32) uint32 {
	v := r.u32()
	if v >= n {
		r.fail("index out of range")
		return 0
	}
	return v
}

func (r *snapReader) str() string { return string(r.raw(r.count(1))) }

func (r *snapReader) def() CurrencyDef {
	d := CurrencyDef{Symbol: r.str()}
	d.Decimals = r.raw(1)[0]
	d.CreditLimit = int64(r.u64())
	d.Display = r.str()
	return d
}
