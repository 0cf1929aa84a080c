package node

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/protocols/ledgersync"
)

// SyncLedger pulls missing entries now from target (a peer ID or a DID),
// or from every connected peer that serves ledger sync when target is "",
// and waits for the pulls. A pull already running from one of those peers
// is joined, not repeated. progress, if set, gets the entries received and
// announced, summed over the peers.
func (n *Node) SyncLedger(ctx context.Context, target string, progress func(received, announced int)) (controlapi.SyncReport, error) {
	runs, err := n.StartLedgerSync(ctx, target)
	if err != nil {
		return controlapi.SyncReport{}, err
	}
	return n.WaitLedgerSync(ctx, runs, progress)
}

// LedgerSyncRuns are pulls started by StartLedgerSync.
type LedgerSyncRuns struct{ runs []ledgersync.Pull }

// StartLedgerSync starts the pulls SyncLedger waits for (or joins those
// already running), so a front door can refuse a sync that cannot start
// before it begins to stream progress.
func (n *Node) StartLedgerSync(ctx context.Context, target string) (LedgerSyncRuns, error) {
	runs, err := n.startLedgerSync(ctx, target)
	return LedgerSyncRuns{runs}, err
}

func (n *Node) startLedgerSync(ctx context.Context, target string) ([]ledgersync.Pull, error) {
	st := n.current()
	peers, err := n.syncTargets(st, target)
	if err != nil {
		return nil, err
	}
	runs, err := st.sync.PullNow(ctx, peers)
	if errors.Is(err, ledgersync.ErrStopped) {
		return nil, ErrStopping
	}
	return runs, err
}

// syncTargets picks the peers a manual sync pulls from.
func (n *Node) syncTargets(st *netStack, target string) ([]peer.ID, error) {
	if target == "" {
		connected := st.h.Network().Peers()
		if len(connected) == 0 {
			return nil, &NoSyncPeerError{Protocol: string(ledgersync.ID)}
		}
		peers := st.sync.Serving(connected)
		if len(peers) == 0 {
			return nil, &NoSyncPeerError{Connected: len(connected), Protocol: string(ledgersync.ID)}
		}
		return peers, nil
	}
	peers, err := n.connectedPeersOf(st, target)
	if err != nil {
		return nil, err
	}
	if len(peers) == 0 {
		_, derr := did.Parse(target)
		return nil, &NotConnectedError{Target: target, IsDID: derr == nil, Op: "sync"}
	}
	serving := st.sync.Serving(peers)
	if len(serving) == 0 {
		return nil, &NoSyncPeerError{Target: target, Connected: len(peers), Protocol: string(ledgersync.ID)}
	}
	return serving, nil
}

// WaitLedgerSync waits for the pulls and reports them.
func (n *Node) WaitLedgerSync(ctx context.Context, lr LedgerSyncRuns, progress func(received, announced int)) (controlapi.SyncReport, error) {
	runs := lr.runs
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
