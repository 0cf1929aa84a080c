// Package limits owns the node's resource policy: go-libp2p's resource
// manager scaled to the machine and overridden by the [limits] config table,
// the per-IP connection limits, and how a refusal is reported (one log line
// per kind of refusal per 10 s naming the config key to raise, and the
// icn_network_resource_blocked_total counter). Report describes current use
// against the limits for `icnctl network limits`. Everything but New is pure
// and table-tested.
package limits

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/x/rate"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
)

// limitsDocs is where the log lines and icnctl send operators.
const limitsDocs = "docs/configuration.md#limits"

// DefaultConnsPerIP is go-libp2p's per-IP connection limit (per /32 for
// IPv4, per /56 for IPv6), used when max_connections_per_ip is 0. The rcmgr
// package does not export it; a test checks that it still holds.
const DefaultConnsPerIP = 8

// blockLogEvery is how often at most one kind of refusal is logged.
const blockLogEvery = 10 * time.Second

// New builds the libp2p resource manager from [limits]:
// go-libp2p's limits scaled to this machine, overridden by the non-zero keys.
// Every refusal is counted in icn_network_resource_blocked_total and logged
// (rate-limited) with the config key that would raise the limit.
func New(cfg config.Limits, log *slog.Logger, blocked *prometheus.CounterVec) (*ResourceManager, error) {
	limiter := rcmgr.NewFixedLimiter(limitConfig(cfg, baseLimits()))
	perIP := DefaultConnsPerIP
	if cfg.MaxConnectionsPerIP > 0 {
		perIP = cfg.MaxConnectionsPerIP
	}
	rep := newBlockReporter(limiter, perIP, log, blocked)
	opts := append([]rcmgr.Option{rcmgr.WithTraceReporter(rep)}, perIPOptions(cfg.MaxConnectionsPerIP)...)
	rm, err := rcmgr.NewResourceManager(limiter, opts...)
	if err != nil {
		return nil, err
	}
	return &ResourceManager{ResourceManager: rm, limits: limiter, perIP: perIP, rep: rep}, nil
}

// baseLimits are go-libp2p's default limits, including its limits for its
// own services (identify, ping, autonat, hole punching, relay), scaled to
// 1/8 of this machine's memory and half its file-descriptor limit: what
// libp2p.New uses when given no resource manager.
func baseLimits() rcmgr.ConcreteLimitConfig {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	return scaling.AutoScale()
}

