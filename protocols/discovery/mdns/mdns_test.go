package mdns

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"
)

func TestNewRejectsUnknownInterface(t *testing.T) {
	_, err := New(nil, Config{}, func(peer.AddrInfo) {}, nil)
	require.ErrorContains(t, err, "no host")
	h := newHost(t, "/ip4/127.0.0.1/udp/0/quic-v1")
	_, err = New(h, Config{}, nil, nil)
	require.ErrorContains(t, err, "no found callback")
	_, err = New(h, Config{Interfaces: []string{"nonexistent0"}}, func(peer.AddrInfo) {}, nil)
	var ue *UnknownInterfaceError
	require.ErrorAs(t, err, &ue)
	require.Equal(t, []string{"nonexistent0"}, ue.Names)
	require.ErrorContains(t, err, `no network interface named "nonexistent0"`)
}

func newHost(t *testing.T, listen string) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings(listen), libp2p.Transport(quic.NewTransport))
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h
}

// childEnv marks the copy of the test binary that runs inside the namespace.
const childEnv = "ICN_MDNS_TEST_IN_NETNS"

// TestMDNSServicesFindEachOther runs two services on a private link in a
// network namespace of their own (a veth pair whose ends are both in it), so
// no multicast reaches a real network. The test binary re-runs itself inside
// the namespace; the body is mdnsServicesInNetns.
func TestMDNSServicesFindEachOther(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		mdnsServicesInNetns(t)
		return
	}
	if runtime.GOOS != "linux" {
		t.Skip("network namespaces are Linux only")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (apt-get install iproute2)")
	}
	ns := fmt.Sprintf("icnmdns-%d-%04x", os.Getpid(), rand.Uint32N(1<<16))
	ip := func(args ...string) {
		t.Helper()
		out, err := exec.Command("ip", args...).CombinedOutput()
		require.NoError(t, err, "ip %s: %s", strings.Join(args, " "), out)
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ip("-n", ns, "link", "set", "lo", "up")
	ip("-n", ns, "link", "add", "lan0", "type", "veth", "peer", "name", "lan1")
	ip("-n", ns, "addr", "add", "10.78.0.1/24", "dev", "lan0")
	ip("-n", ns, "addr", "add", "10.78.0.2/24", "dev", "lan1")
	ip("-n", ns, "link", "set", "lan0", "up")
	ip("-n", ns, "link", "set", "lan1", "up")

	exe, err := os.Executable()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, exe,
		"-test.run=^TestMDNSServicesFindEachOther$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("inside namespace %s:\n%s", ns, out)
	require.NoError(t, err)
	require.Contains(t, string(out), "--- PASS: TestMDNSServicesFindEachOther")
}

type collector struct {
	mu    sync.Mutex
	found map[peer.ID][]peer.AddrInfo
}

func (c *collector) add(ai peer.AddrInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.found == nil {
		c.found = map[peer.ID][]peer.AddrInfo{}
	}
	c.found[ai.ID] = append(c.found[ai.ID], ai)
}

func (c *collector) get(p peer.ID) []peer.AddrInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]peer.AddrInfo(nil), c.found[p]...)
}

func (c *collector) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.found {
		n += len(v)
	}
	return n
}

func mdnsServicesInNetns(t *testing.T) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h1 := newHost(t, "/ip4/10.78.0.1/udp/0/quic-v1")
	h2 := newHost(t, "/ip4/0.0.0.0/udp/0/quic-v1")
	const interval = 300 * time.Millisecond

	// Close before Run: Run then returns at once, and Close stays idempotent.
	early, err := New(h1, Config{BrowseInterval: interval}, func(peer.AddrInfo) {}, log)
	require.NoError(t, err)
	require.NoError(t, early.Close())
	require.NoError(t, early.Run(context.Background()))
	require.NoError(t, early.Close())

	var c1, c2 collector
	s1, err := New(h1, Config{Interfaces: []string{"lan0"}, DID: "did:icn:zOne", Version: "t1", BrowseInterval: interval}, c1.add, log.With("svc", 1))
	require.NoError(t, err)
	s2, err := New(h2, Config{DID: "did:icn:zTwo", Version: "t2", BrowseInterval: interval}, c2.add, log.With("svc", 2))
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done1, done2 := make(chan error, 1), make(chan error, 1)
	go func() { done1 <- s1.Run(ctx) }()
	go func() { done2 <- s2.Run(ctx) }()

	require.Eventually(t, func() bool { return len(c1.get(h2.ID())) > 0 && len(c2.get(h1.ID())) > 0 },
		20*time.Second, 50*time.Millisecond, "the services did not find each other")

	// h1 listens on 10.78.0.1 only; h2 on every interface, which here are
	// lan0 and lan1 (lo is never used).
	port := func(h host.Host) string {
		for _, a := range h.Network().ListenAddresses() { // also lists /p2p-circuit
			if v, err := a.ValueForProtocol(ma.P_UDP); err == nil {
				return v
			}
		}
		t.Fatalf("%s listens on no UDP port", h.ID())
		return ""
	}
	got1 := c2.get(h1.ID())[0]
	require.Equal(t, []string{"/ip4/10.78.0.1/udp/" + port(h1) + "/quic-v1"}, multiaddrStrings(got1.Addrs))
	got2 := c1.get(h2.ID())[0]
	require.ElementsMatch(t, []string{"/ip4/10.78.0.1/udp/" + port(h2) + "/quic-v1", "/ip4/10.78.0.2/udp/" + port(h2) + "/quic-v1"},
		multiaddrStrings(got2.Addrs))

	// Several browse rounds later each peer has still been reported once,
	// and nobody reported itself.
	r1, r2 := s1.rounds.Load(), s2.rounds.Load()
	require.Eventually(t, func() bool { return s1.rounds.Load() >= r1+5 && s2.rounds.Load() >= r2+5 },
		20*time.Second, 50*time.Millisecond, "the services stopped browsing")
	require.Len(t, c1.get(h2.ID()), 1)
	require.Len(t, c2.get(h1.ID()), 1)
	require.Equal(t, 1, c1.total())
	require.Equal(t, 1, c2.total())

	// A new address on h2's interfaces changes its record: s2 re-registers
	// and s1 reports h2 again with the new address.
	out, err := exec.Command("ip", "addr", "add", "10.78.0.3/24", "dev", "lan1").CombinedOutput()
	require.NoError(t, err, "%s", out)
	want := "/ip4/10.78.0.3/udp/" + port(h2) + "/quic-v1"
	require.Eventually(t, func() bool {
		for _, ai := range c1.get(h2.ID()) {
			if slices.Contains(multiaddrStrings(ai.Addrs), want) {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "the changed record was not reported")

	// Run twice is refused.
	require.ErrorContains(t, s1.Run(ctx), "more than once")

	// Close stops Run; cancelling the context stops the other.
	require.NoError(t, s1.Close())
	select {
	case err := <-done1:
		require.NoError(t, err)
	default:
		t.Fatal("Close returned before Run did")
	}
	require.NoError(t, s1.Close())
	cancel()
	select {
	case err := <-done2:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	require.NoError(t, s2.Close())

	// Nothing of ours or zeroconf's is left running (zeroconf's readers end
	// a moment after their sockets close).
	require.Eventually(t, func() bool {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		return !strings.Contains(stacks, "zeroconf") && !strings.Contains(stacks, "discovery/mdns.(*Service)")
	}, 5*time.Second, 50*time.Millisecond, "goroutines left behind")
}
