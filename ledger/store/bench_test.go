package store

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/ledger"
)

// history builds n valid signed blocks: authors define a currency and pay
// each other in a ring, each entry referencing the heads it knows.
func history(tb testing.TB, authors, n int) [][]byte {
	tb.Helper()
	as := make([]author, authors)
	for i := range as {
		as[i] = newAuthor(tb)
	}
	cur := ledger.CurrencyID{Symbol: "hours", Issuer: as[0].id}
	l := ledger.New()
	var blocks [][]byte
	add := func(b []byte, err error) {
		require.NoError(tb, err)
		v, err := ledger.Verify(b, ledger.BlockCID(b))
		require.NoError(tb, err)
		out := l.Add(v)
		require.Equal(tb, ledger.StatusAccepted, out.Status, out.Reason)
		blocks = append(blocks, b)
	}
	add(as[0].next(l, ledger.KindCurrency, &ledger.CurrencyDef{Symbol: "hours", CreditLimit: 1 << 40}, nil))
	for i := 1; i < n; i++ {
		from, to := as[i%authors], as[(i+1)%authors]
		add(from.next(l, ledger.KindTransfer, nil, pay(from.id, to.id, cur, int64(1+i%7))))
	}
	return blocks
}

// BenchmarkVerifyCeiling is the baseline: raw Ed25519 verifications per
// second on all cores.
func BenchmarkVerifyCeiling(b *testing.B) {
	pub, key, _ := ed25519.GenerateKey(nil)
	msg := make([]byte, 200)
	sig := ed25519.Sign(key, msg)
	b.SetParallelism(1)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !ed25519.Verify(pub, msg, sig) {
				panic("bad")
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}

// BenchmarkIngest measures entries verified, applied and durably stored per
// second (synced commits of 256 entries), at two history sizes.
func BenchmarkIngest(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			if testing.Short() && n > 10_000 {
				b.Skip("short")
			}
			blocks := history(b, 16, n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				s, err := Open(context.Background(), filepath.Join(b.TempDir(), "ds"), Options{})
				require.NoError(b, err)
				b.StartTimer()
				for start := 0; start < len(blocks); start += 256 {
					end := min(start+256, len(blocks))
					res, err := s.Ingest(context.Background(), blocks[start:end], nil)
					require.NoError(b, err)
					for _, r := range res {
						if r.Err != nil || r.Status != ledger.StatusAccepted {
							b.Fatalf("%v %v %s", r.Err, r.Status, r.Reason)
						}
					}
				}
				b.StopTimer()
				require.NoError(b, s.Close())
				b.StartTimer()
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
