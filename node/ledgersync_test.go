package node_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/harness"
	"github.com/intercooperative/icn/internal/ledgertest"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/protocols/gossip"
	"github.com/intercooperative/icn/protocols/ledgersync"
)

// rogueHost is a bare libp2p host standing in for a peer whose ledgersync
// responses the test writes byte by byte.
func rogueHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"), libp2p.Transport(quic.NewTransport), libp2p.DisableMetrics())
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h
}

// dialNode connects h to a harness node.
func dialNode(t *testing.T, h host.Host, n *harness.Node) {
	t.Helper()
	ai, err := peer.AddrInfoFromP2pAddr(ma.StringCast(n.Multiaddr()))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, h.Connect(ctx, *ai))
}

// respond writes a ledgersync response as the protocol describes it: the
// block count, one frame per block, an empty frame.
func respond(w io.Writer, blocks [][]byte) error {
	bw := bufio.NewWriter(w)
	if _, err := bw.Write(binary.AppendUvarint(nil, uint64(len(blocks)))); err != nil {
		return err
	}
	for _, b := range blocks {
		if _, err := bw.Write(binary.AppendUvarint(nil, uint64(len(b)))); err != nil {
			return err
		}
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	if _, err := bw.Write([]byte{0}); err != nil {
		return err
	}
	return bw.Flush()
}

// While a sync is under way the lag gauge shows what is still to come; a
// manual sync asked for meanwhile joins it instead of pulling a second time;
// once it ends the gauge is back to 0.
func TestSyncLagAndManualSyncJoinsARunningPull(t *testing.T) {
	victim := harness.Start(t, 1)[0]
	blocks := ledgertest.History(t, 3, 700) // two batches
	rogue := rogueHost(t)
	release := make(chan struct{})
	var streams atomic.Int32
	rogue.SetStreamHandler(ledgersync.ID, func(s network.Stream) {
		defer s.Close()
		if _, err := io.Copy(io.Discard, s); err != nil { // the summary; the requester closes its side
			s.Reset()
			return
		}
		if streams.Add(1) > 1 {
			_ = respond(s, nil) // nothing new the second time
			return
		}
		// Say how many blocks are coming, then hold them back.
		if _, err := s.Write(binary.AppendUvarint(nil, uint64(len(blocks)))); err != nil {
			return
		}
		<-release
		bw := bufio.NewWriter(s)
		for _, b := range blocks {
			_, _ = bw.Write(binary.AppendUvarint(nil, uint64(len(b))))
			_, _ = bw.Write(b)
		}
		_, _ = bw.Write([]byte{0})
		_ = bw.Flush()
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	require.Zero(t, metric(t, victim, "icn_ledger_sync_lag_entries"))
	dialNode(t, rogue, victim)

	// The victim syncs on its own once the rogue has identified; its lag
	// is everything announced, since nothing has arrived yet.
	require.Eventually(t, func() bool { return metric(t, victim, "icn_ledger_sync_lag_entries") == float64(len(blocks)) },
		30*time.Second, 20*time.Millisecond, "the lag never showed the announced blocks")

	// An operator asks for a sync with that peer now: it joins the pull.
	joined := make(chan [2]int, 1)
	type result struct {
		rep controlapi.SyncReport
		err error
	}
	res := make(chan result, 1)
	var calls []([2]int)
	go func() {
		rep, err := victim.Client.Sync(context.Background(), controlapi.SyncRequest{Peer: rogue.ID().String()}, func(received, announced int) {
			calls = append(calls, [2]int{received, announced})
			select {
			case joined <- [2]int{received, announced}:
			default:
			}
		})
		res <- result{rep, err}
	}()
	select {
	case first := <-joined:
		require.Equal(t, [2]int{0, len(blocks)}, first, "the watcher sees the pull's progress from the start")
	case <-time.After(30 * time.Second):
		t.Fatal("the manual sync never reported progress")
	}
	close(release)
	r := <-res
	require.NoError(t, r.err)
	require.Equal(t, int32(1), streams.Load(), "the manual sync opened no second stream")
	require.Equal(t, controlapi.SyncReport{
		Peers:    []controlapi.SyncPeer{{PeerID: rogue.ID().String(), Announced: len(blocks), Received: len(blocks), New: len(blocks), Joined: true}},
		Received: len(blocks), New: len(blocks),
	}, r.rep)
	require.Equal(t, [2]int{len(blocks), len(blocks)}, calls[len(calls)-1])
	require.Zero(t, metric(t, victim, "icn_ledger_sync_lag_entries"), "caught up: no lag")
	require.Equal(t, len(blocks), victim.LedgerHead().Accepted)

	// A second request starts a pull of its own, which finds nothing.
	rep, err := victim.SyncLedger(context.Background(), rogue.ID().String(), nil)
	require.NoError(t, err)
	require.Len(t, rep.Peers, 1)
	require.False(t, rep.Peers[0].Joined)
	require.Zero(t, rep.Peers[0].Announced)
	require.Empty(t, rep.Peers[0].Error)
	require.Equal(t, int32(2), streams.Load())
}

// `ledger sync` pulls from every connected peer, or from one named by DID;
// when it returns, the node holds what the peers held.
func TestManualSyncFromPeers(t *testing.T) {
	nodes := harness.Start(t, 2)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	_, err := a.IngestLedgerBlocks(ctx, ledgertest.History(t, 3, 50))
	require.NoError(t, err)
	harness.Connect(t, b, a)

	rep, err := b.Client.Sync(ctx, controlapi.SyncRequest{}, nil)
	require.NoError(t, err)
	require.Len(t, rep.Peers, 1)
	p := rep.Peers[0]
	require.Equal(t, a.Status().PeerID, p.PeerID)
	require.Equal(t, a.Identity.DID.String(), p.DID)
	require.Empty(t, p.Error)
	require.Zero(t, rep.Failed)
	require.Equal(t, a.LedgerHead().StateHash, b.LedgerHead().StateHash, "b holds a's entries as soon as the sync returns")

	rep, err = b.Client.Sync(ctx, controlapi.SyncRequest{Peer: a.Identity.DID.String()}, nil)
	require.NoError(t, err)
	require.Len(t, rep.Peers, 1)
	require.Equal(t, a.Identity.DID.String(), rep.Peers[0].DID)
	require.Zero(t, rep.New, "nothing left to fetch")
}

func TestManualSyncErrors(t *testing.T) {
	nodes := harness.Start(t, 2)
	a, stranger := nodes[0], nodes[1]
	ctx := context.Background()
	for _, c := range []struct {
		peer   string
		status int
		msg    string
	}{
		{"", http.StatusServiceUnavailable, "no peers connected"},
		{"garbage", http.StatusBadRequest, "neither a peer ID nor a DID"},
		{stranger.Identity.DID.String(), http.StatusNotFound, "not connected to " + stranger.Identity.DID.String()},
		{stranger.Status().PeerID, http.StatusNotFound, "not connected to"},
	} {
		_, err := a.Client.Sync(ctx, controlapi.SyncRequest{Peer: c.peer}, nil)
		var ce *controlapi.Error
		require.ErrorAs(t, err, &ce, "%q", c.peer)
		require.Equal(t, c.status, ce.Status, "%q: %v", c.peer, err)
		require.Contains(t, ce.Message, c.msg)
		require.NotEmpty(t, ce.Hint, "%q: an error says what to do", c.peer)
	}

	// A connected peer that does not serve ledger sync.
	bare := rogueHost(t)
	dialNode(t, bare, a)
	require.Eventually(t, func() bool { return len(a.Peers()) == 1 }, 10*time.Second, 20*time.Millisecond)
	_, err := a.Client.Sync(ctx, controlapi.SyncRequest{}, nil)
	var ce *controlapi.Error
	require.ErrorAs(t, err, &ce)
	require.Contains(t, ce.Message, "none of the 1 connected peers serves ledger sync")
}

// A peer that serves bad blocks through ledgersync loses GossipSub score:
// ten of them take it below the gossip threshold.
func TestBadSyncBlocksLowerThePeerScore(t *testing.T) {
	victim := harness.Start(t, 1)[0]
	good := ledgertest.History(t, 2, 10)
	var bad [][]byte
	for i, b := range good {
		c := append([]byte(nil), b...)
		switch i % 3 {
		case 0:
			c[len(c)-1] ^= 0xff // the signature no longer verifies
		case 1:
			c = c[:len(c)/2] // truncated
		case 2:
			c = []byte("not a ledger block at all")
		}
		bad = append(bad, c)
	}
	rogue := rogueHost(t)
	// The rogue speaks GossipSub too, so the victim scores it.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	_, err := pubsub.NewGossipSub(ctx, rogue)
	require.NoError(t, err)
	var served atomic.Int32
	rogue.SetStreamHandler(ledgersync.ID, func(s network.Stream) {
		defer s.Close()
		_, _ = io.Copy(io.Discard, s)
		if served.Add(1) == 1 {
			_ = respond(s, bad)
			return
		}
		_ = respond(s, nil)
	})
	dialNode(t, rogue, victim)

	require.Eventually(t, func() bool { return metric(t, victim, "icn_ledger_sync_entries_rejected_total") == float64(len(bad)) },
		30*time.Second, 20*time.Millisecond, "the victim never refused the bad blocks")
	require.Eventually(t, func() bool {
		s, ok := victim.Gossip().PeerScore(rogue.ID())
		return ok && s < 0
	}, 30*time.Second, 50*time.Millisecond, "the rogue's score never went negative")
	s, _ := victim.Gossip().PeerScore(rogue.ID())
	require.Less(t, s, float64(gossip.ScoreThresholds().GossipThreshold), "ten bad blocks are below the gossip threshold")
	require.Zero(t, victim.LedgerHead().Accepted+victim.LedgerHead().Quarantined, "nothing of them was stored")
}

// A newcomer that connects to two peers holding the same history at once
// pulls it from one of them, not from both: the second automatic pull waits
// for the first and then asks only for what is still missing.
func TestNewcomerPullsSharedHistoryOnce(t *testing.T) {
	const n = 4000
	sources := harness.Start(t, 2)
	history := ledgertest.History(t, 4, n)
	for _, s := range sources {
		_, err := s.IngestLedgerBlocks(context.Background(), history)
		require.NoError(t, err)
	}
	newcomer := harness.Start(t, 1, harness.Bootstrap(sources...))[0]
	require.Eventually(t, func() bool { return newcomer.LedgerHead().Accepted == n }, 60*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { return newcomer.Status().Peers >= 2 }, 30*time.Second, 50*time.Millisecond)
	served := metric(t, sources[0], "icn_ledger_sync_entries_served_total") + metric(t, sources[1], "icn_ledger_sync_entries_served_total")
	require.Less(t, served, 1.5*n, "the history was sent %.0f times over", served/n)
}