// limitConfig applies the non-zero [limits] keys to base.
//
//   - max_connections and max_streams set the system-wide total and the
//     outbound limit; the inbound limit keeps go-libp2p's share of the total
//     (half) unless max_connections_inbound / max_streams_inbound set it. An
//     inbound limit above the total raises the total in the same proportion.
//   - max_memory_mb and max_fds set the system-wide memory and descriptors.
//   - The transient scope (connections in their handshake, streams not yet
//     negotiated) keeps go-libp2p's proportion to the system scope, but at
//     least go-libp2p's minimum transient limits, and never more than the
//     system scope.
//   - The per-peer keys set one peer's limits; max_connections_per_peer and
//     max_streams_per_peer bound each direction and the total alike.
func limitConfig(cfg config.Limits, base rcmgr.ConcreteLimitConfig) rcmgr.ConcreteLimitConfig {
	p := base.ToPartialLimitConfig()
	sys0 := p.System.Build(rcmgr.BaseLimit{})
	tr0 := p.Transient.Build(rcmgr.BaseLimit{})
	peer0 := p.PeerDefault.Build(rcmgr.BaseLimit{})

	sys := sys0
	sys.Conns, sys.ConnsInbound, sys.ConnsOutbound = splitLimit(cfg.MaxConnections, cfg.MaxConnectionsInbound,
		sys0.Conns, sys0.ConnsInbound, sys0.ConnsOutbound)
	sys.Streams, sys.StreamsInbound, sys.StreamsOutbound = splitLimit(cfg.MaxStreams, cfg.MaxStreamsInbound,
		sys0.Streams, sys0.StreamsInbound, sys0.StreamsOutbound)
	if cfg.MaxMemoryMB > 0 {
		sys.Memory = int64(cfg.MaxMemoryMB) << 20
	}
	if cfg.MaxFDs > 0 {
		sys.FD = cfg.MaxFDs
	}

	lo := rcmgr.DefaultLimits.TransientBaseLimit
	share := func(s, s0, t0, min int) int { return int(transientShare(int64(s), int64(s0), int64(t0), int64(min))) }
	tr := rcmgr.BaseLimit{
		Conns:           share(sys.Conns, sys0.Conns, tr0.Conns, lo.Conns),
		ConnsInbound:    share(sys.ConnsInbound, sys0.ConnsInbound, tr0.ConnsInbound, lo.ConnsInbound),
		ConnsOutbound:   share(sys.ConnsOutbound, sys0.ConnsOutbound, tr0.ConnsOutbound, lo.ConnsOutbound),
		Streams:         share(sys.Streams, sys0.Streams, tr0.Streams, lo.Streams),
		StreamsInbound:  share(sys.StreamsInbound, sys0.StreamsInbound, tr0.StreamsInbound, lo.StreamsInbound),
		StreamsOutbound: share(sys.StreamsOutbound, sys0.StreamsOutbound, tr0.StreamsOutbound, lo.StreamsOutbound),
		FD:              share(sys.FD, sys0.FD, tr0.FD, lo.FD),
		Memory:          transientShare(sys.Memory, sys0.Memory, tr0.Memory, lo.Memory),
	}

	pl := peer0
	if n := cfg.MaxConnectionsPerPeer; n > 0 {
		pl.Conns, pl.ConnsInbound, pl.ConnsOutbound = n, n, n
	}
	if n := cfg.MaxStreamsPerPeer; n > 0 {
		pl.Streams, pl.StreamsInbound, pl.StreamsOutbound = n, n, n
	}
	if mb := cfg.MaxMemoryPerPeerMB; mb > 0 {
		pl.Memory = int64(mb) << 20
	}

	p.System = sys.ToResourceLimits()
	p.Transient = tr.ToResourceLimits()
	p.PeerDefault = pl.ToResourceLimits()
	return p.Build(base)
}

// splitLimit derives (total, inbound, outbound) from the configured total
// and inbound limits (0: not set) and go-libp2p's values t0, in0, out0.
func splitLimit(total, inbound, t0, in0, out0 int) (t, in, out int) {
	t, in, out = t0, in0, out0
	switch {
	case total > 0:
		t = total
		out = clampInt(int(proportion(int64(total), int64(out0), int64(t0))), 1, total)
		in = clampInt(int(proportion(int64(total), int64(in0), int64(t0))), 1, total)
		if inbound > 0 {
			in = inbound
		}
	case inbound > 0:
		in = inbound
		if inbound > t {
			t = max(inbound, int(proportion(int64(inbound), int64(t0), int64(in0))))
		}
	}
	return t, in, out
}

// transientShare is the transient limit for a system limit s, given
// go-libp2p's system and transient values s0 and t0 and its minimum
// transient value lo.
func transientShare(s, s0, t0, lo int64) int64 {
	share := t0
	if s != s0 {
		share = max(lo, proportion(s, t0, s0))
	}
	return min(share, s)
}

