package ledgersync

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/ledgertest"
	"github.com/intercooperative/icn/ledger"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// memLedger adapts an in-memory ledger to the protocol.
type memLedger struct {
	mu sync.Mutex
	l  *ledger.Ledger
}

func (m *memLedger) Summary() map[did.DID]ledger.AuthorSummary {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.l.Summary()
}

func (m *memLedger) MissingFrom(_ context.Context, r map[did.DID]ledger.AuthorSummary, limit int) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.l.MissingFrom(r, limit), nil
}

func (m *memLedger) Ingest(_ context.Context, blocks [][]byte) (Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Stats{Received: len(blocks)}
	for _, b := range blocks {
		v, err := ledger.Verify(b, cid.Undef)
		if err != nil {
			st.Rejected++
			continue
		}
		if !m.l.Add(v).Duplicate {
			st.New++
		}
	}
	return st, nil
}

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"), libp2p.Transport(quic.NewTransport), libp2p.DisableMetrics())
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h
}

func connect(t *testing.T, a, b host.Host) {
	t.Helper()
	require.NoError(t, a.Connect(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}))
}

// history is a ledger holding n accepted entries.
func history(t *testing.T, n int) *ledger.Ledger {
	t.Helper()
	l := ledger.New()
	for _, b := range ledgertest.History(t, 4, n) {
		v, err := ledger.Verify(b, cid.Undef)
		require.NoError(t, err)
		require.Equal(t, ledger.StatusAccepted, l.Add(v).Status)
	}
	return l
}

func TestCatchUpInOneRoundTrip(t *testing.T) {
	full := &memLedger{l: history(t, 3000)}
	empty := &memLedger{l: ledger.New()}
	ha, hb := newHost(t), newHost(t)
	New(ha, full, quiet, Options{})
	b := New(hb, empty, quiet, Options{})
	connect(t, hb, ha)
	var calls int
	st, err := b.Sync(context.Background(), ha.ID(), func(int) { calls++ })
	require.NoError(t, err)
	require.Equal(t, 3000, st.Received)
	require.Equal(t, 3000, st.New)
	require.Zero(t, st.Rejected)
	require.Equal(t, full.l.StateHash(), empty.l.StateHash())
	require.Positive(t, calls)
	// Nothing more to fetch.
	st, err = b.Sync(context.Background(), ha.ID(), nil)
	require.NoError(t, err)
	require.Zero(t, st.Received)
}

// A peer that streams garbage, a block that is too big, or never ends the
// response: the requester counts, stops and resets; nothing bad is stored.
func TestHostileResponder(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	mine := &memLedger{l: ledger.New()}
	b := New(hb, mine, quiet, Options{})
	connect(t, hb, ha)
	serve := func(write func(w *bufio.Writer)) {
		ha.SetStreamHandler(ID, func(s network.Stream) {
			_, _ = readSummary(bufio.NewReader(s))
			w := bufio.NewWriter(s)
			write(w)
			_ = w.Flush()
			s.Close()
		})
	}
	serve(func(w *bufio.Writer) {
		_ = writeFrame(w, []byte("not a block"))
		_ = writeFrame(w, nil)
	})
	st, err := b.Sync(context.Background(), ha.ID(), nil)
	require.NoError(t, err)
	require.Equal(t, 1, st.Rejected)
	require.Zero(t, st.New)

	serve(func(w *bufio.Writer) {
		_, _ = w.Write([]byte{0xff, 0xff, 0xff, 0x7f}) // a 256 MiB frame
	})
	_, err = b.Sync(context.Background(), ha.ID(), nil)
	require.ErrorIs(t, err, errFrameTooBig)

	serve(func(w *bufio.Writer) { _ = writeFrame(w, []byte("x")) }) // no end marker
	_, err = b.Sync(context.Background(), ha.ID(), nil)
	require.Error(t, err)
	_, q, p := mine.l.Counts()
	require.Zero(t, q+p)
}

func TestBadRequestIsReset(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	New(ha, &memLedger{l: history(t, 10)}, quiet, Options{})
	connect(t, hb, ha)
	s, err := hb.NewStream(context.Background(), ha.ID(), ID)
	require.NoError(t, err)
	_, err = s.Write([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}) // absurd author count
	require.NoError(t, err)
	require.NoError(t, s.CloseWrite())
	_, err = io.ReadAll(s)
	require.Error(t, err, "the responder resets instead of answering")
}
