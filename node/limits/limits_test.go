package limits

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/testutil"
	"github.com/intercooperative/icn/node/config"
)

// testBaseLimits are go-libp2p's defaults scaled to a fixed machine (4 GiB
// for libp2p, 4096 descriptors), so the expectations do not depend on the host.
func testBaseLimits() rcmgr.ConcreteLimitConfig {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	return scaling.Scale(4<<30, 4096)
}

func baseOf(l rcmgr.ResourceLimits) rcmgr.BaseLimit { return l.Build(rcmgr.BaseLimit{}) }

func TestLimitConfig(t *testing.T) {
	base := testBaseLimits()
	b := base.ToPartialLimitConfig()
	sys0, tr0, peer0 := baseOf(b.System), baseOf(b.Transient), baseOf(b.PeerDefault)

	t.Run("zero keeps every default", func(t *testing.T) {
		require.Equal(t, b, limitConfig(config.Limits{}, base).ToPartialLimitConfig())
		// The per-IP limit is an option of the manager, not part of the limits.
		require.Equal(t, b, limitConfig(config.Limits{MaxConnectionsPerIP: 3}, base).ToPartialLimitConfig())
	})

	cases := []struct {
		name string
		cfg  config.Limits
		// check sees the resulting system, transient and per-peer limits.
		check func(t *testing.T, sys, tr, pl rcmgr.BaseLimit)
	}{
		{"max_connections", config.Limits{MaxConnections: 100}, func(t *testing.T, sys, tr, pl rcmgr.BaseLimit) {
			require.Equal(t, 100, sys.Conns)
			require.Equal(t, 100, sys.ConnsOutbound)
			require.Equal(t, 50, sys.ConnsInbound, "inbound keeps go-libp2p's half of the total")
			require.Equal(t, sys0.Streams, sys.Streams)
			require.Equal(t, peer0, pl)
		}},
		{"max_connections_inbound", config.Limits{MaxConnectionsInbound: 2}, func(t *testing.T, sys, tr, pl rcmgr.BaseLimit) {
			require.Equal(t, 2, sys.ConnsInbound)
			require.Equal(t, sys0.Conns, sys.Conns)
			require.Equal(t, sys0.ConnsOutbound, sys.ConnsOutbound)
			require.Equal(t, 2, tr.ConnsInbound)
			require.Equal(t, tr0.Conns, tr.Conns)
		}},
		{"max_connections_inbound above the default total", config.Limits{MaxConnectionsInbound: 5000}, func(t *testing.T, sys, tr, pl rcmgr.BaseLimit) {
			require.Equal(t, 5000, sys.ConnsInbound)
			require.GreaterOrEqual(t, sys.Conns, 5000)
			require.Equal(t, sys0.ConnsOutbound, sys.ConnsOutbound)
			require.Greater(t, tr.ConnsInbound, tr0.ConnsInbound, "the transient share grows with the system limit")
		}},
		{"both connection keys", config.Limits{MaxConnections: 100, MaxConnectionsInbound: 30}, func(t *testing.T, sys, tr, pl rcmgr.BaseLimit) {
			require.Equal(t, 100, sys.Conns)
			require.Equal(t, 30, sys.ConnsInbound)
			require.Equal(t, 100, sys.ConnsOutbound)
		}},
		{"max_streams", config.Limits{MaxStreams: 1000}, func(t *testing.T, sys, tr, pl rcmgr.BaseLimit) {
			require.Equal(t, 1000, sys.Streams)
			require.Equal(t, 1000, sys.StreamsOutbound)
			require.Equal(t, 500, sys.StreamsInbound)
			require.Equal(t, sys0.Conns, sys.Conns)
		}},
		{"max_streams_inbound", config.Limits{MaxStreamsInbound: 10}, func(t *testing.T, sys, tr, pl rcmgr.BaseLimit) {
			require.Equal(t, 10, sys.StreamsInbound)
			require.Equal(t, sys0.Streams, sys.Streams)
			require.Equal(t, 10, tr.StreamsInbound)
		}},
		{"max_memory_mb", config.Limits{MaxMemoryMB: 256}, func(t *testing.T, sys, tr, pl rcmgr.BaseLimit) {
			require.Equal(t, int64(256<<20), sys.Memory)
			require.LessOrEqual(t, tr.Memory, sys.Memory)
			require.Equal(t, peer0.Memory, pl.Memory)
		}},
		{"max_fds", config.Limits{MaxFDs: 100}, func(t *testing.T, sys, tr, pl rcmgr.BaseLimit) {
			require.Equal(t, 100, sys.FD)
			require.LessOrEqual(t, tr.FD, 100)
		}},
		{"max_connections_per_peer", config.Limits{MaxConnectionsPerPeer: 1}, func(t *testing.T, sys, tr, pl rcmgr.BaseLimit) {
			require.Equal(t, 1, pl.Conns)
			require.Equal(t, 1, pl.ConnsInbound)
			require.Equal(t, 1, pl.ConnsOutbound)
			require.Equal(t, peer0.Streams, pl.Streams)
			require.Equal(t, sys0, sys)
			require.Equal(t, tr0, tr)
		}},
		{"max_streams_per_peer", config.Limits{MaxStreamsPerPeer: 4}, func(t *testing.T, sys, tr, pl rcmgr.BaseLimit) {
			require.Equal(t, 4, pl.Streams)
			require.Equal(t, 4, pl.StreamsInbound)
			require.Equal(t, 4, pl.StreamsOutbound)
			require.Equal(t, peer0.Conns, pl.Conns)
			require.Equal(t, sys0, sys)
		}},
		{"max_memory_per_peer_mb", config.Limits{MaxMemoryPerPeerMB: 16}, func(t *testing.T, sys, tr, pl rcmgr.BaseLimit) {
			require.Equal(t, int64(16<<20), pl.Memory)
			require.Equal(t, sys0, sys)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := limitConfig(tc.cfg, base).ToPartialLimitConfig()
			tc.check(t, baseOf(got.System), baseOf(got.Transient), baseOf(got.PeerDefault))
			// Scopes no key touches keep go-libp2p's values.
			require.Equal(t, b.Conn, got.Conn)
			require.Equal(t, b.Stream, got.Stream)
			require.Equal(t, b.ServiceDefault, got.ServiceDefault)
			require.Equal(t, b.Service, got.Service)
			require.Equal(t, b.ProtocolDefault, got.ProtocolDefault)
			require.Equal(t, b.Protocol, got.Protocol)
			require.Equal(t, b.AllowlistedSystem, got.AllowlistedSystem)
		})
	}

	t.Run("transient never exceeds system", func(t *testing.T) {
		for _, cfg := range []config.Limits{
			{}, {MaxConnections: 1}, {MaxConnections: 3, MaxConnectionsInbound: 1}, {MaxConnectionsInbound: 1},
			{MaxStreams: 2}, {MaxStreamsInbound: 1}, {MaxMemoryMB: 1}, {MaxFDs: 1},
			{MaxConnections: 1 << 20, MaxStreams: 1 << 24, MaxMemoryMB: 1 << 20, MaxFDs: 1 << 20},
			{MaxConnectionsInbound: 1 << 20, MaxStreamsInbound: 1 << 24},
		} {
			got := limitConfig(cfg, base).ToPartialLimitConfig()
			sys, tr := baseOf(got.System), baseOf(got.Transient)
			require.LessOrEqual(t, tr.Conns, sys.Conns, "%+v", cfg)
			require.LessOrEqual(t, tr.ConnsInbound, sys.ConnsInbound, "%+v", cfg)
			require.LessOrEqual(t, tr.ConnsOutbound, sys.ConnsOutbound, "%+v", cfg)
			require.LessOrEqual(t, tr.Streams, sys.Streams, "%+v", cfg)
			require.LessOrEqual(t, tr.StreamsInbound, sys.StreamsInbound, "%+v", cfg)
			require.LessOrEqual(t, tr.StreamsOutbound, sys.StreamsOutbound, "%+v", cfg)
			require.LessOrEqual(t, tr.Memory, sys.Memory, "%+v", cfg)
			require.LessOrEqual(t, tr.FD, sys.FD, "%+v", cfg)
			require.Positive(t, tr.ConnsInbound, "%+v", cfg)
			require.LessOrEqual(t, sys.ConnsInbound, sys.Conns, "%+v", cfg)
			require.LessOrEqual(t, sys.StreamsInbound, sys.Streams, "%+v", cfg)
		}
	})

	t.Run("raising a system limit raises its transient share", func(t *testing.T) {
		got := limitConfig(config.Limits{MaxConnections: 4 * sys0.Conns, MaxMemoryMB: int(4 * sys0.Memory >> 20)}, base).ToPartialLimitConfig()
		tr := baseOf(got.Transient)
		require.Greater(t, tr.Conns, tr0.Conns)
		require.Greater(t, tr.Memory, tr0.Memory)
	})
}