// proportion is n·num/den, rounded down; 0 when den is not positive.
func proportion(n, num, den int64) int64 {
	if den <= 0 || num <= 0 || n <= 0 {
		return 0
	}
	v := float64(n) * float64(num) / float64(den)
	if v >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

func clampInt(v, lo, hi int) int { return max(lo, min(v, hi)) }

// perIPOptions set the per-IP connection limit and scale go-libp2p's per-IP
// rate limit for new connections with it (a burst of twice the limit, never
// less than go-libp2p's). Loopback stays unlimited, as in go-libp2p.
func perIPOptions(n int) []rcmgr.Option {
	if n <= 0 {
		return nil
	}
	loopback := []rate.PrefixLimit{
		{Prefix: netip.MustParsePrefix("127.0.0.0/8")},
		{Prefix: netip.MustParsePrefix("::1/128")},
	}
	return []rcmgr.Option{
		rcmgr.WithLimitPerSubnet(
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: n}},
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: n}, {PrefixLength: 48, ConnCount: 8 * n}}),
		rcmgr.WithConnRateLimiters(&rate.Limiter{
			NetworkPrefixLimits: loopback,
			SubnetRateLimiter: rate.SubnetLimiter{
				IPv4SubnetLimits: []rate.SubnetLimit{
					{PrefixLength: 32, Limit: rate.Limit{RPS: 0.2, Burst: max(2*n, 2*DefaultConnsPerIP)}},
				},
				IPv6SubnetLimits: []rate.SubnetLimit{
					{PrefixLength: 56, Limit: rate.Limit{RPS: 0.2, Burst: max(2*n, 2*DefaultConnsPerIP)}},
					{PrefixLength: 48, Limit: rate.Limit{RPS: 0.5, Burst: max(10*n, 10*DefaultConnsPerIP)}},
				},
				GracePeriod: time.Minute,
			},
		}),
	}
}

// ResourceManager is go-libp2p's resource manager plus what ICN
// needs from it: the refusals that happen before any scope is involved
// (per-IP limits) are reported too, and the limits are at hand for
// `icnctl network limits`.
type ResourceManager struct {
	network.ResourceManager
	limits rcmgr.Limiter
	perIP  int
	rep    *blockReporter
}

// OpenConnection reports per-IP refusals; the scopes' own refusals reach
// the trace reporter.
func (r *ResourceManager) OpenConnection(dir network.Direction, usefd bool, endpoint ma.Multiaddr) (network.ConnManagementScope, error) {
	s, err := r.ResourceManager.OpenConnection(dir, usefd, endpoint)
	if err != nil && !errors.Is(err, network.ErrResourceLimitExceeded) {
		r.rep.connRefused(dir, endpoint, err)
	}
	return s, err
}

// GetConnLimit lets go-libp2p check the connection manager's high water
// mark against the connection limit.
func (r *ResourceManager) GetConnLimit() int {
	return r.limits.GetSystemLimits().GetConnTotalLimit()
}

func (r *ResourceManager) state() rcmgr.ResourceManagerState {
	st, _ := r.ResourceManager.(rcmgr.ResourceManagerState)
	return st
}

// ListServices, ListProtocols, ListPeers and Stat expose the wrapped
// manager's rcmgr.ResourceManagerState.
func (r *ResourceManager) ListServices() []string          { return r.state().ListServices() }
func (r *ResourceManager) ListProtocols() []protocol.ID    { return r.state().ListProtocols() }
func (r *ResourceManager) ListPeers() []peer.ID            { return r.state().ListPeers() }
func (r *ResourceManager) Stat() rcmgr.ResourceManagerStat { return r.state().Stat() }

var _ rcmgr.ResourceManagerState = (*ResourceManager)(nil)

// blockReporter is the resource manager's trace reporter for refusals. It
// runs synchronously inside the resource manager, with the refusing scope
// locked: it must be quick and must never call back into the resource
// manager, so it reads limits from the (immutable) limiter only.
type blockReporter struct {
	limits  rcmgr.Limiter
	perIP   int
	log     *slog.Logger
	blocked *prometheus.CounterVec // icn_network_resource_blocked_total{scope,resource}; may be nil
	every   time.Duration
	now     func() time.Time

	mu   sync.Mutex
	last map[string]*blockWindow // by kind/resource/direction: a bounded set
}

type blockWindow struct {
	at         time.Time
	suppressed int
}

func newBlockReporter(limits rcmgr.Limiter, perIP int, log *slog.Logger, blocked *prometheus.CounterVec) *blockReporter {
	if log == nil {
		log = slog.Default()
	}
	return &blockReporter{limits: limits, perIP: perIP, log: log, blocked: blocked, every: blockLogEvery, now: time.Now,
		last: map[string]*blockWindow{}}
}

// ConsumeEvent implements rcmgr.TraceReporter.
func (r *blockReporter) ConsumeEvent(evt rcmgr.TraceEvt) {
	switch evt.Type {
	case rcmgr.TraceBlockAddConnEvt, rcmgr.TraceBlockAddStreamEvt, rcmgr.TraceBlockReserveMemoryEvt:
		r.report(describeBlock(evt, r.limits))
	}
}

