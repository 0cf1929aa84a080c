package node

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/testutil"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
)

func limitsTestNode(t *testing.T, lim config.Limits, logs io.Writer) (*Node, *prometheus.Registry) {
	t.Helper()
	dir, err := os.MkdirTemp("", "icnl") // short: unix socket paths are limited
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	ks := did.Keystore{Path: did.Open(dir).Path, WorkFactor: 10}
	id, err := ks.Create("limits-test-passphrase", time.Now())
	require.NoError(t, err)

	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Network.ListenAddr = "127.0.0.1:0"
	cfg.Network.MDNSEnabled = false
	cfg.Observability.MetricsPort = 0
	cfg.Observability.HealthPort = 0
	cfg.Observability.HTTPBind = "127.0.0.1"
	cfg.Limits = lim
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, limitsTestLog{t}), &slog.HandlerOptions{Level: slog.LevelInfo}))
	n, err := New(context.Background(), Options{Config: cfg, Identity: id, Keystore: ks, Logger: log, Registry: reg})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			require.NoError(t, err)
		case <-time.After(ShutdownTimeout + 5*time.Second):
			t.Error("node did not stop")
		}
	})
	require.Eventually(t, n.Ready, 10*time.Second, 10*time.Millisecond)
	return n, reg
}

type limitsTestLog struct{ t *testing.T }

func (w limitsTestLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// limitsTestClient is a bare libp2p host that only dials (QUIC, loopback).
func limitsTestClient(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.Transport(quic.NewTransport), libp2p.DisableMetrics(),
		libp2p.ResourceManager(&network.NullResourceManager{}))
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h
}

const holdProto = protocol.ID("/icn-test/hold/1.0.0")

// holdStreams opens n streams to target on holdProto and keeps those the
// target accepts (it answers one byte) open until the test ends.
func holdStreams(t *testing.T, c host.Host, target peer.ID, n int) (accepted, refused int) {
	t.Helper()
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := c.NewStream(ctx, target, holdProto)
		cancel()
		if err != nil {
			refused++
			continue
		}
		_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
			s.Reset()
			refused++
			continue
		}
		accepted++
		t.Cleanup(func() { s.Reset() })
	}
	return accepted, refused
}

func TestLimitsRefuseConnectionsAndStreams(t *testing.T) {
	var logs testutil.LogBuffer
	const maxInbound, maxStreamsPerPeer = 2, 8
	n, reg := limitsTestNode(t, config.Limits{MaxConnectionsInbound: maxInbound, MaxStreamsPerPeer: maxStreamsPerPeer}, &logs)
	h := n.current().h
	// A protocol that holds streams open, so they count against the limits.
	h.SetStreamHandler(holdProto, func(s network.Stream) {
		if _, err := s.Write([]byte{1}); err != nil {
			s.Reset()
			return
		}
		_, _ = io.Copy(io.Discard, s)
		s.Close()
	})
	target := peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
	connect := func(c host.Host) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return c.Connect(network.WithForceDirectDial(ctx, "limits test"), target)
	}

	// Connections: two inbound are allowed, the third is refused.
	c1, c2, c3 := limitsTestClient(t), limitsTestClient(t), limitsTestClient(t)
	require.NoError(t, connect(c1))
	require.NoError(t, connect(c2))
	require.Error(t, connect(c3), "a third inbound connection must be refused")
	require.Eventually(t, func() bool {
		return testutil.MetricSum(t, reg, "icn_network_resource_blocked_total", map[string]string{"scope": "system", "resource": "connections"}) > 0
	}, 5*time.Second, 10*time.Millisecond)
	require.Positive(t, testutil.MetricSum(t, reg, "libp2p_rcmgr_blocked_resources", map[string]string{"dir": "inbound", "scope": "system", "resource": "connection"}))
	require.Contains(t, logs.String(), "resource limit reached: inbound connections for the whole node (system scope) are at 2/2; "+
		"raise [limits] max_connections_inbound in the config (see docs/configuration.md#limits)")

	lim, err := n.Limits()
	require.NoError(t, err)
	require.Equal(t, controlapi.Usage{Used: 2, Limit: 2, ConfigKey: "limits.max_connections_inbound"}, lim.System.Connections.Inbound)
	require.NotEmpty(t, lim.NearlyFull)
	require.Equal(t, "limits.max_connections_inbound", lim.NearlyFull[0].ConfigKey)
	require.Contains(t, lim.NearlyFull[0].Message, "inbound connections for the whole node: 2 / 2 (100%); raise [limits] max_connections_inbound")

	// Streams: one peer may hold maxStreamsPerPeer; the rest are refused.
	require.Eventually(t, func() bool {
		ok, _ := c2.Peerstore().SupportsProtocols(h.ID(), holdProto)
		return len(ok) == 1
	}, 5*time.Second, 10*time.Millisecond, "identify never told the client about the hold protocol")
	accepted, refused := holdStreams(t, c2, h.ID(), maxStreamsPerPeer+4)
	require.Positive(t, accepted)
	require.LessOrEqual(t, accepted, maxStreamsPerPeer)
	require.GreaterOrEqual(t, refused, 4)
	require.Positive(t, testutil.MetricSum(t, reg, "icn_network_resource_blocked_total", map[string]string{"scope": "peer", "resource": "streams"}))
	require.Positive(t, testutil.MetricSum(t, reg, "libp2p_rcmgr_blocked_resources", map[string]string{"scope": "peer", "resource": "stream"}))
	require.Contains(t, logs.String(), "with peer "+c2.ID().String()+" (peer scope) are at ")
	require.Contains(t, logs.String(), "raise [limits] max_streams_per_peer in the config")

	lim, err = n.Limits()
	require.NoError(t, err)
	require.Equal(t, c2.ID().String(), lim.Peers.Top[0].PeerID, "the peer holding streams comes first")
	require.Equal(t, int64(maxStreamsPerPeer), lim.Peers.Top[0].Streams.Total.Limit)
	require.Equal(t, int64(maxStreamsPerPeer), lim.Peers.Limits.Streams)

	// The node stays healthy and answers; the admitted peers keep working.
	require.True(t, n.Ready())
	require.Equal(t, 2, n.Status().Peers)
	require.Equal(t, network.Connected, c1.Network().Connectedness(h.ID()))

	// Once a peer leaves, another one gets in.
	require.NoError(t, c1.Close())
	c4 := limitsTestClient(t)
	require.Eventually(t, func() bool { return connect(c4) == nil }, 10*time.Second, 50*time.Millisecond)
	require.True(t, n.Ready())
}