func TestBlockReporterLogsEachKindOncePerWindow(t *testing.T) {
	m, reg := testBlockedCounter(t)
	var logs testutil.LogBuffer
	limiter := rcmgr.NewFixedLimiter(limitConfig(config.Limits{MaxConnectionsInbound: 2}, testBaseLimits()))
	rep := newBlockReporter(limiter, 8, slog.New(slog.NewTextHandler(&logs, nil)), m)
	now := time.Unix(1_700_000_000, 0)
	rep.now = func() time.Time { return now }

	refusal := rcmgr.TraceEvt{Type: rcmgr.TraceBlockAddConnEvt, Name: "system", DeltaIn: 1, ConnsIn: 2, ConnsOut: 5}
	for range 6 {
		rep.ConsumeEvent(refusal)
		now = now.Add(time.Second)
	}
	// Events that are not refusals are ignored.
	rep.ConsumeEvent(rcmgr.TraceEvt{Type: rcmgr.TraceAddConnEvt, Name: "system", DeltaIn: 1, ConnsIn: 1})
	rep.ConsumeEvent(rcmgr.TraceEvt{Type: rcmgr.TraceStartEvt})

	out := logs.String()
	require.Equal(t, 1, strings.Count(out, "\n"), out)
	require.Contains(t, out, "level=WARN")
	require.Contains(t, out, "resource limit reached: inbound connections for the whole node (system scope) are at 2/2; "+
		"raise [limits] max_connections_inbound in the config (see docs/configuration.md#limits)")
	require.Contains(t, out, "config_key=limits.max_connections_inbound")
	require.Equal(t, 6.0, testutil.MetricSum(t, reg, "icn_network_resource_blocked_total", map[string]string{"scope": "system", "resource": "connections"}))

	// Another kind of refusal is logged at once.
	rep.ConsumeEvent(rcmgr.TraceEvt{Type: rcmgr.TraceBlockAddStreamEvt, Name: "peer:12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp", DeltaIn: 1, StreamsIn: 632})
	require.Equal(t, 2, strings.Count(logs.String(), "\n"))

	// After the window the next refusal is logged with the count of the
	// ones that were not.
	now = now.Add(blockLogEvery)
	rep.ConsumeEvent(refusal)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	require.Len(t, lines, 3)
	require.Contains(t, lines[2], "5 more like this in the last 10s were not logged")
	require.Contains(t, lines[2], "suppressed=5")
	require.Equal(t, 7.0, testutil.MetricSum(t, reg, "icn_network_resource_blocked_total", map[string]string{"scope": "system", "resource": "connections"}))
}

