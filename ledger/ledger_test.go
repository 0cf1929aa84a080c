package ledger

import (
	"math/rand/v2"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"
)

// carol equivocates: she pays alice with one twin and bob with the other.
// Three replicas see the twins in different orders and pick the same
// winner; an honest entry that only referenced the loser stays accepted,
// one that spent the loser's credit does not, and its author carries on.
func TestEquivocationSameWinnerEverywhere(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	alice, bob, carol := newMember(t, r), newMember(t, r), newMember(t, r)
	def := sign(t, alice, &Entry{Seq: 1, Kind: KindCurrency, Currency: &CurrencyDef{Symbol: "hours", CreditLimit: 100}})
	cur := CurrencyID{"hours", alice.id}
	c1 := sign(t, carol, &Entry{Seq: 1, Parents: []cid.Cid{def.CID}, Kind: KindTransfer, Postings: pay(carol.id, alice.id, cur, 100)})
	c1b := sign(t, carol, &Entry{Seq: 1, Parents: []cid.Cid{def.CID}, Kind: KindTransfer, Postings: pay(carol.id, bob.id, cur, 100)})
	winner, loser := c1, c1b
	if cidLess(c1b.CID, c1.CID) {
		winner, loser = c1b, c1
	}
	// Whoever the loser paid spends that credit; the other only saw the loser.
	paidByLoser := alice
	if loser.Entry.Postings[1].Account == bob.id {
		paidByLoser = bob
	}
	other := alice
	if paidByLoser.id == alice.id {
		other = bob
	}
	// The one paid by the loser spends 150: only possible with that credit.
	var spendPrev cid.Cid
	spendSeq := uint64(1)
	if paidByLoser.id == alice.id {
		spendPrev, spendSeq = def.CID, 2
	}
	spend := sign(t, paidByLoser, &Entry{Seq: spendSeq, Prev: spendPrev, Parents: without(sortedCIDs(loser.CID, def.CID), spendPrev), Kind: KindTransfer, Postings: pay(paidByLoser.id, carol.id, cur, 150)})
	// The other merely knew about the loser and pays 10 of its own credit.
	var refPrev cid.Cid
	refSeq := uint64(1)
	if other.id == alice.id {
		refPrev, refSeq = def.CID, 2
	}
	ref := sign(t, other, &Entry{Seq: refSeq, Prev: refPrev, Parents: without(sortedCIDs(loser.CID, def.CID), refPrev), Kind: KindTransfer, Postings: pay(other.id, carol.id, cur, 10)})
	// The spender carries on with a payment within its own limit.
	after := sign(t, paidByLoser, &Entry{Seq: spendSeq + 1, Prev: spend.CID, Kind: KindTransfer, Postings: pay(paidByLoser.id, carol.id, cur, 20)})

	all := []*Verified{def, c1, c1b, spend, ref, after}
	orders := [][]int{{0, 1, 2, 3, 4, 5}, {0, 2, 1, 5, 4, 3}, {5, 4, 3, 2, 1, 0}}
	var hashes [][32]byte
	for _, o := range orders {
		l := replay(all, o)
		checkInvariants(t, l)
		st, reason := l.Status(winner.CID)
		require.Equal(t, StatusAccepted, st, reason)
		st, reason = l.Status(loser.CID)
		require.Equal(t, StatusQuarantined, st)
		require.Contains(t, reason, "equivocation")
		st, reason = l.Status(spend.CID)
		require.Equal(t, StatusQuarantined, st, "spending a double-spent credit")
		require.Contains(t, reason, "over the credit limit")
		st, reason = l.Status(ref.CID)
		require.Equal(t, StatusAccepted, st, "merely referencing the loser: %s", reason)
		st, reason = l.Status(after.CID)
		require.Equal(t, StatusAccepted, st, "the honest author carries on: %s", reason)
		hashes = append(hashes, l.StateHash())
	}
	require.Equal(t, hashes[0], hashes[1])
	require.Equal(t, hashes[0], hashes[2])
}