// blocked is one refusal, described for the metric and the log.
type blocked struct {
	scope    string // the resource manager's scope name, e.g. peer:12D3…
	kind     string // metric label: system, transient, peer, protocol, service, conn, stream, ip
	resource string // metric label: connections, streams, memory, fds
	dir      string // in, out, total, rate: which limit of the resource
	what     string // the limit in plain words: "inbound connections"
	where    string // the scope in plain words: "for the whole node (system scope)", "still being set up (transient scope)"
	used     int64
	limit    int64
	asked    int64  // memory: bytes asked for
	state    string // overrides "are at used/limit" when set
	key      string // the [limits] key that sets the limit, without "limits."
}

func (r *blockReporter) report(b blocked) {
	if r.blocked != nil {
		r.blocked.WithLabelValues(b.kind, b.resource).Inc()
	}
	now := r.now()
	k := b.kind + "/" + b.resource + "/" + b.dir
	r.mu.Lock()
	w := r.last[k]
	if w != nil && now.Sub(w.at) < r.every {
		w.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := 0
	if w != nil {
		suppressed = w.suppressed
	}
	r.last[k] = &blockWindow{at: now}
	r.mu.Unlock()
	attrs := []any{"scope", b.scope, "resource", b.resource, "used", b.used, "limit", b.limit}
	if b.key != "" {
		attrs = append(attrs, "config_key", "limits."+b.key)
	}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	r.log.Warn(b.message(suppressed, r.every), attrs...)
}

func (b blocked) message(suppressed int, every time.Duration) string {
	var sb strings.Builder
	sb.WriteString("resource limit reached: ")
	sb.WriteString(b.what)
	sb.WriteString(" ")
	sb.WriteString(b.where)
	switch {
	case b.state != "":
		sb.WriteString(" ")
		sb.WriteString(b.state)
	case b.resource == "memory":
		fmt.Fprintf(&sb, " is at %s of %s, and %s more was asked for", formatBytes(b.used), formatBytes(b.limit), formatBytes(b.asked))
	default:
		fmt.Fprintf(&sb, " are at %d/%d", b.used, b.limit)
	}
	if b.key != "" {
		fmt.Fprintf(&sb, "; raise [limits] %s in the config (see %s)", b.key, limitsDocs)
	} else {
		fmt.Fprintf(&sb, "; no [limits] key sets this limit: it is go-libp2p's own bound for one %s, which keeps a single peer, connection or protocol from using up the node (see %s)", scopeNoun(b.kind), limitsDocs)
	}
	if suppressed > 0 {
		fmt.Fprintf(&sb, "; %d more like this in the last %s were not logged", suppressed, every)
	}
	return sb.String()
}

func scopeNoun(kind string) string {
	switch kind {
	case "conn":
		return "connection"
	case "stream":
		return "stream"
	case "service":
		return "service"
	case "protocol":
		return "protocol"
	case "peer":
		return "peer"
	}
	return "scope"
}

// scopeRef is a resource-manager scope: its kind, its description and its limits.
type scopeRef struct {
	kind  string
	where string
	limit rcmgr.Limit
}

// parseScope reads a scope name as the resource manager writes it:
// system, transient, peer:<id>, conn-<n>, stream-<n>, service:<name>,
// service:<name>.peer:<id>, protocol:<id>, protocol:<id>.peer:<id>, each
// possibly followed by .span-<n>.
func parseScope(name string, l rcmgr.Limiter) scopeRef {
	if i := strings.LastIndex(name, ".span-"); i >= 0 {
		name = name[:i]
	}
	switch {
	case name == "system":
		return scopeRef{"system", "for the whole node (system scope)", l.GetSystemLimits()}
	case name == "transient":
		return scopeRef{"transient", "still being set up (transient scope)", l.GetTransientLimits()}
	case name == "allowlistedSystem":
		return scopeRef{"system", "for allowlisted addresses on the whole node (allowlisted system scope)", l.GetAllowlistedSystemLimits()}
	case name == "allowlistedTransient":
		return scopeRef{"transient", "from allowlisted addresses still being set up (allowlisted transient scope)", l.GetAllowlistedTransientLimits()}
	case strings.HasPrefix(name, "peer:"):
		id := name[len("peer:"):]
		p, _ := peer.Decode(id)
		return scopeRef{"peer", fmt.Sprintf("with peer %s (peer scope)", id), l.GetPeerLimits(p)}
	case strings.HasPrefix(name, "conn-"):
		return scopeRef{"conn", "within one connection (connection scope)", l.GetConnLimits()}
	case strings.HasPrefix(name, "stream-"):
		return scopeRef{"stream", "within one stream (stream scope)", l.GetStreamLimits("")}
	case strings.HasPrefix(name, "service:"):
		svc := name[len("service:"):]
		if i := strings.Index(svc, ".peer:"); i >= 0 {
			return scopeRef{"service", fmt.Sprintf("for service %s with peer %s (service-peer scope)", svc[:i], svc[i+len(".peer:"):]),
				l.GetServicePeerLimits(svc[:i])}
		}
		return scopeRef{"service", fmt.Sprintf("for service %s (service scope)", svc), l.GetServiceLimits(svc)}
	case strings.HasPrefix(name, "protocol:"):
		proto := name[len("protocol:"):]
		if i := strings.Index(proto, ".peer:"); i >= 0 {
			return scopeRef{"protocol", fmt.Sprintf("for protocol %s with peer %s (protocol-peer scope)", proto[:i], proto[i+len(".peer:"):]),
				l.GetProtocolPeerLimits(protocol.ID(proto[:i]))}
		}
		return scopeRef{"protocol", fmt.Sprintf("for protocol %s (protocol scope)", proto), l.GetProtocolLimits(protocol.ID(proto))}
	}
	return scopeRef{"unknown", fmt.Sprintf("in scope %q", name), unlimited{}}
}

// describeBlock works out which limit of which scope refused. A trace event
// carries the scope's counts before the refused request and the request's
// size; the limits come from the limiter.
func describeBlock(evt rcmgr.TraceEvt, l rcmgr.Limiter) blocked {
	sc := parseScope(evt.Name, l)
	b := blocked{scope: evt.Name, kind: sc.kind, where: sc.where}
	lim := sc.limit
	switch evt.Type {
	case rcmgr.TraceBlockAddConnEvt:
		in, out := int64(evt.ConnsIn), int64(evt.ConnsOut)
		b.resource = "connections"
		switch {
		case evt.DeltaIn > 0 && in+int64(evt.DeltaIn) > int64(lim.GetConnLimit(network.DirInbound)):
			b.dir, b.what, b.used, b.limit = "in", "inbound connections", in, int64(lim.GetConnLimit(network.DirInbound))
		case evt.DeltaOut > 0 && out+int64(evt.DeltaOut) > int64(lim.GetConnLimit(network.DirOutbound)):
			b.dir, b.what, b.used, b.limit = "out", "outbound connections", out, int64(lim.GetConnLimit(network.DirOutbound))
		case evt.Delta > 0 && int64(evt.FD)+evt.Delta > int64(lim.GetFDLimit()) &&
			in+out+int64(evt.DeltaIn+evt.DeltaOut) <= int64(lim.GetConnTotalLimit()):
			b.resource, b.dir, b.what, b.used, b.limit = "fds", "total", "file descriptors", int64(evt.FD), int64(lim.GetFDLimit())
		default:
			b.dir, b.what, b.used, b.limit = "total", "connections (inbound and outbound together)", in+out, int64(lim.GetConnTotalLimit())
		}
	case rcmgr.TraceBlockAddStreamEvt:
		in, out := int64(evt.StreamsIn), int64(evt.StreamsOut)
		b.resource = "streams"
		switch {
		case evt.DeltaIn > 0 && in+int64(evt.DeltaIn) > int64(lim.GetStreamLimit(network.DirInbound)):
			b.dir, b.what, b.used, b.limit = "in", "inbound streams", in, int64(lim.GetStreamLimit(network.DirInbound))
		case evt.DeltaOut > 0 && out+int64(evt.DeltaOut) > int64(lim.GetStreamLimit(network.DirOutbound)):
			b.dir, b.what, b.used, b.limit = "out", "outbound streams", out, int64(lim.GetStreamLimit(network.DirOutbound))
		default:
			b.dir, b.what, b.used, b.limit = "total", "streams (inbound and outbound together)", in+out, int64(lim.GetStreamTotalLimit())
		}
	default: // rcmgr.TraceBlockReserveMemoryEvt
		b.resource, b.dir, b.what = "memory", "total", "memory"
		b.used, b.limit, b.asked = evt.Memory, lim.GetMemoryLimit(), evt.Delta
	}
	b.key = limitKey(b.kind, b.resource, b.dir)
	return b
}

// limitKey is the [limits] key (without "limits.") that sets a limit, or "".
// The transient scope's limits follow the system keys.
func limitKey(kind, resource, dir string) string {
	switch kind {
	case "system", "transient":
		switch resource {
		case "connections":
			if dir == "in" {
				return "max_connections_inbound"
			}
			return "max_connections"
		case "streams":
			if dir == "in" {
				return "max_streams_inbound"
			}
			return "max_streams"
		case "memory":
			return "max_memory_mb"
		case "fds":
			return "max_fds"
		}
	case "peer":
		switch resource {
		case "connections":
			return "max_connections_per_peer"
		case "streams":
			return "max_streams_per_peer"
		case "memory":
			return "max_memory_per_peer_mb"
		}
	case "ip":
		return "max_connections_per_ip"
	}
	return ""
}

// connRefused reports a connection refused before any scope took it: the
// per-IP connection limit, or the per-IP rate of new connections.
func (r *blockReporter) connRefused(dir network.Direction, endpoint ma.Multiaddr, err error) {
	msg := err.Error()
	b := blocked{scope: "ip", kind: "ip", resource: "connections", key: limitKey("ip", "", ""), limit: int64(r.perIP)}
	from := "an unknown address"
	if endpoint != nil {
		if ip, err := manet.ToIP(endpoint); err == nil {
			from = "IP " + ip.String()
			if ip.To4() == nil {
				from += " (IPv6 addresses count per /56 network)"
			}
			b.scope = "ip:" + ip.String()
		}
	}
	d := strings.ToLower(dir.String())
	switch {
	case strings.Contains(msg, "per ip limit"):
		b.dir, b.used = "total", int64(r.perIP)
		b.what = d + " connections"
		b.where = "from " + from
		b.state = fmt.Sprintf("are at the per-IP limit of %d (loopback addresses are exempt)", r.perIP)
	case strings.Contains(msg, "rate limit"):
		b.dir = "rate"
		b.what = "new " + d + " connections"
		b.where = "from " + from
		b.state = "arrive faster than the per-IP rate limit allows (a burst of twice the per-IP limit, then one every 5 s)"
	default:
		return
	}
	r.report(b)
}

// unlimited is a Limit without bounds, for scopes we cannot name.
type unlimited struct{}

func (unlimited) GetMemoryLimit() int64                { return math.MaxInt64 }
func (unlimited) GetStreamLimit(network.Direction) int { return math.MaxInt }
func (unlimited) GetStreamTotalLimit() int             { return math.MaxInt }
func (unlimited) GetConnLimit(network.Direction) int   { return math.MaxInt }
func (unlimited) GetConnTotalLimit() int               { return math.MaxInt }
func (unlimited) GetFDLimit() int                      { return math.MaxInt }

// formatBytes prints a byte count in binary units: 512 B, 1.5 KiB, 64.0 MiB.
func formatBytes(n int64) string {
	if n == math.MaxInt64 {
		return "unlimited"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit && exp < 4; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// topPeersByStreams is how many peers `icnctl network limits` lists.
const topPeersByStreams = 5

// Report describes what rm holds against its limits, with the connection
// manager's settings from netCfg; didOf names a peer's DID ("" if unknown).
func Report(rm network.ResourceManager, netCfg config.Network, didOf func(peer.ID) string) (controlapi.Limits, error) {
	out := controlapi.Limits{
		Peers:      controlapi.PeerSummary{Top: []controlapi.PeerUsage{}},
		NearlyFull: []controlapi.LimitAlert{},
		Warnings:   []string{},
		ConnManager: controlapi.ConnManager{
			LowWater:    netCfg.ConnLowWater,
			HighWater:   netCfg.ConnHighWater,
			GracePeriod: netCfg.ConnGracePeriod.String(),
		},
		PerIP: controlapi.PerIPLimit{Connections: DefaultConnsPerIP, ConfigKey: "limits.max_connections_per_ip"},
	}
	if err := rm.ViewSystem(func(s network.ResourceScope) error {
		out.System = scopeUsage(s, "system")
		return nil
	}); err != nil {
		return out, fmt.Errorf("resource manager: %w", err)
	}
	if err := rm.ViewTransient(func(s network.ResourceScope) error {
		out.Transient = scopeUsage(s, "transient")
		return nil
	}); err != nil {
		return out, fmt.Errorf("resource manager: %w", err)
	}
	if lrm, ok := rm.(*ResourceManager); ok {
		out.Peers.Limits = peerLimits(lrm.limits.GetPeerLimits(""))
		out.PerIP.Connections = lrm.perIP
	}
	if state, ok := rm.(rcmgr.ResourceManagerState); ok {
		type peerStat struct {
			id peer.ID
			s  network.ScopeStat
		}
		var busy []peerStat
		for p, s := range state.Stat().Peers {
			if s != (network.ScopeStat{}) {
				busy = append(busy, peerStat{p, s})
			}
		}
		sort.Slice(busy, func(i, j int) bool {
			a, b := busy[i].s, busy[j].s
			if sa, sb := a.NumStreamsInbound+a.NumStreamsOutbound, b.NumStreamsInbound+b.NumStreamsOutbound; sa != sb {
				return sa > sb
			}
			if ca, cb := a.NumConnsInbound+a.NumConnsOutbound, b.NumConnsInbound+b.NumConnsOutbound; ca != cb {
				return ca > cb
			}
			if a.Memory != b.Memory {
				return a.Memory > b.Memory
			}
			return busy[i].id < busy[j].id
		})
		out.Peers.Count = len(busy)
		for _, ps := range busy[:min(len(busy), topPeersByStreams)] {
			pu := controlapi.PeerUsage{PeerID: ps.id.String()}
			pu.DID = didOf(ps.id)
			if err := rm.ViewPeer(ps.id, func(s network.PeerScope) error {
				pu.ScopeUsage = scopeUsage(s, "peer")
				return nil
			}); err != nil {
				return out, fmt.Errorf("resource manager: %w", err)
			}
			out.Peers.Top = append(out.Peers.Top, pu)
		}
	}
	out.NearlyFull = append(out.NearlyFull, nearlyFull("system", "for the whole node", out.System)...)
	out.NearlyFull = append(out.NearlyFull, nearlyFull("transient", "still being set up", out.Transient)...)
	for _, p := range out.Peers.Top {
		out.NearlyFull = append(out.NearlyFull, nearlyFull("peer "+p.PeerID, "with peer "+p.PeerID, p.ScopeUsage)...)
	}
	if conns := out.System.Connections.Total.Limit; conns >= 0 && int64(netCfg.ConnHighWater) >= conns {
		out.Warnings = append(out.Warnings, fmt.Sprintf(
			"network.conn_high_water (%d) is not below the connection limit (%d): the resource manager refuses connections before the connection manager starts trimming; lower network.conn_high_water or raise limits.max_connections",
			netCfg.ConnHighWater, conns))
	}
	return out, nil
}

// scopeUsage reads a scope's use and limits; kind picks the config keys.
func scopeUsage(s network.ResourceScope, kind string) controlapi.ScopeUsage {
	st := s.Stat()
	var lim rcmgr.Limit = unlimited{}
	if l, ok := s.(rcmgr.ResourceScopeLimiter); ok {
		lim = l.Limit()
	}
	u := func(used, limit int, resource, dir string) controlapi.Usage {
		return controlapi.Usage{Used: int64(used), Limit: wireLimit(int64(limit)), ConfigKey: configKeyName(kind, resource, dir)}
	}
	return controlapi.ScopeUsage{
		Connections: controlapi.DirUsage{
			Inbound:  u(st.NumConnsInbound, lim.GetConnLimit(network.DirInbound), "connections", "in"),
			Outbound: u(st.NumConnsOutbound, lim.GetConnLimit(network.DirOutbound), "connections", "out"),
			Total:    u(st.NumConnsInbound+st.NumConnsOutbound, lim.GetConnTotalLimit(), "connections", "total"),
		},
		Streams: controlapi.DirUsage{
			Inbound:  u(st.NumStreamsInbound, lim.GetStreamLimit(network.DirInbound), "streams", "in"),
			Outbound: u(st.NumStreamsOutbound, lim.GetStreamLimit(network.DirOutbound), "streams", "out"),
			Total:    u(st.NumStreamsInbound+st.NumStreamsOutbound, lim.GetStreamTotalLimit(), "streams", "total"),
		},
		MemoryBytes: controlapi.Usage{Used: st.Memory, Limit: wireLimit(lim.GetMemoryLimit()), ConfigKey: configKeyName(kind, "memory", "total")},
		FDs:         u(st.NumFD, lim.GetFDLimit(), "fds", "total"),
	}
}

func configKeyName(kind, resource, dir string) string {
	if k := limitKey(kind, resource, dir); k != "" {
		return "limits." + k
	}
	return ""
}

func peerLimits(l rcmgr.Limit) controlapi.PeerLimits {
	return controlapi.PeerLimits{
		Connections:         wireLimit(int64(l.GetConnTotalLimit())),
		ConnectionsInbound:  wireLimit(int64(l.GetConnLimit(network.DirInbound))),
		ConnectionsOutbound: wireLimit(int64(l.GetConnLimit(network.DirOutbound))),
		Streams:             wireLimit(int64(l.GetStreamTotalLimit())),
		StreamsInbound:      wireLimit(int64(l.GetStreamLimit(network.DirInbound))),
		StreamsOutbound:     wireLimit(int64(l.GetStreamLimit(network.DirOutbound))),
		MemoryBytes:         wireLimit(l.GetMemoryLimit()),
		FDs:                 wireLimit(int64(l.GetFDLimit())),
	}
}

// wireLimit is -1 for go-libp2p's "unlimited" (the largest integer).
func wireLimit(v int64) int64 {
	if v == math.MaxInt64 || v == int64(math.MaxInt) {
		return -1
	}
	return v
}

// nearlyFull lists the limits of one scope that are more than 80% used.
func nearlyFull(scope, where string, u controlapi.ScopeUsage) []controlapi.LimitAlert {
	var out []controlapi.LimitAlert
	check := func(what string, x controlapi.Usage, bytes bool) {
		if x.Limit <= 0 || x.Used*5 <= x.Limit*4 {
			return
		}
		pct := float64(x.Used) * 100 / float64(x.Limit)
		amount := fmt.Sprintf("%d / %d", x.Used, x.Limit)
		if bytes {
			amount = formatBytes(x.Used) + " / " + formatBytes(x.Limit)
		}
		msg := fmt.Sprintf("%s %s: %s (%.0f%%)", what, where, amount, pct)
		if x.ConfigKey != "" {
			msg += "; raise [limits] " + strings.TrimPrefix(x.ConfigKey, "limits.")
		} else {
			msg += "; no [limits] key sets this limit"
		}
		out = append(out, controlapi.LimitAlert{Scope: scope, Resource: what, Used: x.Used, Limit: x.Limit,
			Percent: math.Round(pct*10) / 10, ConfigKey: x.ConfigKey, Message: msg})
	}
	check("inbound connections", u.Connections.Inbound, false)
	check("outbound connections", u.Connections.Outbound, false)
	check("connections", u.Connections.Total, false)
	check("inbound streams", u.Streams.Inbound, false)
	check("outbound streams", u.Streams.Outbound, false)
	check("streams", u.Streams.Total, false)
	check("memory", u.MemoryBytes, true)
	check("file descriptors", u.FDs, false)
	return out
}
