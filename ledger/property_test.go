package ledger

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
)

// Replicas that receive the same entries in different orders end with the
// same state, and the invariants hold on each.
func TestReplicasConvergeInAnyOrder(t *testing.T) {
	for seed := uint64(1); seed <= 60; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		sc := genScenario(t, r, 2+r.IntN(5), 20+r.IntN(80))
		n := len(sc.entries)
		base := replay(sc.entries, identity(n))
		checkInvariants(t, base)
		acc, quar, pend := base.Counts()
		require.Zero(t, pend, "seed %d: entries left pending with a complete history", seed)
		require.Equal(t, n, acc+quar)
		for rep := 0; rep < 5; rep++ {
			order := r.Perm(n)
			l := replay(sc.entries, order)
			if rep%2 == 1 {
				// A cache that holds almost nothing and short links: every
				// clock is rebuilt from stored differences.
				l = replayWith(newSmallClocks(), sc.entries, order)
			}
			require.Equal(t, base.StateHash(), l.StateHash(), "seed %d replica %d", seed, rep)
			require.Equal(t, base.Balances(), l.Balances(), "seed %d replica %d", seed, rep)
			require.Equal(t, base.Heads(), l.Heads(), "seed %d replica %d", seed, rep)
			require.Equal(t, quarantinedSet(base), quarantinedSet(l), "seed %d replica %d", seed, rep)
			checkInvariants(t, l)
		}
		// And the incremental engine computes exactly the definition.
		ref := reference(sc.entries)
		for _, v := range sc.entries {
			st, _ := base.Status(v.CID)
			require.Equal(t, ref[v.CID], st == StatusAccepted, "seed %d: %s", seed, v.CID)
		}
	}
}

// Invariants hold after every single Add, not only at the end.
func TestInvariantsHoldAtEveryStep(t *testing.T) {
	for seed := uint64(100); seed < 110; seed++ {
		r := rand.New(rand.NewPCG(seed, 9))
		sc := genScenario(t, r, 4, 60)
		l := New()
		for _, i := range r.Perm(len(sc.entries)) {
			l.Add(sc.entries[i])
			checkInvariants(t, l)
		}
	}
}

func identity(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func quarantinedSet(l *Ledger) []string {
	var out []string
	for _, q := range l.Quarantine() {
		out = append(out, q.CID.String())
	}
	slices.Sort(out)
	return out
}

// reference evaluates the four rules of the package comment literally, with
// explicit causal-past sets: slow, obviously correct, for small histories.
func reference(entries []*Verified) map[cid.Cid]bool {
	byCID := map[cid.Cid]*Verified{}
	for _, v := range entries {
		byCID[v.CID] = v
	}
	// Topological order: repeatedly take entries whose parents are done.
	done := map[cid.Cid]bool{}
	var order []*Verified
	for len(order) < len(entries) {
		progress := false
		for _, v := range entries {
			if done[v.CID] {
				continue
			}
			ready := true
			for _, p := range entryParents(v.Entry) {
				if !done[p] {
					ready = false
				}
			}
			if ready {
				done[v.CID] = true
				order = append(order, v)
				progress = true
			}
		}
		if !progress {
			break // incomplete causal pasts: not in the set
		}
	}
	isLoser := func(v *Verified) bool {
		for _, o := range entries {
			if done[o.CID] && o.CID != v.CID && o.Entry.Author == v.Entry.Author && o.Entry.Seq == v.Entry.Seq && cidLess(o.CID, v.CID) {
				return true
			}
		}
		return false
	}
	accepted := map[cid.Cid]bool{}
	past := map[cid.Cid]map[cid.Cid]bool{}
	for _, v := range order {
		e := v.Entry
		p := map[cid.Cid]bool{}
		for _, par := range entryParents(e) {
			p[par] = true
			for c := range past[par] {
				p[c] = true
			}
		}
		past[v.CID] = p
		// 1. equivocation loser; 2. prev chain through a loser
		if isLoser(v) {
			continue
		}
		tainted := false
		for c := e.Prev; c.Defined(); c = byCID[c].Entry.Prev {
			if isLoser(byCID[c]) {
				tainted = true
			}
		}
		if tainted {
			continue
		}
		// 3. rules on the accepted part of the causal past
		if e.Prev.Defined() {
			pe := byCID[e.Prev].Entry
			if pe.Author != e.Author || pe.Seq != e.Seq-1 {
				continue
			}
		}
		maxOwn := uint64(0)
		for c := range p {
			if o := byCID[c].Entry; o.Author == e.Author && o.Seq > maxOwn {
				maxOwn = o.Seq
			}
		}
		if maxOwn != e.Seq-1 {
			continue
		}
		defs := map[CurrencyID]int64{}
		bal := map[refAcct]int64{}
		for c := range p {
			if !accepted[c] {
				continue
			}
			o := byCID[c].Entry
			if o.Kind == KindCurrency {
				defs[CurrencyID{o.Currency.Symbol, o.Author}] = o.Currency.CreditLimit
			}
			for _, po := range o.Postings {
				bal[refAcct{po.Account, po.Currency}] += po.Amount
			}
		}
		ok := true
		switch e.Kind {
		case KindCurrency:
			if _, dup := defs[CurrencyID{e.Currency.Symbol, e.Author}]; dup {
				ok = false
			}
		case KindTransfer:
			net := map[CurrencyID]int64{}
			for _, po := range e.Postings {
				if _, known := defs[po.Currency]; !known {
					ok = false
				}
				if po.Account == e.Author {
					net[po.Currency] += po.Amount
				}
			}
			for cur, d := range net {
				if ok && d < 0 && bal[refAcct{e.Author, cur}]+d < -defs[cur] {
					ok = false
				}
			}
		}
		accepted[v.CID] = ok
	}
	return accepted
}

type refAcct struct {
	acct did.DID
	cur  CurrencyID
}

func entryParents(e *Entry) []cid.Cid {
	if !e.Prev.Defined() {
		return e.Parents
	}
	return append([]cid.Cid{e.Prev}, e.Parents...)
}
