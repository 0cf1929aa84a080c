package identity

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/protocols/internal/penaltytest"
)

// charges records what a Penalizer was told.
type charges = penaltytest.Charges

// Each binding record Fetch refuses as a VerifyError charges the peer that
// presented it exactly once; a valid one, and one whose stream breaks off
// (a network failure, retried), charge nothing.
func TestRefusedBindingChargesThePeer(t *testing.T) {
	other := newIdentity(t)
	good, err := other.Binding.Marshal()
	require.NoError(t, err)
	frame := func(b []byte) []byte { return append(binary.AppendUvarint(nil, uint64(len(b))), b...) }
	for name, tc := range map[string]struct {
		answer  []byte // what the peer writes
		reset   bool   // then resets instead of closing
		charged bool
	}{
		"another peer's binding": {answer: frame(good), charged: true},
		"oversize record":        {answer: binary.AppendUvarint(nil, 1<<40), charged: true},
		"cut short":              {answer: frame(good)[:20], charged: true},
		"garbage":                {answer: frame([]byte("not a binding record")), charged: true},
		"broken off":             {answer: frame(good)[:20], reset: true},
	} {
		t.Run(name, func(t *testing.T) {
			pid := newIdentity(t)
			p := newHost(t, pid)
			p.SetStreamHandler(ID, func(s network.Stream) {
				_, _ = s.Write(tc.answer)
				if tc.reset {
					_ = s.Reset()
					return
				}
				_ = s.Close()
			})
			cid := newIdentity(t)
			c := newHost(t, cid)
			pen := &charges{}
			csvc := New(c, func() did.Binding { return cid.Binding }, NewBook(), quiet, Options{Penalties: pen})
			defer csvc.Close()
			require.NoError(t, c.Connect(context.Background(), peer.AddrInfo{ID: p.ID(), Addrs: p.Addrs()}))
			_, err := csvc.Fetch(context.Background(), p.ID())
			require.Error(t, err)
			by, n := pen.Snapshot()
			if !tc.charged {
				require.False(t, errors.As(err, new(*VerifyError)), "a broken stream is no VerifyError: %v", err)
				require.Zero(t, n, "%v", by)
				return
			}
			require.True(t, errors.As(err, new(*VerifyError)), "got %v", err)
			require.Equal(t, 1, n)
			require.Equal(t, map[peer.ID]float64{p.ID(): ViolationPenalty}, by)
		})
	}

	// A valid binding charges nothing.
	a, b := newIdentity(t), newIdentity(t)
	ha := newHost(t, a)
	hb := startNode(t, b, nil)
	pen := &charges{}
	svc := New(ha, func() did.Binding { return a.Binding }, NewBook(), quiet, Options{Penalties: pen})
	defer svc.Close()
	require.NoError(t, ha.Connect(context.Background(), peer.AddrInfo{ID: hb.h.ID(), Addrs: hb.h.Addrs()}))
	_, err = svc.Fetch(context.Background(), hb.h.ID())
	require.NoError(t, err)
	_, n := pen.Snapshot()
	require.Zero(t, n)
}
