package node

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/intercooperative/icn/node/config"
)

// wanOptions turns the WAN settings into libp2p options: AutoNAT (v2, and
// answering others' probes), hole punching, the relay client with relay
// candidates taken from connected peers, and announce_addrs. self is set to
// the host once it exists (the relay peer source needs it).
func wanOptions(cfg config.Network, self *atomic.Pointer[host.Host]) ([]libp2p.Option, error) {
	var opts []libp2p.Option
	if cfg.AutoNAT {
		opts = append(opts, libp2p.EnableAutoNATv2(), libp2p.EnableNATService())
	}
	if cfg.HolePunching {
		opts = append(opts, libp2p.EnableHolePunching())
	}
	if cfg.RelayClient {
		opts = append(opts, libp2p.EnableRelay(),
			libp2p.EnableAutoRelayWithPeerSource(connectedPeerSource(self), autorelay.WithMinCandidates(1)))
	} else {
		opts = append(opts, libp2p.DisableRelay())
	}
	if len(cfg.AnnounceAddrs) > 0 {
		announce := make([]ma.Multiaddr, 0, len(cfg.AnnounceAddrs))
		for i, a := range cfg.AnnounceAddrs {
			m, err := config.AddrMultiaddr(a)
			if err != nil {
				return nil, fmt.Errorf("network.announce_addrs[%d]: %w", i, err)
			}
			announce = append(announce, m)
		}
		opts = append(opts, libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return announce }))
	}
	return opts, nil
}

// connectedPeerSource offers the currently connected peers as relay
// candidates; autorelay keeps those that actually run a relay.
func connectedPeerSource(self *atomic.Pointer[host.Host]) autorelay.PeerSource {
	return func(ctx context.Context, num int) <-chan peer.AddrInfo {
		out := make(chan peer.AddrInfo, num)
		defer close(out)
		hp := self.Load()
		if hp == nil {
			return out
		}
		h := *hp
		for _, p := range h.Network().Peers() {
			if len(out) == num {
				break
			}
			out <- h.Peerstore().PeerInfo(p)
		}
		return out
	}
}

// quicReceiveBuffer is what quic-go asks the kernel for (7 MiB).
const quicReceiveBuffer = 7 << 20

// udpBufferAdvice returns a warning with the exact fix when the kernel caps
// UDP receive buffers below what QUIC wants; "" when all is well or the
// limit cannot be read (non-Linux).
func udpBufferAdvice(readFile func(string) ([]byte, error)) string {
	b, err := readFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		return ""
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	// The kernel doubles what a socket asks for, capped at rmem_max, so the
	// buffer QUIC ends up with is 2*rmem_max at most.
	if err != nil || 2*v >= quicReceiveBuffer {
		return ""
	}
	return fmt.Sprintf("the kernel caps UDP receive buffers (net.core.rmem_max=%d) below the %d bytes QUIC wants; throughput will suffer. "+
		"Fix: sudo sysctl -w net.core.rmem_max=%d net.core.wmem_max=%d (persist it in /etc/sysctl.d/60-icn.conf)",
		v, quicReceiveBuffer, 7500000, 7500000)
}
