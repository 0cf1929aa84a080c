package gossip

import (
	"context"
	"encoding/binary"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/protocols/internal/penaltytest"
)

// charges records what a Penalizer was told.
type charges = penaltytest.Charges

func withPenalties(pen Penalizer) nodeOpt {
	return func(_ *Config, d *Deps) { d.Penalties = pen }
}

// A malformed request charges its sender exactly once; a valid one and one
// the requester abandons (a broken stream) charge nothing.
func TestMalformedRequestChargesTheSender(t *testing.T) {
	pen := &charges{}
	n := newNode(t, withPenalties(pen))
	h := newHost(t, nil)
	connect(t, h, n.h)
	send := func(req []byte, reset bool) {
		t.Helper()
		s, err := h.NewStream(context.Background(), n.h.ID(), ID)
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
	valid := encodeRequest(testWire, [][]byte{[]byte("key")})
	framed := func(b []byte) []byte { return append(binary.AppendUvarint(nil, uint64(len(b))), b...) }
	send(framed(valid)[:10], true)
	send(framed(valid), false)
	by, c := pen.Snapshot()
	require.Zero(t, c, "charged for a valid or an abandoned request: %v", by)
	for name, req := range map[string][]byte{
		"oversize":     binary.AppendUvarint(nil, MaxRequestSize+1),
		"cut short":    framed(valid)[:10],
		"undecodable":  framed([]byte{0xff, 0xff, 0xff}),
		"bad key list": framed(append(binary.AppendUvarint(nil, uint64(len(testWire))), testWire+"\x07"...)),
	} {
		_, before := pen.Snapshot()
		send(req, false)
		require.Eventually(t, func() bool { _, c := pen.Snapshot(); return c == before+1 }, 10*time.Second, 10*time.Millisecond, name)
		by, _ := pen.Snapshot()
		require.Equal(t, map[peer.ID]float64{h.ID(): float64(before + 1)}, by, name)
	}
	_, c = pen.Snapshot()
	require.Equal(t, 4, c)
}

// A response that breaks the protocol charges the responder once; one that
// breaks off (a reset) charges nothing.
func TestBrokenResponseChargesTheResponder(t *testing.T) {
	pen := &charges{}
	n := newNode(t, withPenalties(pen))
	_, err := n.svc.Subscribe(chatTopic, 0)
	require.NoError(t, err)
	tp := n.svc.topicByWire(testWire)
	require.NotNil(t, tp)
	rogue := newHost(t, nil)
	var reset atomic.Bool
	rogue.SetStreamHandler(ID, func(s network.Stream) {
		_, _ = io.Copy(io.Discard, io.LimitReader(s, MaxRequestSize+16))
		if reset.Load() {
			_, _ = s.Write(binary.AppendUvarint(nil, 100))
			_ = s.Reset()
			return
		}
		_, _ = s.Write(binary.AppendUvarint(nil, uint64(n.svc.cfg.MaxMessageSize)+1))
		_ = s.Close()
	})
	connect(t, rogue, n.h)
	job := fetchJob{tp: tp, peer: rogue.ID(), keys: [][]byte{[]byte("key")}}
	n.svc.fetch(context.Background(), job)
	by, c := pen.Snapshot()
	require.Equal(t, 1, c)
	require.Equal(t, map[peer.ID]float64{rogue.ID(): RequestViolationPenalty}, by)

	reset.Store(true)
	n.svc.fetch(context.Background(), job)
	_, c = pen.Snapshot()
	require.Equal(t, 1, c, "charged for a response that broke off")
}
