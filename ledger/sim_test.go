package ledger

import (
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
)

// member is a test author with a deterministic key.
type member struct {
	id  did.DID
	key ed25519.PrivateKey
}

func newMember(t testing.TB, r *rand.Rand) member {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(r.IntN(256))
	}
	key := ed25519.NewKeyFromSeed(seed)
	id, err := did.FromPublicKey(key.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	return member{id, key}
}

// sign builds a Verified from an entry, failing the test on any error.
func sign(t testing.TB, m member, e *Entry) *Verified {
	t.Helper()
	e.Author = m.id
	block, c, err := Sign(e, m.key)
	require.NoError(t, err)
	v, err := Verify(block, c)
	require.NoError(t, err)
	return v
}

// chain tracks what one member has written and seen.
type chain struct {
	m    member
	seq  uint64
	last cid.Cid
	view *Ledger // what this member knows
}

func (c *chain) next(t testing.TB, kind Kind, def *CurrencyDef, postings []Posting, memo string) *Verified {
	t.Helper()
	heads := c.view.Heads()
	var parents []cid.Cid
	for _, h := range heads {
		if !h.Equals(c.last) {
			parents = append(parents, h)
		}
	}
	if len(parents) > MaxParents {
		parents = parents[:MaxParents]
	}
	SortCIDs(parents)
	e := &Entry{Seq: c.seq + 1, Prev: c.last, Parents: parents, Timestamp: int64(c.seq), Kind: kind, Currency: def, Postings: postings, Memo: memo}
	v := sign(t, c.m, e)
	c.seq++
	c.last = v.CID
	c.view.Add(v)
	return v
}

func pay(from, to did.DID, cur CurrencyID, amount int64) []Posting {
	return []Posting{{Account: from, Currency: cur, Amount: -amount}, {Account: to, Currency: cur, Amount: amount}}
}

// scenario generates a random history: several members define currencies,
// pay each other (sometimes beyond their limit), reference what they have
// seen (so histories run concurrently), occasionally equivocate, and
// occasionally use currencies they never saw defined.
type scenario struct {
	entries []*Verified
}

func genScenario(t testing.TB, r *rand.Rand, members, steps int) scenario {
	t.Helper()
	var sc scenario
	chains := make([]*chain, members)
	for i := range chains {
		chains[i] = &chain{m: newMember(t, r), view: New()}
	}
	var currencies []CurrencyID
	publish := func(v *Verified) { sc.entries = append(sc.entries, v) }
	for step := 0; step < steps; step++ {
		c := chains[r.IntN(members)]
		// Learn a random part of what has been published (in order, so the
		// view stays complete enough to be useful).
		for _, v := range sc.entries {
			if r.IntN(3) > 0 {
				c.view.Add(v)
			}
		}
		switch roll := r.IntN(100); {
		case roll < 8 || len(currencies) == 0:
			sym := fmt.Sprintf("cu%d", r.IntN(4))
			def := &CurrencyDef{Symbol: sym, Decimals: uint8(r.IntN(3)), CreditLimit: int64(r.IntN(4)) * 50}
			if roll%2 == 0 { // half the definitions carry a display form
				def.Display = fmt.Sprintf("Cu%s", sym[2:])
			}
			publish(c.next(t, KindCurrency, def, nil, "define"))
			currencies = append(currencies, CurrencyID{Symbol: sym, Issuer: c.m.id})
		case roll < 14:
			// Equivocate: sign two different entries with the same seq.
			cur := currencies[r.IntN(len(currencies))]
			to1, to2 := chains[r.IntN(members)].m.id, chains[r.IntN(members)].m.id
			if to1 == c.m.id || to2 == c.m.id {
				continue
			}
			saveSeq, saveLast := c.seq, c.last
			a := c.next(t, KindTransfer, nil, pay(c.m.id, to1, cur, int64(1+r.IntN(60))), "twin a")
			c.seq, c.last = saveSeq, saveLast
			b := c.next(t, KindTransfer, nil, pay(c.m.id, to2, cur, int64(1+r.IntN(60))), "twin b")
			publish(a)
			publish(b)
			if r.IntN(2) == 0 {
				c.last = a.CID // continue on either twin
			}
		default:
			cur := currencies[r.IntN(len(currencies))]
			to := chains[r.IntN(members)].m.id
			if to == c.m.id {
				continue
			}
			publish(c.next(t, KindTransfer, nil, pay(c.m.id, to, cur, int64(1+r.IntN(120))), ""))
		}
	}
	return sc
}

// replay feeds entries to a fresh ledger in the given order.
func replay(entries []*Verified, order []int) *Ledger { return replayWith(New(), entries, order) }

// newSmallClocks is a ledger whose clock cache holds one clock and whose
// clocks are stored whole only every 3 links.
func newSmallClocks() *Ledger {
	l := New()
	l.clocks = newClocks(1, 3)
	return l
}

func replayWith(l *Ledger, entries []*Verified, order []int) *Ledger {
	for _, i := range order {
		l.Add(entries[i])
	}
	return l
}

// checkInvariants: per currency balances sum to zero and none is below the
// currency's credit limit.
func checkInvariants(t testing.TB, l *Ledger) {
	t.Helper()
	sums := map[CurrencyID]int64{}
	for _, b := range l.Balances() {
		sums[b.Currency] += b.Units
		cur, ok := l.LookupCurrency(b.Currency)
		require.True(t, ok, "balance in unknown currency %s", b.Currency)
		require.GreaterOrEqual(t, b.Units, -cur.Def.CreditLimit, "%s below its limit in %s", b.Account, b.Currency)
	}
	for c, s := range sums {
		require.Zero(t, s, "balances in %s sum to %d", c, s)
	}
	// Balances come sorted by currency, then account, in their text forms.
	bs := l.Balances()
	for i := 1; i < len(bs); i++ {
		a, b := bs[i-1], bs[i]
		ca, cb := a.Currency.String(), b.Currency.String()
		require.True(t, ca < cb || (ca == cb && a.Account.String() < b.Account.String()), "balances %d and %d out of order", i-1, i)
	}
}
