// Package config owns icnd's configuration: the TOML file format, its
// defaults, strict decoding, validation, and the data directory rule shared by
// icnd and icnctl. It has no libp2p host dependency so icnctl can use it.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Config is the whole icnd configuration. Field tags are the TOML keys.
type Config struct {
	DataDir       string        `toml:"data_dir"`
	Network       Network       `toml:"network"`
	Limits        Limits        `toml:"limits"`
	RateLimiting  RateLimiting  `toml:"rate_limiting"`
	Gossip        Gossip        `toml:"gossip"`
	Observability Observability `toml:"observability"`
	Gateway       Gateway       `toml:"gateway"`
	Trust         Trust         `toml:"trust"`
}

// Network configures the libp2p host.
type Network struct {
	// ListenAddr is host:port (UDP, QUIC v1) or a multiaddr such as
	// /ip4/0.0.0.0/udp/7777/quic-v1.
	ListenAddr  string `toml:"listen_addr"`
	MDNSEnabled bool   `toml:"mdns_enabled"`
	// MDNSInterfaces limits mDNS to these interface names; empty means every
	// up, multicast-capable interface except container bridges and veths.
	MDNSInterfaces []string `toml:"mdns_interfaces"`
	BootstrapPeers []string `toml:"bootstrap_peers"`
	// DHTMode is auto, server or client.
	DHTMode string `toml:"dht_mode"`
	// AnnounceAddrs, when set, replace the addresses the node tells peers
	// to dial (for NAT port forwards and containers).
	AnnounceAddrs []string `toml:"announce_addrs"`
	AutoNAT       bool     `toml:"autonat"`
	HolePunching  bool     `toml:"hole_punching"`
	RelayClient   bool     `toml:"relay_client"`
	// Connection manager watermarks: above ConnHighWater the node trims
	// connections down to ConnLowWater, sparing those younger than ConnGracePeriod.
	ConnLowWater    int      `toml:"conn_low_water"`
	ConnHighWater   int      `toml:"conn_high_water"`
	ConnGracePeriod Duration `toml:"conn_grace_period"`
	// NetworkID namespaces gossip topics (icn/<network_id>/<topic>), so two
	// ICN networks on one LAN never mix their messages.
	NetworkID string `toml:"network_id"`
	// MinTrustThreshold is the reference implementation's key: in trusted
	// mode, the lowest trust score (0..1) allowed to stay connected. 0
	// (the default) leaves it to trust.min_connect_class.
	MinTrustThreshold float64 `toml:"min_trust_threshold"`
}

// RateLimiting is the per-peer token bucket applied to gossip messages.
type RateLimiting struct {
	// MessagesPerSecond is the sustained rate one peer may send us.
	MessagesPerSecond float64 `toml:"messages_per_second"`
	// Burst is how many messages a peer may send at once above that rate.
	Burst int `toml:"burst"`
}

// Gossip configures the gossip layer (docs/gossip.md).
type Gossip struct {
	// MaxMessageSize bounds one envelope in bytes.
	MaxMessageSize int `toml:"max_message_size"`
	// ClockSkew is how far in the future a message's timestamp may be.
	ClockSkew Duration `toml:"clock_skew"`
	// MaxAge is how old a message may be and still be accepted.
	MaxAge Duration `toml:"max_age"`
	// AnnounceInterval is how often the node announces its heads per topic.
	AnnounceInterval Duration `toml:"announce_interval"`
}

// Limits are the libp2p resource manager's limits. Zero means the default,
// scaled to the machine's memory and file descriptors.
type Limits struct {
	MaxConnections        int `toml:"max_connections"`
	MaxConnectionsInbound int `toml:"max_connections_inbound"`
	MaxStreams            int `toml:"max_streams"`
	MaxStreamsInbound     int `toml:"max_streams_inbound"`
	MaxMemoryMB           int `toml:"max_memory_mb"`
	MaxFDs                int `toml:"max_fds"`
	MaxConnectionsPerPeer int `toml:"max_connections_per_peer"`
	MaxStreamsPerPeer     int `toml:"max_streams_per_peer"`
	MaxMemoryPerPeerMB    int `toml:"max_memory_per_peer_mb"`
	MaxConnectionsPerIP   int `toml:"max_connections_per_ip"`
	// MemorySoftLimitMB is Go's soft memory limit for the whole daemon
	// (runtime/debug.SetMemoryLimit); 0 means automatic (see node/memlimit.go).
	MemorySoftLimitMB int `toml:"memory_soft_limit_mb"`
}

