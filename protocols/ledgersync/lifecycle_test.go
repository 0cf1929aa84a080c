package ledgersync

import (
	"bufio"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/ledgertest"
	"github.com/intercooperative/icn/ledger"
)

// returns waits for a call running in the background to return.
func returns(t *testing.T, done <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not return after its context ended", what)
		return nil
	}
}

// A peer that accepts the stream and never answers cannot hold Sync: when
// the caller's context ends (shutdown), Sync returns.
func TestSyncReturnsWhenItsContextEnds(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	b := New(hb, newMemLedger(), quiet, Options{})
	connect(t, hb, ha)
	accepted := make(chan struct{}, 1)
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	ha.SetStreamHandler(ID, func(s network.Stream) {
		defer s.Reset()
		_, _ = readSummary(bufio.NewReader(s), nil)
		accepted <- struct{}{}
		<-hold // never answers
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := b.Sync(ctx, ha.ID(), nil)
		done <- err
	}()
	select {
	case <-accepted:
	case <-time.After(30 * time.Second):
		t.Fatal("the stalling peer never got the request")
	}
	cancel()
	err := returns(t, done, "Sync")
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrViolation, "a stall ended by us is not the peer's lie")
}

// blockingLedger answers MissingCIDs from l, and Block only when ctx ends:
// a disk that hangs.
type blockingLedger struct {
	*memLedger
	reading chan struct{}
}

func (b *blockingLedger) Block(ctx context.Context, _ cid.Cid) ([]byte, error) {
	select {
	case b.reading <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// The responder answers under Run's context: when it ends, a response in
// progress is abandoned and Run returns.
func TestResponderStopsWithRun(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	led := &blockingLedger{memLedger: history(t, 20), reading: make(chan struct{}, 1)}
	a := New(ha, led, quiet, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- a.Run(ctx) }()
	require.Eventually(t, func() bool { return slices.Contains(ha.Mux().Protocols(), ID) }, 10*time.Second, time.Millisecond)
	b := New(hb, newMemLedger(), quiet, Options{})
	connect(t, hb, ha)
	syncDone := make(chan error, 1)
	go func() {
		_, err := b.Sync(context.Background(), ha.ID(), nil)
		syncDone <- err
	}()
	select {
	case <-led.reading:
	case <-time.After(30 * time.Second):
		t.Fatal("the responder never read a block")
	}
	cancel()
	require.NoError(t, returns(t, runDone, "Run"))
	require.NotContains(t, ha.Mux().Protocols(), ID, "the handler outlived Run")
	require.Error(t, returns(t, syncDone, "Sync"), "the requester sees the response end")
	require.NoError(t, a.Close())
	require.NoError(t, a.Close())
}

// limitedHost is a host whose resource manager lets ledgersync hold at most
// memory bytes per peer.
func limitedHost(t *testing.T, memory int) (host.Host, network.ResourceManager) {
	t.Helper()
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	limits := rcmgr.PartialLimitConfig{
		ServicePeer: map[string]rcmgr.ResourceLimits{ServiceName: {Memory: rcmgr.LimitVal64(memory)}},
	}.Build(scaling.AutoScale())
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits))
	require.NoError(t, err)
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"), libp2p.Transport(quic.NewTransport),
		libp2p.DisableMetrics(), libp2p.ResourceManager(rm))
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h, rm
}

func serviceMemory(t *testing.T, rm network.ResourceManager) int64 {
	t.Helper()
	var m int64
	require.NoError(t, rm.ViewService(ServiceName, func(s network.ServiceScope) error {
		m = s.Stat().Memory
		return nil
	}))
	return m
}

// The responder accounts the blocks it reads with the resource manager, one
// chunk's room at a time: a response larger than the peer's limit goes
// through when a chunk fits; when a chunk does not fit, the response is
// refused before its count goes out (reset, nothing announced, nothing held,
// no protocol violation) and a smaller one still works.
func TestResponderAccountsTheBlocksItReads(t *testing.T) {
	const n = 3500
	blocks := ledgertest.History(t, 4, n)
	total := 0
	for _, b := range blocks {
		total += len(b)
	}
	full := newMemLedger()
	for _, b := range blocks {
		require.Equal(t, ledger.StatusAccepted, full.add(t, b).Status)
	}
	fixed := respondBuffers + n*cidCost // the buffers and the CID list
	// The responder reserves at medium priority, which may fill a scope
	// up to (1+prio)/256 of its limit: the limit for a use u is u·256/(1+prio).
	limitFor := func(use int) int { return use * 256 / (1 + int(network.ReservationPriorityMedium)) }
	roomy := limitFor(fixed + SendChunk + ledger.MaxEntrySize + 4<<10)
	require.Greater(t, total, roomy, "the test wants a response larger than the limit")

	// A chunk fits: everything arrives, and nothing stays reserved.
	ha, rmA := limitedHost(t, roomy)
	serve(t, New(ha, full, quiet, Options{}))
	hb := newHost(t)
	empty := newMemLedger()
	connect(t, hb, ha)
	st, err := New(hb, empty, quiet, Options{}).Sync(context.Background(), ha.ID(), nil)
	require.NoError(t, err)
	require.Equal(t, n, st.New)
	require.Equal(t, full.l.StateHash(), empty.l.StateHash())
	require.Eventually(t, func() bool { return serviceMemory(t, rmA) == 0 }, 10*time.Second, 10*time.Millisecond)

	// A chunk does not fit: refused before the count, cleanly.
	tight := limitFor(fixed + SendChunk/2)
	hc, rmC := limitedHost(t, tight)
	serve(t, New(hc, full, quiet, Options{}))
	hd := newHost(t)
	starved := newMemLedger()
	connect(t, hd, hc)
	st, err = New(hd, starved, quiet, Options{}).Sync(context.Background(), hc.ID(), nil)
	require.Error(t, err, "a response over the limit is refused")
	require.False(t, errors.Is(err, ErrViolation), "the responder's own limit is not a lie: %v", err)
	require.Zero(t, st.Announced, "nothing is announced that cannot be served")
	require.Zero(t, st.Received)
	_, q, p := starved.l.Counts()
	require.Zero(t, q+p, "what arrived is sound")
	require.Eventually(t, func() bool { return serviceMemory(t, rmC) == 0 }, 10*time.Second, 10*time.Millisecond,
		"the refused response left memory reserved")

	// A normal response from the same responder works: a peer missing the
	// last 10 entries gets them.
	almost := newMemLedger()
	for _, b := range blocks[:n-10] {
		almost.add(t, b)
	}
	he := newHost(t)
	connect(t, he, hc)
	st, err = New(he, almost, quiet, Options{}).Sync(context.Background(), hc.ID(), nil)
	require.NoError(t, err)
	require.Equal(t, 10, st.New)
	require.Equal(t, full.l.StateHash(), almost.l.StateHash())
}
