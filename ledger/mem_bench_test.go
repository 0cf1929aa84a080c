package ledger_test

import (
	"fmt"
	"runtime"
	"testing"

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
