package main

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func keepMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
}

func TestAutomaticMemoryLimit(t *testing.T) {
	require.Equal(t, int64(memoryLimitFloor), automaticLimit(0))
	require.Equal(t, int64(memoryLimitFloor), automaticLimit(10<<20))
	require.Equal(t, int64(232<<20), automaticLimit(100<<20))
}

func TestMemoryLimiterSetsTheLimit(t *testing.T) {
	keepMemoryLimit(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// A stopped context: Run sets the limit once and returns.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Fixed.
	require.NoError(t, memoryLimiter{fixed: 200 << 20, log: quiet}.Run(ctx))
	require.Equal(t, int64(200<<20), debug.SetMemoryLimit(-1))
	// Automatic: follows the live heap.
	before := automaticLimit(liveHeap())
	require.NoError(t, memoryLimiter{log: quiet}.Run(ctx))
	after := automaticLimit(liveHeap()) // a collection may have run meanwhile
	require.Contains(t, []int64{before, after}, debug.SetMemoryLimit(-1))
	// GOMEMLIMIT wins: nothing is changed.
	debug.SetMemoryLimit(300 << 20)
	t.Setenv("GOMEMLIMIT", "1GiB")
	require.NoError(t, memoryLimiter{fixed: 200 << 20, log: quiet}.Run(ctx))
	require.Equal(t, int64(300<<20), debug.SetMemoryLimit(-1))
}

// The trimmer hands memory back after a burst, once quiet for five ticks
// and again for thirty; without one, only when the node holds well above
// its live heap, at most once a minute.
func TestTrimmerWaitsForQuiet(t *testing.T) {
	const mib = 1 << 20
	now := time.Unix(1000, 0)
	var tr trimmer
	fat := memSample{live: 30 * mib, retained: 120 * mib}
	lean := memSample{live: 30 * mib, retained: 40 * mib}
	tick := func(alloc uint64, s memSample) bool {
		now = now.Add(time.Second)
		s.allocs = tr.lastAllocs + alloc
		return tr.due(s, now)
	}
	quiet := func(n int, s memSample, why string) {
		for i := 0; i < n; i++ {
			require.False(t, tick(mib, s), "%s: quiet tick %d", why, i+1)
		}
	}
	// No burst, little to gain: never.
	quiet(100, lean, "lean and idle")

	// A burst: trimmed when quiet for five ticks (a busy one starts the
	// count again), then for thirty, then not again.
	require.False(t, tick(64*mib, lean), "a busy tick")
	quiet(trimQuietTicks-2, lean, "after the burst")
	require.False(t, tick(64*mib, lean), "another busy tick")
	quiet(trimQuietTicks-1, lean, "after the second busy tick")
	require.True(t, tick(0, lean), "quiet for five ticks")
	quiet(trimLateTicks-trimQuietTicks-1, lean, "between the two trims")
	require.True(t, tick(0, lean), "quiet for thirty ticks")
	quiet(100, lean, "lean and idle again")

	// No burst but fat: trimmed, at most once a minute.
	require.True(t, tick(0, fat), "fat")
	quiet(int(trimEvery/time.Second)-1, fat, "soon after the last trim")
	require.True(t, tick(0, fat), "a minute later")
}

// readMem reads what the runtime reports: memory in use counts as retained,
// a collection drops freed memory from the live heap, and once FreeOSMemory
// returns it, it no longer counts as retained. (Whether the freed memory is
// still retained just after the collection is up to the runtime's background
// scavenger, which may already have returned it, so that is not asserted.)
func TestReadMemSeesFreedMemory(t *testing.T) {
	const junkSize = 64 << 20
	before := readMem()
	junk := make([][]byte, junkSize>>20)
	for i := range junk {
		junk[i] = make([]byte, 1<<20)
		junk[i][0] = 1
	}
	held := readMem()
	require.GreaterOrEqual(t, held.allocs-before.allocs, uint64(junkSize))
	require.GreaterOrEqual(t, held.retained, uint64(junkSize), "held memory is retained")
	runtime.KeepAlive(junk)
	junk = nil
	runtime.GC()
	collected := readMem()
	require.Positive(t, collected.live)
	require.Less(t, collected.live+junkSize/2, held.retained, "the collection drops the junk from the live heap")
	debug.FreeOSMemory()
	freed := readMem()
	require.Less(t, freed.retained+junkSize/2, held.retained, "FreeOSMemory hands memory back")
	_ = junk
}