// Observability configures logs, metrics and health.
type Observability struct {
	MetricsPort int    `toml:"metrics_port"`
	HealthPort  int    `toml:"health_port"`
	HTTPBind    string `toml:"http_bind"`
	LogLevel    string `toml:"log_level"`
	LogFormat   string `toml:"log_format"`
	// OTLPEndpoint is where spans go (OTLP base URL, e.g.
	// http://collector:4318) when OTEL_EXPORTER_OTLP_ENDPOINT is not set;
	// empty, with no such variable, leaves tracing off.
	OTLPEndpoint string `toml:"otlp_endpoint,omitempty"`
}

// Duration is a time.Duration written in TOML as a string like "30s".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (want e.g. \"30s\" or \"2m\"): %q", b)
	}
	d.Duration = v
	return nil
}

// MarshalText formats the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Defaults.
const (
	DefaultListenAddr      = "0.0.0.0:7777"
	DefaultMetricsPort     = 9100
	DefaultHealthPort      = 8080
	DefaultHTTPBind        = "0.0.0.0"
	DefaultLogLevel        = "info"
	DefaultLogFormat       = "text"
	DefaultConnLowWater    = 100
	DefaultConnHighWater   = 400
	DefaultConnGracePeriod = time.Minute
	// DefaultDHTMode is server: in auto mode a node serves the DHT only once
	// AutoNAT finds it publicly reachable, which never happens on a LAN, and a
	// private network whose nodes are all clients cannot route (kad-dht#645).
	DefaultDHTMode = "server"

	DefaultNetworkID         = "icn-default"
	DefaultMessagesPerSecond = 100
	DefaultBurst             = 20
	DefaultMaxMessageSize    = 64 << 10
	// MaxMaxMessageSize keeps envelopes well under GossipSub's 1 MiB RPC limit.
	MaxMaxMessageSize       = 512 << 10
	DefaultClockSkew        = 2 * time.Minute
	DefaultMaxAge           = 10 * time.Minute
	DefaultAnnounceInterval = 10 * time.Second
)

// Default returns the configuration used when no file and no flag says otherwise.
// DataDir is left empty: ResolveDataDir fills it in.
func Default() Config {
	return Config{
		Network: Network{
			ListenAddr:      DefaultListenAddr,
			MDNSEnabled:     true,
			MDNSInterfaces:  []string{},
			BootstrapPeers:  []string{},
			DHTMode:         DefaultDHTMode,
			AnnounceAddrs:   []string{},
			AutoNAT:         true,
			HolePunching:    true,
			RelayClient:     true,
			ConnLowWater:    DefaultConnLowWater,
			ConnHighWater:   DefaultConnHighWater,
			ConnGracePeriod: Duration{DefaultConnGracePeriod},
			NetworkID:       DefaultNetworkID,
		},
		RateLimiting: RateLimiting{MessagesPerSecond: DefaultMessagesPerSecond, Burst: DefaultBurst},
		Gossip: Gossip{
			MaxMessageSize:   DefaultMaxMessageSize,
			ClockSkew:        Duration{DefaultClockSkew},
			MaxAge:           Duration{DefaultMaxAge},
			AnnounceInterval: Duration{DefaultAnnounceInterval},
		},
		Observability: Observability{
			MetricsPort: DefaultMetricsPort,
			HealthPort:  DefaultHealthPort,
			HTTPBind:    DefaultHTTPBind,
			LogLevel:    DefaultLogLevel,
			LogFormat:   DefaultLogFormat,
		},
		Gateway: DefaultGateway(),
		Trust:   DefaultTrust(),
	}
}

// Error is a problem with one configuration key.
type Error struct {
	Key    string // dotted key, e.g. "network.listen_addr"
	Reason string
}

func (e *Error) Error() string { return e.Key + ": " + e.Reason }

// Parse decodes TOML strictly over the defaults: unknown keys and values of
// the wrong type are errors naming the key. The result is validated.
func Parse(data []byte) (Config, error) {
	cfg := Default()
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&cfg)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			if perr.LastKey != "" {
				return Config{}, &Error{Key: perr.LastKey, Reason: fmt.Sprintf("line %d: %s", perr.Position.Line, perr.Message)}
			}
			return Config{}, fmt.Errorf("line %d: %s", perr.Position.Line, perr.Message)
		}
		return Config{}, err
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		return Config{}, &Error{Key: keys[0], Reason: "unknown key (see configs/config.example.toml for the valid keys)" + others(keys[1:])}
	}
	// Level and format names are case-insensitive; the config holds them
	// in lower case, as --check-config prints them.
	cfg.Observability.LogLevel = strings.ToLower(cfg.Observability.LogLevel)
	cfg.Observability.LogFormat = strings.ToLower(cfg.Observability.LogFormat)
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func others(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	return "; also unknown: " + strings.Join(keys, ", ")
}

