package node_test

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/harness"
	"github.com/intercooperative/icn/internal/ledgertest"
)

// BenchmarkCatchUp measures a new node pulling a whole ledger from one peer
// over loopback QUIC: discovery by the bootstrap peer, one ledgersync round
// trip, verification and synced storage of every entry.
func BenchmarkCatchUp(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			blocks := ledgertest.History(b, 16, n)
			src := harness.Start(b, 1)[0]
			for i := 0; i < len(blocks); i += 4096 {
				_, err := src.IngestLedgerBlocks(context.Background(), blocks[i:min(i+4096, len(blocks))])
				require.NoError(b, err)
			}
			require.Equal(b, n, src.LedgerHead().Accepted)
			want := src.LedgerHead().StateHash
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start, cpu := time.Now(), cpuTime(b)
				dst := harness.Start(b, 1, harness.Bootstrap(src))[0]
				require.Eventually(b, func() bool { return dst.LedgerHead().StateHash == want }, 10*time.Minute, 20*time.Millisecond)
				took := time.Since(start)
				b.ReportMetric(float64(n)/took.Seconds(), "entries/s")
				// Both nodes run in this process: the CPU both used, as a
				// share of all cores, says whether catch-up waits or works.
				b.ReportMetric(100*(cpuTime(b)-cpu).Seconds()/took.Seconds()/float64(runtime.GOMAXPROCS(0)), "%cpu")
				b.StopTimer()
				dst.Stop()
				b.StartTimer()
			}
		})
	}
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
