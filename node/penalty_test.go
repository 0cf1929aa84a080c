package node

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/protocols/gossip"
	"github.com/intercooperative/icn/protocols/identity"
)

// penaltyClock is a settable clock.
type penaltyClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *penaltyClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *penaltyClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// scrape reads one series from reg: name with the given label pairs (none
// for an unlabelled series). ok is false when it is not exported.
func scrape(t *testing.T, reg *prometheus.Registry, name string, labels ...string) (v float64, ok bool) {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue metrics
				}
			}
			return metricValue(m), true
		}
	}
	return 0, false
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

func newTestPeer(t *testing.T) peer.ID {
	t.Helper()
	id, err := did.Generate(time.Now())
	require.NoError(t, err)
	return id.PeerID()
}

func newTestPenaltyGuard(t *testing.T) (*penaltyGuard, *prometheus.Registry, *penaltyClock, *lockedBuffer) {
	t.Helper()
	clk := &penaltyClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	reg := prometheus.NewRegistry()
	logs := &lockedBuffer{}
	g, err := newPenaltyGuard(penaltyConfig{Record: gossip.PenaltyConfig{Now: clk.Now}}, identity.NewBook(), reg,
		slog.New(slog.NewTextHandler(logs, nil)))
	require.NoError(t, err)
	return g, reg, clk, logs
}

// Charges add up across protocols in one record; the charge that reaches
// the threshold disconnects once (one SECURITY line, one count); the peer
// stays refused both ways until its count has decayed below half the
// threshold, and may then come back and be refused again; the metrics say
// so on a Prometheus registry.
func TestPenaltyThresholdAndDecayingBan(t *testing.T) {
	g, reg, clk, logs := newTestPenaltyGuard(t)
	bad, other := newTestPeer(t), newTestPeer(t)
	value := func(name string, labels ...string) float64 {
		t.Helper()
		v, ok := scrape(t, reg, name, labels...)
		require.True(t, ok, "%s %v is not exported", name, labels)
		return v
	}
	lines := func() int {
		return strings.Count(logs.String(), "SECURITY: peer penalised past the disconnect threshold; disconnecting")
	}
	refusedBothWays := func() bool {
		in, out := g.allow(bad, network.DirInbound, "handshake"), g.allow(bad, network.DirOutbound, "dial")
		require.Equal(t, in, out, "inbound and outbound disagree")
		return !in
	}

	// Every label is exported from start, at 0.
	for _, p := range []string{"identity", "ledgersync", "ledger_blocks", "trustsync", "gossip_request"} {
		require.Zero(t, value("icn_network_peer_penalties_total", "protocol", p), p)
	}
	require.Zero(t, value("icn_network_penalty_disconnects_total"))
	require.Zero(t, value("icn_network_penalised_peers"))

	// 19 units: penalised, not disconnected.
	for range 9 {
		g.charger(nil, penaltyLedgerSync).Add(bad, 1)
	}
	g.charger(nil, penaltyLedgerSync).Add(bad, ledgersyncViolation)
	g.charger(nil, penaltyIdentity).Add(bad, 1)
	g.charger(nil, penaltyGossipRequest).Add(bad, 1)
	g.charger(nil, penaltyLedgerBlocks).Add(bad, 3)
	g.charger(nil, penaltyGossipRequest).Add(other, 1)
	g.charger(nil, penaltyGossipRequest).Add(other, 0) // nothing
	require.InDelta(t, 19, g.rec.Units(bad), 1e-9)
	require.False(t, refusedBothWays())
	require.True(t, g.allow(other, network.DirInbound, "handshake"))
	require.Zero(t, lines())
	require.Equal(t, 2.0, value("icn_network_penalised_peers"))

	// The 20th unit crosses: one line naming the peer, the units and the
	// protocol of the offence that crossed; one disconnect.
	g.charger(nil, penaltyTrustSync).Add(bad, 1)
	require.True(t, refusedBothWays())
	require.Equal(t, 1, lines())
	require.Contains(t, logs.String(), "peer="+bad.String()+" units=20 threshold=20 protocol=trustsync refused_for=5m0s")
	require.Equal(t, 1.0, value("icn_network_penalty_disconnects_total"))
	// A dial the operator asks for is refused with the reason.
	var pe *PenalisedPeerError
	require.ErrorAs(t, g.refusal(bad), &pe)
	require.Equal(t, bad, pe.Peer)
	require.Equal(t, 5*time.Minute, pe.RefusedFor)
	require.NoError(t, g.refusal(other))
	// More offences while refused: no second line, no second disconnect.
	g.charger(nil, penaltyTrustSync).Add(bad, 2)
	require.Equal(t, 1, lines())
	require.Equal(t, 1.0, value("icn_network_penalty_disconnects_total"))

	require.Equal(t, 14.0, value("icn_network_peer_penalties_total", "protocol", "ledgersync"))
	require.Equal(t, 1.0, value("icn_network_peer_penalties_total", "protocol", "identity"))
	require.Equal(t, 2.0, value("icn_network_peer_penalties_total", "protocol", "gossip_request"))
	require.Equal(t, 3.0, value("icn_network_peer_penalties_total", "protocol", "ledger_blocks"))
	require.Equal(t, 3.0, value("icn_network_peer_penalties_total", "protocol", "trustsync"))

	// 22 units decay: below the threshold after about 0.14 half-lives,
	// but refused until below 10, log2(2.2) ≈ 1.14 half-lives (5m41s).
	clk.Advance(time.Minute)
	require.Less(t, g.rec.Units(bad), 20.0)
	require.True(t, refusedBothWays(), "let back as soon as it fell below the threshold")
	clk.Advance(4*time.Minute + 30*time.Second)
	require.True(t, refusedBothWays())
	clk.Advance(20 * time.Second)
	require.False(t, refusedBothWays(), "still refused below half the threshold")
	require.NoError(t, g.refusal(bad))
	require.Equal(t, 1.0, value("icn_network_penalised_peers"), "the other peer's one unit has decayed below half a unit")

	// It comes back and offends again: a new crossing.
	g.charger(nil, penaltyGossipRequest).Add(bad, 11)
	require.True(t, refusedBothWays())
	require.Equal(t, 2, lines())
	require.Equal(t, 2.0, value("icn_network_penalty_disconnects_total"))

	// Refusals are logged at most once per peer per interval.
	refusals := func() int { return strings.Count(logs.String(), "SECURITY: penalised peer refused") }
	n := refusals()
	g.allow(bad, network.DirInbound, "handshake")
	require.Equal(t, n, refusals())
	clk.Advance(penaltyLogInterval)
	g.allow(bad, network.DirInbound, "handshake")
	require.Equal(t, n+1, refusals())

	// An hour later, everything is forgotten.
	clk.Advance(time.Hour)
	require.False(t, refusedBothWays())
	require.Zero(t, value("icn_network_penalised_peers"))
}

