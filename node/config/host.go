package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// CheckHost checks the values that name things on this host, which
// Validate, a pure function of the file, cannot: the mDNS interfaces exist
// (when mDNS is on), and listen_addr and http_bind are addresses of this
// host (or 0.0.0.0 / ::). icnd runs it for --check-config and before every
// start, so a file the check passes does not fail at start for these, and
// both refuse with the same words. Ports are not tried: a running node
// holds them, and a port taken later is no fault of the file.
func (c Config) CheckHost() error {
	if c.Network.MDNSEnabled && len(c.Network.MDNSInterfaces) > 0 {
		if err := checkInterfaces(c.Network.MDNSInterfaces); err != nil {
			return &Error{Key: "network.mdns_interfaces", Reason: err.Error()}
		}
	}
	listen, err := ListenMultiaddr(c.Network.ListenAddr)
	if err != nil {
		return &Error{Key: "network.listen_addr", Reason: err.Error()}
	}
	ip, err := listen.ValueForProtocol(listen.Protocols()[0].Code)
	if err != nil {
		return &Error{Key: "network.listen_addr", Reason: err.Error()}
	}
	if err := checkLocalIP("udp", ip); err != nil {
		return &Error{Key: "network.listen_addr", Reason: err.Error()}
	}
	o := c.Observability
	if o.HealthPort != 0 || o.MetricsPort != 0 {
		if err := checkLocalIP(HTTPNetwork(o.HTTPBind), o.HTTPBind); err != nil {
			return &Error{Key: "observability.http_bind", Reason: err.Error()}
		}
	}
	return nil
}

// checkInterfaces refuses names this host has no interface for. The words
// are those of the mDNS service's own refusal.
func checkInterfaces(names []string) error {
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("listing the network interfaces: %w", err)
	}
	have := make(map[string]bool, len(ifs))
	available := make([]string, 0, len(ifs))
	for _, ifc := range ifs {
		have[ifc.Name] = true
		available = append(available, ifc.Name)
	}
	var missing []string
	seen := map[string]bool{}
	for _, n := range names {
		if !have[n] && !seen[n] {
			missing = append(missing, strconv.Quote(n))
		}
		seen[n] = true
	}
	if len(missing) == 0 {
		return nil
	}
	what := "no network interface named "
	if len(missing) > 1 {
		what = "no network interfaces named "
	}
	return errors.New(what + strings.Join(missing, ", ") + " (this host has: " + strings.Join(available, ", ") + ")")
}

// HTTPNetwork is the network to pass net.Listen for the health and metrics
// listeners on bind (observability.http_bind): "tcp4" for an IPv4 address,
// so 0.0.0.0 means every IPv4 address and nothing more (Go's "tcp" on
// 0.0.0.0 opens a dual-stack socket that also accepts IPv6 on [::], past
// an IPv4-only firewall); "tcp" for an IPv6 address, so :: is dual-stack
// unless the kernel's net.ipv6.bindv6only says otherwise.
func HTTPNetwork(bind string) string {
	if ip := net.ParseIP(bind); ip != nil && ip.To4() != nil {
		return "tcp4"
	}
	return "tcp"
}

// checkLocalIP binds an ephemeral port of network ("udp", "tcp…") on ip and
// lets it go: the kernel says whether ip is an address this host can listen
// on, honouring what a list of interface addresses would miss (such as
// net.ipv4.ip_nonlocal_bind).
func checkLocalIP(network, ip string) error {
	parsed := net.ParseIP(ip)
	if parsed == nil || parsed.IsUnspecified() {
		return nil
	}
	addr := net.JoinHostPort(ip, "0")
	var err error
	if network == "udp" {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp", addr); err == nil {
			c.Close()
		}
	} else {
		var l net.Listener
		if l, err = net.Listen(network, addr); err == nil {
			l.Close()
		}
	}
	if err == nil {
		return nil
	}
	var se *os.SyscallError
	if errors.As(err, &se) && errors.Is(se.Err, syscall.EADDRNOTAVAIL) {
		return fmt.Errorf("%s is not an address of this host (%s: %v); use 0.0.0.0 for every interface, or the address of one", ip, se.Syscall, se.Err)
	}
	return fmt.Errorf("%s: cannot listen on it: %w", ip, err)
}
