package node

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Go's soft memory limit. Left alone, a Go daemon that has just had a burst
// of allocations (Badger compacting after a bulk load, a large sync) keeps
// the freed memory resident until the next collection, which an idle
// daemon runs only every two minutes, and returns it to the system slowly
// after that: a node holding 100,000 entries measured 240 MiB resident for
// minutes after starting, with 30 MiB live. A soft limit a little above what
// the node needs makes the collector run once the burst is over and the
// runtime hand the memory back at once, without changing how often it
// collects in normal running (the limit sits above GOGC's own target).
// The limit follows the live heap every second: recomputed every 30 s, it
// lagged behind a catch-up that grows the heap by tens of MiB in seconds,
// and the collector ran without pause (100,000 entries synced at 21k/s
// instead of 31k/s).
const (
	memoryLimitFloor    = 96 << 20
	memoryLimitHeadroom = 32 << 20
	memoryLimitEvery    = time.Second
)

// memoryLimiter sets the limit: fixed, from limits.memory_soft_limit_mb, or
// automatic, max(floor, 2 × live heap + headroom), recomputed periodically
// so it follows the ledger as it grows. GOMEMLIMIT in the environment wins
// over both.
type memoryLimiter struct {
	fixed int64 // bytes; 0 means automatic
	log   *slog.Logger
}

// automaticLimit is the limit for a live heap of live bytes.
func automaticLimit(live uint64) int64 {
	return max(memoryLimitFloor, int64(2*live)+memoryLimitHeadroom)
}

func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// Run sets the limit and, when automatic, keeps it up to date until ctx
// ends.
func (m memoryLimiter) Run(ctx context.Context) error {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		m.log.Info("memory soft limit from GOMEMLIMIT", "limit", v)
		return nil
	}
	if m.fixed > 0 {
		debug.SetMemoryLimit(m.fixed)
		m.log.Info("memory soft limit", "mib", m.fixed>>20)
		return nil
	}
	t := time.NewTicker(memoryLimitEvery)
	defer t.Stop()
	for {
		debug.SetMemoryLimit(automaticLimit(liveHeap()))
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