// ledgersyncViolation is what the ledgersync scheduler charges for a
// response that breaks the protocol.
const ledgersyncViolation = 5

// newGatedHost is a loopback QUIC host behind a gater with only g.
func newGatedHost(t *testing.T, g *penaltyGuard) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"), libp2p.Transport(quic.NewTransport),
		libp2p.DisableMetrics(), libp2p.ConnectionGater(&gater{pen: g}))
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	if g != nil {
		h.Network().Notify(g.notifiee())
	}
	return h
}

// On a real host: the charge that crosses the threshold closes the
// connection, and the gater refuses the peer's redials and this node's
// dials until the count has decayed.
func TestPenaltyDisconnectsAndGaterRefuses(t *testing.T) {
	g, reg, clk, logs := newTestPenaltyGuard(t)
	victim, hostile := newGatedHost(t, g), newGatedHost(t, nil)
	ctx := context.Background()
	require.NoError(t, hostile.Connect(ctx, peer.AddrInfo{ID: victim.ID(), Addrs: victim.Addrs()}))
	require.Eventually(t, func() bool { return victim.Network().Connectedness(hostile.ID()) == network.Connected }, 5*time.Second, 10*time.Millisecond)

	c := g.charger(victim, penaltyIdentity)
	for range penaltyDisconnect - 1 {
		c.Add(hostile.ID(), 1)
	}
	require.Equal(t, network.Connected, victim.Network().Connectedness(hostile.ID()), "disconnected below the threshold")
	c.Add(hostile.ID(), 1)
	require.Eventually(t, func() bool { return victim.Network().Connectedness(hostile.ID()) != network.Connected }, 5*time.Second, 10*time.Millisecond,
		"still connected past the threshold")
	require.Contains(t, logs.String(), "SECURITY: peer penalised past the disconnect threshold; disconnecting")
	v, _ := scrape(t, reg, "icn_network_penalty_disconnects_total")
	require.Equal(t, 1.0, v)

	require.Eventually(t, func() bool { return hostile.Network().Connectedness(victim.ID()) != network.Connected }, 5*time.Second, 10*time.Millisecond,
		"the peer did not see the disconnect")

	// The peer's redial does not stay up: QUIC's handshake may finish on
	// its side before the victim's gater refuses it.
	if err := hostile.Connect(ctx, peer.AddrInfo{ID: victim.ID(), Addrs: victim.Addrs()}); err == nil {
		require.Eventually(t, func() bool { return hostile.Network().Connectedness(victim.ID()) != network.Connected }, 5*time.Second, 10*time.Millisecond,
			"the penalised peer's redial stayed connected")
	}
	require.NotEqual(t, network.Connected, victim.Network().Connectedness(hostile.ID()))
	require.Contains(t, logs.String(), "SECURITY: penalised peer refused")
	// Nor may the victim dial it.
	err := victim.Connect(ctx, peer.AddrInfo{ID: hostile.ID(), Addrs: hostile.Addrs()})
	require.ErrorIs(t, err, swarm.ErrGaterDisallowedConnection)

	// Once decayed below half the threshold, the peer is let back.
	clk.Advance(gossip.PenaltyHalfLife + time.Second)
	require.Eventually(t, func() bool {
		if sw, ok := victim.Network().(*swarm.Swarm); ok {
			sw.Backoff().Clear(hostile.ID())
		}
		return victim.Connect(ctx, peer.AddrInfo{ID: hostile.ID(), Addrs: hostile.Addrs()}) == nil
	}, 10*time.Second, 100*time.Millisecond, "refused after the ban lapsed")
}
