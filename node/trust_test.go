package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/harness"
	"github.com/intercooperative/icn/internal/testutil"
	"github.com/intercooperative/icn/node"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
)

func trustedMode(connect, ledger, gossip string) harness.Option {
	return func(_ int, c *config.Config) {
		c.Trust.Mode = config.TrustTrusted
		c.Trust.MinConnectClass, c.Trust.MinLedgerClass, c.Trust.MinGossipClass = connect, ledger, gossip
	}
}

// An attestation made on one node reaches the others (gossip, or sync for
// a node that joins later) and changes their view; it survives a restart
// of the node that holds it.
func TestAttestationsSpread(t *testing.T) {
	ctx := context.Background()
	nodes := harness.Start(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	harness.Connect(t, a, b)
	e, err := a.TrustAdd(ctx, controlapi.TrustAddRequest{DID: c.DID().String(), Score: 0.8, Labels: []string{"coop:bakery"}})
	require.NoError(t, err)
	require.Equal(t, a.DID().String(), e.Issuer)
	v, err := a.TrustShow(c.DID().String())
	require.NoError(t, err)
	require.Equal(t, "federated", v.Class)
	require.NotNil(t, v.Direct)

	// b holds it (gossip or sync), and scores c through a.
	require.Eventually(t, func() bool {
		return len(b.TrustGraph().Edges) == 1
	}, 30*time.Second, 20*time.Millisecond, "b never received a's attestation")
	// c joins later: sync brings the attestation.
	harness.Connect(t, c, b)
	require.Eventually(t, func() bool { return len(c.TrustGraph().Edges) == 1 }, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, float64(1), testutil.MetricSum(t, c.Registry, "icn_trust_edges_total", nil))

	// A revocation supersedes it everywhere.
	_, err = a.TrustRemove(ctx, c.DID().String())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(b.TrustGraph().Edges) == 0 && len(c.TrustGraph().Edges) == 0 },
		30*time.Second, 20*time.Millisecond)
	require.Empty(t, a.TrustList())
	_, err = a.TrustRemove(ctx, c.DID().String())
	require.Error(t, err, "nothing left to remove")
}

// In trusted mode an untrusted DID cannot connect; once the node attests
// it, it can.
func TestTrustedModeRefusesUntrustedConnections(t *testing.T) {
	ctx := context.Background()
	guard := harness.Start(t, 1, trustedMode("known", "known", "known"))[0]
	stranger := harness.Start(t, 1)[0]

	// The stranger is told the guard hung up, the guard that its policy
	// refuses the stranger.
	_, err := stranger.Dial(ctx, controlapi.DialRequest{Addr: guard.Multiaddr()})
	var hu *node.HungUpError
	require.ErrorAs(t, err, &hu)
	require.Equal(t, stranger.DID(), hu.Self)
	require.Eventually(t, func() bool { return !connectedTo(stranger, guard.Status().PeerID) }, 10*time.Second, 20*time.Millisecond)
	require.GreaterOrEqual(t, testutil.MetricSum(t, guard.Registry, "icn_network_connections_rejected_untrusted_total", nil), float64(1))
	_, err = guard.Dial(ctx, controlapi.DialRequest{Addr: stranger.Multiaddr()})
	var ue *node.UntrustedPeerError
	require.ErrorAs(t, err, &ue)
	require.Equal(t, stranger.DID(), ue.DID)
	require.Equal(t, 0.1, ue.Need)
	v, err := guard.TrustShow(stranger.DID().String())
	require.NoError(t, err)
	require.False(t, v.MayConnect)
	require.Equal(t, "isolated", v.Class)

	_, err = guard.TrustAdd(ctx, controlapi.TrustAddRequest{DID: stranger.DID().String(), Score: 0.5})
	require.NoError(t, err)
	// A dial made while the last refused connection is still closing can
	// meet that one; a retry gets through.
	require.Eventually(t, func() bool {
		_, err := stranger.Dial(ctx, controlapi.DialRequest{Addr: guard.Multiaddr()})
		return err == nil
	}, 20*time.Second, 100*time.Millisecond, "the stranger never connected once trusted")
	harness.WaitPeer(t, guard, stranger)
}

