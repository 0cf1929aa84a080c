package node

import (
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// gater is the connection gater hook: every connection passes through it
// before the security handshake and again once the peer is known. Today it
// admits everyone; the trust graph will decide here whom to refuse.
type gater struct {
	allowPeer func(peer.ID) bool
}

func (deps stackDeps) gater() *gater { return &gater{allowPeer: func(peer.ID) bool { return true }} }

func (g *gater) InterceptPeerDial(p peer.ID) bool                 { return g.allowPeer(p) }
func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allowPeer(p) }
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allowPeer(p)
}
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

var _ connmgr.ConnectionGater = (*gater)(nil)
