package node_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/harness"
	"github.com/intercooperative/icn/node"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/controlserver"
)

func TestTwoNodesSeeEachOtherWithDIDs(t *testing.T) {
	nodes := harness.Start(t, 2)
	a, b := nodes[0], nodes[1]
	harness.Connect(t, a, b)

	pa := a.Peers()
	require.Len(t, pa, 1)
	require.Equal(t, b.Identity.DID.String(), pa[0].DID)
	require.Equal(t, b.Identity.PeerID().String(), pa[0].PeerID)
	require.Equal(t, "outbound", pa[0].Direction)
	pb := b.Peers()
	require.Len(t, pb, 1)
	require.Equal(t, a.Identity.DID.String(), pb[0].DID)
	require.Equal(t, "inbound", pb[0].Direction)

	require.Equal(t, 1, a.Status().Peers)
	require.Equal(t, 1, b.Status().Peers)
	require.GreaterOrEqual(t, metric(t, a, "icn_network_connections_total"), 1.0)
}

func TestControlSocketMatchesInProcessView(t *testing.T) {
	a := harness.Start(t, 1)[0]
	ctx := context.Background()
	s, err := a.Client.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, a.Identity.DID.String(), s.DID)
	require.Equal(t, a.Identity.PeerID().String(), s.PeerID)
	require.True(t, s.Ready)
	require.NotEmpty(t, s.ListenAddrs)
	require.True(t, strings.HasPrefix(s.ListenAddrs[0], "/ip4/127.0.0.1/udp/"), s.ListenAddrs[0])
}

