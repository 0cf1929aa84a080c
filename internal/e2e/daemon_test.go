package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/node/controlapi"
)

type idJSON struct {
	DID        string `json:"did"`
	PeerID     string `json:"peer_id"`
	BindingSeq uint64 `json:"binding_seq"`
}

func initID(t *testing.T, dir string) idJSON {
	t.Helper()
	return decode[idJSON](t, ok(t, dir, "id", "init", "--json"))
}

func status(t *testing.T, dir string) controlapi.Status {
	t.Helper()
	return decode[controlapi.Status](t, ok(t, dir, "status", "--json"))
}

func peers(t *testing.T, dir string) []controlapi.Peer {
	t.Helper()
	return decode[[]controlapi.Peer](t, ok(t, dir, "network", "peers", "--json"))
}

func hasPeer(ps []controlapi.Peer, peerID, did string) bool {
	for _, p := range ps {
		if p.PeerID == peerID && p.DID == did {
			return true
		}
	}
	return false
}

// udpHostPort turns /ip4/127.0.0.1/udp/N/quic-v1 into 127.0.0.1:N.
func udpHostPort(t *testing.T, maddr string) string {
	t.Helper()
	parts := strings.Split(maddr, "/")
	require.GreaterOrEqual(t, len(parts), 5, maddr)
	return parts[2] + ":" + parts[4]
}

func TestTwoDaemonsDialStatusHealthMetrics(t *testing.T) {
	dirA, dirB := tempDir(t), tempDir(t)
	idA, idB := initID(t, dirA), initID(t, dirB)
	require.NotEqual(t, idA.DID, idB.DID)
	cfgA, pa := writeConfig(t, dirA, "127.0.0.1:0", "")
	cfgB, pb := writeConfig(t, dirB, "127.0.0.1:0", "")
	a := startDaemon(t, dirA, cfgA, pa)
	b := startDaemon(t, dirB, cfgB, pb)

	// The control socket is private to the daemon's user.
	fi, err := os.Stat(filepath.Join(dirA, "icnd.sock"))
	require.NoError(t, err)
	require.Equal(t, os.ModeSocket|0o600, fi.Mode()&(os.ModeSocket|os.ModePerm))

	// status --json carries the contract's fields.
	sa, sb := status(t, dirA), status(t, dirB)
	require.Equal(t, idA.DID, sa.DID)
	require.Equal(t, idA.PeerID, sa.PeerID)
	require.Equal(t, 0, sa.Peers)
	require.NotEmpty(t, sa.Version)
	require.NotEmpty(t, sb.ListenAddrs)
	raw := decode[map[string]any](t, ok(t, dirA, "status", "--json"))
	for _, k := range []string{"did", "peer_id", "listen_addrs", "peers", "version", "uptime_seconds"} {
		require.Contains(t, raw, k)
	}

	// Dial by multiaddr.
	out := ok(t, dirA, "network", "dial", sb.ListenAddrs[0]+"/p2p/"+sb.PeerID)
	require.Contains(t, out, idB.DID)
	require.Eventually(t, func() bool { return hasPeer(peers(t, dirB), idA.PeerID, idA.DID) }, 10*time.Second, 100*time.Millisecond)
	require.True(t, hasPeer(peers(t, dirA), idB.PeerID, idB.DID))
	require.Equal(t, 1, status(t, dirA).Peers)
	rawPeers := decode[[]map[string]any](t, ok(t, dirA, "network", "peers", "--json"))
	for _, k := range []string{"peer_id", "did", "addrs"} {
		require.Contains(t, rawPeers[0], k)
	}

	// Disconnect by DID, then dial DID ADDR (positional) and DID --addr.
	ok(t, dirA, "network", "disconnect", idB.DID)
	require.Eventually(t, func() bool { return len(peers(t, dirA)) == 0 }, 10*time.Second, 100*time.Millisecond)
	hp := udpHostPort(t, sb.ListenAddrs[0])
	p := decode[controlapi.Peer](t, ok(t, dirA, "network", "dial", idB.DID, hp, "--json"))
	require.Equal(t, idB.PeerID, p.PeerID)
	require.Equal(t, idB.DID, p.DID)
	ok(t, dirA, "network", "disconnect", idB.PeerID)
	require.Eventually(t, func() bool { return len(peers(t, dirA)) == 0 }, 10*time.Second, 100*time.Millisecond)
	p = decode[controlapi.Peer](t, ok(t, dirA, "network", "dial", idB.DID, "--addr", sb.ListenAddrs[0], "--json"))
	require.Equal(t, idB.PeerID, p.PeerID)

	// Health endpoints.
	for _, path := range []string{"/ready", "/readyz"} {
		code, body := a.get(path)
		require.Equal(t, 200, code, "%s: %s", path, body)
	}
	for _, path := range []string{"/health", "/healthz"} {
		code, body := a.get(path)
		require.Equal(t, 200, code, body)
		h := decode[map[string]any](t, body)
		require.Equal(t, "healthy", h["status"])
		require.Contains(t, h, "uptime_seconds")
		require.Equal(t, 1.0, h["peers"])
	}

	// Metrics: our names, go-libp2p's, the resource manager's, the runtime's.
	code, metrics := b.get("/metrics")
	require.Equal(t, 200, code)
	for _, name := range []string{
		"icn_network_connections_total", "icn_network_connections_active 1",
		"icn_network_messages_received_total", "icn_network_messages_rate_limited_total 0",
		"libp2p_rcmgr_", "libp2p_swarm_", "libp2p_identify_", "go_goroutines", "process_resident_memory_bytes",
	} {
		requireMetric(t, metrics, name)
	}

	a.stop()
	b.stop()
}

