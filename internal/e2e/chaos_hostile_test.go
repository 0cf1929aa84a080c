package e2e

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/protocols/gossip"
	"github.com/intercooperative/icn/protocols/identity"
	"github.com/intercooperative/icn/protocols/ledgersync"
	"github.com/intercooperative/icn/protocols/trustsync"
)

// hostileProto is a protocol a hostile peer abuses, with how long the
// daemon should take at most to end a stream stalled on it (0: the daemon
// sets no bound of its own; what happens is reported, not required).
type hostileProto struct {
	id    protocol.ID
	bound time.Duration
}

// The protocols a daemon serves: ours (grep protocols/ for `const ID`),
// the DHT's (/icn prefix) and GossipSub's.
var hostileProtos = []hostileProto{
	{identity.ID, identity.StreamTimeout},
	{ledgersync.ID, ledgersync.RequestTimeout},
	{trustsync.ID, trustsync.RequestTimeout},
	{gossip.ID, gossip.RequestTimeout},
	{"/icn/kad/1.0.0", 0},
	{"/meshsub/1.2.0", 0},
}

// newHostileHost is a libp2p host on loopback QUIC in the test process.
func newHostileHost(t *testing.T) host.Host {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	require.NoError(t, err)
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.Transport(libp2pquic.NewTransport),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"), libp2p.DisableRelay())
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h
}

// connectTo connects h to the daemon on dir.
func connectTo(t *testing.T, h host.Host, dir string) peer.ID {
	t.Helper()
	st := status(t, dir)
	id, err := peer.Decode(st.PeerID)
	require.NoError(t, err)
	var addrs []ma.Multiaddr
	for _, a := range st.ListenAddrs {
		m, err := ma.NewMultiaddr(a)
		require.NoError(t, err)
		addrs = append(addrs, m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, h.Connect(ctx, peer.AddrInfo{ID: id, Addrs: addrs}))
	return id
}

// stall holds a stream it never finishes: it reads nothing and writes
// nothing until the stream is reset or closed by the other side, or
// released.
func stall(release <-chan struct{}) network.StreamHandler {
	return func(s network.Stream) {
		done := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, s)
			close(done)
		}()
		select {
		case <-release:
			s.Reset()
		case <-done:
		}
	}
}

// garbageHandler answers every stream with random bytes.
func garbageHandler(s network.Stream) {
	buf := make([]byte, 4096)
	_, _ = rand.Read(buf)
	// A huge uvarint first: a count or a length no reader accepts.
	_, _ = s.Write(binary.AppendUvarint(nil, 1<<62))
	_, _ = s.Write(buf)
	_ = s.Close()
}

// stalledStream is a stream a hostile peer opened and left half-written.
type stalledStream struct {
	proto protocol.ID
	ended time.Duration // when the daemon ended it (0: still open)
}

