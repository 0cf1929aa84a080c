package mdns

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"
)

const (
	up   = net.FlagUp | net.FlagMulticast | net.FlagBroadcast
	lo   = net.FlagUp | net.FlagLoopback
	loMC = net.FlagUp | net.FlagLoopback | net.FlagMulticast
	down = net.FlagMulticast | net.FlagBroadcast
	nomc = net.FlagUp | net.FlagPointToPoint
)

func mkIface(idx int, name string, flags net.Flags, addrs ...string) iface {
	ifc := iface{Interface: net.Interface{Index: idx, Name: name, Flags: flags}}
	for _, a := range addrs {
		ifc.Addrs = append(ifc.Addrs, netip.MustParseAddr(a))
	}
	return ifc
}

// machine is a typical host: a LAN card, Wi-Fi that is down, loopback,
// Docker and libvirt bridges, a veth, a WireGuard tunnel and a card with
// only an IPv6 link-local address.
func machine() []iface {
	return []iface{
		mkIface(1, "lo", lo, "127.0.0.1", "::1"),
		mkIface(2, "eth0", up, "192.168.1.20", "fe80::1", "2001:db8::20"),
		mkIface(3, "wlan0", down, "192.168.1.21"),
		mkIface(4, "docker0", up, "172.17.0.1"),
		mkIface(5, "br-0123abcd", up, "172.18.0.1"),
		mkIface(6, "veth12ab", up, "fe80::2"),
		mkIface(7, "virbr0", up, "192.168.122.1"),
		mkIface(8, "wg0", nomc, "10.8.0.2"),
		mkIface(9, "eth1", up, "fe80::3"),
		mkIface(10, "cni0", up, "10.88.0.1"),
		mkIface(11, "flannel.1", up, "10.244.0.0"),
		mkIface(12, "podman1", up, "10.89.0.1"),
		mkIface(13, "enp3s0", up),
	}
}

func TestSelectInterfaces(t *testing.T) {
	tests := []struct {
		name     string
		all      []iface
		names    []string
		want     []string
		skipped  []string
		unknown  []string // want an *UnknownInterfaceError with these names
		noneLeft bool     // want a *noInterfaceError
	}{
		{
			name: "automatic: up, multicast, not loopback, not container, with an address",
			all:  machine(),
			want: []string{"eth0", "eth1"},
			skipped: []string{"lo (loopback)", "wlan0 (down)", "docker0 (container bridge or veth)",
				"br-0123abcd (container bridge or veth)", "veth12ab (container bridge or veth)",
				"virbr0 (container bridge or veth)", "wg0 (no multicast)", "cni0 (container bridge or veth)",
				"flannel.1 (container bridge or veth)", "podman1 (container bridge or veth)", "enp3s0 (no address)"},
		},
		{
			name:  "named interface",
			all:   machine(),
			names: []string{"eth0"},
			want:  []string{"eth0"},
		},
		{
			name:  "named container bridge is the operator's choice",
			all:   machine(),
			names: []string{"docker0", "eth0", "docker0"},
			want:  []string{"docker0", "eth0"},
		},
		{
			name:    "named but down is skipped",
			all:     machine(),
			names:   []string{"wlan0", "eth0"},
			want:    []string{"eth0"},
			skipped: []string{"wlan0 (down)"},
		},
		{
			name:     "named and none usable",
			all:      machine(),
			names:    []string{"wlan0", "wg0"},
			skipped:  []string{"wlan0 (down)", "wg0 (no multicast)"},
			noneLeft: true,
		},
		{
			name:    "unknown names are an error naming them",
			all:     machine(),
			names:   []string{"eth0", "nonexistent0", "eth9"},
			unknown: []string{"nonexistent0", "eth9"},
		},
		{
			name:  "loopback with multicast when named",
			all:   []iface{mkIface(1, "lo", loMC, "127.0.0.1", "10.0.0.1")},
			names: []string{"lo"},
			want:  []string{"lo"},
		},
		{
			name:     "loopback-only addresses do not count",
			all:      []iface{mkIface(1, "lo", loMC, "127.0.0.1"), mkIface(2, "eth0", up, "127.0.0.2")},
			skipped:  []string{"lo (loopback)", "eth0 (no address)"},
			noneLeft: true,
		},
		{
			name:     "no multicast anywhere",
			all:      []iface{mkIface(1, "lo", lo, "127.0.0.1"), mkIface(2, "tun0", nomc, "10.0.0.1")},
			skipped:  []string{"lo (loopback)", "tun0 (no multicast)"},
			noneLeft: true,
		},
		{
			name:     "no interfaces at all",
			noneLeft: true,
		},
		{
			name: "IPv6-only link is usable",
			all:  []iface{mkIface(1, "eth0", up, "fe80::1")},
			want: []string{"eth0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sel, skipped, err := selectInterfaces(tc.all, tc.names)
			switch {
			case tc.unknown != nil:
				var ue *UnknownInterfaceError
				require.ErrorAs(t, err, &ue)
				require.Equal(t, tc.unknown, ue.Names)
				for _, n := range tc.unknown {
					require.Contains(t, err.Error(), `"`+n+`"`)
				}
				require.Contains(t, err.Error(), "this host has: lo, eth0")
			case tc.noneLeft:
				var ne *noInterfaceError
				require.ErrorAs(t, err, &ne)
				require.Equal(t, tc.skipped, ne.Skipped)
				require.Empty(t, sel)
			default:
				require.NoError(t, err)
				require.Equal(t, tc.want, interfaceNames(sel))
				require.Equal(t, tc.skipped, skipped)
			}
		})
	}
}

