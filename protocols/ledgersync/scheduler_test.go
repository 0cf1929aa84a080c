package ledgersync

import (
	"bufio"
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/ledgertest"
	"github.com/intercooperative/icn/protocols/gossip"
)

// runScheduler runs a scheduler on h over led until the test ends.
func runScheduler(t *testing.T, h host.Host, led Ledger, pen Penalizer) (*Scheduler, *Metrics) {
	t.Helper()
	return runSchedulerWith(t, SchedulerConfig{Host: h, Ledger: led, Penalties: pen})
}

// runSchedulerWith is runScheduler with the rest of cfg (a tracer); it
// supplies the metrics and the log.
func runSchedulerWith(t *testing.T, cfg SchedulerConfig) (*Scheduler, *Metrics) {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	require.NoError(t, err)
	cfg.Metrics, cfg.Log = m, quiet
	s := NewScheduler(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, returns(t, done, "Scheduler.Run"))
		require.NoError(t, s.Close())
	})
	return s, m
}

// writeResponse writes a response as the protocol describes it.
func writeResponse(s network.Stream, blocks [][]byte) {
	w := bufio.NewWriter(s)
	_ = writeCount(w, len(blocks))
	for _, b := range blocks {
		_ = writeFrame(w, b)
	}
	_ = writeFrame(w, nil)
	_ = w.Flush()
}

