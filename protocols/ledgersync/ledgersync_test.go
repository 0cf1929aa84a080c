package ledgersync

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

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

// memLedger adapts an in-memory ledger to the protocol; it keeps the
// blocks, which the ledger does not.
type memLedger struct {
	mu     sync.Mutex
	l      *ledger.Ledger
	blocks map[cid.Cid][]byte
	from   map[peer.ID]int // blocks received per sending peer
}

func newMemLedger() *memLedger {
	return &memLedger{l: ledger.New(), blocks: map[cid.Cid][]byte{}, from: map[peer.ID]int{}}
}

func (m *memLedger) add(t *testing.T, b []byte) ledger.Outcome {
	t.Helper()
	v, err := ledger.Verify(b, cid.Undef)
	require.NoError(t, err)
	m.blocks[v.CID] = b
	return m.l.Add(v)
}

func (m *memLedger) Summary() map[did.DID]ledger.AuthorSummary {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.l.Summary()
}

func (m *memLedger) MissingCIDs(r map[did.DID]ledger.AuthorSummary, limit int) []cid.Cid {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.l.MissingCIDs(r, limit)
}

func (m *memLedger) Block(_ context.Context, c cid.Cid) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blocks[c]
	if !ok {
		return nil, fmt.Errorf("no block %s", c)
	}
	return b, nil
}

func (m *memLedger) Ingest(_ context.Context, from peer.ID, blocks [][]byte) (Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.from[from] += len(blocks)
	st := Stats{Received: len(blocks)}
	for _, b := range blocks {
		v, err := ledger.Verify(b, cid.Undef)
		if err != nil {
			st.Rejected++
			continue
		}
		m.blocks[v.CID] = b
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

// serve runs s's responder until the test ends.
func serve(t *testing.T, s *Service) *Service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, s.Close())
	})
	// Run registers the handler: wait for it.
	require.Eventually(t, func() bool { return slices.Contains(s.h.Mux().Protocols(), ID) }, 10*time.Second, time.Millisecond)
	return s
}

// history is a ledger holding n accepted entries.
func history(t *testing.T, n int) *memLedger {
	t.Helper()
	m := newMemLedger()
	for _, b := range ledgertest.History(t, 4, n) {
		require.Equal(t, ledger.StatusAccepted, m.add(t, b).Status)
	}
	return m
}

func TestCatchUpInOneRoundTrip(t *testing.T) {
	full := history(t, 3000)
	empty := newMemLedger()
	ha, hb := newHost(t), newHost(t)
	serve(t, New(ha, full, quiet, Options{}))
	b := New(hb, empty, quiet, Options{})
	connect(t, hb, ha)
	type call struct{ received, announced int }
	var calls []call
	st, err := b.Sync(context.Background(), ha.ID(), func(received, announced int) {
		calls = append(calls, call{received, announced})
	})
	require.NoError(t, err)
	require.Equal(t, Stats{Announced: 3000, Received: 3000, New: 3000}, st)
	require.Equal(t, full.l.StateHash(), empty.l.StateHash())
	require.Equal(t, 3000, empty.from[ha.ID()], "Ingest is told which peer sent the blocks")
	// First the header (nothing received yet), then one call per batch,
	// ending with everything.
	require.Greater(t, len(calls), 2)
	require.Equal(t, call{0, 3000}, calls[0])
	require.Equal(t, call{3000, 3000}, calls[len(calls)-1])
	for i := 1; i < len(calls); i++ {
		require.Equal(t, 3000, calls[i].announced)
		require.Greater(t, calls[i].received, calls[i-1].received)
	}
	// Nothing more to fetch: the responder announces 0.
	calls = nil
	st, err = b.Sync(context.Background(), ha.ID(), func(received, announced int) {
		calls = append(calls, call{received, announced})
	})
	require.NoError(t, err)
	require.Zero(t, st.Received)
	require.Equal(t, []call{{0, 0}}, calls)
}

// serveRaw replaces h's ledgersync handler with one that reads the request
// and writes whatever write writes.
func serveRaw(h host.Host, write func(w *bufio.Writer)) {
	h.SetStreamHandler(ID, func(s network.Stream) {
		_, _ = readSummary(bufio.NewReader(s), nil)
		w := bufio.NewWriter(s)
		write(w)
		_ = w.Flush()
		s.Close()
	})
}

// The requester knows how far behind it is as soon as the header arrives,
// before any block: progress reports (0, announced) while the responder
// has not sent anything else.
func TestProgressKnowsTheLagBeforeTheBlocks(t *testing.T) {
	blocks := ledgertest.History(t, 2, 40)
	ha, hb := newHost(t), newHost(t)
	mine := newMemLedger()
	b := New(hb, mine, quiet, Options{})
	connect(t, hb, ha)
	release := make(chan struct{})
	ha.SetStreamHandler(ID, func(s network.Stream) {
		_, _ = readSummary(bufio.NewReader(s), nil)
		w := bufio.NewWriter(s)
		_ = writeCount(w, len(blocks))
		_ = w.Flush()
		<-release
		for _, blk := range blocks {
			_ = writeFrame(w, blk)
		}
		_ = writeFrame(w, nil)
		_ = w.Flush()
		s.Close()
	})
	header := make(chan [2]int, 1)
	var mu sync.Mutex
	var last [2]int
	done := make(chan struct{})
	var st Stats
	var err error
	go func() {
		defer close(done)
		st, err = b.Sync(context.Background(), ha.ID(), func(received, announced int) {
			mu.Lock()
			last = [2]int{received, announced}
			mu.Unlock()
			select {
			case header <- [2]int{received, announced}:
			default:
			}
		})
	}()
	require.Equal(t, [2]int{0, len(blocks)}, <-header, "the lag is known before any block arrives")
	close(release)
	<-done
	require.NoError(t, err)
	require.Equal(t, len(blocks), st.New)
	mu.Lock()
	require.Equal(t, [2]int{len(blocks), len(blocks)}, last)
	mu.Unlock()
}

