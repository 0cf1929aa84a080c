package node

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/limits"
)

// Limits reports what the resource manager holds against its limits.
func (n *Node) Limits() (controlapi.Limits, error) {
	return limits.Report(n.current().h.Network().ResourceManager(), n.cfg.Network, n.didOf)
}

// didOf is the DID bound to p, or "" when the node has not learnt it.
func (n *Node) didOf(p peer.ID) string {
	if bd, ok := n.book.ByPeer(p); ok {
		return bd.DID.String()
	}
	return ""
}
