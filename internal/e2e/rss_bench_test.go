package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/ledgertest"
	"github.com/intercooperative/icn/ledger/store"
	"github.com/intercooperative/icn/node"
	"github.com/intercooperative/icn/node/controlapi"
)

// fillLedger writes n valid entries by 16 members into dataDir's datastore.
func fillLedger(b *testing.B, dataDir string, n int) {
	b.Helper()
	s, err := store.Open(context.Background(), filepath.Join(dataDir, node.DatastoreDir), store.Options{NoSync: true})
	require.NoError(b, err)
	defer s.Close()
	blocks := ledgertest.History(b, 16, n)
	for i := 0; i < len(blocks); i += 1024 {
		_, err := s.Ingest(context.Background(), blocks[i:min(i+1024, len(blocks))], nil)
		require.NoError(b, err)
	}
}

// benchDaemon starts an icnd with n entries in its ledger (by 16 members)
// and waits until it has loaded them; it returns the data dir, removed at
// cleanup, and the daemon, killed at cleanup if still running.
func benchDaemon(b *testing.B, n int) (string, *daemon) {
	b.Helper()
	dir, err := os.MkdirTemp("", "icnbench")
	require.NoError(b, err)
	b.Cleanup(func() { os.RemoveAll(dir) })
	r := ctlEnv(b, withPass(passphrase), dir, "id", "init")
	require.Equal(b, 0, r.code, r.stderr)
	fillLedger(b, dir, n)
	cfgPath := filepath.Join(dir, "config.toml")
	require.NoError(b, os.WriteFile(cfgPath, []byte("[network]\nlisten_addr = \"127.0.0.1:0\"\nmdns_enabled = false\n[observability]\nmetrics_port = 0\nhealth_port = 0\n"), 0o600))
	d := spawn(b, withPass(passphrase), nil, "--data-dir", dir, "--config", cfgPath)
	d.dataDir = dir
	c := controlapi.NewClient(controlapi.SocketPath(dir))
	require.Eventually(b, func() bool {
		h, err := c.Head(context.Background())
		return err == nil && h.Accepted == n
	}, 5*time.Minute, 100*time.Millisecond)
	return dir, d
}

// vmRSS is a process's resident size in MiB.
func vmRSS(b *testing.B, pid int) float64 { return procStatus(b, pid, "VmRSS") }

// procStatus reads a size field (in kB) of /proc/PID/status, in MiB.
func procStatus(b *testing.B, pid int, field string) float64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(b, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			require.NoError(b, err)
			return float64(kb) / 1024
		}
	}
	b.Fatalf("no %s", field)
	return 0
}

// rssSettle is how long an idle daemon runs before its settled RSS is read;
// RSS is sampled every rssSample meanwhile, for the peak.
const (
	rssSettle = 60 * time.Second
	rssSample = 5 * time.Second
)

// BenchmarkDaemonRSS reports the resident memory of a real icnd holding
// 10,000 and 100,000 ledger entries, next to an empty one (the baseline).
func BenchmarkDaemonRSS(b *testing.B) {
	for _, n := range []int{0, 10_000, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				_, d := benchDaemon(b, n)
				b.ReportMetric(vmRSS(b, d.cmd.Process.Pid), "RSS-MiB")
				// Settled: Badger finishes the compactions it starts on
				// open, and the node returns what they freed once idle.
				peak := 0.0
				for t := time.Duration(0); t < rssSettle; t += rssSample {
					sample := time.NewTimer(rssSample)
					<-sample.C
					peak = max(peak, vmRSS(b, d.cmd.Process.Pid))
				}
				b.ReportMetric(peak, "peak-RSS-MiB")
				b.ReportMetric(vmRSS(b, d.cmd.Process.Pid), "settled-RSS-MiB")
				// Of which: anonymous memory (the Go heap and runtime) and
				// mapped files (the icnd binary, Badger's tables and logs).
				b.ReportMetric(procStatus(b, d.cmd.Process.Pid, "RssAnon"), "settled-anon-MiB")
				b.ReportMetric(procStatus(b, d.cmd.Process.Pid, "RssFile"), "settled-file-MiB")
				require.NoError(b, d.cmd.Process.Signal(os.Interrupt))
				require.Equal(b, 0, d.wait(30*time.Second))
			}
		})
	}
}
