package ledger_test

import (
	"fmt"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/intercooperative/icn/internal/ledgertest"
	"github.com/intercooperative/icn/ledger"
)

// BenchmarkLedgerMemory reports the live heap a ledger holding n entries
// needs, per entry (the blocks themselves are not included: a store keeps
// them on disk).
func BenchmarkLedgerMemory(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			blocks := ledgertest.History(b, 16, n)
			for i := 0; i < b.N; i++ {
				var keys ledger.KeyCache
				var ms runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms)
				before := ms.HeapAlloc
				l := ledger.New()
				for _, blk := range blocks {
					e, err := keys.Decode(blk)
					if err != nil {
						b.Fatal(err)
					}
					l.Add(&ledger.Verified{Entry: e, CID: ledger.BlockCID(blk)})
				}
				runtime.GC()
				runtime.ReadMemStats(&ms)
				b.ReportMetric(float64(ms.HeapAlloc-before)/float64(n), "heap-B/entry")
				runtime.KeepAlive(l)
			}
		})
	}
}

// BenchmarkStateHashLockHold measures what a state hash holds the store's
// lock for, at n entries: before, copying, sorting and hashing the accepted
// CIDs (StateHash under the lock); now, copying them only (StateHashJob),
// the rest running after the lock is released. Each round first adds an
// entry, so no round finds the hash cached.
func BenchmarkStateHashLockHold(b *testing.B) {
	const rounds = 20
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			blocks := ledgertest.History(b, 16, n+rounds)
			var keys ledger.KeyCache
			add := func(l *ledger.Ledger, blk []byte) {
				e, err := keys.Decode(blk)
				if err != nil {
					b.Fatal(err)
				}
				l.Add(&ledger.Verified{Entry: e, CID: ledger.BlockCID(blk)})
			}
			for i := 0; i < b.N; i++ {
				l := ledger.New()
				for _, blk := range blocks[:n] {
					add(l, blk)
				}
				var copyOnly, all time.Duration
				for r := 0; r < rounds; r++ {
					add(l, blocks[n+r])
					began := time.Now()
					j := l.StateHashJob()
					copied := time.Now()
					j.Run()
					copyOnly += copied.Sub(began)
					all += time.Since(began)
				}
				b.ReportMetric(float64(all.Microseconds())/rounds/1000, "before-lock-ms")
				b.ReportMetric(float64(copyOnly.Microseconds())/rounds/1000, "now-lock-ms")
				b.ReportMetric(float64(all)/float64(copyOnly), "before/now")
			}
		})
	}
}

// BenchmarkBalances measures Balances on a ledger of 16 authors' history
// against the previous way of sorting it (text forms made in every
// comparison), in the same run.
func BenchmarkBalances(b *testing.B) {
	blocks := ledgertest.History(b, 16, 10_000)
	var keys ledger.KeyCache
	l := ledger.New()
	for _, blk := range blocks {
		e, err := keys.Decode(blk)
		if err != nil {
			b.Fatal(err)
		}
		l.Add(&ledger.Verified{Entry: e, CID: ledger.BlockCID(blk)})
	}
	b.Run("now", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_ = l.Balances()
		}
	})
	b.Run("before", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			out := l.Balances()
			sort.Slice(out, func(i, j int) bool {
				a, c := out[i], out[j]
				if a.Currency.String() != c.Currency.String() {
					return a.Currency.String() < c.Currency.String()
				}
				return a.Account.String() < c.Account.String()
			})
		}
	})
}
