package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/node/controlapi"
)

// The LAN tests run real daemons in Linux network namespaces. Everything
// they create lives inside namespaces of their own: a bridge namespace and
// one namespace per node, joined by veth pairs, with private addresses
// 10.77.0.N/24 that exist nowhere else. Nothing is added to the host's own
// network namespace and no packet leaves these namespaces.

// lanNamePrefix starts the name of every namespace these tests create.
const lanNamePrefix = "icnlan-"

// requireNetns skips unless the test can create network namespaces.
func requireNetns(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("network namespaces are Linux only")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (apt-get install iproute2)")
	}
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	require.NoError(t, err, "ip %s: %s", strings.Join(args, " "), out)
}

// addNetns creates a namespace with lo up and deletes it when the test ends.
func addNetns(t *testing.T, name string) {
	t.Helper()
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Logf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ipCmd(t, "-n", name, "link", "set", "lo", "up")
}

// removeStaleNetns deletes namespaces left by earlier runs whose test
// process is gone (killed before its cleanup ran).
func removeStaleNetns(t *testing.T) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, lanNamePrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			_ = exec.Command("ip", "netns", "del", name).Run()
		}
	}
}

// lan is a private Ethernet segment: a bridge in its own namespace and one
// namespace per node, each with eth0 = 10.77.0.N/24 on the bridge.
type lan struct {
	nodes []string // namespace names, node i has address addr(i)
}

func (l *lan) addr(i int) string { return fmt.Sprintf("10.77.0.%d", i+1) }