func TestDescribeBlockNamesScopeLimitAndKey(t *testing.T) {
	const pid = "12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"
	limiter := rcmgr.NewFixedLimiter(limitConfig(config.Limits{
		MaxConnections: 100, MaxConnectionsInbound: 40, MaxStreams: 1000, MaxFDs: 50,
		MaxConnectionsPerPeer: 2, MaxStreamsPerPeer: 6, MaxMemoryPerPeerMB: 16,
	}, testBaseLimits()))
	cases := []struct {
		evt                 rcmgr.TraceEvt
		kind, resource, key string
		text                string
	}{
		{rcmgr.TraceEvt{Type: rcmgr.TraceBlockAddConnEvt, Name: "system", DeltaIn: 1, ConnsIn: 40, ConnsOut: 10},
			"system", "connections", "max_connections_inbound", "inbound connections for the whole node (system scope) are at 40/40"},
		{rcmgr.TraceEvt{Type: rcmgr.TraceBlockAddConnEvt, Name: "system", DeltaOut: 1, ConnsIn: 20, ConnsOut: 80},
			"system", "connections", "max_connections", "connections (inbound and outbound together) for the whole node (system scope) are at 100/100"},
		{rcmgr.TraceEvt{Type: rcmgr.TraceBlockAddConnEvt, Name: "system", DeltaOut: 1, Delta: 1, ConnsOut: 10, FD: 50},
			"system", "fds", "max_fds", "file descriptors for the whole node (system scope) are at 50/50"},
		{rcmgr.TraceEvt{Type: rcmgr.TraceBlockAddConnEvt, Name: "transient", DeltaIn: 1, ConnsIn: 32},
			"transient", "connections", "max_connections_inbound", "inbound connections still being set up (transient scope) are at 32/32"},
		{rcmgr.TraceEvt{Type: rcmgr.TraceBlockAddStreamEvt, Name: "system", DeltaIn: 1, StreamsIn: 500},
			"system", "streams", "max_streams_inbound", "inbound streams for the whole node (system scope) are at 500/500"},
		{rcmgr.TraceEvt{Type: rcmgr.TraceBlockAddConnEvt, Name: "peer:" + pid, DeltaIn: 1, ConnsIn: 2},
			"peer", "connections", "max_connections_per_peer", "inbound connections with peer " + pid + " (peer scope) are at 2/2"},
		{rcmgr.TraceEvt{Type: rcmgr.TraceBlockAddStreamEvt, Name: "peer:" + pid, DeltaOut: 1, StreamsIn: 3, StreamsOut: 3},
			"peer", "streams", "max_streams_per_peer", "streams (inbound and outbound together) with peer " + pid + " (peer scope) are at 6/6"},
		{rcmgr.TraceEvt{Type: rcmgr.TraceBlockReserveMemoryEvt, Name: "peer:" + pid + ".span-3", Delta: 1 << 20, Memory: 16 << 20},
			"peer", "memory", "max_memory_per_peer_mb", "memory with peer " + pid + " (peer scope) is at 16.0 MiB of 16.0 MiB, and 1.0 MiB more was asked for"},
		{rcmgr.TraceEvt{Type: rcmgr.TraceBlockReserveMemoryEvt, Name: "conn-17", Delta: 4096, Memory: 32 << 20},
			"conn", "memory", "", "memory within one connection (connection scope) is at 32.0 MiB of 32.0 MiB, and 4.0 KiB more was asked for"},
		{rcmgr.TraceEvt{Type: rcmgr.TraceBlockAddStreamEvt, Name: "stream-9", DeltaIn: 1, StreamsIn: 1},
			"stream", "streams", "", "inbound streams within one stream (stream scope) are at 1/1"},
		{rcmgr.TraceEvt{Type: rcmgr.TraceBlockAddStreamEvt, Name: "service:libp2p.ping.peer:" + pid, DeltaIn: 1, StreamsIn: 2},
			"service", "streams", "", "inbound streams for service libp2p.ping with peer " + pid + " (service-peer scope) are at 2/2"},
		{rcmgr.TraceEvt{Type: rcmgr.TraceBlockAddStreamEvt, Name: "protocol:/ipfs/ping/1.0.0", DeltaOut: 1, StreamsOut: 2048},
			"protocol", "streams", "", "for protocol /ipfs/ping/1.0.0 (protocol scope)"},
	}
	for _, tc := range cases {
		b := describeBlock(tc.evt, limiter)
		require.Equal(t, tc.kind, b.kind, tc.text)
		require.Equal(t, tc.resource, b.resource, tc.text)
		require.Equal(t, tc.key, b.key, tc.text)
		msg := b.message(0, blockLogEvery)
		require.Contains(t, msg, tc.text)
		if tc.key != "" {
			require.Contains(t, msg, "raise [limits] "+tc.key+" in the config")
		} else {
			require.Contains(t, msg, "no [limits] key sets this limit")
		}
	}
}

