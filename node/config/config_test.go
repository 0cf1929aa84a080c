package config

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/require"
)

func repoFile(t *testing.T, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", rel))
	require.NoError(t, err)
	return data
}

// The example file documents every key with its default: parsing it must
// give exactly Default(), so the docs cannot drift from the code.
func TestExampleFileIsTheDefault(t *testing.T) {
	cfg, err := Parse(repoFile(t, "configs/config.example.toml"))
	require.NoError(t, err)
	require.Equal(t, Default(), cfg)
}

// Every key the code knows is written out in the example file.
func TestExampleFileDocumentsEveryKey(t *testing.T) {
	var example map[string]any
	md, err := toml.Decode(string(repoFile(t, "configs/config.example.toml")), &example)
	require.NoError(t, err)
	documented := map[string]bool{}
	for _, k := range md.Keys() {
		documented[k.String()] = true
	}
	cfg := Default()
	cfg.DataDir = "/x"
	out, err := cfg.Encode()
	require.NoError(t, err)
	var all map[string]any
	md, err = toml.Decode(string(out), &all)
	require.NoError(t, err)
	for _, k := range md.Keys() {
		if k.String() == "data_dir" {
			continue // commented out in the example: its default depends on the host
		}
		require.True(t, documented[k.String()], "configs/config.example.toml does not show %q", k)
	}
}

func TestDevConfigParses(t *testing.T) {
	cfg, err := Parse(repoFile(t, "configs/dev.toml"))
	require.NoError(t, err)
	require.Equal(t, ".icn-dev", cfg.DataDir)
	require.Equal(t, "127.0.0.1", cfg.Observability.HTTPBind)
}

func TestSeedGuideConfigParses(t *testing.T) {
	// The configuration block of the deployment guide, verbatim.
	guide := `
data_dir = "/var/lib/icn"
[network]
listen_addr = "0.0.0.0:7777"
mdns_enabled = true
bootstrap_peers = []
[observability]
metrics_port = 9100
health_port = 8080
log_level = "info"
`
	cfg, err := Parse([]byte(guide))
	require.NoError(t, err)
	require.Equal(t, "/var/lib/icn", cfg.DataDir)
	require.Equal(t, 9100, cfg.Observability.MetricsPort)
	m, err := ListenMultiaddr(cfg.Network.ListenAddr)
	require.NoError(t, err)
	require.Equal(t, "/ip4/0.0.0.0/udp/7777/quic-v1", m.String())
}

func TestParseErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name, toml string
		key        string // expected *Error key, "" if not an *Error
		contains   string
	}{
		{"unknown top key", "bogus = 1\n", "bogus", "unknown key"},
		{"unknown nested key", "[network]\nlisten_adr = \"0.0.0.0:1\"\n", "network.listen_adr", "unknown key"},
		{"wrong type", "[observability]\nmetrics_port = \"abc\"\n", "", "observability.metrics_port"},
		{"bad toml", "data_dir = \n", "", "line 1"},
		{"bad listen multiaddr", "[network]\nlisten_addr = \"/ip4/1.2.3/udp/1/quic-v1\"\n", "network.listen_addr", "not a multiaddr"},
		{"listen not quic", "[network]\nlisten_addr = \"/ip4/1.2.3.4/tcp/1\"\n", "network.listen_addr", "QUIC"},
		{"listen no port", "[network]\nlisten_addr = \"0.0.0.0\"\n", "network.listen_addr", "host:port"},
		{"listen bad port", "[network]\nlisten_addr = \"0.0.0.0:99999\"\n", "network.listen_addr", "port"},
		{"bootstrap not multiaddr", "[network]\nbootstrap_peers = [\"1.2.3.4:7777\"]\n", "network.bootstrap_peers[0]", "not a multiaddr"},
		{"bootstrap no peer id", "[network]\nbootstrap_peers = [\"/ip4/1.2.3.4/udp/7777/quic-v1\"]\n", "network.bootstrap_peers[0]", "/p2p/"},
		{"bootstrap peer id not last", "[network]\nbootstrap_peers = [\"/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf/ip4/1.2.3.4\"]\n", "network.bootstrap_peers[0]", "does not end in /p2p/"},
		{"listen on a name", "[network]\nlisten_addr = \"node.example.org:7777\"\n", "network.listen_addr", `not on the name "node.example.org"`},
		{"listen on webtransport", "[network]\nlisten_addr = \"/ip4/0.0.0.0/udp/1/quic-v1/webtransport\"\n", "network.listen_addr", "not a QUIC v1 listen address"},
		{"memory overflows", "[limits]\nmax_memory_mb = 99999999999999\n", "limits.max_memory_mb", "64-bit"},
		{"negative port", "[observability]\nmetrics_port = -1\n", "observability.metrics_port", "not a port"},
		{"port too big", "[observability]\nhealth_port = 70000\n", "observability.health_port", "not a port"},
		{"same ports", "[observability]\nhealth_port = 9100\n", "observability.health_port", "also metrics_port"},
		{"bad log level", "[observability]\nlog_level = \"loud\"\n", "observability.log_level", "debug, info, warn, error"},
		{"bad log format", "[observability]\nlog_format = \"xml\"\n", "observability.log_format", "text, json"},
		{"bad otlp endpoint", "[observability]\notlp_endpoint = \"collector:4318\"\n", "observability.otlp_endpoint", "http or https URL"},
		{"bad bind", "[observability]\nhttp_bind = \"localhost\"\n", "observability.http_bind", "not an IP"},
		{"bad duration", "[network]\nconn_grace_period = \"soon\"\n", "network.conn_grace_period", "not a duration"},
		{"watermarks", "[network]\nconn_low_water = 10\nconn_high_water = 5\n", "network.conn_high_water", "below conn_low_water"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.toml))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.contains)
			if tc.key != "" {
				var ce *Error
				require.True(t, errors.As(err, &ce), "want *config.Error, got %T: %v", err, err)
				require.Equal(t, tc.key, ce.Key)
			}
		})
	}
}

func TestZeroPortsTurnListenersOff(t *testing.T) {
	cfg, err := Parse([]byte("[observability]\nmetrics_port = 0\nhealth_port = 0\n"))
	require.NoError(t, err)
	require.Zero(t, cfg.Observability.MetricsPort)
	require.Zero(t, cfg.Observability.HealthPort)
}

func TestOverridesKeepOtherDefaults(t *testing.T) {
	cfg, err := Parse([]byte("[network]\nconn_grace_period = \"30s\"\n"))
	require.NoError(t, err)
	require.Equal(t, 30*time.Second, cfg.Network.ConnGracePeriod.Duration)
	require.Equal(t, DefaultListenAddr, cfg.Network.ListenAddr)
	require.True(t, cfg.Network.MDNSEnabled)
}