// Chaos, a hostile peer: a libp2p host in the test process connects to a
// daemon and, on every protocol the daemon serves, (a) opens streams,
// writes part of a request and never finishes, while also stalling what
// the daemon asks of it; (b) sends garbage, answers the daemon's pulls with
// garbage, publishes garbage on the node's GossipSub topics and presents a
// garbage DID binding. Throughout, the daemon stays ready, answers icnctl
// and keeps paying an honest peer; the stalled streams end within each
// protocol's own bound and the goroutines come back down. The stalls cost
// the peer nothing (an honest peer may be slow); the garbage is charged
// on every ICN protocol (icn_network_peer_penalties_total by protocol),
// and the peer that keeps sending it is disconnected past the threshold
// (one SECURITY line, icn_network_penalty_disconnects_total) and its
// redial refused. GossipSub garbage is rejected by validation and scored
// by GossipSub itself.
func TestChaosHostilePeer(t *testing.T) {
	n := startLedgerNode(t)
	dir, d := n.dir, n.d
	honestDir := tempDir(t)
	honest := initID(t, honestDir)
	cfgE, pe := writeConfig(t, honestDir, "127.0.0.1:0", "")
	startDaemon(t, honestDir, cfgE, pe)
	sd := status(t, dir)
	ok(t, honestDir, "network", "dial", sd.ListenAddrs[0]+"/p2p/"+sd.PeerID)
	pay := startLoadEvery(t, dir, honest.DID, "hours", "hostile", 1, 20*time.Millisecond)
	require.Eventually(t, func() bool { return pay.count() >= 20 }, 30*time.Second, 10*time.Millisecond)
	g0 := goroutines(t, d)

	// flowing requires that the daemon is ready, answers and pays on.
	flowing := func(what string) {
		t.Helper()
		code, body := d.get("/ready")
		require.Equal(t, http.StatusOK, code, "%s: /ready: %s", what, body)
		status(t, dir)
		before := pay.count()
		require.Eventually(t, func() bool { return pay.count() >= before+10 }, 20*time.Second, 10*time.Millisecond,
			"%s: payments stopped; last error: %v", what, pay.lastError())
	}

	// (a) Stalls. What the daemon asks of the peer stalls too.
	h := newHostileHost(t)
	release := make(chan struct{})
	defer close(release)
	h.SetStreamHandler(identity.ID, stall(release))
	h.SetStreamHandler(ledgersync.ID, stall(release))
	h.SetStreamHandler(trustsync.ID, stall(release))
	dp := connectTo(t, h, dir)
	const perProto = 8
	began := time.Now()
	var mu sync.Mutex
	var stalled []*stalledStream
	var wg sync.WaitGroup
	for _, p := range hostileProtos {
		for range perProto {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			s, err := h.NewStream(ctx, dp, p.id)
			cancel()
			require.NoError(t, err, "the daemon does not serve %s", p.id)
			// Part of a request: a length or count, then less than it says.
			_, err = s.Write(append(binary.AppendUvarint(nil, 200), []byte("partial request")...))
			require.NoError(t, err)
			ss := &stalledStream{proto: p.id}
			mu.Lock()
			stalled = append(stalled, ss)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(io.Discard, s) // until the daemon ends it
				mu.Lock()
				ss.ended = time.Since(began)
				mu.Unlock()
			}()
		}
	}
	gStalled := goroutines(t, d)
	flowing("while stalled")
	// Every stream of a protocol with a bound ends within it (plus slack
	// for a loaded machine).
	var longest time.Duration
	for _, p := range hostileProtos {
		longest = max(longest, p.bound)
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, ss := range stalled {
			for _, p := range hostileProtos {
				if p.id == ss.proto && p.bound > 0 && ss.ended == 0 {
					return false
				}
			}
		}
		return true
	}, longest+15*time.Second, 100*time.Millisecond, "stalled streams outlived their protocol's bound")
	flowing("after the stalls")
	mu.Lock()
	endedBy := map[protocol.ID]time.Duration{}
	open := map[protocol.ID]int{}
	for _, ss := range stalled {
		if ss.ended == 0 {
			open[ss.proto]++
			continue
		}
		endedBy[ss.proto] = max(endedBy[ss.proto], ss.ended)
	}
	mu.Unlock()
	var report []string
	for _, p := range hostileProtos {
		if p.bound > 0 {
			require.LessOrEqual(t, endedBy[p.id], p.bound+10*time.Second, "%s: stalled streams ended after %s", p.id, endedBy[p.id])
		}
		if open[p.id] > 0 {
			report = append(report, fmt.Sprintf("%s: %d of %d still open at %s", p.id, open[p.id], perProto, time.Since(began).Round(time.Second)))
		} else {
			report = append(report, fmt.Sprintf("%s: all %d ended by %s", p.id, perProto, endedBy[p.id].Round(100*time.Millisecond)))
		}
	}
	t.Logf("chaos hostile peer, stalls: goroutines %v before, %v with %d stalled streams; %s", g0, gStalled, len(stalled), strings.Join(report, "; "))
	// Stalls are no violation: nothing was charged.
	penalties := func(protocol string) float64 {
		t.Helper()
		_, m := d.get("/metrics")
		return metricValue(t, m, fmt.Sprintf("icn_network_peer_penalties_total{protocol=%q}", protocol))
	}
	for _, p := range []string{"identity", "ledgersync", "ledger_blocks", "trustsync", "gossip_request"} {
		require.Zero(t, penalties(p), "%s: stalls were charged", p)
	}

	// (b) Garbage on every protocol: each stream ends (reset or closed),
	// none hangs.
	for _, p := range hostileProtos {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := h.NewStream(ctx, dp, p.id)
		cancel()
		require.NoError(t, err, "%s", p.id)
		buf := make([]byte, 4096)
		_, _ = rand.Read(buf)
		_, _ = s.Write(binary.AppendUvarint(nil, 3000))
		_, _ = s.Write(buf)
		_ = s.CloseWrite()
		_ = s.SetReadDeadline(time.Now().Add(20 * time.Second))
		t0 := time.Now()
		_, err = io.Copy(io.Discard, io.LimitReader(s, 1<<20))
		var ne interface{ Timeout() bool }
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "%s: the daemon held a garbage stream open for 20 s", p.id)
		t.Logf("garbage on %s: ended after %s (%v)", p.id, time.Since(t0).Round(time.Millisecond), err)
		_ = s.Reset()
	}
	requireLogLine(t, d, 10*time.Second, "SECURITY: ledgersync: malformed request from a peer", h.ID().String())
	// Charged on each protocol that reads what the peer sent (the
	// identity responder reads nothing: its garbage binding comes below).
	for _, p := range []string{"ledgersync", "trustsync", "gossip_request"} {
		require.Eventually(t, func() bool { return penalties(p) >= 1 }, 10*time.Second, 100*time.Millisecond, "garbage on %s was not charged", p)
	}
	requireLogLine(t, d, 10*time.Second, "SECURITY: trustsync: malformed request from a peer", h.ID().String())
	requireLogLine(t, d, 10*time.Second, "SECURITY: gossip: malformed request from a peer", h.ID().String())
	syncCharged := penalties("ledgersync")

	// The daemon's own pull from the peer (on identify), stalled by it, is
	// cut off after ledgersync.StallTimeout.
	requireLogLine(t, d, ledgersync.StallTimeout+15*time.Second, "ledger sync with a peer failed", h.ID().String(), "nothing for")
	// A pull from the peer answered with garbage: a protocol violation,
	// penalised in the gossip score. (An automatic pull may be running
	// into the stall again: icnctl joins it, so ask until one meets the
	// garbage.)
	h.SetStreamHandler(ledgersync.ID, garbageHandler)
	violation := func() bool {
		return strings.Contains(d.logs.String(), "SECURITY: a peer broke the ledger sync protocol; it is penalised")
	}
	require.Eventually(t, func() bool {
		r := ctl(t, dir, "ledger", "sync", h.ID().String())
		if violation() {
			require.Equal(t, 1, r.code, "a pull answered with garbage fails")
			require.Contains(t, r.stdout+r.stderr, "violation")
			return true
		}
		return false
	}, ledgersync.StallTimeout+40*time.Second, 100*time.Millisecond, "no ledger-sync violation logged")
	requireLogLine(t, d, time.Second, "SECURITY: a peer broke the ledger sync protocol; it is penalised", h.ID().String())
	require.GreaterOrEqual(t, penalties("ledgersync"), syncCharged+ledgersync.ViolationPenalty, "the broken response was not charged")

	// Garbage on the node's GossipSub topics: rejected by validation.
	_, metrics := d.get("/metrics")
	rejectedBefore := metricSum(t, metrics, "icn_gossip_messages_rejected_total")
	// (Another peer, running GossipSub before it connects, so that the
	// daemon opens its GossipSub stream to it and tells it its topics.)
	h3 := newHostileHost(t)
	ps, err := pubsub.NewGossipSub(context.Background(), h3)
	require.NoError(t, err)
	connectTo(t, h3, dir)
	var topics []*pubsub.Topic
	for _, short := range []string{"ledger:*", "ledger:hours", "trust:attestations"} {
		tp, err := ps.Join(gossip.WireTopic(config.DefaultNetworkID, short))
		require.NoError(t, err)
		sub, err := tp.Subscribe()
		require.NoError(t, err)
		defer sub.Cancel()
		topics = append(topics, tp)
	}
	sent := 0
	require.Eventually(t, func() bool {
		for _, tp := range topics {
			buf := make([]byte, 200)
			_, _ = rand.Read(buf)
			_ = tp.Publish(context.Background(), buf)
			sent++
		}
		_, metrics := d.get("/metrics")
		return metricSum(t, metrics, "icn_gossip_messages_rejected_total") >= rejectedBefore+3 &&
			strings.Contains(d.logs.String(), "SECURITY: Rejected invalid gossip from a peer")
	}, 30*time.Second, 200*time.Millisecond, "garbage gossip was not rejected")
	requireLogLine(t, d, 10*time.Second, "SECURITY: Rejected invalid gossip from a peer", h3.ID().String())
	_, metrics = d.get("/metrics")
	t.Logf("garbage gossip: %d messages published, %v rejected", sent, metricSum(t, metrics, "icn_gossip_messages_rejected_total")-rejectedBefore)
	flowing("after the garbage")

	// A garbage DID binding: the daemon disconnects.
	h2 := newHostileHost(t)
	h2.SetStreamHandler(identity.ID, garbageHandler)
	connectTo(t, h2, dir)
	requireLogLine(t, d, 30*time.Second, "SECURITY: peer presented an invalid DID binding; disconnecting", h2.ID().String())
	require.Eventually(t, func() bool { return h2.Network().Connectedness(dp) != network.Connected }, 15*time.Second, 100*time.Millisecond,
		"the peer with a garbage binding is still connected")
	require.Equal(t, float64(identity.ViolationPenalty), penalties("identity"), "the garbage binding was not charged once")

	// `network peers` shows each peer's penalty and gossip score: the
	// garbage-sending peer is penalised, the garbage publisher scores
	// below zero, the honest peer has neither.
	honestID := status(t, honestDir).PeerID
	require.Eventually(t, func() bool {
		var hostile, publisher, fair bool
		for _, p := range peers(t, dir) {
			switch p.PeerID {
			case h.ID().String():
				hostile = p.Penalty >= 1
			case h3.ID().String():
				publisher = p.GossipScore != nil && *p.GossipScore < 0
			case honestID:
				fair = p.Penalty == 0 && (p.GossipScore == nil || *p.GossipScore >= 0)
			}
		}
		return hostile && publisher && fair
	}, 20*time.Second, 200*time.Millisecond, "network peers does not show the penalty and the gossip scores")

	// The first peer keeps sending garbage: past the disconnect threshold
	// the daemon hangs up on it, says so once, and refuses it.
	_, metrics = d.get("/metrics")
	require.Zero(t, metricValue(t, metrics, "icn_network_penalty_disconnects_total"))
	garbage := 0
	require.Eventually(t, func() bool {
		if h.Network().Connectedness(dp) != network.Connected {
			return true
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := h.NewStream(ctx, dp, ledgersync.ID)
		if err != nil {
			return false // the connection is going: the next round sees it gone
		}
		garbage++
		_, _ = s.Write(binary.AppendUvarint(nil, ledgersync.MaxAuthors+1))
		_ = s.CloseWrite()
		_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.Copy(io.Discard, s)
		return false
	}, 60*time.Second, 10*time.Millisecond, "the daemon never disconnected a peer that kept sending garbage")
	requireLogLine(t, d, 10*time.Second, "SECURITY: peer penalised past the disconnect threshold; disconnecting", h.ID().String())
	require.Equal(t, 1, strings.Count(d.logs.String(), "SECURITY: peer penalised past the disconnect threshold; disconnecting"))
	_, metrics = d.get("/metrics")
	require.Equal(t, 1.0, metricValue(t, metrics, "icn_network_penalty_disconnects_total"))
	// The two hostile peers charged here (the second one's single unit
	// is less than one half-life old), not the honest one.
	require.Equal(t, 2.0, metricValue(t, metrics, "icn_network_penalised_peers"))
	t.Logf("penalty disconnect after %d more garbage requests; charged: identity %v, ledgersync %v, trustsync %v, gossip_request %v, ledger_blocks %v",
		garbage, penalties("identity"), penalties("ledgersync"), penalties("trustsync"), penalties("gossip_request"), penalties("ledger_blocks"))

	// Its redial is refused at the handshake (QUIC may finish the
	// handshake on the dialler's side first: the connection then closes).
	redial := func() {
		t.Helper()
		sd := status(t, dir)
		var addrs []ma.Multiaddr
		for _, a := range sd.ListenAddrs {
			m, err := ma.NewMultiaddr(a)
			require.NoError(t, err)
			addrs = append(addrs, m)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := h.Connect(ctx, peer.AddrInfo{ID: dp, Addrs: addrs}); err != nil {
			t.Logf("redial of the penalised peer: %v", err)
		}
	}
	redial()
	requireLogLine(t, d, 15*time.Second, "SECURITY: penalised peer refused", h.ID().String(), "inbound")
	require.Eventually(t, func() bool { return h.Network().Connectedness(dp) != network.Connected }, 15*time.Second, 100*time.Millisecond,
		"the penalised peer's redial stayed connected")
	for _, p := range peers(t, dir) {
		require.NotEqual(t, h.ID().String(), p.PeerID, "the penalised peer is listed as connected")
	}
	// The operator dialling it is told why, and that it lifts by itself.
	var haddr string
	for _, a := range h.Addrs() {
		haddr = a.String() + "/p2p/" + h.ID().String()
	}
	r := ctl(t, dir, "network", "dial", haddr)
	require.Equal(t, 1, r.code, "a dial to a penalised peer is refused: %s", r.stdout)
	require.Contains(t, r.stderr, "icnctl: error: "+h.ID().String()+" is refused for protocol violations against this node")
	require.Contains(t, r.stderr, "the refusal lifts by itself in about")
	require.Contains(t, r.stderr, "icnctl: hint: this node's log says what it did")
	flowing("after the penalty disconnect")

	// The peers leave; what they held is released.
	require.NoError(t, h.Close())
	require.NoError(t, h2.Close())
	require.NoError(t, h3.Close())
	wg.Wait()
	var gEnd float64
	require.Eventually(t, func() bool {
		gEnd = goroutines(t, d)
		return gEnd <= g0+20
	}, 60*time.Second, 500*time.Millisecond, "goroutines did not come back down: %v before, now", g0)
	acked := pay.stop()
	flowing2 := checkLedger(t, dir, acked, "after the hostile peer")
	require.Eventually(t, func() bool { return converged(t, []string{dir, honestDir}, flowing2.Entries) }, 60*time.Second, 200*time.Millisecond,
		"the honest peer did not get every payment")
	t.Logf("chaos hostile peer: %d payments to the honest peer meanwhile, all delivered; goroutines %v before, %v stalled, %v after", len(acked), g0, gStalled, gEnd)
}

// requireLogLine waits until a line of the daemon's log holds every part.
func requireLogLine(t *testing.T, d *daemon, within time.Duration, parts ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, line := range strings.Split(d.logs.String(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return true
			}
		}
		return false
	}, within, 100*time.Millisecond, "no log line with %q", parts)
}