func TestIsContainerInterface(t *testing.T) {
	for name, want := range map[string]bool{
		"docker0": true, "docker_gwbridge": true, "br-5f1e2d3c4b5a": true, "veth9a8b7c6": true,
		"cni0": true, "flannel.1": true, "podman0": true, "virbr0": true, "virbr0-nic": true,
		"eth0": false, "enp3s0": false, "wlan0": false, "wlp2s0": false, "bond0": false, "br0": false, "lo": false,
	} {
		require.Equal(t, want, isContainerInterface(name), name)
	}
}

func TestErrorMessages(t *testing.T) {
	require.Equal(t, `no network interface named "nonexistent0" (this host has: lo, eth0)`,
		(&UnknownInterfaceError{Names: []string{"nonexistent0"}, Available: []string{"lo", "eth0"}}).Error())
	require.Equal(t, `no network interfaces named "a", "b" (this host has: lo)`,
		(&UnknownInterfaceError{Names: []string{"a", "b"}, Available: []string{"lo"}}).Error())
	require.Equal(t, "no network interface can carry mDNS (skipped: lo (loopback), eth0 (down))",
		(&noInterfaceError{Skipped: []string{"lo (loopback)", "eth0 (down)"}}).Error())
	require.True(t, errors.As(error(&noInterfaceError{}), new(*noInterfaceError)))
}

func testPeer(t testing.TB, seed byte) peer.ID {
	t.Helper()
	// An identity-multihash Ed25519 peer ID built from fixed bytes.
	pub := make([]byte, 32)
	for i := range pub {
		pub[i] = seed
	}
	// protobuf PublicKey{Type: Ed25519 (1), Data: pub}
	pb := append([]byte{0x08, 0x01, 0x12, 0x20}, pub...)
	mh := append([]byte{0x00, byte(len(pb))}, pb...)
	id, err := peer.IDFromBytes(mh)
	require.NoError(t, err)
	return id
}

func mas(t *testing.T, ss ...string) []ma.Multiaddr {
	t.Helper()
	out := make([]ma.Multiaddr, len(ss))
	for i, s := range ss {
		m, err := ma.NewMultiaddr(s)
		require.NoError(t, err)
		out[i] = m
	}
	return out
}

