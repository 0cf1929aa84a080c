package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/ledgertest"
	"github.com/intercooperative/icn/ledger/store"
)

// BenchmarkBackupRestore times `icnctl ledger backup` of a real icnd holding
// n entries and `icnctl ledger restore` of that archive into an empty one,
// against the baseline measured in the same run: the same blocks stored
// in-process by store.Ingest (synced, batches of 1,024), which is what a
// restore does behind the control socket.
func BenchmarkBackupRestore(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			blocks := ledgertest.History(b, 16, n)
			for i := 0; i < b.N; i++ {
				// Baseline.
				base := filepath.Join(b.TempDir(), "ds")
				s, err := store.Open(context.Background(), base, store.Options{})
				require.NoError(b, err)
				began := time.Now()
				for j := 0; j < n; j += 1024 {
					_, err := s.Ingest(context.Background(), blocks[j:min(j+1024, n)], nil)
					require.NoError(b, err)
				}
				ingest := float64(n) / time.Since(began).Seconds()
				require.NoError(b, s.Close())

				src, srcd := benchDaemon(b, n)
				dst, dstd := benchDaemon(b, 0)
				archive := filepath.Join(b.TempDir(), "ledger.car")
				began = time.Now()
				r := ctlEnv(b, withPass(passphrase), src, "ledger", "backup", archive)
				require.Equal(b, 0, r.code, r.stderr)
				backup := float64(n) / time.Since(began).Seconds()
				began = time.Now()
				r = ctlEnv(b, withPass(passphrase), dst, "--json", "ledger", "restore", archive)
				require.Equal(b, 0, r.code, r.stderr)
				restore := float64(n) / time.Since(began).Seconds()
				st, err := os.Stat(archive)
				require.NoError(b, err)

				b.ReportMetric(ingest, "ingest-baseline-entries/s")
				b.ReportMetric(backup, "backup-entries/s")
				b.ReportMetric(restore, "restore-entries/s")
				b.ReportMetric(restore/ingest, "restore/ingest")
				b.ReportMetric(float64(st.Size())/float64(n), "archive-bytes/entry")
				srcd.stop()
				dstd.stop()
			}
		})
	}
}
