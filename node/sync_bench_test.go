package node_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/harness"
	"github.com/intercooperative/icn/ledger"
)

// ledgerHistory signs n valid entries by 16 members paying in a ring.
func ledgerHistory(tb testing.TB, n int) [][]byte {
	tb.Helper()
	type member struct {
		id  did.DID
		key ed25519.PrivateKey
	}
	var ms []member
	for i := 0; i < 16; i++ {
		pub, key, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(tb, err)
		id, err := did.FromPublicKey(pub)
		require.NoError(tb, err)
		ms = append(ms, member{id, key})
	}
	cur := ledger.CurrencyID{Symbol: "hours", Issuer: ms[0].id}
	l := ledger.New()
	var keys ledger.KeyCache
	blocks := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		m := ms[i%len(ms)]
		seq, prev, parents := l.Next(m.id)
		e := &ledger.Entry{Author: m.id, Seq: seq, Prev: prev, Parents: parents, Timestamp: int64(i), Kind: ledger.KindTransfer,
			Postings: []ledger.Posting{{Account: m.id, Currency: cur, Amount: -1}, {Account: ms[(i+1)%len(ms)].id, Currency: cur, Amount: 1}}}
		if i == 0 {
			e.Kind, e.Postings, e.Currency = ledger.KindCurrency, nil, &ledger.CurrencyDef{Symbol: "hours", CreditLimit: 1 << 40}
		}
		b, c, err := ledger.Sign(e, m.key)
		require.NoError(tb, err)
		v, err := keys.Verify(b, c)
		require.NoError(tb, err)
		l.Add(v)
		blocks = append(blocks, b)
	}
	return blocks
}

// BenchmarkCatchUp measures a new node pulling a whole ledger from one peer
// over loopback QUIC: discovery by the bootstrap peer, one ledgersync round
// trip, verification and synced storage of every entry.
func BenchmarkCatchUp(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			blocks := ledgerHistory(b, n)
			src := harness.Start(b, 1)[0]
			for i := 0; i < len(blocks); i += 4096 {
				_, err := src.IngestLedgerBlocks(context.Background(), blocks[i:min(i+4096, len(blocks))])
				require.NoError(b, err)
			}
			require.Equal(b, n, src.LedgerHead().Accepted)
			want := src.LedgerHead().StateHash
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				dst := harness.Start(b, 1, harness.Bootstrap(src))[0]
				require.Eventually(b, func() bool { return dst.LedgerHead().StateHash == want }, 10*time.Minute, 20*time.Millisecond)
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "entries/s")
				b.StopTimer()
				dst.Stop()
				b.StartTimer()
			}
		})
	}
}