// While a pull is under way the lag gauge shows what is still to come; a
// pull asked for meanwhile joins it instead of pulling a second time; once
// it ends the gauge is back to 0 and a new request starts a pull of its own.
func TestSchedulerLagAndJoiningARunningPull(t *testing.T) {
	blocks := ledgertest.History(t, 3, 700) // two batches
	ha, rogue := newHost(t), newHost(t)
	mine := newMemLedger()
	s, m := runScheduler(t, ha, mine, nil)
	release := make(chan struct{})
	var streams atomic.Int32
	rogue.SetStreamHandler(ID, func(st network.Stream) {
		defer st.Close()
		if _, err := io.Copy(io.Discard, st); err != nil {
			st.Reset()
			return
		}
		if streams.Add(1) > 1 {
			writeResponse(st, nil) // nothing new the second time
			return
		}
		w := bufio.NewWriter(st)
		_ = writeCount(w, len(blocks))
		_ = w.Flush()
		<-release
		for _, b := range blocks {
			_ = writeFrame(w, b)
		}
		_ = writeFrame(w, nil)
		_ = w.Flush()
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	connect(t, rogue, ha)
	// The scheduler pulls on its own once the rogue has identified.
	require.Eventually(t, func() bool { return testutil.ToFloat64(m.lag.g) == float64(len(blocks)) }, 30*time.Second, 10*time.Millisecond)

	pulls, err := s.PullNow(context.Background(), []peer.ID{rogue.ID()})
	require.NoError(t, err)
	require.Len(t, pulls, 1)
	require.True(t, pulls[0].Joined)
	require.Equal(t, rogue.ID(), pulls[0].Peer())
	progress := make(chan [2]int, 100)
	waited := make(chan []PullState, 1)
	go func() {
		states, _ := WaitPulls(context.Background(), pulls, func(r, a int) { progress <- [2]int{r, a} })
		waited <- states // nil on error: caught below
	}()
	require.Equal(t, [2]int{0, len(blocks)}, <-progress, "the watcher sees the pull from the start")
	close(release)
	var states []PullState
	select {
	case states = <-waited:
	case <-time.After(30 * time.Second):
		t.Fatal("the pull never finished")
	}
	require.Len(t, states, 1)
	require.True(t, states[0].Finished)
	require.NoError(t, states[0].Err)
	require.Equal(t, len(blocks), states[0].Stats.New)
	require.Equal(t, int32(1), streams.Load(), "joining opened no second stream")
	require.Zero(t, testutil.ToFloat64(m.lag.g))
	require.Equal(t, float64(len(blocks)), testutil.ToFloat64(m.received))
	require.Positive(t, testutil.ToFloat64(m.lastSuccess))

	pulls, err = s.PullNow(context.Background(), []peer.ID{rogue.ID()})
	require.NoError(t, err)
	require.False(t, pulls[0].Joined)
	states, err = WaitPulls(context.Background(), pulls, nil)
	require.NoError(t, err)
	require.Zero(t, states[0].Stats.Announced)
	require.Equal(t, int32(2), streams.Load())
}

// A peer that identified before it served the protocol (its stack was
// still starting, as after a key rotation) is pulled from once it does.
func TestSchedulerPullsWhenAPeerStartsServing(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	mine := newMemLedger()
	_, m := runScheduler(t, ha, mine, nil)
	connect(t, hb, ha)
	theirs := history(t, 30)
	// ha has identified hb, and hb did not serve ledger sync then.
	require.Eventually(t, func() bool {
		protos, err := ha.Peerstore().GetProtocols(hb.ID())
		return err == nil && len(protos) > 0
	}, 10*time.Second, 10*time.Millisecond)
	protos, err := ha.Peerstore().GetProtocols(hb.ID())
	require.NoError(t, err)
	require.NotContains(t, protos, ID)
	serve(t, New(hb, theirs, quiet, Options{}))
	// Well within AntiEntropyInterval, which would pull from it anyway.
	require.Eventually(t, func() bool { return testutil.ToFloat64(m.received) == 30 }, AntiEntropyInterval/2, 10*time.Millisecond,
		"the scheduler never pulled from the peer that started serving")
	require.Equal(t, theirs.l.StateHash(), mine.l.StateHash())
}

// Bad blocks cost their sender one unit each and a broken response
// ViolationPenalty, in the real gossip penalties; refused blocks count.
func TestSchedulerChargesBadPeers(t *testing.T) {
	good := ledgertest.History(t, 2, 4)
	var bad [][]byte
	for _, b := range good[:3] {
		c := append([]byte(nil), b...)
		c[len(c)-1] ^= 0xff
		bad = append(bad, c)
	}
	pen := gossip.NewPenalties(gossip.PenaltyConfig{})
	ha, rogue := newHost(t), newHost(t)
	s, m := runScheduler(t, ha, newMemLedger(), pen)
	var n atomic.Int32
	rogue.SetStreamHandler(ID, func(st network.Stream) {
		defer st.Close()
		_, _ = io.Copy(io.Discard, st)
		// The first pull gets bad blocks; every later one a lie. Automatic
		// pulls may come more than once (on identify, on a protocol
		// update, on the anti-entropy tick), so no later answer depends
		// on counting them.
		if n.Add(1) == 1 {
			writeResponse(st, bad)
			return
		}
		w := bufio.NewWriter(st)
		_ = writeCount(w, 1)
		_ = writeFrame(w, nil) // fewer than announced: a lie
		_ = w.Flush()
	})
	connect(t, rogue, ha)
	require.Eventually(t, func() bool { return testutil.ToFloat64(m.rejected) == 3 }, 30*time.Second, 10*time.Millisecond)
	require.GreaterOrEqual(t, pen.Units(rogue.ID()), 3-0.01, "a unit per bad block")
	pulls, err := s.PullNow(context.Background(), []peer.ID{rogue.ID()})
	require.NoError(t, err)
	states, err := WaitPulls(context.Background(), pulls, nil)
	require.NoError(t, err)
	require.ErrorIs(t, states[0].Err, ErrViolation)
	// The 3 bad blocks, and at least this violation (an automatic pull may
	// have met the lie too).
	require.GreaterOrEqual(t, pen.Units(rogue.ID()), 3+ViolationPenalty-0.01)
}

// PullNow on a scheduler that has stopped says so.
func TestPullNowAfterStop(t *testing.T) {
	h := newHost(t)
	m, err := NewMetrics(prometheus.NewRegistry())
	require.NoError(t, err)
	s := NewScheduler(SchedulerConfig{Host: h, Ledger: newMemLedger(), Metrics: m, Log: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	cancel()
	require.NoError(t, returns(t, done, "Run"))
	_, err = s.PullNow(context.Background(), nil)
	require.ErrorIs(t, err, ErrStopped)
	require.Error(t, s.Run(context.Background()), "a scheduler runs once")
	require.NoError(t, s.Close())
}