func TestListenMultiaddr(t *testing.T) {
	good := map[string]string{
		"0.0.0.0:7777":                                 "/ip4/0.0.0.0/udp/7777/quic-v1",
		"127.0.0.1:0":                                  "/ip4/127.0.0.1/udp/0/quic-v1",
		"[::]:7777":                                    "/ip6/::/udp/7777/quic-v1",
		"[::1]:9":                                      "/ip6/::1/udp/9/quic-v1",
		"/ip4/10.0.0.1/udp/7777/quic-v1":               "/ip4/10.0.0.1/udp/7777/quic-v1",
		"/ip6/::/udp/7777/quic-v1":                     "/ip6/::/udp/7777/quic-v1",
		"localhost:7790":                               "/ip4/127.0.0.1/udp/7790/quic-v1",
		"LOCALHOST.:7790":                              "/ip4/127.0.0.1/udp/7790/quic-v1",
		"/dns4/localhost/udp/1/quic-v1":                "/ip4/127.0.0.1/udp/1/quic-v1",
		"/dns/localhost/udp/1/quic-v1":                 "/ip4/127.0.0.1/udp/1/quic-v1",
		"/dns6/localhost/udp/1/quic-v1":                "/ip6/::1/udp/1/quic-v1",
		"node.example.org:7777":                        "",
		"/dns4/node.example.org/udp/1/quic-v1":         "",
		"/ip4/127.0.0.1/udp/7790/quic-v1/webtransport": "",
		"/ip4/127.0.0.1/udp/7790/quic-v1/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf": "",
		"/udp/7790/quic-v1":                "",
		"/ip4/0.0.0.0/udp/7777/quic-v1/":   "/ip4/0.0.0.0/udp/7777/quic-v1",
		"/ip4/0.0.0.0/udp/7777/quic":       "",
		"":                                 "",
		":7777":                            "",
		"0.0.0.0:port":                     "",
		"/ip4/0.0.0.0/udp/7777/webrtc-dir": "",
	}
	for in, want := range good {
		m, err := ListenMultiaddr(in)
		if want == "" {
			require.Error(t, err, in)
			continue
		}
		require.NoError(t, err, in)
		require.Equal(t, want, m.String(), in)
	}
}

func TestResolveDataDir(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/xdg")
	got, err := ResolveDataDir("/flag", "/file")
	require.NoError(t, err)
	require.Equal(t, "/flag", got)
	got, err = ResolveDataDir("", "/file")
	require.NoError(t, err)
	require.Equal(t, "/file", got)
	got, err = ResolveDataDir("", "")
	require.NoError(t, err)
	require.Equal(t, "/xdg/icn", got)
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "/home/coop")
	got, err = ResolveDataDir("", "")
	require.NoError(t, err)
	require.Equal(t, "/home/coop/.local/share/icn", got)
	got, err = ResolveDataDir("rel", "")
	require.NoError(t, err)
	require.True(t, filepath.IsAbs(got))
}

func TestEnsureDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	require.NoError(t, EnsureDataDir(dir))
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "the write check must not leave files behind")
}

func TestEnsureDataDirNotWritable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can write anywhere; the end-to-end test covers this by running icnd as nobody")
	}
	parent := t.TempDir()
	require.NoError(t, os.Chmod(parent, 0o500))
	t.Cleanup(func() { os.Chmod(parent, 0o700) })
	err := EnsureDataDir(filepath.Join(parent, "icn"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "permission denied")
	require.Contains(t, err.Error(), parent)
}

func TestEncodeRoundTrip(t *testing.T) {
	cfg := Default()
	cfg.DataDir = "/var/lib/icn"
	cfg.Network.BootstrapPeers = []string{"/ip4/1.2.3.4/udp/7777/quic-v1/p2p/12D3KooWJTNDcVL8XVyNB15PmWMcbyC8kC5zyChBGuxS2RRhce2C"}
	out, err := cfg.Encode()
	require.NoError(t, err)
	back, err := Parse(out)
	require.NoError(t, err, string(out))
	require.Equal(t, cfg, back)
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("data_dir = \"/x\"\n[network]\nlisten_addr = \"0.0.0.0:7777\"\n"))
	f.Add([]byte("[observability]\nmetrics_port = 1\n"))
	f.Add([]byte("[network]\nbootstrap_peers = [\"/ip4/1.2.3.4/udp/1/quic-v1/p2p/12D3KooWJTNDcVL8XVyNB15PmWMcbyC8kC5zyChBGuxS2RRhce2C\"]"))
	f.Add([]byte("x = ["))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("empty error message")
			}
			return
		}
		// Whatever parses must validate and survive a round trip.
		require.NoError(t, cfg.Validate())
		out, err := cfg.Encode()
		require.NoError(t, err)
		back, err := Parse(out)
		require.NoError(t, err, string(out))
		require.Equal(t, cfg.Network.ListenAddr, back.Network.ListenAddr)
	})
}

