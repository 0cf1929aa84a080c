// Package ledgertest builds valid ledger histories for tests and benchmarks
// outside package ledger: members with fresh keys, a currency, and payments
// in a ring, each entry referencing the heads its author knows.
package ledgertest

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"
)

// Member is a ledger author with its key.
type Member struct {
	DID did.DID
	Key ed25519.PrivateKey
}

// NewMember makes a member with a fresh key.
func NewMember(tb testing.TB) Member {
	tb.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(tb, err)
	id, err := did.FromPublicKey(pub)
	require.NoError(tb, err)
	return Member{id, key}
}

// Pay is the postings of a payment.
func Pay(from, to did.DID, cur ledger.CurrencyID, n int64) []ledger.Posting {
	return []ledger.Posting{{Account: from, Currency: cur, Amount: -n}, {Account: to, Currency: cur, Amount: n}}
}

// Next signs m's next entry on l.
func (m Member) Next(l *ledger.Ledger, kind ledger.Kind, def *ledger.CurrencyDef, postings []ledger.Posting) ([]byte, error) {
	seq, prev, parents := l.Next(m.DID)
	e := &ledger.Entry{Author: m.DID, Seq: seq, Prev: prev, Parents: parents, Kind: kind, Currency: def, Postings: postings}
	b, _, err := ledger.Sign(e, m.Key)
	return b, err
}

// History returns n valid signed blocks: the first member defines "hours"
// with a huge credit limit, then members pay the next one in a ring. Every
// block is accepted when the blocks are added in order.
func History(tb testing.TB, members, n int) [][]byte {
	tb.Helper()
	ms := make([]Member, members)
	for i := range ms {
		ms[i] = NewMember(tb)
	}
	cur := ledger.CurrencyID{Symbol: "hours", Issuer: ms[0].DID}
	l := ledger.New()
	var keys ledger.KeyCache
	blocks := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		m := ms[i%members]
		var b []byte
		var err error
		if i == 0 {
			b, err = m.Next(l, ledger.KindCurrency, &ledger.CurrencyDef{Symbol: "hours", CreditLimit: 1 << 40}, nil)
		} else {
			b, err = m.Next(l, ledger.KindTransfer, nil, Pay(m.DID, ms[(i+1)%members].DID, cur, int64(1+i%7)))
		}
		require.NoError(tb, err)
		v, err := keys.Verify(b, ledger.BlockCID(b))
		require.NoError(tb, err)
		out := l.Add(v)
		require.Equal(tb, ledger.StatusAccepted, out.Status, out.Reason)
		blocks = append(blocks, b)
	}
	return blocks
}