func TestDialByDIDAndAddress(t *testing.T) {
	nodes := harness.Start(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := context.Background()

	p, err := a.Dial(ctx, controlapi.DialRequest{DID: b.Identity.DID.String(), Addr: b.HostPort(t)})
	require.NoError(t, err)
	require.Equal(t, b.Identity.DID.String(), p.DID)

	// Already connected: dialling again succeeds without a new connection.
	p, err = a.Dial(ctx, controlapi.DialRequest{DID: b.Identity.DID.String(), Addr: b.HostPort(t)})
	require.NoError(t, err)
	require.Equal(t, b.Identity.PeerID().String(), p.PeerID)

	// The peer at a's address is not b: c refuses it and does not stay connected.
	_, err = c.Dial(ctx, controlapi.DialRequest{DID: b.Identity.DID.String(), Addr: a.HostPort(t)})
	require.Error(t, err)
	require.Contains(t, err.Error(), "is "+a.Identity.DID.String()+", not "+b.Identity.DID.String())
	require.Eventually(t, func() bool { return len(c.Peers()) == 0 }, 5*time.Second, 20*time.Millisecond)

	// Bad input is a 400 with a reason.
	for _, req := range []controlapi.DialRequest{
		{Addr: "/ip4/127.0.0.1/udp/1/quic-v1"},       // no peer id
		{Addr: "not-an-addr"},                        // not host:port
		{DID: "did:icn:nope", Addr: b.HostPort(t)},   // bad DID
		{Addr: "/ip4/127.0.0.1/udp/1/quic-v1/p2p/x"}, // bad peer id
	} {
		_, err := a.Dial(ctx, req)
		require.Error(t, err, "%+v", req)
		require.ErrorAs(t, err, new(*node.ArgError), "%+v", req)
		require.Equal(t, 400, controlserver.Describe(err).Status, "%+v: %v", req, err)
	}
}

func TestDisconnectByDIDAndPeerID(t *testing.T) {
	nodes := harness.Start(t, 2)
	a, b := nodes[0], nodes[1]
	harness.Connect(t, a, b)
	res, err := a.Disconnect(b.Identity.DID.String())
	require.NoError(t, err)
	require.Equal(t, []string{b.Identity.PeerID().String()}, res.Disconnected)
	require.Eventually(t, func() bool { return len(a.Peers()) == 0 }, 5*time.Second, 20*time.Millisecond)

	_, err = a.Disconnect(b.Identity.PeerID().String())
	require.ErrorContains(t, err, "not connected")
	_, err = a.Disconnect("garbage")
	require.ErrorContains(t, err, "neither a peer ID nor a DID")
}

// Rotating a running node's key keeps its DID, re-keys its host, reconnects
// its peers, and a node that only knew the old peer ID reaches the new one by DID.
func TestRotateWhileRunning(t *testing.T) {
	nodes := harness.Start(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	harness.Connect(t, a, b)
	oldPeer := b.Status().PeerID

	id, err := b.Rotate(context.Background(), harness.Passphrase)
	require.NoError(t, err)
	require.Equal(t, b.Identity.DID.String(), id.DID)
	require.NotEqual(t, oldPeer, id.PeerID)
	require.Equal(t, uint64(2), id.BindingSeq)
	require.Equal(t, id.PeerID, b.Status().PeerID)

	// a is reconnected to the new key and knows it speaks for the same DID.
	harness.WaitPeer(t, a, b)

	// The keystore holds the rotated key.
	unlocked, err := b.Keystore.Unlock(harness.Passphrase)
	require.NoError(t, err)
	require.Equal(t, id.PeerID, unlocked.PeerID().String())

	// c never met b: dialling the DID at b's address reaches the new peer ID.
	p, err := c.Dial(context.Background(), controlapi.DialRequest{DID: id.DID, Addr: b.HostPort(t)})
	require.NoError(t, err)
	require.Equal(t, id.PeerID, p.PeerID)

	// A wrong passphrase changes nothing.
	_, err = b.Rotate(context.Background(), "wrong")
	require.ErrorContains(t, err, "Failed to unlock keystore")
	require.Equal(t, id.PeerID, b.Status().PeerID)
}

func TestSecondNodeOnSameDataDirRefused(t *testing.T) {
	a := harness.Start(t, 1)[0]
	cfg := config.Default()
	cfg.DataDir = a.DataDir
	cfg.Network.ListenAddr = "127.0.0.1:0"
	cfg.Observability.MetricsPort, cfg.Observability.HealthPort = 0, 0
	_, err := node.New(context.Background(), node.Options{Config: cfg, Identity: a.Identity, Keystore: a.Keystore})
	require.ErrorContains(t, err, "another icnd is already running")
	// The running node is unharmed.
	_, err = a.Client.Status(context.Background())
	require.NoError(t, err)
}

// metric reads a counter or gauge (its first series) from a node's registry.
func metric(t *testing.T, n *harness.Node, name string) float64 {
	t.Helper()
	mfs, err := n.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestBootstrapPeersDialledAtStart(t *testing.T) {
	seed := harness.Start(t, 1)[0]
	addr := seed.Multiaddr()
	joiner := harness.Start(t, 1, func(_ int, cfg *config.Config) {
		cfg.Network.BootstrapPeers = []string{addr}
	})[0]
	harness.WaitPeer(t, joiner, seed)
	harness.WaitPeer(t, seed, joiner)
}

func TestWANOptions(t *testing.T) {
	on := harness.Start(t, 1)[0]
	off := harness.Start(t, 1, func(_ int, cfg *config.Config) {
		cfg.Network.AutoNAT, cfg.Network.HolePunching, cfg.Network.RelayClient = false, false, false
		cfg.Network.AnnounceAddrs = []string{"203.0.113.7:7777", "/dns4/coop.example.org/udp/7777/quic-v1"}
	})[0]
	has := func(n *harness.Node, proto string) bool {
		for _, p := range n.Status().Protocols {
			if p == proto {
				return true
			}
		}
		return false
	}
	for _, proto := range []string{"/libp2p/circuit/relay/0.2.0/stop", "/libp2p/autonat/1.0.0"} {
		require.True(t, has(on, proto), "%s missing with defaults: %v", proto, on.Status().Protocols)
		require.False(t, has(off, proto), "%s served although turned off", proto)
	}
	// The hole-punching service serves /libp2p/dcutr only once it thinks the
	// node is behind a NAT, so check that it exists through its metrics.
	families := func(n *harness.Node, prefix string) int {
		mfs, err := n.Registry.Gather()
		require.NoError(t, err)
		c := 0
		for _, mf := range mfs {
			if strings.HasPrefix(mf.GetName(), prefix) {
				c++
			}
		}
		return c
	}
	require.Positive(t, families(on, "libp2p_holepunch_"))
	require.Zero(t, families(off, "libp2p_holepunch_"))
	for _, proto := range []string{"/icn/id/1.0.0", "/icn/kad/1.0.0"} {
		require.True(t, has(on, proto), proto)
	}
	s := off.Status()
	require.Equal(t, []string{"/ip4/203.0.113.7/udp/7777/quic-v1", "/dns4/coop.example.org/udp/7777/quic-v1"}, s.AnnounceAddrs)
	require.True(t, strings.HasPrefix(s.ListenAddrs[0], "/ip4/127.0.0.1/udp/"), s.ListenAddrs)
}