// In trusted mode the ledger entries of an author below the ledger class
// are refused (the peer that served them is not penalised); once the
// author is trusted, sync brings them.
func TestTrustedModeRefusesUntrustedEntries(t *testing.T) {
	ctx := context.Background()
	guard := harness.Start(t, 1, trustedMode("isolated", "known", "isolated"))[0]
	stranger := harness.Start(t, 1)[0]
	_, err := stranger.CreateCurrency(ctx, controlapi.CurrencyRequest{Symbol: "hrs", CreditLimit: "10"})
	require.NoError(t, err)
	harness.Connect(t, stranger, guard)
	// A sync with the stranger completes, and still nothing is stored.
	require.Eventually(t, func() bool {
		return testutil.MetricSum(t, guard.Registry, "icn_ledger_sync_last_success_timestamp_seconds", nil) > 0
	}, 30*time.Second, 20*time.Millisecond)
	require.Zero(t, guard.LedgerHead().Entries)
	require.Zero(t, testutil.MetricSum(t, guard.Registry, "icn_ledger_sync_entries_rejected_total", nil), "not the peer's fault")
	require.GreaterOrEqual(t, testutil.MetricSum(t, guard.Registry, "icn_ledger_entries_refused_untrusted_total", nil), float64(1))

	_, err = guard.TrustAdd(ctx, controlapi.TrustAddRequest{DID: stranger.DID().String(), Score: 0.2})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := guard.StartLedgerSync(ctx, stranger.Status().PeerID)
		return err == nil && guard.LedgerHead().Entries == 1
	}, 30*time.Second, 100*time.Millisecond, "the stranger's entry never arrived once trusted")
}

// A flood at 10× the isolated tier from an untrusted peer is cut to that
// tier, counted by class, while every message of a partner arrives.
func TestFloodFromUntrustedLeavesPartnersWhole(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hub := harness.Start(t, 1, trustedMode("isolated", "known", "isolated"))[0]
	nodes := harness.Start(t, 2)
	flooder, partner := nodes[0], nodes[1]
	_, err := hub.TrustAdd(ctx, controlapi.TrustAddRequest{DID: partner.DID().String(), Score: 0.5})
	require.NoError(t, err)
	sub, err := hub.GossipSubscribe("chat")
	require.NoError(t, err)
	defer sub.Cancel()
	for _, n := range nodes {
		harness.Connect(t, n, hub)
		s, err := n.GossipSubscribe("chat")
		require.NoError(t, err)
		defer s.Cancel()
	}
	// Wait until the hub has both in its mesh, and each has the hub in its
	// own (a message published before that has nowhere to go).
	meshed := func(n *harness.Node, want int) bool {
		for _, tp := range n.GossipTopics() {
			if tp.Topic == "chat" && tp.MeshPeers >= want {
				return true
			}
		}
		return false
	}
	require.Eventually(t, func() bool { return meshed(hub, 2) && meshed(flooder, 1) && meshed(partner, 1) },
		30*time.Second, 20*time.Millisecond)

	const flood, honest = 300, 100 // 100/s for 3 s against 10/s; 20/s for 5 s against 100/s
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < flood; i++ {
			<-tick.C
			_, _ = flooder.GossipPublish(ctx, controlapi.GossipPublishRequest{Topic: "chat", Data: []byte(fmt.Sprintf("flood %d", i))})
		}
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	for i := 0; i < honest; i++ {
		<-tick.C
		_, err := partner.GossipPublish(ctx, controlapi.GossipPublishRequest{Topic: "chat", Data: []byte(fmt.Sprintf("honest %d", i))})
		require.NoError(t, err)
	}
	tick.Stop()
	<-done
	got := map[string]int{}
	seen := map[string]bool{}
	deadline := time.After(30 * time.Second)
	for got[partner.DID().String()] < honest {
		select {
		case m := <-sub.Messages():
			got[m.Author.String()]++
			if m.Author == partner.DID() {
				seen[string(m.Payload)] = true
			}
		case <-deadline:
			for name, reg := range map[string]*harness.Node{"hub": hub, "partner": partner} {
				mfs, _ := reg.Registry.Gather()
				for _, mf := range mfs {
					if n := mf.GetName(); n == "icn_gossip_messages_dropped_total" {
						for _, m := range mf.GetMetric() {
							if v := m.GetCounter().GetValue(); v > 0 {
								t.Logf("%s: %s %v %v", name, n, m.GetLabel(), v)
							}
						}
					}
				}
			}
			mfs, _ := hub.Registry.Gather()
			for _, mf := range mfs {
				if n := mf.GetName(); n == "icn_gossip_messages_dropped_total" || n == "icn_gossip_messages_rejected_total" || n == "icn_network_messages_rate_limited_by_class_total" {
					for _, m := range mf.GetMetric() {
						if v := m.GetCounter().GetValue(); v > 0 {
							t.Logf("%s %v %v", n, m.GetLabel(), v)
						}
					}
				}
			}
			for i := 0; i < honest; i++ {
				if !seen[fmt.Sprintf("honest %d", i)] {
					t.Logf("missing honest %d", i)
				}
			}
			t.Fatalf("the partner's delivery is %d of %d", got[partner.DID().String()], honest)
		}
	}
	require.Equal(t, honest, got[partner.DID().String()])
	require.Less(t, got[flooder.DID().String()], flood/2, "the flood was not cut")
	require.Greater(t, testutil.MetricSum(t, hub.Registry, "icn_network_messages_rate_limited_by_class_total", map[string]string{"class": "isolated"}), float64(0))
	require.Zero(t, testutil.MetricSum(t, hub.Registry, "icn_network_messages_rate_limited_by_class_total", map[string]string{"class": "partner"}))
}
