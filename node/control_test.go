package node

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/node/config"
)

// Two connections to the same address (both sides dialled at once, or a
// forced direct dial) are listed as one address.
func TestPeersListEachAddressOnce(t *testing.T) {
	a, _ := limitsTestNode(t, config.Limits{}, io.Discard)
	b, _ := limitsTestNode(t, config.Limits{}, io.Discard)
	ha, hb := a.current().h, b.current().h
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Both sides dialling at the same moment leaves two connections
	// between the same two QUIC sockets; try until that happens.
	two := false
	for attempt := 0; attempt < 50 && !two; attempt++ {
		_ = ha.Network().ClosePeer(hb.ID())
		require.Eventually(t, func() bool {
			return len(ha.Network().ConnsToPeer(hb.ID())) == 0 && len(hb.Network().ConnsToPeer(ha.ID())) == 0
		}, 10*time.Second, 5*time.Millisecond)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, d := range [][2]host.Host{{ha, hb}, {hb, ha}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_ = d[0].Connect(ctx, peer.AddrInfo{ID: d[1].ID(), Addrs: d[1].Addrs()})
			}()
		}
		close(start)
		wg.Wait()
		two = len(ha.Network().ConnsToPeer(hb.ID())) >= 2
	}
	if !two {
		t.Skip("no simultaneous dial produced two connections in 50 tries")
	}
	conns := ha.Network().ConnsToPeer(hb.ID())
	addrs := map[string]bool{}
	for _, c := range conns {
		addrs[c.RemoteMultiaddr().String()] = true
	}
	require.Less(t, len(addrs), len(conns), "the connections should share an address: %v", addrs)
	peers := a.Peers()
	require.Len(t, peers, 1)
	require.Len(t, peers[0].Addrs, len(addrs), "%v", peers[0].Addrs)
	for _, a := range peers[0].Addrs {
		require.True(t, addrs[a], a)
	}
}

// A key rotation whose new host cannot be built leaves the node running on
// its previous key, reachable, and reporting unready with the reason.
func TestFailedRekeyKeepsAWorkingStack(t *testing.T) {
	a, _ := limitsTestNode(t, config.Limits{}, io.Discard)
	b, _ := limitsTestNode(t, config.Limits{}, io.Discard)
	before := a.current()
	a.buildStack = func(deps stackDeps, id *did.Identity) (*netStack, error) {
		if id.Binding.Seq > before.id.Binding.Seq {
			return nil, errors.New("forced failure for the test")
		}
		return newStack(deps, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := a.Rotate(ctx, "limits-test-passphrase")
	require.ErrorContains(t, err, "forced failure for the test")

	require.False(t, a.Ready())
	h := a.Health()
	require.Equal(t, "unhealthy", h.Status)
	require.Contains(t, h.Problem, "key rotation failed")
	require.Equal(t, h.Problem, a.Status().Problem)
	after := a.current()
	require.NotSame(t, before, after, "the old, closed stack must not stay in place")
	require.Equal(t, before.h.ID(), after.h.ID(), "the node runs on with its previous key")

	// The rebuilt host works: another node connects to it and both identify.
	hb := b.current().h
	require.NoError(t, hb.Connect(ctx, peer.AddrInfo{ID: after.h.ID(), Addrs: after.h.Addrs()}))
	require.Eventually(t, func() bool {
		ps := a.Peers()
		return len(ps) == 1 && ps[0].DID == b.current().id.DID.String()
	}, 10*time.Second, 10*time.Millisecond)
}