func TestPendingUntilParentsArrive(t *testing.T) {
	alice, bob, cur, def := fixture(t)
	p := sign(t, alice, &Entry{Seq: 2, Prev: def.CID, Kind: KindTransfer, Postings: pay(alice.id, bob.id, cur, 5)})
	l := New()
	out := l.Add(p)
	require.Equal(t, StatusPending, out.Status)
	require.Equal(t, []cid.Cid{def.CID}, out.Missing)
	require.Equal(t, []cid.Cid{def.CID}, l.Missing())
	require.Equal(t, int64(0), l.Balance(bob.id, cur))
	out = l.Add(def)
	require.Equal(t, StatusAccepted, out.Status)
	require.Len(t, out.Decisions, 2)
	require.Equal(t, int64(5), l.Balance(bob.id, cur))
	require.Empty(t, l.Missing())
	require.True(t, l.Add(p).Duplicate)
	require.Equal(t, []cid.Cid{p.CID}, l.Heads())
}

func TestCreditLimitAndUnknownCurrency(t *testing.T) {
	alice, bob, cur, def := fixture(t) // limit 10000
	l := New()
	l.Add(def)
	over := sign(t, bob, &Entry{Seq: 1, Parents: []cid.Cid{def.CID}, Kind: KindTransfer, Postings: pay(bob.id, alice.id, cur, 10001)})
	out := l.Add(over)
	require.Equal(t, StatusQuarantined, out.Status)
	require.Contains(t, out.Reason, "over the credit limit")
	// bob's next entry, built on the rejected one, may still spend up to the limit.
	ok := sign(t, bob, &Entry{Seq: 2, Prev: over.CID, Kind: KindTransfer, Postings: pay(bob.id, alice.id, cur, 10000)})
	require.Equal(t, StatusAccepted, l.Add(ok).Status)
	require.Equal(t, int64(-10000), l.Balance(bob.id, cur))
	// A currency nobody defined.
	ghost := CurrencyID{"ghost", bob.id}
	g := sign(t, alice, &Entry{Seq: 2, Prev: def.CID, Kind: KindTransfer, Postings: pay(alice.id, bob.id, ghost, 1)})
	out = l.Add(g)
	require.Equal(t, StatusQuarantined, out.Status)
	require.Contains(t, out.Reason, "not defined")
	// A currency defined, but not in the entry's causal past.
	l2 := New()
	l2.Add(def)
	blind := sign(t, bob, &Entry{Seq: 1, Kind: KindTransfer, Postings: pay(bob.id, alice.id, cur, 1)})
	require.Contains(t, l2.Add(blind).Reason, "not defined in the entry's causal past")
	checkInvariants(t, l)
}

