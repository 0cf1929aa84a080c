package node

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/node/blocklist"
	"github.com/intercooperative/icn/node/controlapi"
)

// blocklistNamespace is the blocklist's key prefix in the node's datastore.
const blocklistNamespace = "/blocklist"

// openBlocks loads the blocklist from the ledger's datastore and builds its
// enforcement; both outlive key rotations.
func (n *Node) openBlocks(ctx context.Context, self did.DID) (*blockGuard, error) {
	ns, err := n.ledger.Namespace(blocklistNamespace)
	if err != nil {
		return nil, err
	}
	list, err := blocklist.Open(ctx, ns, blocklist.Options{
		Bindings: n.book,
		Self: func() (did.DID, peer.ID) {
			if st := n.current(); st != nil {
				return self, st.h.ID()
			}
			return self, self.PeerID()
		},
		Log: n.log,
	})
	if err != nil {
		return nil, err
	}
	if l := list.List(); len(l) > 0 {
		n.log.Info("blocklist loaded", "blocks", len(l))
	}
	return newBlockGuard(list, n.book, n.reg, n.log)
}

// Block refuses target, a peer ID or a DID (with every peer ID bound to
// it, including keys it rotates to later), in both directions until d has
// passed (0: until Unblock), and closes the connections to it now. Errors
// are blocklist's: *blocklist.TargetError, *blocklist.DurationError,
// *blocklist.ReasonError, or a datastore failure.
func (n *Node) Block(ctx context.Context, target string, d time.Duration, reason string) (controlapi.BlockResult, error) {
	g := n.deps.blocks
	e, replaced, err := g.list.Block(ctx, target, d, reason)
	if err != nil {
		return controlapi.BlockResult{}, err
	}
	expires := "never"
	if !e.Permanent() {
		expires = e.Expires.UTC().Format(time.RFC3339)
	}
	n.log.Warn("SECURITY peer blocked by the operator", "blocked", e.Target, "kind", e.Kind, "reason", e.Reason, "expires", expires, "replaced", replaced)
	res := controlapi.BlockResult{Replaced: replaced, Disconnected: []string{}}
	st := n.current()
	for _, p := range st.h.Network().Peers() {
		be, ok := g.list.Blocked(p)
		if !ok {
			continue
		}
		for _, c := range st.h.Network().ConnsToPeer(p) {
			g.refused.WithLabelValues(directionName(c.Stat().Direction)).Inc()
		}
		st.dht.Forget(p)
		if err := st.h.Network().ClosePeer(p); err != nil {
			return res, fmt.Errorf("blocked %s, but disconnecting %s failed: %w", be.Target, p, err)
		}
		res.Disconnected = append(res.Disconnected, p.String())
	}
	sort.Strings(res.Disconnected)
	res.Blocked = n.blockEntry(e)
	return res, nil
}

// Unblock lifts the block on target; one that is not blocked is an error
// wrapping blocklist.ErrNotBlocked. The peers it covered may connect at
// once: their dial backoff is cleared.
func (n *Node) Unblock(ctx context.Context, target string) (controlapi.UnblockResult, error) {
	e, err := n.deps.blocks.list.Unblock(ctx, target)
	if err != nil {
		return controlapi.UnblockResult{}, err
	}
	n.log.Info("peer unblocked", "target", e.Target, "kind", e.Kind)
	out := n.blockEntry(e)
	if sw, ok := n.current().h.Network().(*swarm.Swarm); ok {
		for _, s := range append(out.Peers, e.Target) {
			if p, err := peer.Decode(s); err == nil {
				sw.Backoff().Clear(p)
			}
		}
	}
	return controlapi.UnblockResult{Unblocked: out}, nil
}

// Blocked lists the blocks in force, oldest first.
func (n *Node) Blocked() []controlapi.BlockEntry {
	l := n.deps.blocks.list.List()
	out := make([]controlapi.BlockEntry, len(l))
	for i, e := range l {
		out[i] = n.blockEntry(e)
	}
	return out
}

func (n *Node) blockEntry(e blocklist.Entry) controlapi.BlockEntry {
	out := controlapi.BlockEntry{Target: e.Target, Kind: string(e.Kind), Reason: e.Reason, CreatedAt: e.Created.UTC(), Peers: []string{}}
	if !e.Permanent() {
		t := e.Expires.UTC()
		out.ExpiresAt = &t
	}
	if e.Kind == blocklist.KindDID {
		peers := e.Peers
		if d, err := did.Parse(e.Target); err == nil {
			for _, p := range n.book.PeersOf(d) {
				if !containsPeer(peers, p) {
					peers = append(peers, p)
				}
			}
		}
		for _, p := range peers {
			out.Peers = append(out.Peers, p.String())
		}
		sort.Strings(out.Peers)
	}
	return out
}

func containsPeer(ps []peer.ID, p peer.ID) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}