func TestRotationSurvivesRestartAndIsReachableByDID(t *testing.T) {
	dirA, dirB, dirC := tempDir(t), tempDir(t), tempDir(t)
	initID(t, dirA)
	idB := initID(t, dirB)
	initID(t, dirC)
	cfgA, pa := writeConfig(t, dirA, "127.0.0.1:0", "")
	cfgB, pb := writeConfig(t, dirB, "127.0.0.1:0", "")
	cfgC, pc := writeConfig(t, dirC, "127.0.0.1:0", "")
	a := startDaemon(t, dirA, cfgA, pa)
	b := startDaemon(t, dirB, cfgB, pb)
	hostB := udpHostPort(t, status(t, dirB).ListenAddrs[0])
	ok(t, dirA, "network", "dial", idB.DID, hostB)

	// Rotate while b runs: same DID, new peer ID, a reconnected to it.
	rot := decode[idJSON](t, ok(t, dirB, "id", "rotate", "--json"))
	require.Equal(t, idB.DID, rot.DID)
	require.NotEqual(t, idB.PeerID, rot.PeerID)
	require.Equal(t, uint64(2), rot.BindingSeq)
	require.Equal(t, rot.PeerID, status(t, dirB).PeerID)
	require.Eventually(t, func() bool { return hasPeer(peers(t, dirA), rot.PeerID, idB.DID) }, 15*time.Second, 100*time.Millisecond)

	// Survives a restart (on a fixed port now, so c can be told where).
	b.stop()
	cfgB, pb = writeConfig(t, dirB, hostB, "")
	b = startDaemon(t, dirB, cfgB, pb)
	require.Equal(t, rot.PeerID, status(t, dirB).PeerID)
	require.Equal(t, idB.DID, status(t, dirB).DID)

	// c never met b and only knows its DID: it reaches the new peer ID.
	c := startDaemon(t, dirC, cfgC, pc)
	p := decode[controlapi.Peer](t, ok(t, dirC, "network", "dial", idB.DID, hostB, "--json"))
	require.Equal(t, rot.PeerID, p.PeerID)
	require.Equal(t, idB.DID, p.DID)

	// Offline rotation persists too.
	b.stop()
	rot2 := decode[idJSON](t, ok(t, dirB, "id", "rotate", "--json"))
	require.Equal(t, uint64(3), rot2.BindingSeq)
	shown := decode[idJSON](t, ok(t, dirB, "id", "show", "--json"))
	require.Equal(t, rot2.PeerID, shown.PeerID)
	b = startDaemon(t, dirB, cfgB, pb)
	require.Equal(t, rot2.PeerID, status(t, dirB).PeerID)
	p = decode[controlapi.Peer](t, ok(t, dirC, "network", "dial", idB.DID, hostB, "--json"))
	require.Equal(t, rot2.PeerID, p.PeerID)

	a.stop()
	b.stop()
	c.stop()
}

