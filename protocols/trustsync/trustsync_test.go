package trustsync

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/protocols/internal/penaltytest"
	"github.com/intercooperative/icn/trust"
)

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"), libp2p.Transport(quic.NewTransport), libp2p.DisableMetrics())
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h
}

// memGraph is a trust.Graph behind the Graph interface.
type memGraph struct {
	mu sync.Mutex
	g  *trust.Graph
}

func (m *memGraph) Summary() trust.Summary {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.g.Summary()
}

func (m *memGraph) Missing(r trust.Summary, limit int) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out [][]byte
	for _, a := range m.g.Missing(r, limit) {
		b, _ := a.Encode()
		out = append(out, b)
	}
	return out
}

func (m *memGraph) Ingest(_ context.Context, _ peer.ID, blocks [][]byte) Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Stats{Received: len(blocks)}
	for _, b := range blocks {
		switch res, _ := m.g.AddBlock(b, time.Now()); res {
		case trust.Accepted:
			st.New++
		case trust.Duplicate:
		default:
			st.Rejected++
		}
	}
	return st
}

func attest(t *testing.T, seed byte, subjects int) [][]byte {
	t.Helper()
	k := ed25519.NewKeyFromSeed(append(make([]byte, 31), seed))
	issuer, err := did.FromPublicKey(k.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	var out [][]byte
	for i := 0; i < subjects; i++ {
		sk := ed25519.NewKeyFromSeed(append(make([]byte, 30), seed, byte(i+1)))
		sub, err := did.FromPublicKey(sk.Public().(ed25519.PublicKey))
		require.NoError(t, err)
		b, err := trust.Sign(&trust.Attestation{Issuer: issuer, Subject: sub, Score: 0.5, IssuedAt: time.Unix(1_800_000_000, 0), Seq: 1}, k)
		require.NoError(t, err)
		out = append(out, b)
	}
	return out
}

func run(t *testing.T, s *Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

// A node that lacks attestations gets exactly what it lacks in one round
// trip, and a second sync finds nothing new.
func TestSyncFetchesWhatIsMissing(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	ha, hb := newHost(t), newHost(t)
	a := &memGraph{g: trust.NewGraph()}
	b := &memGraph{g: trust.NewGraph()}
	for _, blk := range append(attest(t, 1, 3), attest(t, 2, 2)...) {
		res, _ := a.g.AddBlock(blk, time.Now())
		require.Equal(t, trust.Accepted, res)
	}
	b.g.AddBlock(attest(t, 2, 2)[0], time.Now()) // b holds one already
	run(t, New(ha, a, quiet, Options{}))
	sb := New(hb, b, quiet, Options{})
	require.NoError(t, hb.Connect(context.Background(), peer.AddrInfo{ID: ha.ID(), Addrs: ha.Addrs()}))
	st, err := sb.Sync(context.Background(), ha.ID())
	require.NoError(t, err)
	require.Equal(t, 4, st.New)
	require.Equal(t, 5, b.g.Len())
	require.Equal(t, a.Summary(), b.Summary())
	st, err = sb.Sync(context.Background(), ha.ID())
	require.NoError(t, err)
	require.Zero(t, st.Received)
}

// A responder that announces more than it sends, or too many, or an
// oversize frame, breaks the protocol: Sync says so with ErrViolation and
// keeps nothing.
func TestSyncRefusesViolations(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	blk := attest(t, 3, 1)[0]
	short := binary.AppendUvarint(nil, 2) // two announced, one sent
	short = binary.AppendUvarint(short, uint64(len(blk)))
	short = append(short, blk...)
	for name, answer := range map[string][]byte{
		"fewer than announced": short,
		"too many":             binary.AppendUvarint(nil, MaxPerResponse+1),
		"oversize frame":       binary.AppendUvarint(binary.AppendUvarint(nil, 1), trust.MaxSize+1),
	} {
		t.Run(name, func(t *testing.T) {
			rogue, hb := newHost(t), newHost(t)
			rogue.SetStreamHandler(ID, func(st network.Stream) {
				defer st.Close()
				_, _ = io.Copy(io.Discard, st)
				_, _ = st.Write(answer)
			})
			b := &memGraph{g: trust.NewGraph()}
			sb := New(hb, b, quiet, Options{})
			require.NoError(t, hb.Connect(context.Background(), peer.AddrInfo{ID: rogue.ID(), Addrs: rogue.Addrs()}))
			_, err := sb.Sync(context.Background(), rogue.ID())
			require.ErrorIs(t, err, ErrViolation)
			require.Zero(t, b.g.Len())
		})
	}
}

// charges records what a Penalizer was told.
type charges = penaltytest.Charges

// A malformed request charges its sender exactly once; a valid one and one
// the requester abandons (a broken stream) charge nothing.
func TestMalformedRequestChargesTheSender(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	ha, hb := newHost(t), newHost(t)
	pen := &charges{}
	run(t, New(ha, &memGraph{g: trust.NewGraph()}, quiet, Options{Penalties: pen}))
	require.NoError(t, hb.Connect(context.Background(), peer.AddrInfo{ID: ha.ID(), Addrs: ha.Addrs()}))
	require.Eventually(t, func() bool { return slices.Contains(ha.Mux().Protocols(), ID) }, 10*time.Second, time.Millisecond)
	send := func(req []byte, reset bool) {
		t.Helper()
		s, err := hb.NewStream(context.Background(), ha.ID(), ID)
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
	half := append(binary.AppendUvarint(nil, 2), make([]byte, ed25519.PublicKeySize)...)
	send(half, true)
	send(binary.AppendUvarint(nil, 0), false)
	by, n := pen.Snapshot()
	require.Zero(t, n, "charged for a valid or an abandoned request: %v", by)
	for name, req := range map[string][]byte{
		"too many issuers":  binary.AppendUvarint(nil, MaxIssuers+1),
		"cut short":         half,
		"data after it all": append(binary.AppendUvarint(nil, 0), 1),
	} {
		_, before := pen.Snapshot()
		send(req, false)
		require.Eventually(t, func() bool { _, n := pen.Snapshot(); return n == before+1 }, 10*time.Second, 10*time.Millisecond, name)
		by, _ := pen.Snapshot()
		require.Equal(t, map[peer.ID]float64{hb.ID(): float64(before + 1)}, by, name)
	}
	_, n = pen.Snapshot()
	require.Equal(t, 3, n)
}

// A response that breaks the protocol charges the responder once per
// sync; one that breaks off (a reset, as from an honest peer that goes
// away) charges nothing and is no ErrViolation.
func TestBrokenResponseChargesTheResponder(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	rogue, hb := newHost(t), newHost(t)
	var reset atomic.Bool
	rogue.SetStreamHandler(ID, func(st network.Stream) {
		_, _ = io.Copy(io.Discard, st)
		if reset.Load() {
			_, _ = st.Write(binary.AppendUvarint(nil, 2))
			_ = st.Reset()
			return
		}
		_, _ = st.Write(binary.AppendUvarint(nil, MaxPerResponse+1))
		_ = st.Close()
	})
	pen := &charges{}
	sb := New(hb, &memGraph{g: trust.NewGraph()}, quiet, Options{Penalties: pen})
	require.NoError(t, hb.Connect(context.Background(), peer.AddrInfo{ID: rogue.ID(), Addrs: rogue.Addrs()}))
	_, err := sb.Sync(context.Background(), rogue.ID())
	require.ErrorIs(t, err, ErrViolation)
	by, n := pen.Snapshot()
	require.Equal(t, 1, n)
	require.Equal(t, map[peer.ID]float64{rogue.ID(): ViolationPenalty}, by)

	reset.Store(true)
	_, err = sb.Sync(context.Background(), rogue.ID())
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrViolation)
	_, n = pen.Snapshot()
	require.Equal(t, 1, n, "charged for a response that broke off")
}
