package node

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
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

// logBuffer collects log output for assertions; slog handlers may write
// from many goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testNetMetrics(t *testing.T) (*netMetrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := newNetMetrics(reg, func() float64 { return 0 }, func() float64 { return 0 })
	require.NoError(t, err)
	return m, reg
}

// metricSum adds up the samples of a counter or gauge family whose labels
// include every label in want.
func metricSum(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metrics
				}
			}
			if m.GetCounter() != nil {
				sum += m.GetCounter().GetValue()
			} else {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func TestBlockReporterLogsEachKindOncePerWindow(t *testing.T) {
	m, reg := testNetMetrics(t)
	var logs logBuffer
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
	require.Equal(t, 6.0, metricSum(t, reg, "icn_network_resource_blocked_total", map[string]string{"scope": "system", "resource": "connections"}))

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
	require.Equal(t, 7.0, metricSum(t, reg, "icn_network_resource_blocked_total", map[string]string{"scope": "system", "resource": "connections"}))
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
		m, reg := testNetMetrics(t)
		var logs logBuffer
		rm, err := newResourceManager(config.Limits{MaxConnectionsPerIP: 2}, slog.New(slog.NewTextHandler(&logs, nil)), m)
		require.NoError(t, err)
		defer rm.Close()
		ok, scopes := open(t, rm, "/ip4/203.0.113.7/udp/4001/quic-v1", 3)
		defer done(scopes)
		require.Equal(t, 2, ok)
		require.Equal(t, 1.0, metricSum(t, reg, "icn_network_resource_blocked_total", map[string]string{"scope": "ip", "resource": "connections"}))
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
		m, reg := testNetMetrics(t)
		var logs logBuffer
		rm, err := newResourceManager(config.Limits{MaxConnectionsPerIP: 20}, slog.New(slog.NewTextHandler(&logs, nil)), m)
		require.NoError(t, err)
		defer rm.Close()
		// Every attempt takes a token from a bucket of 40: 20 are admitted,
		// the next 20 hit the per-IP limit, and the 5 after that the rate.
		ok, scopes := open(t, rm, "/ip4/203.0.113.9/udp/4001/quic-v1", 45)
		defer done(scopes)
		require.Equal(t, 20, ok)
		require.Equal(t, 25.0, metricSum(t, reg, "icn_network_resource_blocked_total", map[string]string{"scope": "ip", "resource": "connections"}))
		require.Contains(t, logs.String(), "are at the per-IP limit of 20")
		require.Contains(t, logs.String(), "resource limit reached: new inbound connections from IP 203.0.113.9 arrive faster than the per-IP rate limit allows")
	})

	t.Run("default is go-libp2p's", func(t *testing.T) {
		m, _ := testNetMetrics(t)
		rm, err := newResourceManager(config.Limits{}, slog.New(slog.NewTextHandler(io.Discard, nil)), m)
		require.NoError(t, err)
		defer rm.Close()
		ok, scopes := open(t, rm, "/ip4/198.51.100.1/udp/4001/quic-v1", defaultConnsPerIP+1)
		defer done(scopes)
		require.Equal(t, defaultConnsPerIP, ok, "go-libp2p's per-IP default changed: update defaultConnsPerIP and docs/configuration.md")
	})
}

// limitsTestNode starts a node on loopback QUIC with the given limits; its
// log goes to logs and to t.Log.
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
	n, err := New(Options{Config: cfg, Identity: id, Keystore: ks, Logger: log, Registry: reg})
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
	var logs logBuffer
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
		return metricSum(t, reg, "icn_network_resource_blocked_total", map[string]string{"scope": "system", "resource": "connections"}) > 0
	}, 5*time.Second, 10*time.Millisecond)
	require.Positive(t, metricSum(t, reg, "libp2p_rcmgr_blocked_resources", map[string]string{"dir": "inbound", "scope": "system", "resource": "connection"}))
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
	require.Positive(t, metricSum(t, reg, "icn_network_resource_blocked_total", map[string]string{"scope": "peer", "resource": "streams"}))
	require.Positive(t, metricSum(t, reg, "libp2p_rcmgr_blocked_resources", map[string]string{"scope": "peer", "resource": "stream"}))
	require.Contains(t, logs.String(), "with peer "+c2.ID().String()+" (peer scope) are at ")
	require.Contains(t, logs.String(), "raise [limits] max_streams_per_peer in the config")

	lim, err = n.Limits()
	require.NoError(t, err)
	require.Equal(t, c2.ID().String(), lim.Peers.Top[0].PeerID, "the peer holding streams comes first")
	require.Equal(t, int64(maxStreamsPerPeer), lim.Peers.Top[0].Streams.Total.Limit)
	require.Equal(t, int64(maxStreamsPerPeer), lim.Peers.Limits.Streams)

	// The node stays healthy and answers; the admitted peers keep working.
	require.True(t, n.Ready())
	st, err := controlapi.NewClient(controlapi.SocketPath(n.cfg.DataDir)).Status(context.Background())
	require.NoError(t, err)
	require.Equal(t, 2, st.Peers)
	require.Equal(t, network.Connected, c1.Network().Connectedness(h.ID()))

	// Once a peer leaves, another one gets in.
	require.NoError(t, c1.Close())
	c4 := limitsTestClient(t)
	require.Eventually(t, func() bool { return connect(c4) == nil }, 10*time.Second, 50*time.Millisecond)
	require.True(t, n.Ready())
}

func TestLimitsControlRoute(t *testing.T) {
	n, _ := limitsTestNode(t, config.Limits{}, io.Discard)
	c := controlapi.NewClient(controlapi.SocketPath(n.cfg.DataDir))
	ctx, cancel := context.WithTimeout(context.Background(), controlapi.DefaultTimeout)
	defer cancel()
	l, err := c.Limits(ctx)
	require.NoError(t, err)

	for name, u := range map[string]controlapi.Usage{
		"system connections": l.System.Connections.Total, "system inbound connections": l.System.Connections.Inbound,
		"system outbound connections": l.System.Connections.Outbound, "system streams": l.System.Streams.Total,
		"system inbound streams": l.System.Streams.Inbound, "system memory": l.System.MemoryBytes, "system fds": l.System.FDs,
		"transient connections": l.Transient.Connections.Total, "transient streams": l.Transient.Streams.Total,
		"transient memory": l.Transient.MemoryBytes,
	} {
		require.Positive(t, u.Limit, name)
		require.GreaterOrEqual(t, u.Used, int64(0), name)
		require.LessOrEqual(t, u.Used, u.Limit, name)
	}
	require.LessOrEqual(t, l.Transient.Connections.Inbound.Limit, l.System.Connections.Inbound.Limit)
	require.Equal(t, "limits.max_connections_inbound", l.System.Connections.Inbound.ConfigKey)
	require.Equal(t, "limits.max_memory_mb", l.System.MemoryBytes.ConfigKey)
	require.Positive(t, l.Peers.Limits.Connections)
	require.Positive(t, l.Peers.Limits.Streams)
	require.NotNil(t, l.Peers.Top)
	require.Equal(t, defaultConnsPerIP, l.PerIP.Connections)
	require.Equal(t, config.DefaultConnLowWater, l.ConnManager.LowWater)
	require.Equal(t, config.DefaultConnHighWater, l.ConnManager.HighWater)
	require.Equal(t, "1m0s", l.ConnManager.GracePeriod)
	require.Empty(t, l.NearlyFull)
	require.NotNil(t, l.Warnings)
	require.Less(t, l.System.MemoryBytes.Limit, int64(math.MaxInt64))
}
