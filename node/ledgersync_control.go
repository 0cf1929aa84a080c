package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/protocols/ledgersync"
)

// serveLedgerSync is POST /v0/ledger/sync: it starts the pulls (or joins
// those already running), answering with an ordinary JSON error if it
// cannot, then streams their progress and the report.
func (n *Node) serveLedgerSync(w http.ResponseWriter, r *http.Request) {
	var req controlapi.SyncRequest
	if !decodeBody(w, r, &req) {
		return
	}
	runs, err := n.startLedgerSync(r.Context(), req.Peer)
	if err != nil {
		writeErr(w, err)
		return
	}
	controlapi.StreamProgress(w, func(progress func(done, total int)) (controlapi.SyncReport, error) {
		return n.waitLedgerSync(r.Context(), runs, progress)
	})
}

// SyncLedger pulls missing entries now from target (a peer ID or a DID),
// or from every connected peer that serves ledger sync when target is "",
// and waits for the pulls. A pull already running from one of those peers
// is joined, not repeated. progress, if set, gets the entries received and
// announced, summed over the peers.
func (n *Node) SyncLedger(ctx context.Context, target string, progress func(received, announced int)) (controlapi.SyncReport, error) {
	runs, err := n.startLedgerSync(ctx, target)
	if err != nil {
		return controlapi.SyncReport{}, err
	}
	return n.waitLedgerSync(ctx, runs, progress)
}

func (n *Node) startLedgerSync(ctx context.Context, target string) ([]ledgersync.Pull, error) {
	st := n.current()
	peers, err := n.syncTargets(st, target)
	if err != nil {
		return nil, err
	}
	runs, err := st.sync.PullNow(ctx, peers)
	if errors.Is(err, ledgersync.ErrStopped) {
		return nil, &controlapi.Error{Status: http.StatusServiceUnavailable, Message: "icnd is stopping or re-keying its network",
			Hint: "try again in a moment"}
	}
	return runs, err
}

// syncTargets picks the peers a manual sync pulls from.
func (n *Node) syncTargets(st *netStack, target string) ([]peer.ID, error) {
	dialHint := "`icnctl network dial MULTIADDR` connects to a peer, or list peers in network.bootstrap_peers; `icnctl network peers` lists connected peers"
	if target == "" {
		connected := st.h.Network().Peers()
		if len(connected) == 0 {
			return nil, &controlapi.Error{Status: http.StatusServiceUnavailable,
				Message: "no peers connected: there is nobody to sync the ledger from", Hint: dialHint}
		}
		peers := st.sync.Serving(connected)
		if len(peers) == 0 {
			return nil, &controlapi.Error{Status: http.StatusServiceUnavailable,
				Message: fmt.Sprintf("none of the %d connected peers serves ledger sync (%s)", len(connected), ledgersync.ID),
				Hint:    "they may run an older icnd (`icnctl status` on a node lists its protocols), or they are still identifying: try again in a moment"}
		}
		return peers, nil
	}
	peers, err := n.connectedPeersOf(st, target)
	if err != nil {
		return nil, err
	}
	if len(peers) == 0 {
		hint := "connect first with `icnctl network dial /ip4/…/udp/…/quic-v1/p2p/" + target + "`; `icnctl network peers` lists connected peers"
		if _, err := did.Parse(target); err == nil {
			hint = "connect first with `icnctl network dial " + target + " [ADDR]`; `icnctl network peers` lists connected peers"
		}
		return nil, &controlapi.Error{Status: http.StatusNotFound, Message: fmt.Sprintf("not connected to %s", target), Hint: hint}
	}
	serving := st.sync.Serving(peers)
	if len(serving) == 0 {
		return nil, &controlapi.Error{Status: http.StatusConflict,
			Message: fmt.Sprintf("%s does not serve ledger sync (%s)", target, ledgersync.ID),
			Hint:    "it may run an older icnd (`icnctl status` on that node lists its protocols), or it is still identifying: try again in a moment"}
	}
	return serving, nil
}

// waitLedgerSync waits for the pulls and reports them.
func (n *Node) waitLedgerSync(ctx context.Context, runs []ledgersync.Pull, progress func(received, announced int)) (controlapi.SyncReport, error) {
	states, err := ledgersync.WaitPulls(ctx, runs, progress)
	if err != nil {
		return controlapi.SyncReport{}, err
	}
	rep := controlapi.SyncReport{Peers: make([]controlapi.SyncPeer, len(runs))}
	for i, r := range runs {
		s := states[i]
		sp := controlapi.SyncPeer{PeerID: r.Peer().String(), Announced: s.Stats.Announced, Received: s.Stats.Received,
			New: s.Stats.New, Rejected: s.Stats.Rejected, Joined: r.Joined}
		if bd, ok := n.book.ByPeer(r.Peer()); ok {
			sp.DID = bd.DID.String()
		}
		if s.Err != nil {
			sp.Error = syncErrorText(s.Err)
			rep.Failed++
		}
		rep.Received += sp.Received
		rep.New += sp.New
		rep.Rejected += sp.Rejected
		rep.Peers[i] = sp
	}
	sort.Slice(rep.Peers, func(i, j int) bool { return rep.Peers[i].PeerID < rep.Peers[j].PeerID })
	return rep, nil
}

func syncErrorText(err error) string {
	switch {
	case errors.Is(err, ledgersync.ErrNotConnected):
		return "not connected: the peer went away before the pull began"
	case errors.Is(err, context.Canceled):
		return "stopped: icnd is shutting down or re-keying its network"
	}
	return strings.TrimSpace(err.Error())
}