func sortedCIDs(cs ...cid.Cid) []cid.Cid {
	var out []cid.Cid
	seen := map[cid.Cid]bool{}
	for _, c := range cs {
		if c.Defined() && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	SortCIDs(out)
	return out
}

func without(cs []cid.Cid, drop cid.Cid) []cid.Cid {
	var out []cid.Cid
	for _, c := range cs {
		if !c.Equals(drop) {
			out = append(out, c)
		}
	}
	return out
}

func TestCheckDoesNotChangeTheLedger(t *testing.T) {
	alice, bob, cur, def := fixture(t)
	l := New()
	l.Add(def)
	before := l.StateHash()
	over := sign(t, bob, &Entry{Seq: 1, Parents: []cid.Cid{def.CID}, Kind: KindTransfer, Postings: pay(bob.id, alice.id, cur, 10001)})
	st, reason, err := l.Check(over)
	require.NoError(t, err)
	require.Equal(t, StatusQuarantined, st)
	require.Contains(t, reason, "over the credit limit")
	ok := sign(t, bob, &Entry{Seq: 1, Parents: []cid.Cid{def.CID}, Kind: KindTransfer, Postings: pay(bob.id, alice.id, cur, 10)})
	st, _, err = l.Check(ok)
	require.NoError(t, err)
	require.Equal(t, StatusAccepted, st)
	require.Equal(t, before, l.StateHash())
	_, quarantined, _ := l.Counts()
	require.Zero(t, quarantined, "Check recorded nothing")
	require.Equal(t, StatusUnknown, func() Status { s, _ := l.Status(ok.CID); return s }())
	// Equivocation and incompleteness are errors.
	l.Add(ok)
	_, _, err = l.Check(over)
	require.ErrorIs(t, err, ErrEquivocation)
	orphan := sign(t, alice, &Entry{Seq: 3, Prev: ok.CID, Kind: KindTransfer, Postings: pay(alice.id, bob.id, cur, 1)})
	_, _, err = l.Check(orphan)
	require.NotErrorIs(t, err, ErrIncomplete) // parents known; the chain rule decides
	missing := sign(t, alice, &Entry{Seq: 2, Prev: BlockCID([]byte("nope")), Kind: KindTransfer, Postings: pay(alice.id, bob.id, cur, 1)})
	_, _, err = l.Check(missing)
	require.ErrorIs(t, err, ErrIncomplete)
}

func TestSummaryAndMissingFrom(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	sc := genScenario(t, r, 4, 80)
	full := replay(sc.entries, identity(len(sc.entries)))
	half := replay(sc.entries, identity(len(sc.entries)/2))
	blocks := blockMap(sc.entries...)
	// Whatever half lacks, full sends; afterwards the two agree.
	for _, c := range full.MissingCIDs(half.Summary(), 0) {
		v, err := Verify(blocks[c], c)
		require.NoError(t, err)
		half.Add(v)
	}
	require.Equal(t, full.Summary(), half.Summary())
	require.Equal(t, full.StateHash(), half.StateHash())
	require.Empty(t, full.MissingCIDs(half.Summary(), 0))
	require.Len(t, full.MissingCIDs(New().Summary(), 5), 5)
}

// Equivocation evidence spreads through MissingFrom whichever side is ahead.
func TestMissingFromSpreadsEquivocations(t *testing.T) {
	alice, bob, cur, def := fixture(t)
	twinA := sign(t, alice, &Entry{Seq: 2, Prev: def.CID, Kind: KindTransfer, Postings: pay(alice.id, bob.id, cur, 1)})
	twinB := sign(t, alice, &Entry{Seq: 2, Prev: def.CID, Kind: KindTransfer, Postings: pay(alice.id, bob.id, cur, 2)})
	third := sign(t, alice, &Entry{Seq: 3, Prev: twinB.CID, Kind: KindTransfer, Postings: pay(alice.id, bob.id, cur, 3)})
	x := replay([]*Verified{def, twinA}, []int{0, 1})
	y := replay([]*Verified{def, twinB, third}, []int{0, 1, 2})
	blocks := blockMap(def, twinA, twinB, third)
	exchange := func(from, to *Ledger) {
		for _, c := range from.MissingCIDs(to.Summary(), 0) {
			v, err := Verify(blocks[c], c)
			require.NoError(t, err)
			to.Add(v)
		}
	}
	exchange(y, x) // y is ahead but must still send its twin at seq 2
	exchange(x, y) // x is behind but holds the other twin
	require.Equal(t, x.Summary(), y.Summary())
	require.Equal(t, x.StateHash(), y.StateHash())
	_, q, _ := x.Counts()
	require.Positive(t, q)
}

func TestStatsCountTransfers(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	sc := genScenario(t, r, 4, 80)
	l := replay(sc.entries, identity(len(sc.entries)))
	want := 0
	for _, v := range sc.entries {
		if st, _ := l.Status(v.CID); st == StatusAccepted && v.Entry.Kind == KindTransfer {
			want++
		}
	}
	require.Equal(t, want, l.Stats().Transfers)
}

func blockMap(vs ...*Verified) map[cid.Cid][]byte {
	out := map[cid.Cid][]byte{}
	for _, v := range vs {
		out[v.CID] = v.Block
	}
	return out
}

// Clocks stored as differences read back equal to the clocks they stand
// for, through any number of links and cache evictions.
func TestClocksStoredAsDifferences(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	sc := genScenario(t, r, 6, 200)
	whole := replay(sc.entries, identity(len(sc.entries)))
	small := replayWith(newSmallClocks(), sc.entries, identity(len(sc.entries)))
	require.Equal(t, whole.StateHash(), small.StateHash())
	links := 0
	for i := range small.recs {
		require.Equal(t, whole.clocks.get(whole, uint32(i)), small.clocks.get(small, uint32(i)), "record %d", i)
		if small.recs[i].clock.base != noIx {
			links++
			require.LessOrEqual(t, small.recs[i].clock.depth, uint8(3))
		}
	}
	require.Positive(t, links, "some clocks are stored as differences")
	require.Less(t, len(small.clocks.pool), len(small.recs)*len(small.authors), "differences take less room than whole clocks")
}

// An entry whose prev is someone else's entry can carry any seq: it is
// quarantined, and kept and listed like any other, however large its seq.
func TestBrokenChainWithFarSeq(t *testing.T) {
	alice, bob, cur, def := fixture(t)
	l := New()
	l.Add(def)
	far := sign(t, bob, &Entry{Seq: 1 << 40, Prev: def.CID, Kind: KindTransfer, Postings: pay(bob.id, alice.id, cur, 1)})
	out := l.Add(far)
	require.Equal(t, StatusQuarantined, out.Status)
	require.Contains(t, out.Reason, "is not seq")
	require.Equal(t, []cid.Cid{far.CID}, l.AuthorCIDs(bob.id, 0))
	require.Empty(t, l.AuthorCIDs(bob.id, 1<<40))
	require.Equal(t, uint64(1<<40), l.Summary()[bob.id].Top)
	// bob's real chain still starts at 1.
	first := sign(t, bob, &Entry{Seq: 1, Parents: []cid.Cid{def.CID}, Kind: KindTransfer, Postings: pay(bob.id, alice.id, cur, 1)})
	require.Equal(t, StatusAccepted, l.Add(first).Status)
	require.Equal(t, []cid.Cid{first.CID, far.CID}, l.AuthorCIDs(bob.id, 0))
	seq, last := l.LastAccepted(bob.id)
	require.Equal(t, uint64(1), seq)
	require.Equal(t, first.CID, last)
}

func TestKeyIndex(t *testing.T) {
	var recs []rec
	x := newKeyIndex()
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		var k key
		for j := range k {
			k[j] = byte(r.IntN(256))
		}
		recs = append(recs, rec{key: k})
		x.add(recs, &k, uint32(i))
	}
	for i := range recs {
		got, ok := x.find(recs, &recs[i].key)
		require.True(t, ok)
		require.Equal(t, uint32(i), got)
	}
	var absent key
	_, ok := x.find(recs, &absent)
	require.False(t, ok)
	require.LessOrEqual(t, 2*x.n, len(x.slots))
}