func TestPerIPConnectionLimit(t *testing.T) {
	open := func(t *testing.T, rm network.ResourceManager, addr string, n int) (ok int, scopes []network.ConnManagementScope) {
		t.Helper()
		for range n {
			s, err := rm.OpenConnection(network.DirInbound, false, ma.StringCast(addr))
			if err == nil {
				ok++
				scopes = append(scopes, s)
			}
		}
		return ok, scopes
	}
	done := func(scopes []network.ConnManagementScope) {
		for _, s := range scopes {
			s.Done()
		}
	}

	t.Run("configured", func(t *testing.T) {
		m, reg := testBlockedCounter(t)
		var logs testutil.LogBuffer
		rm, err := New(config.Limits{MaxConnectionsPerIP: 2}, slog.New(slog.NewTextHandler(&logs, nil)), m)
		require.NoError(t, err)
		defer rm.Close()
		ok, scopes := open(t, rm, "/ip4/203.0.113.7/udp/4001/quic-v1", 3)
		defer done(scopes)
		require.Equal(t, 2, ok)
		require.Equal(t, 1.0, testutil.MetricSum(t, reg, "icn_network_resource_blocked_total", map[string]string{"scope": "ip", "resource": "connections"}))
		require.Contains(t, logs.String(), "resource limit reached: inbound connections from IP 203.0.113.7 are at the per-IP limit of 2")
		require.Contains(t, logs.String(), "raise [limits] max_connections_per_ip in the config")

		// Another address is counted apart; loopback is never limited.
		ok, more := open(t, rm, "/ip4/203.0.113.8/udp/4001/quic-v1", 2)
		defer done(more)
		require.Equal(t, 2, ok)
		ok, local := open(t, rm, "/ip4/127.0.0.1/udp/4001/quic-v1", 10)
		defer done(local)
		require.Equal(t, 10, ok)
	})

	t.Run("rate of new connections", func(t *testing.T) {
		m, reg := testBlockedCounter(t)
		var logs testutil.LogBuffer
		rm, err := New(config.Limits{MaxConnectionsPerIP: 20}, slog.New(slog.NewTextHandler(&logs, nil)), m)
		require.NoError(t, err)
		defer rm.Close()
		// Every attempt takes a token from a bucket of 40: 20 are admitted,
		// the next 20 hit the per-IP limit, and the 5 after that the rate.
		ok, scopes := open(t, rm, "/ip4/203.0.113.9/udp/4001/quic-v1", 45)
		defer done(scopes)
		require.Equal(t, 20, ok)
		require.Equal(t, 25.0, testutil.MetricSum(t, reg, "icn_network_resource_blocked_total", map[string]string{"scope": "ip", "resource": "connections"}))
		require.Contains(t, logs.String(), "are at the per-IP limit of 20")
		require.Contains(t, logs.String(), "resource limit reached: new inbound connections from IP 203.0.113.9 arrive faster than the per-IP rate limit allows")
	})

	t.Run("default is go-libp2p's", func(t *testing.T) {
		m, _ := testBlockedCounter(t)
		rm, err := New(config.Limits{}, slog.New(slog.NewTextHandler(io.Discard, nil)), m)
		require.NoError(t, err)
		defer rm.Close()
		ok, scopes := open(t, rm, "/ip4/198.51.100.1/udp/4001/quic-v1", DefaultConnsPerIP+1)
		defer done(scopes)
		require.Equal(t, DefaultConnsPerIP, ok, "go-libp2p's per-IP default changed: update DefaultConnsPerIP and docs/configuration.md")
	})
}

// limitsTestNode starts a node on loopback QUIC with the given limits; its
// log goes to logs and to t.Log.
func testBlockedCounter(t *testing.T) (*prometheus.CounterVec, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icn_network_resource_blocked_total", Help: "test"}, []string{"scope", "resource"})
	require.NoError(t, reg.Register(c))
	return c, reg
}
