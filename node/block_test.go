package node_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/harness"
	"github.com/intercooperative/icn/node"
	"github.com/intercooperative/icn/node/blocklist"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/controlserver"
)

// connectedTo reports whether n has a connection to the peer ID p.
func connectedTo(n interface{ Peers() []controlapi.Peer }, p string) bool {
	for _, q := range n.Peers() {
		if q.PeerID == p {
			return true
		}
	}
	return false
}

// blockedMetric reads icn_network_connections_blocked_total{direction}.
func blockedMetric(t *testing.T, reg *prometheus.Registry, direction string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "icn_network_connections_blocked_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "direction" && l.GetValue() == direction {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("icn_network_connections_blocked_total{direction=%q} not registered", direction)
	return 0
}

// requireDialFails dials addr from `from` and requires the attempt to end
// with no connection to peerID: refused outright, or hung up on right after.
func requireDialFails(t *testing.T, from *harness.Node, addr, peerID string) {
	t.Helper()
	_, err := from.Dial(context.Background(), controlapi.DialRequest{Addr: addr})
	if err != nil {
		t.Logf("dial refused: %v", err)
		return
	}
	require.Eventually(t, func() bool { return !connectedTo(from, peerID) }, 10*time.Second, 20*time.Millisecond,
		"a dial that got through was never hung up on")
}

func TestBlockPeerIDRefusesBothWaysUntilUnblocked(t *testing.T) {
	nodes := harness.Start(t, 2)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	harness.Connect(t, a, b)
	bPeer, aPeer := b.Identity.PeerID().String(), a.Identity.PeerID().String()

	res, err := a.Block(ctx, bPeer, 0, "floods gossip")
	require.NoError(t, err)
	require.Equal(t, []string{bPeer}, res.Disconnected)
	require.False(t, res.Replaced)
	require.Equal(t, "peer", res.Blocked.Kind)
	require.Nil(t, res.Blocked.ExpiresAt)
	require.Eventually(t, func() bool { return !connectedTo(a, bPeer) && !connectedTo(b, aPeer) }, 10*time.Second, 20*time.Millisecond)

	require.GreaterOrEqual(t, blockedMetric(t, a.Registry, "outbound"), 1.0, "the connection closed")

	// a's explicit dial says why; a dial that reaches the host (by DID,
	// resolved from what a remembers of b) is refused by the gater.
	_, err = a.Dial(ctx, controlapi.DialRequest{Addr: b.Multiaddr()})
	var be *blocklist.BlockedError
	require.ErrorAs(t, err, &be)
	require.Equal(t, bPeer, be.Peer.String())
	require.Contains(t, err.Error(), "is refused: its peer ID is blocked (floods gossip)")
	out := blockedMetric(t, a.Registry, "outbound")
	_, err = a.Dial(ctx, controlapi.DialRequest{DID: b.Identity.DID.String()})
	require.Error(t, err)
	t.Logf("dial by DID: %v", err)
	require.Greater(t, blockedMetric(t, a.Registry, "outbound"), out, "the gater refused the dial")

	// b's dials to a are refused at a's handshake.
	before := blockedMetric(t, a.Registry, "inbound")
	requireDialFails(t, b, a.Multiaddr(), aPeer)
	require.Eventually(t, func() bool { return blockedMetric(t, a.Registry, "inbound") > before }, 10*time.Second, 20*time.Millisecond)
	require.False(t, connectedTo(a, bPeer))

	list := a.Blocked()
	require.Len(t, list, 1)
	require.Equal(t, bPeer, list[0].Target)
	require.Equal(t, "floods gossip", list[0].Reason)

	u, err := a.Unblock(ctx, bPeer)
	require.NoError(t, err)
	require.Equal(t, bPeer, u.Unblocked.Target)
	require.Empty(t, a.Blocked())
	_, err = a.Unblock(ctx, bPeer)
	require.ErrorIs(t, err, blocklist.ErrNotBlocked)

	// b gets in again (a's dials to b after a block are in TestBlockForADurationLapses).
	harness.Connect(t, b, a)
}

func TestBlockRefusesBadTargets(t *testing.T) {
	a := harness.Start(t, 1)[0]
	ctx := context.Background()
	for _, target := range []string{"garbage", "did:icn:zzz", a.Identity.DID.String(), a.Identity.PeerID().String()} {
		_, err := a.Block(ctx, target, 0, "")
		var te *blocklist.TargetError
		require.ErrorAs(t, err, &te, target)
	}
	_, err := a.Block(ctx, a.Identity.DID.String(), 0, "")
	require.ErrorIs(t, err, blocklist.ErrSelf)
	_, err = a.Unblock(ctx, "garbage")
	require.ErrorIs(t, err, blocklist.ErrNotTarget)

	// Over the control socket the errors carry status and hint.
	_, err = a.Client.Block(ctx, controlapi.BlockRequest{Target: a.Identity.DID.String()})
	var ce *controlapi.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 400, ce.Status)
	require.Contains(t, ce.Message, "this node itself")
	require.NotEmpty(t, ce.Hint)
	for _, d := range []string{"-1h", "soon", "0s"} {
		_, err = a.Client.Block(ctx, controlapi.BlockRequest{Target: "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq", For: d})
		require.ErrorAs(t, err, &ce, d)
		require.Equal(t, 400, ce.Status, d)
		require.Contains(t, ce.Hint, "--for", d)
	}
	_, err = a.Client.Unblock(ctx, "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq")
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 404, ce.Status)
	require.Equal(t, "`icnctl network blocked` lists them", ce.Hint)
	require.Empty(t, a.Blocked())
}

