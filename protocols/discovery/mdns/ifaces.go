package mdns

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// maxAdvertised bounds the dnsaddr entries in our TXT record, so that the
// whole answer of a host with many addresses still fits in one Ethernet
// frame (go-libp2p#3415).
const maxAdvertised = 8

// iface is a network interface and its addresses, as interface selection
// sees them. Tests build these by hand.
type iface struct {
	net.Interface
	Addrs []netip.Addr
}

// systemInterfaces lists the host's interfaces with their addresses.
func systemInterfaces() ([]iface, error) {
	nis, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	out := make([]iface, 0, len(nis))
	for _, ni := range nis {
		ifc := iface{Interface: ni}
		// An interface whose addresses cannot be read is treated as having
		// none; selection then skips it with a reason.
		addrs, _ := ni.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
				ifc.Addrs = append(ifc.Addrs, ip.Unmap())
			}
		}
		out = append(out, ifc)
	}
	return out, nil
}

// isContainerInterface reports whether name looks like a container or VM
// bridge or a veth pair: mDNS on those advertises addresses nobody on the
// LAN can reach (go-libp2p#1025).
func isContainerInterface(name string) bool {
	for _, p := range [...]string{"docker", "br-", "veth", "cni", "flannel", "podman", "virbr"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// unusable says why ifc cannot carry mDNS, or "" when it can. An interface
// the operator named explicitly may be loopback or a container bridge.
func unusable(ifc iface, named bool) string {
	switch {
	case ifc.Flags&net.FlagUp == 0:
		return "down"
	case !named && ifc.Flags&net.FlagLoopback != 0:
		return "loopback"
	case ifc.Flags&net.FlagMulticast == 0:
		return "no multicast"
	case !named && isContainerInterface(ifc.Name):
		return "container bridge or veth"
	}
	for _, a := range ifc.Addrs {
		if !a.IsLoopback() && !a.IsUnspecified() && !a.IsMulticast() {
			return ""
		}
	}
	return "no address"
}

// UnknownInterfaceError is returned by New when Config.Interfaces names
// interfaces this host does not have.
type UnknownInterfaceError struct {
	Names     []string // the configured names that do not exist
	Available []string // the interfaces the host has
}

func (e *UnknownInterfaceError) Error() string {
	quoted := make([]string, len(e.Names))
	for i, n := range e.Names {
		quoted[i] = strconv.Quote(n)
	}
	what := "no network interface named "
	if len(e.Names) > 1 {
		what = "no network interfaces named "
	}
	return what + strings.Join(quoted, ", ") + " (this host has: " + strings.Join(e.Available, ", ") + ")"
}

// noInterfaceError says that no interface can carry mDNS now: none is up and
// multicast-capable with an address, apart from loopback and container
// bridges (or, with Config.Interfaces, none of the named ones is).
type noInterfaceError struct {
	// Skipped lists each interface considered, with the reason, e.g.
	// "lo (loopback)".
	Skipped []string
}

func (e *noInterfaceError) Error() string {
	if len(e.Skipped) == 0 {
		return "no network interface can carry mDNS (the host has none)"
	}
	return "no network interface can carry mDNS (skipped: " + strings.Join(e.Skipped, ", ") + ")"
}

// selectInterfaces picks the interfaces mDNS runs on. With no names, that is
// every interface that is up, multicast-capable, not loopback, not a
// container bridge or veth, and has an address. With names, it is those
// interfaces; a name that does not exist is an *UnknownInterfaceError, and a
// named interface that is down or cannot multicast is skipped. skipped says
// why each other interface was left out. No usable interface is a
// *noInterfaceError.
func selectInterfaces(all []iface, names []string) (selected []iface, skipped []string, err error) {
	if len(names) == 0 {
		for _, ifc := range all {
			if why := unusable(ifc, false); why != "" {
				skipped = append(skipped, ifc.Name+" ("+why+")")
				continue
			}
			selected = append(selected, ifc)
		}
	} else {
		byName := make(map[string]iface, len(all))
		available := make([]string, 0, len(all))
		for _, ifc := range all {
			byName[ifc.Name] = ifc
			available = append(available, ifc.Name)
		}
		var missing []string
		seen := map[string]bool{}
		for _, n := range names {
			if seen[n] {
				continue
			}
			seen[n] = true
			ifc, ok := byName[n]
			if !ok {
				missing = append(missing, n)
				continue
			}
			if why := unusable(ifc, true); why != "" {
				skipped = append(skipped, ifc.Name+" ("+why+")")
				continue
			}
			selected = append(selected, ifc)
		}
		if len(missing) > 0 {
			return nil, nil, &UnknownInterfaceError{Names: missing, Available: available}
		}
	}
	if len(selected) == 0 {
		return nil, skipped, &noInterfaceError{Skipped: skipped}
	}
	return selected, skipped, nil
}

// advertisable reports whether a is an address worth putting in a TXT
// record: a LAN peer can dial it without a zone or a route through us.
func advertisable(a netip.Addr) bool {
	return a.IsValid() && !a.IsLoopback() && !a.IsUnspecified() && !a.IsMulticast() &&
		!(a.Is6() && a.IsLinkLocalUnicast())
}

// quicAddr splits a multiaddr of the exact form /ip4|ip6/A/udp/P/quic-v1.
func quicAddr(m ma.Multiaddr) (ip netip.Addr, port uint16, ok bool) {
	if len(m) != 3 || m[1].Code() != ma.P_UDP || m[2].Code() != ma.P_QUIC_V1 {
		return netip.Addr{}, 0, false
	}
	switch m[0].Code() {
	case ma.P_IP4, ma.P_IP6:
	default:
		return netip.Addr{}, 0, false
	}
	ip, err := netip.ParseAddr(m[0].Value())
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, 0, false
	}
	p, err := strconv.ParseUint(m[1].Value(), 10, 16)
	if err != nil || p == 0 {
		return netip.Addr{}, 0, false
	}
	return ip.Unmap(), uint16(p), true
}

func quicMultiaddr(ip netip.Addr, port uint16) ma.Multiaddr {
	proto := "ip4"
	if ip.Is6() {
		proto = "ip6"
	}
	return ma.StringCast(fmt.Sprintf("/%s/%s/udp/%d/quic-v1", proto, ip, port))
}

// advertisedAddrs returns the addresses to announce: each QUIC listen
// address whose IP belongs to one of ifaces, with an unspecified IP (0.0.0.0
// or ::) expanded to the addresses of ifaces in its family. Other transports,
// loopback, IPv6 link-local and addresses on any other interface (a Docker
// bridge, say) are dropped. The result is sorted, without duplicates, at most
// maxAdvertised long, and each address ends in /p2p/self.
func advertisedAddrs(listen []ma.Multiaddr, ifaces []iface, self peer.ID) []ma.Multiaddr {
	mine := map[netip.Addr]bool{}
	for _, ifc := range ifaces {
		for _, a := range ifc.Addrs {
			if advertisable(a) {
				mine[a] = true
			}
		}
	}
	type hostPort struct {
		ip   netip.Addr
		port uint16
	}
	var out []hostPort
	add := func(ip netip.Addr, port uint16) {
		hp := hostPort{ip, port}
		if !slices.Contains(out, hp) {
			out = append(out, hp)
		}
	}
	for _, l := range listen {
		ip, port, ok := quicAddr(l)
		if !ok {
			continue
		}
		if !ip.IsUnspecified() {
			if mine[ip] {
				add(ip, port)
			}
			continue
		}
		for _, ifc := range ifaces {
			for _, a := range ifc.Addrs {
				if mine[a] && a.Is4() == ip.Is4() {
					add(a, port)
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b hostPort) int {
		if c := a.ip.Compare(b.ip); c != 0 {
			return c
		}
		return int(a.port) - int(b.port)
	})
	if len(out) > maxAdvertised {
		out = out[:maxAdvertised]
	}
	p2p, err := ma.NewComponent("p2p", self.String())
	if err != nil {
		return nil
	}
	addrs := make([]ma.Multiaddr, len(out))
	for i, hp := range out {
		addrs[i] = quicMultiaddr(hp.ip, hp.port).AppendComponent(p2p)
	}
	return addrs
}

func interfaceNames(ifaces []iface) []string {
	out := make([]string, len(ifaces))
	for i, ifc := range ifaces {
		out[i] = ifc.Name
	}
	return out
}

func netInterfaces(ifaces []iface) []net.Interface {
	out := make([]net.Interface, len(ifaces))
	for i, ifc := range ifaces {
		out[i] = ifc.Interface
	}
	return out
}