func TestCheckConfigAndVersion(t *testing.T) {
	dir := tempDir(t)
	cfg, _ := writeConfig(t, dir, "127.0.0.1:7777", "")
	d := spawn(t, baseEnv(), nil, "--config", cfg, "--data-dir", dir, "--log-level", "warn", "--check-config")
	require.Equal(t, 0, d.wait(10*time.Second), d.logs.String())
	out := d.logs.String()
	require.Contains(t, out, `listen_addr = "127.0.0.1:7777"`)
	require.Contains(t, out, `log_level = "warn"`, "flags override the file")
	require.Contains(t, out, fmt.Sprintf("data_dir = %q", dir))

	d = spawn(t, baseEnv(), nil, "--version")
	require.Equal(t, 0, d.wait(10*time.Second))
	require.True(t, strings.HasPrefix(d.logs.String(), "icnd "), d.logs.String())
}

func TestDialByDIDAloneThroughTheDHT(t *testing.T) {
	dirs := []string{tempDir(t), tempDir(t), tempDir(t)}
	ids := make([]idJSON, 3)
	for i, d := range dirs {
		ids[i] = initID(t, d)
	}
	cfg, p := writeConfig(t, dirs[0], "127.0.0.1:0", "")
	seed := startDaemon(t, dirs[0], cfg, p)
	seedAddr := status(t, dirs[0]).ListenAddrs[0] + "/p2p/" + ids[0].PeerID
	var ds []*daemon
	for _, d := range dirs[1:] {
		cfg, p := writeConfig(t, d, "127.0.0.1:0", fmt.Sprintf("bootstrap_peers = [%q]", seedAddr))
		ds = append(ds, startDaemon(t, d, cfg, p))
	}
	for _, d := range dirs {
		require.Eventually(t, func() bool { return status(t, d).DHTRoutingTable > 0 }, 30*time.Second, 100*time.Millisecond)
	}
	// c resolves b: a DHT record, and addresses.
	var res controlapi.Resolution
	require.Eventually(t, func() bool {
		res = decode[controlapi.Resolution](t, ok(t, dirs[2], "network", "resolve", ids[1].DID, "--json"))
		return res.DHT == "found"
	}, 30*time.Second, 200*time.Millisecond)
	require.Equal(t, ids[1].PeerID, res.PeerID)
	require.NotEmpty(t, res.Addrs)
	text := ok(t, dirs[2], "network", "resolve", ids[1].DID)
	require.Contains(t, text, ids[1].PeerID)

	ok(t, dirs[2], "network", "disconnect", ids[1].DID)
	peer := decode[controlapi.Peer](t, ok(t, dirs[2], "network", "dial", ids[1].DID, "--json"))
	require.Equal(t, ids[1].PeerID, peer.PeerID)

	b := decode[controlapi.BootstrapResult](t, ok(t, dirs[1], "network", "bootstrap", "--json"))
	require.GreaterOrEqual(t, b.Connected, 1)
	require.Greater(t, b.RoutingTable, 0)

	_, metrics := ds[1].get("/metrics")
	for _, name := range []string{"icn_dht_routing_table_size", `icn_discovery_peers_discovered_total{source="bootstrap"}`,
		`icn_discovery_peers_discovered_total{source="dht"}`, `icn_network_dial_failures_total{reason="timeout"}`, `icn_dht_bootstraps_total{trigger="start"} 1`} {
		requireMetric(t, metrics, name)
	}
	require.GreaterOrEqual(t, metricValue(t, metrics, `icn_discovery_peers_discovered_total{source="bootstrap"}`)+
		metricValue(t, metrics, `icn_discovery_peers_discovered_total{source="dht"}`), 1.0, "the seed was discovered somehow")
	for _, d := range ds {
		d.stop()
	}
	seed.stop()
}