// Holdings tells apart ledgers with the same state but not the same
// evidence: one that holds a losing twin and one that does not.
func TestHoldingsSeesEvidenceTheStateHashDoesNot(t *testing.T) {
	alice, bob, cur, def := fixture(t)
	twinA := sign(t, alice, &Entry{Seq: 2, Prev: def.CID, Kind: KindTransfer, Postings: pay(alice.id, bob.id, cur, 1)})
	twinB := sign(t, alice, &Entry{Seq: 2, Prev: def.CID, Kind: KindTransfer, Postings: pay(alice.id, bob.id, cur, 2)})
	winner := twinA
	if cidLess(twinB.CID, twinA.CID) {
		winner = twinB
	}
	both := replay([]*Verified{def, twinA, twinB}, []int{0, 1, 2})
	onlyWinner := replay([]*Verified{def, winner}, []int{0, 1})
	require.Equal(t, both.StateHash(), onlyWinner.StateHash())
	require.NotEqual(t, both.Holdings(), onlyWinner.Holdings())
	other := replay([]*Verified{def, twinA, twinB}, []int{2, 0, 1})
	require.Equal(t, both.Holdings(), other.Holdings())
}

// A state hash computed from a job equals StateHash; a job copied before the
// ledger changed is computed but not kept, so the next StateHash covers the
// change.
func TestStateHashJob(t *testing.T) {
	entries := genScenario(t, rand.New(rand.NewPCG(7, 7)), 4, 80).entries
	upTo := func(n int) *Ledger { return replay(entries[:n], identity(n)) }
	// The first entry after 20 that changes the accepted set.
	split := 20
	for a, _, _ := upTo(split).Counts(); ; split++ {
		if b, _, _ := upTo(split + 1).Counts(); b != a {
			break
		}
	}
	l := upTo(split)
	j := l.StateHashJob()
	l.Add(entries[split]) // the ledger changes while the job is out
	stale := j.Run()
	l.KeepStateHash(j)
	require.Equal(t, upTo(split+1).StateHash(), l.StateHash(), "the stale job was not kept")
	require.Equal(t, upTo(split).StateHash(), stale, "the job hashed the ledger as it was copied")
	require.NotEqual(t, stale, l.StateHash())

	// Nothing changes: the job is kept, and the next one is the cached hash.
	for _, v := range entries[split+1:] {
		l.Add(v)
	}
	j = l.StateHashJob()
	h := j.Run()
	l.KeepStateHash(j)
	cached := l.StateHashJob()
	require.Nil(t, cached.keys, "a cached hash copies nothing")
	require.Equal(t, h, cached.Run())
	require.Equal(t, upTo(len(entries)).StateHash(), h)
}