// Load reads and parses a config file. Errors name the file.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Validate checks every value and returns the first problem as an *Error.
func (c Config) Validate() error {
	if _, err := ListenMultiaddr(c.Network.ListenAddr); err != nil {
		return &Error{Key: "network.listen_addr", Reason: err.Error()}
	}
	for i, p := range c.Network.BootstrapPeers {
		if err := checkPeerAddr(p); err != nil {
			return &Error{Key: fmt.Sprintf("network.bootstrap_peers[%d]", i), Reason: err.Error()}
		}
	}
	switch c.Network.DHTMode {
	case "auto", "server", "client":
	default:
		return &Error{Key: "network.dht_mode", Reason: fmt.Sprintf("%q is not one of auto, server, client", c.Network.DHTMode)}
	}
	for i, a := range c.Network.AnnounceAddrs {
		if _, err := AddrMultiaddr(a); err != nil {
			return &Error{Key: fmt.Sprintf("network.announce_addrs[%d]", i), Reason: err.Error()}
		}
	}
	for i, name := range c.Network.MDNSInterfaces {
		if strings.TrimSpace(name) == "" {
			return &Error{Key: fmt.Sprintf("network.mdns_interfaces[%d]", i), Reason: "empty interface name"}
		}
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if c.Network.ConnLowWater < 0 {
		return &Error{Key: "network.conn_low_water", Reason: "must not be negative"}
	}
	if c.Network.ConnHighWater < c.Network.ConnLowWater {
		return &Error{Key: "network.conn_high_water", Reason: fmt.Sprintf("%d is below conn_low_water (%d)", c.Network.ConnHighWater, c.Network.ConnLowWater)}
	}
	if c.Network.ConnGracePeriod.Duration < 0 {
		return &Error{Key: "network.conn_grace_period", Reason: "must not be negative"}
	}
	if err := c.validateGossip(); err != nil {
		return err
	}
	if err := checkPort(c.Observability.MetricsPort); err != nil {
		return &Error{Key: "observability.metrics_port", Reason: err.Error()}
	}
	if err := checkPort(c.Observability.HealthPort); err != nil {
		return &Error{Key: "observability.health_port", Reason: err.Error()}
	}
	if c.Observability.MetricsPort != 0 && c.Observability.MetricsPort == c.Observability.HealthPort {
		return &Error{Key: "observability.health_port", Reason: fmt.Sprintf("%d is also metrics_port; give each listener its own port", c.Observability.HealthPort)}
	}
	if net.ParseIP(c.Observability.HTTPBind) == nil {
		return &Error{Key: "observability.http_bind", Reason: fmt.Sprintf("%q is not an IP address (e.g. 0.0.0.0 or 127.0.0.1)", c.Observability.HTTPBind)}
	}
	if _, err := ParseLogLevel(c.Observability.LogLevel); err != nil {
		return &Error{Key: "observability.log_level", Reason: err.Error()}
	}
	switch strings.ToLower(c.Observability.LogFormat) {
	case "text", "json":
	default:
		return &Error{Key: "observability.log_format", Reason: fmt.Sprintf("%q is not one of text, json", c.Observability.LogFormat)}
	}
	if e := c.Observability.OTLPEndpoint; e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &Error{Key: "observability.otlp_endpoint", Reason: fmt.Sprintf("%q is not an http or https URL with a host (e.g. http://collector:4318)", e)}
		}
	}
	if err := c.Gateway.validate(); err != nil {
		return err
	}
	return c.Trust.validate(c.Network.MinTrustThreshold)
}

// maxMB is the largest MiB count whose bytes fit in an int64.
const maxMB = math.MaxInt64 >> 20

