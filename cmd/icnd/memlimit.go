package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Go's soft memory limit, and handing memory back when idle.
//
// Left alone, a Go daemon that has just had a burst of allocations (Badger
// compacting after a bulk load, a large sync) keeps the freed memory
// resident: an idle daemon collects only every two minutes, and the runtime
// keeps what it frees up to the heap goal, twice the live heap of the last
// collection, which was taken while the burst was live. A node holding
// 100,000 entries measured 240 MiB resident for minutes after starting,
// with 30 MiB live.
//
// Two things bring it back:
//   - A soft limit a little above what the node needs makes the collector
//     run and the runtime return memory once a burst is over, without
//     changing how often it collects in normal running (the limit sits
//     above GOGC's own target). The limit follows the live heap every
//     second: recomputed every 30 s, it lagged behind a catch-up that grows
//     the heap by tens of MiB in seconds, and the collector ran without
//     pause (100,000 entries synced at 21k/s instead of 31k/s).
//   - Once the node has been quiet for a few seconds after a burst (and
//     again half a minute later), or holds much more than it uses, it
//     collects and returns the rest at once (debug.FreeOSMemory): a
//     collection of a heap of tens of MiB costs tens of milliseconds of CPU.
const (
	memoryLimitFloor    = 96 << 20
	memoryLimitHeadroom = 32 << 20
	memoryLimitEvery    = time.Second

	// Quiet: allocating less than this per tick.
	trimQuietAlloc = 4 << 20
	// After a burst, trim when quiet for this many ticks, and again for
	// this many.
	trimQuietTicks = 5
	trimLateTicks  = 30
	// Without a burst, trim when holding this much more than the live
	// heap, at most this often.
	trimSlack = 16 << 20
	trimEvery = time.Minute
)

// memoryLimiter sets the limit: fixed, from limits.memory_soft_limit_mb, or
// automatic, max(floor, 2 × live heap + headroom), recomputed every second
// so it follows the ledger as it grows. GOMEMLIMIT in the environment wins
// over both. In every case it trims an idle node's memory (trimmer).
type memoryLimiter struct {
	fixed int64 // bytes; 0 means automatic
	log   *slog.Logger
}

// automaticLimit is the limit for a live heap of live bytes.
func automaticLimit(live uint64) int64 {
	return max(memoryLimitFloor, int64(2*live)+memoryLimitHeadroom)
}

// memSample is what the limiter reads from the runtime each tick.
type memSample struct {
	live     uint64 // live heap after the last collection
	allocs   uint64 // bytes allocated since the start, cumulative
	retained uint64 // memory the runtime holds from the system
}

func readMem() memSample {
	s := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	metrics.Read(s)
	u := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	return memSample{live: u(0), allocs: u(1), retained: u(2) - u(3)}
}

func liveHeap() uint64 { return readMem().live }

// trimmer decides when to hand memory back. After a burst (a tick that
// allocated trimQuietAlloc or more), twice: after trimQuietTicks quiet
// ticks, and again after trimLateTicks, because Badger keeps the buffers of
// its last compactions pooled and lets go of one every 2 s while it is
// idle (up to eight, tens of MiB). The burst matters, not the numbers the
// runtime reports, because the live heap it reports is the one of the last
// collection, which an idle node may have run in the middle of the burst.
// Without a burst: when quiet and holding more than trimSlack above the
// live heap, at most every trimEvery.
type trimmer struct {
	lastAllocs uint64
	quiet      int  // quiet ticks in a row
	burst      bool // a busy tick since the last late trim
	lastTrim   time.Time
}

func (t *trimmer) due(s memSample, now time.Time) bool {
	if s.allocs-t.lastAllocs >= trimQuietAlloc {
		t.quiet, t.burst = 0, true
	} else {
		t.quiet++
	}
	t.lastAllocs = s.allocs
	switch {
	case t.burst && t.quiet == trimQuietTicks:
	case t.burst && t.quiet == trimLateTicks:
		t.burst = false
	case !t.burst && t.quiet >= trimQuietTicks && s.retained >= s.live+trimSlack && now.Sub(t.lastTrim) >= trimEvery:
	default:
		return false
	}
	t.lastTrim = now
	return true
}

// Run sets the limit and, when automatic, keeps it up to date until ctx
// ends; it trims an idle node's memory in every case.
func (m memoryLimiter) Run(ctx context.Context) error {
	auto := false
	switch {
	case os.Getenv("GOMEMLIMIT") != "":
		m.log.Info("memory soft limit from GOMEMLIMIT", "limit", os.Getenv("GOMEMLIMIT"))
	case m.fixed > 0:
		debug.SetMemoryLimit(m.fixed)
		m.log.Info("memory soft limit", "mib", m.fixed>>20)
	default:
		auto = true
	}
	tick := time.NewTicker(memoryLimitEvery)
	defer tick.Stop()
	var trim trimmer // lastAllocs 0: starting up counts as a burst
	for {
		s := readMem()
		if auto {
			debug.SetMemoryLimit(automaticLimit(s.live))
		}
		if trim.due(s, time.Now()) {
			debug.FreeOSMemory()
			after := readMem()
			m.log.Debug("idle: memory returned to the system", "held_mib", s.retained>>20, "now_mib", after.retained>>20, "live_mib", after.live>>20)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