func TestAdvertisedAddrs(t *testing.T) {
	self := testPeer(t, 1)
	p2p := "/p2p/" + self.String()
	eth0 := mkIface(2, "eth0", up, "192.168.1.20", "fe80::1", "2001:db8::20", "127.0.0.5")
	eth1 := mkIface(3, "eth1", up, "10.0.0.7")
	tests := []struct {
		name   string
		listen []string
		ifaces []iface
		want   []string
	}{
		{
			name:   "0.0.0.0 expands to the IPv4 addresses of the selected interfaces only",
			listen: []string{"/ip4/0.0.0.0/udp/7777/quic-v1"},
			ifaces: []iface{eth0, eth1},
			want:   []string{"/ip4/10.0.0.7/udp/7777/quic-v1" + p2p, "/ip4/192.168.1.20/udp/7777/quic-v1" + p2p},
		},
		{
			name:   ":: expands to global IPv6, never link-local",
			listen: []string{"/ip6/::/udp/7777/quic-v1"},
			ifaces: []iface{eth0},
			want:   []string{"/ip6/2001:db8::20/udp/7777/quic-v1" + p2p},
		},
		{
			name:   "a specific address on a selected interface",
			listen: []string{"/ip4/192.168.1.20/udp/7777/quic-v1"},
			ifaces: []iface{eth0, eth1},
			want:   []string{"/ip4/192.168.1.20/udp/7777/quic-v1" + p2p},
		},
		{
			name:   "a Docker bridge address is never advertised",
			listen: []string{"/ip4/172.17.0.1/udp/7777/quic-v1", "/ip4/0.0.0.0/udp/7778/quic-v1"},
			ifaces: []iface{eth1},
			want:   []string{"/ip4/10.0.0.7/udp/7778/quic-v1" + p2p},
		},
		{
			name:   "loopback listen address: nothing",
			listen: []string{"/ip4/127.0.0.1/udp/7777/quic-v1", "/ip4/127.0.0.5/udp/7777/quic-v1"},
			ifaces: []iface{eth0},
			want:   nil,
		},
		{
			name: "only plain QUIC v1",
			listen: []string{
				"/ip4/0.0.0.0/udp/7777/quic",
				"/ip4/0.0.0.0/tcp/7777",
				"/ip4/0.0.0.0/udp/7777/quic-v1/webtransport",
				"/ip4/0.0.0.0/udp/0/quic-v1",
				"/dns/example.local/udp/7777/quic-v1",
				"/ip4/10.0.0.7/udp/7779/quic-v1",
			},
			ifaces: []iface{eth1},
			want:   []string{"/ip4/10.0.0.7/udp/7779/quic-v1" + p2p},
		},
		{
			name:   "duplicates removed",
			listen: []string{"/ip4/0.0.0.0/udp/7777/quic-v1", "/ip4/10.0.0.7/udp/7777/quic-v1"},
			ifaces: []iface{eth1, eth1},
			want:   []string{"/ip4/10.0.0.7/udp/7777/quic-v1" + p2p},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := advertisedAddrs(mas(t, tc.listen...), tc.ifaces, self)
			require.Equal(t, tc.want, multiaddrStringsOrNil(got))
		})
	}
}

func TestAdvertisedAddrsBounded(t *testing.T) {
	self := testPeer(t, 1)
	many := mkIface(2, "eth0", up)
	for i := 0; i < 40; i++ {
		many.Addrs = append(many.Addrs, netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 1)}))
	}
	got := advertisedAddrs(mas(t, "/ip4/0.0.0.0/udp/7777/quic-v1"), []iface{many}, self)
	require.Len(t, got, maxAdvertised)
	txt := buildTXT("did:icn:zabc", "1.0.0", got)
	total := 0
	for _, s := range txt {
		require.LessOrEqual(t, len(s), maxTXTString)
		total += len(s) + 1
	}
	require.Less(t, total, 1000, "the TXT record should leave room in one Ethernet frame")
}

func multiaddrStringsOrNil(addrs []ma.Multiaddr) []string {
	if len(addrs) == 0 {
		return nil
	}
	return multiaddrStrings(addrs)
}
