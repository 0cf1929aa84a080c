package node

import (
	"context"
	"io"
	"log/slog"
	"runtime/debug"
	"testing"

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
	// Fixed: set once.
	require.NoError(t, memoryLimiter{fixed: 200 << 20, log: quiet}.Run(context.Background()))
	require.Equal(t, int64(200<<20), debug.SetMemoryLimit(-1))
	// Automatic: follows the live heap.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := automaticLimit(liveHeap())
	require.NoError(t, memoryLimiter{log: quiet}.Run(ctx))
	after := automaticLimit(liveHeap()) // a collection may have run meanwhile
	require.Contains(t, []int64{before, after}, debug.SetMemoryLimit(-1))
	// GOMEMLIMIT wins: nothing is changed.
	debug.SetMemoryLimit(300 << 20)
	t.Setenv("GOMEMLIMIT", "1GiB")
	require.NoError(t, memoryLimiter{fixed: 200 << 20, log: quiet}.Run(context.Background()))
	require.Equal(t, int64(300<<20), debug.SetMemoryLimit(-1))
}