// requireMetric checks that a line of the exposition starts with prefix,
// without dumping the whole exposition when it does not.
func requireMetric(t *testing.T, exposition, prefix string) {
	t.Helper()
	for _, line := range strings.Split(exposition, "\n") {
		if strings.HasPrefix(line, prefix) {
			return
		}
	}
	t.Errorf("no metric line starts with %q", prefix)
}

// metricValue reads the value of one series from an exposition.
func metricValue(t *testing.T, exposition, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(exposition, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			require.NoError(t, err, line)
			return v
		}
	}
	t.Fatalf("no series %s", series)
	return 0
}

// A bootstrap peer that answers with another key than the configured one
// (the node there rotated its key) is not connected to, and the log names
// the key that answered and what to change.
func TestBootstrapPeerWithAnotherKeyIsNamedInTheLog(t *testing.T) {
	dirA, dirB, dirOther := tempDir(t), tempDir(t), tempDir(t)
	initID(t, dirA)
	other := initID(t, dirOther) // never runs: its peer ID is the stale one
	initID(t, dirB)
	cfgA, pa := writeConfig(t, dirA, "127.0.0.1:0", "")
	a := startDaemon(t, dirA, cfgA, pa)
	st := status(t, dirA)
	stale := st.ListenAddrs[0] + "/p2p/" + other.PeerID
	cfgB, pb := writeConfig(t, dirB, "127.0.0.1:0", fmt.Sprintf("bootstrap_peers = [%q]", stale))
	b := startDaemon(t, dirB, cfgB, pb)
	require.Eventually(t, func() bool {
		logs := b.logs.String()
		return strings.Contains(logs, "bootstrap peer answered with another key") &&
			strings.Contains(logs, st.PeerID) && strings.Contains(logs, "network.bootstrap_peers")
	}, 30*time.Second, 100*time.Millisecond, "no warning naming the key that answered:\n%s", b.logs)
	require.False(t, hasPeer(peers(t, dirB), st.PeerID, st.DID), "connected to a key it was not told to expect")
	a.stop()
	b.stop()
}

// http_bind = "0.0.0.0" listens on every IPv4 address and not on IPv6
// (Go's "tcp" would have made it a dual-stack [::] socket, past an IPv4
// firewall); "::" takes IPv6 too.
func TestHTTPBindFamilies(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback here")
	} else {
		ln.Close()
	}
	dir := tempDir(t)
	initID(t, dir)
	reach := func(host string, port int) bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), 5*time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	for bind, v6 := range map[string]bool{"0.0.0.0": false, "::": true} {
		cfg, p := writeConfig(t, dir, "127.0.0.1:0", "")
		body := bytes.Replace(readFile(t, cfg), []byte(`http_bind = "127.0.0.1"`), []byte("http_bind = "+strconv.Quote(bind)), 1)
		require.NoError(t, os.WriteFile(cfg, body, 0o600))
		d := startDaemon(t, dir, cfg, p)
		code, _ := d.get("/health")
		require.Equal(t, http.StatusOK, code)
		require.True(t, reach("127.0.0.1", p.metrics), bind)
		require.Equal(t, v6, reach("::1", p.health), "http_bind %s: health on [::1]", bind)
		require.Equal(t, v6, reach("::1", p.metrics), "http_bind %s: metrics on [::1]", bind)
		d.stop()
	}
}