// newLAN builds a LAN of n namespaces with names unique to this run.
func newLAN(t *testing.T, n int) *lan {
	t.Helper()
	removeStaleNetns(t)
	prefix := fmt.Sprintf("%s%d-%04x", lanNamePrefix, os.Getpid(), rand.Uint32N(1<<16))
	br := prefix + "-br"
	addNetns(t, br)
	ipCmd(t, "-n", br, "link", "add", "br0", "type", "bridge")
	ipCmd(t, "-n", br, "link", "set", "br0", "up")
	l := &lan{}
	for i := range n {
		ns := fmt.Sprintf("%s-%d", prefix, i+1)
		addNetns(t, ns)
		// The node's end is called eth0: auto-selection would skip veth*.
		veth := fmt.Sprintf("v%d", i+1)
		ipCmd(t, "-n", br, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
		ipCmd(t, "-n", br, "link", "set", veth, "master", "br0")
		ipCmd(t, "-n", br, "link", "set", veth, "up")
		ipCmd(t, "-n", ns, "addr", "add", fmt.Sprintf("10.77.0.%d/24", i+1), "dev", "eth0")
		ipCmd(t, "-n", ns, "link", "set", "eth0", "up")
		ipCmd(t, "-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
		l.nodes = append(l.nodes, ns)
	}
	return l
}

// writeMDNSConfig writes a config with mDNS on, no bootstrap peers and the
// health and metrics listeners off; extra goes into [network].
func writeMDNSConfig(t *testing.T, dir, listen, extra string) string {
	t.Helper()
	body := fmt.Sprintf(`[network]
listen_addr = %q
mdns_enabled = true
bootstrap_peers = []
%s
[observability]
health_port = 0
metrics_port = 0
log_level = "debug"
`, listen, extra)
	path := filepath.Join(dir, "config.toml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

// spawnIn starts icnd inside network namespace ns (ip netns exec replaces
// itself with icnd, so the process is icnd); it is killed at cleanup if
// still running.
func spawnIn(t *testing.T, ns string, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, bins.icnd}, args...)...)
	cmd.Env = withPass(passphrase)
	return startCmd(t, cmd, "in "+ns)
}

// startIn starts icnd in ns and waits until its control socket answers
// (the socket is a file, so icnctl reaches it from the host namespace).
func startIn(t *testing.T, ns, dataDir, cfgPath string) *daemon {
	t.Helper()
	d := spawnIn(t, ns, "--data-dir", dataDir, "--config", cfgPath)
	d.dataDir = dataDir
	waitReady(t, d, ns)
	return d
}

// waitReady waits until the daemon's control socket answers.
func waitReady(t *testing.T, d *daemon, ns string) {
	t.Helper()
	dataDir := d.dataDir
	require.Eventually(t, func() bool {
		select {
		case <-d.done:
			return true
		default:
		}
		return ctl(t, dataDir, "status").code == 0
	}, 30*time.Second, 100*time.Millisecond, "icnd in %s never answered", ns)
	select {
	case <-d.done:
		t.Fatalf("icnd in %s exited early: %v\n%s", ns, d.err, d.logs)
	default:
	}
}

// peersOf lists a daemon's peers, or nil when the call fails; safe inside
// require.Eventually.
func peersOf(t *testing.T, dir string) []controlapi.Peer {
	r := ctl(t, dir, "network", "peers", "--json")
	if r.code != 0 {
		return nil
	}
	var ps []controlapi.Peer
	if json.Unmarshal([]byte(r.stdout), &ps) != nil {
		return nil
	}
	return ps
}

// Three daemons on one LAN, with no bootstrap peers, find each other by
// mDNS, connect and learn each other's DIDs.
func TestLANDiscoveryByMDNS(t *testing.T) {
	requireNetns(t)
	l := newLAN(t, 3)
	// Node 1 also has a Docker-style bridge: mDNS must not use it, and must
	// not advertise its address (go-libp2p#1025).
	ipCmd(t, "-n", l.nodes[0], "link", "add", "docker0", "type", "bridge")
	ipCmd(t, "-n", l.nodes[0], "addr", "add", "172.17.0.1/16", "dev", "docker0")
	ipCmd(t, "-n", l.nodes[0], "link", "set", "docker0", "up")

	// Node 1 listens on every interface, the others on their LAN address.
	listen := []string{"0.0.0.0:7777", l.addr(1) + ":7777", l.addr(2) + ":7777"}
	dirs := make([]string, 3)
	ids := make([]idJSON, 3)
	daemons := make([]*daemon, 3)
	for i := range 3 {
		dirs[i] = tempDir(t)
		ids[i] = initID(t, dirs[i])
	}
	// Start all three at once, as after a power cut: they announce and
	// dial each other at the same moment.
	spawned := time.Now()
	for i := range 3 {
		cfg := writeMDNSConfig(t, dirs[i], listen[i], "")
		daemons[i] = spawnIn(t, l.nodes[i], "--data-dir", dirs[i], "--config", cfg)
		daemons[i].dataDir = dirs[i]
	}
	for i := range 3 {
		waitReady(t, daemons[i], l.nodes[i])
	}
	started := time.Now()
	meshed := func() bool {
		for i := range 3 {
			ps := peersOf(t, dirs[i])
			for j := range 3 {
				if j != i && !hasPeer(ps, ids[j].PeerID, ids[j].DID) {
					return false
				}
			}
		}
		return true
	}
	require.Eventually(t, meshed, 30*time.Second, 250*time.Millisecond,
		"the three daemons did not all list each other with their DIDs")
	t.Logf("full mesh by mDNS %s after start, %s after all three daemons were ready",
		time.Since(spawned).Round(time.Millisecond), time.Since(started).Round(time.Millisecond))

	for i := range 3 {
		st := status(t, dirs[i])
		require.Equal(t, 2, st.Peers, "node %d peers", i+1)
	}

	// mDNS made the connections: each of the three pairs was dialled by at
	// least one side because mDNS found the other.
	found := 0
	for _, d := range daemons {
		found += strings.Count(d.logs.String(), "peer found by mDNS")
	}
	require.GreaterOrEqual(t, found, 3, "connections not made by mDNS discovery")

	// What node 1 advertised: its LAN address, not the bridge's.
	var advert string
	for _, line := range strings.Split(daemons[0].logs.String(), "\n") {
		if strings.Contains(line, "mDNS: advertising this node") {
			advert = line
		}
	}
	require.NotEmpty(t, advert, "node 1 never logged its mDNS advertisement\n%s", daemons[0].logs)
	require.Contains(t, advert, "/ip4/10.77.0.1/udp/7777/quic-v1/p2p/"+ids[0].PeerID)
	require.NotContains(t, advert, "172.17.0.1")
	require.NotContains(t, advert, "docker0")
	require.NotContains(t, advert, "127.0.0.1")

	for _, d := range daemons {
		d.stop()
	}
}

// A name in mdns_interfaces that the host does not have stops icnd at start
// with an error naming it. (No namespace needed: the check runs before any
// packet is sent.)
func TestMDNSUnknownInterfaceRefused(t *testing.T) {
	dir := tempDir(t)
	initID(t, dir)
	cfg := writeMDNSConfig(t, dir, "127.0.0.1:0", `mdns_interfaces = ["nonexistent0"]`)
	d := spawn(t, withPass(passphrase), nil, "--data-dir", dir, "--config", cfg)
	code := d.wait(30 * time.Second)
	require.NotEqual(t, 0, code, "icnd started with a missing mDNS interface\n%s", d.logs)
	logs := d.logs.String()
	require.Contains(t, logs, `"nonexistent0"`)
	require.Contains(t, logs, "network.mdns_interfaces")
	require.NotContains(t, logs, "goroutine ", "stack trace leaked")
	_, err := os.Stat(filepath.Join(dir, "icnd.sock"))
	require.True(t, os.IsNotExist(err), "control socket left behind")
}

// With no interface able to multicast (a namespace with only loopback),
// icnd still starts, warns, and runs without mDNS until one comes up.
func TestMDNSWithoutMulticastStillStarts(t *testing.T) {
	requireNetns(t)
	removeStaleNetns(t)
	ns := fmt.Sprintf("%s%d-%04x-lo", lanNamePrefix, os.Getpid(), rand.Uint32N(1<<16))
	addNetns(t, ns)
	dir := tempDir(t)
	initID(t, dir)
	cfg := writeMDNSConfig(t, dir, "127.0.0.1:0", "")
	d := startIn(t, ns, dir, cfg)
	require.Equal(t, 0, status(t, dir).Peers)
	require.Contains(t, d.logs.String(), "no network interface can carry multicast")
	d.stop()
}