func (l Limits) validate() error {
	for key, v := range map[string]int{
		"max_connections": l.MaxConnections, "max_connections_inbound": l.MaxConnectionsInbound,
		"max_streams": l.MaxStreams, "max_streams_inbound": l.MaxStreamsInbound,
		"max_memory_mb": l.MaxMemoryMB, "max_fds": l.MaxFDs,
		"max_connections_per_peer": l.MaxConnectionsPerPeer, "max_streams_per_peer": l.MaxStreamsPerPeer,
		"max_memory_per_peer_mb": l.MaxMemoryPerPeerMB, "max_connections_per_ip": l.MaxConnectionsPerIP,
		"memory_soft_limit_mb": l.MemorySoftLimitMB,
	} {
		if v < 0 {
			return &Error{Key: "limits." + key, Reason: fmt.Sprintf("%d is negative (0 means the scaled default)", v)}
		}
		if strings.HasSuffix(key, "_mb") && int64(v) > maxMB {
			return &Error{Key: "limits." + key, Reason: fmt.Sprintf("%d MiB is more bytes than a 64-bit count holds (at most %d)", v, int64(maxMB))}
		}
	}
	if l.MaxConnections > 0 && l.MaxConnectionsInbound > l.MaxConnections {
		return &Error{Key: "limits.max_connections_inbound", Reason: fmt.Sprintf("%d is above max_connections (%d)", l.MaxConnectionsInbound, l.MaxConnections)}
	}
	if l.MaxStreams > 0 && l.MaxStreamsInbound > l.MaxStreams {
		return &Error{Key: "limits.max_streams_inbound", Reason: fmt.Sprintf("%d is above max_streams (%d)", l.MaxStreamsInbound, l.MaxStreams)}
	}
	return nil
}

// validNetworkID: 1-64 letters, digits, '.', '_' or '-', starting with a
// letter or digit. The id goes into topic names, so it never holds a '/'.
func validNetworkID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case i > 0 && (r == '.' || r == '_' || r == '-'):
		default:
			return false
		}
	}
	return true
}

func (c Config) validateGossip() error {
	if !validNetworkID(c.Network.NetworkID) {
		return &Error{Key: "network.network_id", Reason: fmt.Sprintf("%q is not 1-64 letters, digits, '.', '_' or '-' starting with a letter or digit", c.Network.NetworkID)}
	}
	r := c.RateLimiting
	if !(r.MessagesPerSecond > 0 && r.MessagesPerSecond <= 1e6) {
		return &Error{Key: "rate_limiting.messages_per_second", Reason: fmt.Sprintf("%v is not above 0 and at most 1000000", r.MessagesPerSecond)}
	}
	if r.Burst < 1 || r.Burst > 1e6 {
		return &Error{Key: "rate_limiting.burst", Reason: fmt.Sprintf("%d is not from 1 to 1000000", r.Burst)}
	}
	g := c.Gossip
	if g.MaxMessageSize < 1024 || g.MaxMessageSize > MaxMaxMessageSize {
		return &Error{Key: "gossip.max_message_size", Reason: fmt.Sprintf("%d is not from 1024 to %d bytes", g.MaxMessageSize, MaxMaxMessageSize)}
	}
	if g.MaxAge.Duration < time.Second {
		return &Error{Key: "gossip.max_age", Reason: fmt.Sprintf("%s is below 1s", g.MaxAge.Duration)}
	}
	if g.ClockSkew.Duration < 0 || g.ClockSkew.Duration > g.MaxAge.Duration {
		return &Error{Key: "gossip.clock_skew", Reason: fmt.Sprintf("%s is negative or above max_age (%s)", g.ClockSkew.Duration, g.MaxAge.Duration)}
	}
	if g.AnnounceInterval.Duration < 100*time.Millisecond {
		return &Error{Key: "gossip.announce_interval", Reason: fmt.Sprintf("%s is below 100ms", g.AnnounceInterval.Duration)}
	}
	return nil
}

func checkPort(p int) error {
	if p < 0 || p > 65535 {
		return fmt.Errorf("%d is not a port (0 turns the listener off, else 1-65535)", p)
	}
	return nil
}

// checkPeerAddr accepts what the node's start parses a bootstrap peer with
// (peer.AddrInfoFromString): a multiaddr ending in /p2p/<peer id>.
func checkPeerAddr(s string) error {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return fmt.Errorf("%q is not a multiaddr: %v", s, err)
	}
	if _, err := m.ValueForProtocol(ma.P_P2P); err != nil {
		return fmt.Errorf("%q has no /p2p/<peer id> part", s)
	}
	if _, err := peer.AddrInfoFromP2pAddr(m); err != nil {
		return fmt.Errorf("%q does not end in /p2p/<peer id> (the peer's address comes first, e.g. /ip4/192.0.2.1/udp/7777/quic-v1/p2p/12D3Koo…): %v", s, err)
	}
	return nil
}

// ParseLogLevel accepts debug, info, warn and error, in any case.
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not one of debug, info, warn, error", s)
}