// A peer that streams garbage, a block that is too big, lies about the
// count or never ends the response: the requester counts, stops and resets;
// nothing bad is stored, and the lies are protocol violations.
func TestHostileResponder(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	mine := newMemLedger()
	b := New(hb, mine, quiet, Options{})
	connect(t, hb, ha)
	good := ledgertest.History(t, 2, 3)

	serveRaw(ha, func(w *bufio.Writer) {
		_ = writeCount(w, 1)
		_ = writeFrame(w, []byte("not a block"))
		_ = writeFrame(w, nil)
	})
	st, err := b.Sync(context.Background(), ha.ID(), nil)
	require.NoError(t, err, "bad blocks are counted, not a protocol error")
	require.Equal(t, 1, st.Rejected)
	require.Zero(t, st.New)
	require.Equal(t, 1, mine.from[ha.ID()])

	for name, write := range map[string]func(w *bufio.Writer){
		"oversize frame": func(w *bufio.Writer) {
			_ = writeCount(w, 1)
			_, _ = w.Write([]byte{0xff, 0xff, 0xff, 0x7f}) // a 256 MiB frame
		},
		"more frames than announced": func(w *bufio.Writer) {
			_ = writeCount(w, 1)
			for _, blk := range good {
				_ = writeFrame(w, blk)
			}
			_ = writeFrame(w, nil)
		},
		"fewer frames than announced": func(w *bufio.Writer) {
			_ = writeCount(w, 5)
			_ = writeFrame(w, good[0])
			_ = writeFrame(w, nil)
		},
		"count over the limit": func(w *bufio.Writer) {
			_ = writeCount(w, MaxEntriesPerResponse+1)
			_ = writeFrame(w, nil)
		},
	} {
		serveRaw(ha, write)
		_, err = b.Sync(context.Background(), ha.ID(), nil)
		require.ErrorIs(t, err, ErrViolation, name)
	}

	serveRaw(ha, func(w *bufio.Writer) { _ = writeCount(w, 1); _ = writeFrame(w, []byte("x")) }) // no end marker
	_, err = b.Sync(context.Background(), ha.ID(), nil)
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrViolation, "a stream that just ends is a network failure, not proof of a lie")

	_, q, p := mine.l.Counts()
	require.Zero(t, q+p)
}

// A responder that stalls, before the header or mid-response, is cut off
// after StallTimeout without a byte, long before ResponseTimeout; one
// that keeps sending slowly is not.
func TestStallingResponderIsCutOff(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	mine := newMemLedger()
	const stall = 300 * time.Millisecond
	b := New(hb, mine, quiet, Options{StallTimeout: stall})
	connect(t, hb, ha)
	blocks := ledgertest.History(t, 2, 3)
	release := make(chan struct{})
	defer close(release)
	for name, write := range map[string]func(w *bufio.Writer){
		"before the header": func(w *bufio.Writer) {},
		"mid-response": func(w *bufio.Writer) {
			_ = writeCount(w, len(blocks))
			_ = writeFrame(w, blocks[0])
		},
	} {
		ha.SetStreamHandler(ID, func(s network.Stream) {
			_, _ = readSummary(bufio.NewReader(s), nil)
			w := bufio.NewWriter(s)
			write(w)
			_ = w.Flush()
			<-release
			s.Reset()
		})
		began := time.Now()
		_, err := b.Sync(context.Background(), ha.ID(), nil)
		require.Error(t, err, name)
		require.Contains(t, err.Error(), "nothing for 300ms", name)
		require.NotErrorIs(t, err, ErrViolation, "%s: slow is not a lie", name)
		require.Less(t, time.Since(began), 20*stall, name)
	}

	// Slow but steady: each frame within the bound, the whole longer.
	ha.SetStreamHandler(ID, func(s network.Stream) {
		_, _ = readSummary(bufio.NewReader(s), nil)
		w := bufio.NewWriter(s)
		_ = writeCount(w, len(blocks))
		for _, blk := range blocks {
			_ = w.Flush()
			time.Sleep(stall / 3)
			_ = writeFrame(w, blk)
		}
		_ = writeFrame(w, nil)
		_ = w.Flush()
		s.Close()
	})
	st, err := b.Sync(context.Background(), ha.ID(), nil)
	require.NoError(t, err)
	require.Equal(t, len(blocks), st.New)
}

func TestBadRequestIsReset(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	serve(t, New(ha, history(t, 10), quiet, Options{}))
	connect(t, hb, ha)
	s, err := hb.NewStream(context.Background(), ha.ID(), ID)
	require.NoError(t, err)
	_, err = s.Write([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}) // absurd author count
	require.NoError(t, err)
	// The responder may reset on reading the count, before CloseWrite: then
	// CloseWrite fails too, with the same reset.
	_ = s.CloseWrite()
	_, err = io.ReadAll(s)
	require.Error(t, err, "the responder resets instead of answering")
}
