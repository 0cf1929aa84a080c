package store

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"
	dsq "github.com/ipfs/go-datastore/query"

	"github.com/intercooperative/icn/ledger"
)

// Report is the outcome of a full verification.
type Report struct {
	Blocks      int      `json:"blocks"`
	Accepted    int      `json:"accepted"`
	Quarantined int      `json:"quarantined"`
	Pending     int      `json:"pending"`
	StateHash   string   `json:"state_hash"`
	Problems    []string `json:"problems"`
}

// OK reports whether verification found no problem.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// Verify walks every stored block: it re-hashes it against its CID, decodes
// it, re-checks its signature and static rules, replays everything into a
// fresh ledger, and checks that the result equals the live state and that
// balances sum to zero per currency and respect the credit limits. progress,
// if set, is called as blocks are checked. The store keeps taking in
// entries meanwhile: those stored while Verify runs are checked too, the
// last of them under the store's lock, so the rebuilt state and the live
// one cover the same blocks when they are compared.
func (s *Store) Verify(ctx context.Context, progress func(done, total int)) (Report, error) {
	v := &verifyRun{s: s, fresh: ledger.New(), progress: progress}
	if err := v.pass(ctx, s.Count()); err != nil {
		return v.rep, err
	}
	// What came in during the first pass, without holding up ingest.
	if err := v.pass(ctx, s.Count()); err != nil {
		return v.rep, err
	}
	// The rest, with every commit in flight applied and ingest waiting
	// (progress is not reported under the lock: a slow reader of it must
	// not hold up ingest).
	v.progress = nil
	s.mu.Lock()
	for len(s.inflight) > 0 {
		s.applied.Wait()
	}
	err := v.pass(ctx, s.stored)
	if err == nil && s.led.StateHash() != v.fresh.StateHash() {
		v.rep.Problems = append(v.rep.Problems, "the state rebuilt from disk differs from the running state")
	}
	s.mu.Unlock()
	if err != nil {
		return v.rep, err
	}
	if progress != nil {
		progress(v.rep.Blocks, v.rep.Blocks)
	}
	rep := v.rep
	rep.Accepted, rep.Quarantined, rep.Pending = v.fresh.Counts()
	rep.StateHash = fmt.Sprintf("%x", v.fresh.StateHash())
	rep.Problems = append(rep.Problems, Invariants(v.fresh)...)
	return rep, nil
}

// verifyRun is one Verify: the ledger rebuilt so far and the last arrival
// key replayed into it.
type verifyRun struct {
	s        *Store
	fresh    *ledger.Ledger
	rep      Report
	last     string // the last order key read; "" before the first
	progress func(done, total int)
}

// pass reads, checks and replays the blocks after v.last in arrival order,
// a chunk at a time, so verifying holds one chunk of blocks in memory, not
// the whole ledger. total is how many blocks the store holds, for progress.
// It must not take s.mu: the last pass runs under it.
func (v *verifyRun) pass(ctx context.Context, total uint64) error {
	s := v.s
	q := dsq.Query{Prefix: orderPrefix.String(), Orders: []dsq.Order{dsq.OrderByKey{}}}
	if v.last != "" {
		q.Filters = []dsq.Filter{dsq.FilterKeyCompare{Op: dsq.GreaterThan, Key: v.last}}
	}
	res, err := s.ds.Query(ctx, q)
	if err != nil {
		return err
	}
	defer res.Close()
	const chunk = 1024
	blocks := make([][]byte, 0, chunk)
	want := make([]cid.Cid, 0, chunk)
	flush := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		verified := make([]*ledger.Verified, len(blocks))
		results := make([]Result, len(blocks))
		s.verifyAll(blocks, want, verified, results)
		for i, ve := range verified {
			if ve == nil {
				v.rep.Problems = append(v.rep.Problems, fmt.Sprintf("block %s: %v", want[i], results[i].Err))
				continue
			}
			v.fresh.Add(ve)
		}
		v.rep.Blocks += len(blocks)
		if v.progress != nil && len(blocks) > 0 {
			v.progress(v.rep.Blocks, max(v.rep.Blocks, int(total)))
		}
		blocks, want = blocks[:0], want[:0]
		return nil
	}
	for r := range res.Next() {
		if r.Error != nil {
			return r.Error
		}
		v.last = r.Key
		_, c, err := cid.CidFromBytes(r.Value)
		if err != nil {
			v.rep.Problems = append(v.rep.Problems, fmt.Sprintf("order entry %s: %v", r.Key, err))
			continue
		}
		b, err := s.ds.Get(ctx, blockKey(c))
		if err != nil {
			v.rep.Problems = append(v.rep.Problems, fmt.Sprintf("block %s: %v", c, err))
			continue
		}
		blocks, want = append(blocks, b), append(want, c)
		if len(blocks) == chunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// Invariants checks that per currency the balances sum to zero and that no
// balance is below its currency's credit limit; it returns the violations.
func Invariants(l *ledger.Ledger) []string {
	var problems []string
	sums := map[ledger.CurrencyID]int64{}
	for _, b := range l.Balances() {
		sums[b.Currency] += b.Units
		cur, ok := l.LookupCurrency(b.Currency)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s holds %d of unknown currency %s", b.Account, b.Units, b.Currency))
			continue
		}
		if b.Units < -cur.Def.CreditLimit {
			problems = append(problems, fmt.Sprintf("%s is at %d in %s, below its limit -%d", b.Account, b.Units, b.Currency.Symbol, cur.Def.CreditLimit))
		}
	}
	for c, s := range sums {
		if s != 0 {
			problems = append(problems, fmt.Sprintf("balances in %s sum to %d, not zero", c, s))
		}
	}
	return problems
}
