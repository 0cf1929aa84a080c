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
// if set, is called as blocks are checked.
func (s *Store) Verify(ctx context.Context, progress func(done, total int)) (Report, error) {
	var rep Report
	total := int(s.Count())
	res, err := s.ds.Query(ctx, dsq.Query{Prefix: orderPrefix.String(), Orders: []dsq.Order{dsq.OrderByKey{}}})
	if err != nil {
		return rep, err
	}
	defer res.Close()
	// Blocks are read, checked and replayed a chunk at a time, so verifying
	// holds one chunk of blocks in memory, not the whole ledger.
	const chunk = 1024
	fresh := ledger.New()
	blocks := make([][]byte, 0, chunk)
	want := make([]cid.Cid, 0, chunk)
	checked := 0
	flush := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		verified := make([]*ledger.Verified, len(blocks))
		results := make([]Result, len(blocks))
		s.verifyAll(blocks, want, verified, results)
		for i, v := range verified {
			if v == nil {
				rep.Problems = append(rep.Problems, fmt.Sprintf("block %s: %v", want[i], results[i].Err))
				continue
			}
			fresh.Add(v)
		}
		checked += len(blocks)
		rep.Blocks = checked
		if progress != nil {
			progress(checked, total)
		}
		blocks, want = blocks[:0], want[:0]
		return nil
	}
	for r := range res.Next() {
		if r.Error != nil {
			return rep, r.Error
		}
		_, c, err := cid.CidFromBytes(r.Value)
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("order entry %s: %v", r.Key, err))
			continue
		}
		b, err := s.ds.Get(ctx, blockKey(c))
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("block %s: %v", c, err))
			continue
		}
		blocks, want = append(blocks, b), append(want, c)
		if len(blocks) == chunk {
			if err := flush(); err != nil {
				return rep, err
			}
		}
	}
	if err := flush(); err != nil {
		return rep, err
	}
	rep.Accepted, rep.Quarantined, rep.Pending = fresh.Counts()
	h := fresh.StateHash()
	rep.StateHash = fmt.Sprintf("%x", h)
	s.Read(func(live *ledger.Ledger) {
		if live.StateHash() != h {
			rep.Problems = append(rep.Problems, "the state rebuilt from disk differs from the running state")
		}
	})
	rep.Problems = append(rep.Problems, Invariants(fresh)...)
	return rep, nil
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