// A DID block follows the DID to its next key: the new peer ID gets through
// the gater once (nobody knew it), is hung up on as soon as its binding
// arrives, and is refused at the handshake from then on, also after a
// restart of the blocking node (which starts with an empty Book).
func TestBlockDIDSurvivesKeyRotationAndRestart(t *testing.T) {
	nodes := harness.Start(t, 2)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	harness.Connect(t, a, b)
	oldPeer := b.Identity.PeerID().String()

	res, err := a.Block(ctx, b.Identity.DID.String(), 0, "bad ledger entries")
	require.NoError(t, err)
	require.Equal(t, []string{oldPeer}, res.Disconnected)
	require.Equal(t, "did", res.Blocked.Kind)
	require.Contains(t, res.Blocked.Peers, oldPeer)
	require.Eventually(t, func() bool { return !connectedTo(a, oldPeer) }, 10*time.Second, 20*time.Millisecond)
	// A dial by DID alone (resolved, no address given) says it is blocked too.
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = a.Dial(dctx, controlapi.DialRequest{DID: b.Identity.DID.String()})
	dcancel()
	require.ErrorAs(t, err, new(*blocklist.BlockedError))

	id, err := b.Rotate(ctx, harness.Passphrase)
	require.NoError(t, err)
	newPeer := id.PeerID
	require.NotEqual(t, oldPeer, newPeer)

	// b's new key dials a: let in by the handshake, hung up on once identified.
	requireDialFails(t, b, a.Multiaddr(), a.Identity.PeerID().String())
	require.Eventually(t, func() bool { return slices.Contains(a.Blocked()[0].Peers, newPeer) }, 10*time.Second, 20*time.Millisecond,
		"a learns b's new peer ID for the blocked DID")
	require.Eventually(t, func() bool { return !connectedTo(a, newPeer) }, 10*time.Second, 20*time.Millisecond)
	// Now the gater knows it: refused both ways.
	_, err = a.Dial(ctx, controlapi.DialRequest{DID: b.Identity.DID.String(), Addr: b.HostPort(t)})
	require.Error(t, err)
	requireDialFails(t, b, a.Multiaddr(), a.Identity.PeerID().String())

	// Restart a on the same data dir.
	a.Stop()
	a2 := restart(t, a)
	list := a2.Blocked()
	require.Len(t, list, 1)
	require.Equal(t, b.Identity.DID.String(), list[0].Target)
	require.Equal(t, "bad ledger entries", list[0].Reason)
	require.Contains(t, list[0].Peers, newPeer)
	s := a2.Status()
	addr := s.ListenAddrs[0] + "/p2p/" + s.PeerID
	requireDialFails(t, b, addr, s.PeerID)
	require.Eventually(t, func() bool { return blockedMetric(t, a2.reg, "inbound") >= 1 }, 10*time.Second, 20*time.Millisecond,
		"refused by the restarted node's gater")
	require.False(t, connectedTo(a2, newPeer))
}

// A block with --for lapses on its own: the peers connect again and the
// listing is empty.
func TestBlockForADurationLapses(t *testing.T) {
	nodes := harness.Start(t, 2)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	harness.Connect(t, a, b)
	bPeer := b.Identity.PeerID().String()

	res, err := a.Block(ctx, b.Identity.DID.String(), 2*time.Second, "cool off")
	require.NoError(t, err)
	require.Equal(t, []string{bPeer}, res.Disconnected)
	require.NotNil(t, res.Blocked.ExpiresAt)
	require.Equal(t, 2*time.Second, res.Blocked.ExpiresAt.Sub(res.Blocked.CreatedAt))

	require.Eventually(t, func() bool {
		if !connectedTo(a, bPeer) {
			_, _ = a.Dial(ctx, controlapi.DialRequest{Addr: b.Multiaddr()})
		}
		return connectedTo(a, bPeer)
	}, 30*time.Second, 100*time.Millisecond, "the block never lapsed")
	harness.WaitPeer(t, b, a)
	require.Empty(t, a.Blocked())
}

// restarted is a node started again on a harness node's data dir.
type restarted struct {
	*node.Node
	reg *prometheus.Registry
}

// restart starts a stopped harness node again on the same data dir and
// identity, and stops it at cleanup.
func restart(t *testing.T, old *harness.Node) restarted {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = old.DataDir
	cfg.Network.ListenAddr = "127.0.0.1:0"
	cfg.Network.MDNSEnabled = false
	cfg.Observability.MetricsPort, cfg.Observability.HealthPort = 0, 0
	id, err := old.Keystore.Unlock(harness.Passphrase)
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", "restarted")
	nd, err := node.New(context.Background(), node.Options{Config: cfg, Identity: id, Keystore: old.Keystore, Logger: log, Registry: reg, Control: controlserver.Handler(log)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- nd.Run(ctx) }()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(node.ShutdownTimeout + 5*time.Second):
				t.Error("restarted node did not stop")
			}
		})
	})
	require.Eventually(t, nd.Ready, 10*time.Second, 10*time.Millisecond)
	return restarted{Node: nd, reg: reg}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
