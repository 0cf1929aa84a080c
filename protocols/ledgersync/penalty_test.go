package ledgersync

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/ledgertest"
	"github.com/intercooperative/icn/protocols/internal/penaltytest"
)

// charges records what a Penalizer was told.
type charges = penaltytest.Charges

// request opens a stream to the responder, writes req, then closes its
// write side and reads until the responder ends the stream (or, if reset,
// resets the stream at once).
func request(t *testing.T, open func(context.Context) (network.Stream, error), req []byte, reset bool) {
	t.Helper()
	s, err := open(context.Background())
	require.NoError(t, err)
	_, err = s.Write(req)
	require.NoError(t, err)
	if reset {
		require.NoError(t, s.Reset())
		return
	}
	_ = s.CloseWrite()
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.Copy(io.Discard, s)
}

// A malformed request charges its sender exactly once, one unit; a valid
// one and one the requester abandons (a broken stream, as from an honest
// peer that goes away) charge nothing.
func TestMalformedRequestChargesTheSender(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	pen := &charges{}
	serve(t, New(ha, history(t, 4), quiet, Options{Penalties: pen}))
	connect(t, hb, ha)
	open := func(ctx context.Context) (network.Stream, error) { return hb.NewStream(ctx, ha.ID(), ID) }

	// Abandoned halfway: two authors announced, one sent, then a reset.
	half := append(binary.AppendUvarint(nil, 2), make([]byte, summaryRecord)...)
	request(t, open, half, true)
	// Valid: an empty summary.
	request(t, open, binary.AppendUvarint(nil, 0), false)
	by, n := pen.Snapshot()
	require.Zero(t, n, "charged for a valid or an abandoned request: %v", by)

	for name, req := range map[string][]byte{
		"too many authors": binary.AppendUvarint(nil, MaxAuthors+1),
		"cut short":        half, // and the write side closed: the requester meant it
		"bad trace block":  append(binary.AppendUvarint(nil, 0), 0xff, 0xff, 0xff),
	} {
		_, before := pen.Snapshot()
		request(t, open, req, false)
		require.Eventually(t, func() bool { _, n := pen.Snapshot(); return n == before+1 }, 10*time.Second, 10*time.Millisecond, name)
		by, _ := pen.Snapshot()
		require.Equal(t, map[peer.ID]float64{hb.ID(): float64(before + 1)}, by, name)
	}
	// The abandoned request, long handled, charged nothing after all.
	_, n = pen.Snapshot()
	require.Equal(t, 3, n)
}

// The scheduler hands its Penalties to the responder, and charges bad
// blocks to BlockPenalties when set: a unit each, violations to Penalties.
func TestSchedulerSplitsBlockAndProtocolCharges(t *testing.T) {
	good := ledgertest.History(t, 2, 2)
	bad := append([]byte(nil), good[0]...)
	bad[len(bad)-1] ^= 0xff
	ha, rogue := newHost(t), newHost(t)
	proto, blocks := &charges{}, &charges{}
	s, _ := runSchedulerWith(t, SchedulerConfig{Host: ha, Ledger: newMemLedger(), Penalties: proto, BlockPenalties: blocks})
	served := make(chan struct{}, 16)
	rogue.SetStreamHandler(ID, func(st network.Stream) {
		defer st.Close()
		_, _ = io.Copy(io.Discard, st)
		writeResponse(st, [][]byte{bad})
		served <- struct{}{}
	})
	connect(t, rogue, ha)
	pulls, err := s.PullNow(context.Background(), []peer.ID{rogue.ID()})
	require.NoError(t, err)
	_, err = WaitPulls(context.Background(), pulls, nil)
	require.NoError(t, err)
	byBlock, _ := blocks.Snapshot()
	require.GreaterOrEqual(t, byBlock[rogue.ID()], 1.0)
	_, n := proto.Snapshot()
	require.Zero(t, n, "bad blocks charged as violations")

	// The rogue requests garbage from ha: the responder charges Penalties.
	st, err := rogue.NewStream(context.Background(), ha.ID(), ID)
	require.NoError(t, err)
	_, _ = st.Write(binary.AppendUvarint(nil, MaxAuthors+1))
	_ = st.CloseWrite()
	_, _ = io.Copy(io.Discard, bufio.NewReader(st))
	require.Eventually(t, func() bool { by, _ := proto.Snapshot(); return by[rogue.ID()] == MalformedRequestPenalty }, 10*time.Second, 10*time.Millisecond)
}