// listen_addr = "localhost:…" is what users type: it parses and means the
// IPv4 loopback, which the node can listen on.
func TestLocalhostListenAddr(t *testing.T) {
	cfg, err := Parse([]byte("[network]\nlisten_addr = \"localhost:7790\"\n"))
	require.NoError(t, err)
	require.NoError(t, cfg.CheckHost())
}

func TestCheckHost(t *testing.T) {
	ifs, err := net.Interfaces()
	require.NoError(t, err)
	require.NotEmpty(t, ifs)
	base := Default()
	base.Network.ListenAddr = "127.0.0.1:0"
	require.NoError(t, base.CheckHost())

	// An interface that exists passes; one that does not is named, with the
	// ones this host has.
	cfg := base
	cfg.Network.MDNSInterfaces = []string{ifs[0].Name}
	require.NoError(t, cfg.CheckHost())
	cfg.Network.MDNSInterfaces = []string{ifs[0].Name, "eth9-not-here"}
	err = cfg.CheckHost()
	var ce *Error
	require.True(t, errors.As(err, &ce), "%v", err)
	require.Equal(t, "network.mdns_interfaces", ce.Key)
	require.Contains(t, ce.Reason, `no network interface named "eth9-not-here"`)
	for _, ifc := range ifs {
		require.Contains(t, ce.Reason, ifc.Name)
	}
	// With mDNS off the names are not used, and start does not look at them.
	cfg.Network.MDNSEnabled = false
	require.NoError(t, cfg.CheckHost())

	// 192.0.2.1 (TEST-NET-1) is nobody's address.
	cfg = base
	cfg.Network.ListenAddr = "192.0.2.1:7777"
	err = cfg.CheckHost()
	require.True(t, errors.As(err, &ce), "%v", err)
	require.Equal(t, "network.listen_addr", ce.Key)
	require.Contains(t, ce.Reason, "192.0.2.1 is not an address of this host")

	cfg = base
	cfg.Observability.HTTPBind = "192.0.2.1"
	err = cfg.CheckHost()
	require.True(t, errors.As(err, &ce), "%v", err)
	require.Equal(t, "observability.http_bind", ce.Key)
	// With both HTTP listeners off, http_bind is not used.
	cfg.Observability.HealthPort, cfg.Observability.MetricsPort = 0, 0
	require.NoError(t, cfg.CheckHost())

	// The check binds ephemeral ports only: a port in use is no fault of
	// the file (a running node holds its own).
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer udp.Close()
	cfg = base
	cfg.Network.ListenAddr = udp.LocalAddr().String()
	require.NoError(t, cfg.CheckHost())
}

func TestHTTPNetwork(t *testing.T) {
	require.Equal(t, "tcp4", HTTPNetwork("0.0.0.0"))
	require.Equal(t, "tcp4", HTTPNetwork("127.0.0.1"))
	require.Equal(t, "tcp", HTTPNetwork("::"))
	require.Equal(t, "tcp", HTTPNetwork("::1"))
}

// Level and format names are accepted in any case, and held in lower case.
func TestLogLevelAnyCase(t *testing.T) {
	cfg, err := Parse([]byte("[observability]\nlog_level = \"DEBUG\"\nlog_format = \"Json\"\n"))
	require.NoError(t, err)
	require.Equal(t, "debug", cfg.Observability.LogLevel)
	require.Equal(t, "json", cfg.Observability.LogFormat)
	for in, want := range map[string]slog.Level{"DEBUG": slog.LevelDebug, "Info": slog.LevelInfo, "warn": slog.LevelWarn, "ERROR": slog.LevelError} {
		got, err := ParseLogLevel(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err = ParseLogLevel("LOUD")
	require.Error(t, err)
}