// ListenMultiaddr turns listen_addr (host:port or a multiaddr) into a QUIC v1
// multiaddr, the one address the node listens on. host:port means UDP. The
// host must be an IP address, or localhost (which means 127.0.0.1): a node
// listens on addresses of its own interfaces, so a DNS name is refused. A
// multiaddr must be /ip4|ip6/<address>/udp/<port>/quic-v1, the only
// transport the node runs; /dns, /dns4 or /dns6 with localhost mean the
// loopback address.
func ListenMultiaddr(s string) (ma.Multiaddr, error) {
	if s == "" {
		return nil, errors.New("empty; want host:port such as 0.0.0.0:7777, or a multiaddr")
	}
	if !strings.HasPrefix(s, "/") {
		host, portStr, err := net.SplitHostPort(s)
		if err == nil && isLocalhost(host) {
			s = net.JoinHostPort("127.0.0.1", portStr)
		} else if err == nil && host != "" && net.ParseIP(host) == nil {
			return nil, listenNameError(s, host)
		}
		return HostPortMultiaddr(s)
	}
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a multiaddr: %v", s, err)
	}
	cs := ma.Split(m)
	notQUIC := fmt.Errorf("%q is not a QUIC v1 listen address; want e.g. /ip4/0.0.0.0/udp/7777/quic-v1", s)
	if len(cs) != 3 || cs[1].Protocol().Code != ma.P_UDP || cs[2].Protocol().Code != ma.P_QUIC_V1 {
		return nil, notQUIC
	}
	switch cs[0].Protocol().Code {
	case ma.P_IP4, ma.P_IP6:
		return m, nil
	case ma.P_DNS, ma.P_DNS4, ma.P_DNS6:
		name := cs[0].Value()
		if !isLocalhost(name) {
			return nil, listenNameError(s, name)
		}
		ip := "/ip4/127.0.0.1"
		if cs[0].Protocol().Code == ma.P_DNS6 {
			ip = "/ip6/::1"
		}
		return ma.NewMultiaddr(ip + "/udp/" + cs[1].Value() + "/quic-v1")
	}
	return nil, notQUIC
}

// isLocalhost reports whether name is localhost, which always means the
// loopback address (RFC 6761), so no lookup is needed.
func isLocalhost(name string) bool {
	return strings.EqualFold(strings.TrimSuffix(name, "."), "localhost")
}

func listenNameError(s, name string) error {
	return fmt.Errorf("%q: the node listens on an IP address of this host, not on the name %q; use 0.0.0.0 for every interface, 127.0.0.1 (or localhost) for this host only, or one interface's address", s, name)
}

// AddrMultiaddr accepts a multiaddr, or host:port meaning QUIC v1 over UDP.
func AddrMultiaddr(s string) (ma.Multiaddr, error) {
	if strings.HasPrefix(s, "/") {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a multiaddr: %v", s, err)
		}
		return m, nil
	}
	return HostPortMultiaddr(s)
}

// HostPortMultiaddr converts "1.2.3.4:7777" or "[::1]:7777" into
// /ip4/1.2.3.4/udp/7777/quic-v1. A DNS name becomes /dns/<name>/... so it can
// be dialled, though it cannot be listened on.
func HostPortMultiaddr(s string) (ma.Multiaddr, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not host:port (e.g. 0.0.0.0:7777) or a multiaddr: %v", s, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("%q: port %q is not a number from 0 to 65535", s, portStr)
	}
	var proto string
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		if host == "" {
			return nil, fmt.Errorf("%q: missing host; use 0.0.0.0 for every interface", s)
		}
		proto = "dns"
	case ip.To4() != nil:
		proto, host = "ip4", ip.To4().String()
	default:
		proto = "ip6"
	}
	return ma.NewMultiaddr(fmt.Sprintf("/%s/%s/udp/%d/quic-v1", proto, host, port))
}

// ResolveDataDir applies the rule both binaries share: the --data-dir flag,
// else data_dir from the config file, else $XDG_DATA_HOME/icn, else
// ~/.local/share/icn.
func ResolveDataDir(flag, fromConfig string) (string, error) {
	switch {
	case flag != "":
		return filepath.Abs(flag)
	case fromConfig != "":
		return filepath.Abs(fromConfig)
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "icn"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no --data-dir given and no home directory to default to: %w", err)
	}
	return filepath.Join(home, ".local", "share", "icn"), nil
}

// EnsureDataDir creates dir with mode 0700 if missing and checks that it is
// writable. Errors name the path.
func EnsureDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		var perr *os.PathError
		if errors.As(err, &perr) {
			err = perr.Err
		}
		return fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// Encode writes the config as TOML (used by --check-config).
func (c Config) Encode() ([]byte, error) {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
