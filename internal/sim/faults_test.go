package sim

import (
	"context"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/node/controlapi"
)

// converge waits until every live node holds entries entries and one state
// hash, and returns how long that took; it fails after within.
func converge(t *testing.T, nodes []*Node, entries int, within time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		var hash string
		all := true
		for _, nd := range nodes {
			if nd.Stopped() {
				continue
			}
			h := nd.LedgerHead()
			if h.Entries != entries || (hash != "" && h.StateHash != hash) {
				all = false
				break
			}
			hash = h.StateHash
		}
		if all {
			return time.Since(began)
		}
		if time.Since(began) > within {
			for _, nd := range nodes {
				if !nd.Stopped() {
					h := nd.LedgerHead()
					t.Logf("node %d: %d entries, %d peers, state %s", nd.Index, h.Entries, len(nd.Peers()), h.StateHash[:12])
				}
			}
			t.Fatalf("no convergence to %d entries within %s", entries, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func pay(t *testing.T, from, to *Node) {
	t.Helper()
	if _, err := from.Pay(context.Background(), controlapi.PayRequest{To: to.Identity.DID.String(), Amount: "1", Currency: "hours"}); err != nil {
		t.Errorf("node %d pay: %v", from.Index, err)
	}
}

// setupLedger connects the nodes at random, defines a currency on node 0
// and waits until every node has it.
func setupLedger(t *testing.T, nw *Network, r *rand.Rand) {
	t.Helper()
	connectRandomly(t, nw, 4, r)
	time.Sleep(5 * time.Second)
	_, err := nw.Nodes[0].CreateCurrency(context.Background(), controlapi.CurrencyRequest{Symbol: "hours", CreditLimit: "1000000"})
	require.NoError(t, err)
	converge(t, nw.Nodes, 1, 60*time.Second)
	time.Sleep(3 * time.Second) // every node joins ledger:hours
}

// TestSimPartitionHeals splits the network into two halves that cannot
// reach each other for one minute (two with ICN_BENCH), with payments on both sides, then heals
// it: every node must end with every entry and one state hash. The time
// from the heal to convergence is logged (docs/benchmarks.md).
func TestSimPartitionHeals(t *testing.T) {
	n := 24
	if raceOn && !bench() {
		n = 8
	}
	var split atomic.Bool
	latency := func(from, to int) time.Duration {
		if split.Load() && from >= 0 && to >= 0 && (from < n/2) != (to < n/2) {
			return 24 * time.Hour // never arrives: a partition
		}
		return 50 * time.Millisecond
	}
	var healTook time.Duration
	wall := time.Now()
	synctest.Test(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(uint64(n), 11))
		nw, err := Start(t, Config{Nodes: n, Latency: latency, Tune: simTune})
		require.NoError(t, err)
		defer func() { require.NoError(t, nw.Stop()) }()
		setupLedger(t, nw, r)

		split.Store(true)
		// Connections across the cut time out; each half goes on paying.
		payments := 0
		steps := 6 // 10 s apart
		if bench() {
			steps = 12
		}
		for k := 0; k < steps; k++ {
			a := r.IntN(n / 2)
			b := n/2 + r.IntN(n-n/2)
			pay(t, nw.Nodes[a], nw.Nodes[(a+1)%(n/2)])
			pay(t, nw.Nodes[b], nw.Nodes[n/2+(b+1-n/2)%(n-n/2)])
			payments += 2
			time.Sleep(10 * time.Second)
		}
		// Each half agrees within itself, not with the other.
		h0, h1 := nw.Nodes[0].LedgerHead(), nw.Nodes[n-1].LedgerHead()
		require.NotEqual(t, h0.StateHash, h1.StateHash, "the partition held nothing apart")

		split.Store(false)
		healTook = converge(t, nw.Nodes, 1+payments, 3*time.Minute) // virtual time
	})
	t.Logf("SIMPARTITION nodes=%d heal_to_converge=%s wall=%s", n, healTook, time.Since(wall).Round(time.Millisecond))
}

// TestSimChurn replaces 10% of the nodes every minute for two minutes
// (three, of 30 nodes, with ICN_BENCH)
// (stopped nodes never return; new ones, with new identities and empty
// ledgers, join through a random live node) while payments go on; then
// every live node must converge. The time after the churn stops is logged.
func TestSimChurn(t *testing.T) {
	n, minutes := 20, 2
	switch {
	case bench():
		n, minutes = 30, 3
	case raceOn:
		n, minutes = 10, 1
	}
	var took time.Duration
	var joined, left, payments int
	wall := time.Now()
	synctest.Test(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(uint64(n), 13))
		nw, err := Start(t, Config{Nodes: n, RTT: 100 * time.Millisecond, Tune: simTune})
		require.NoError(t, err)
		defer func() { require.NoError(t, nw.Stop()) }()
		setupLedger(t, nw, r)
		live := func() []*Node {
			var out []*Node
			for _, nd := range nw.Nodes {
				if !nd.Stopped() {
					out = append(out, nd)
				}
			}
			return out
		}
		var payMu sync.Mutex
		entries := 1
		for minute := 0; minute < minutes; minute++ {
			// 10% leave (never node 0, the issuer, so the currency's
			// definition stays reachable through sync anyway).
			ln := live()
			for k := 0; k < n/10; k++ {
				victim := ln[1+r.IntN(len(ln)-1)]
				if !victim.Stopped() {
					require.NoError(t, victim.Stop())
					left++
				}
			}
			// 10% join, each through one random live node.
			for k := 0; k < n/10; k++ {
				ln = live()
				nd, err := nw.Add()
				require.NoError(t, err)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err = nd.Dial(ctx, controlapi.DialRequest{Addr: ln[r.IntN(len(ln))].Addr})
				cancel()
				require.NoError(t, err, "a newcomer could not join")
				joined++
			}
			// A minute of payments among the live nodes.
			for s := 0; s < 6; s++ {
				ln = live()
				from, to := ln[r.IntN(len(ln))], ln[r.IntN(len(ln))]
				if from != to {
					payMu.Lock()
					pay(t, from, to)
					entries++
					payments++
					payMu.Unlock()
				}
				time.Sleep(10 * time.Second)
			}
		}
		took = converge(t, live(), entries, 10*time.Minute)
	})
	t.Logf("SIMCHURN nodes=%d left=%d joined=%d payments=%d converge_after_churn=%s wall=%s", n, left, joined, payments, took, time.Since(wall).Round(time.Millisecond))
}

// bench reports whether the full benchmark sizes were asked for
// (ICN_BENCH=1, as make bench sets); otherwise the tests run at smoke size.
func bench() bool { return os.Getenv("ICN_BENCH") != "" }

// connected reports whether a lists b among its peers.
func connected(a, b *Node) bool {
	want := b.Status().PeerID
	for _, p := range a.Peers() {
		if p.PeerID == want {
			return true
		}
	}
	return false
}

// Two nodes whose link breaks long enough for their connection to time out
// find each other again within seconds of it coming back, though each
// still has another peer (the DHT redials remembered peers; before it, they
// waited for kad-dht's 10-minute refresh). Virtual time: the bound is the
// protocol's, not the machine's.
func TestSimLostPeerIsRedialled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cut atomic.Bool
		nw, err := Start(t, Config{Nodes: 3, Latency: func(from, to int) time.Duration {
			if cut.Load() && ((from == 0 && to == 1) || (from == 1 && to == 0)) {
				return 24 * time.Hour
			}
			return 20 * time.Millisecond
		}})
		require.NoError(t, err)
		defer func() { require.NoError(t, nw.Stop()) }()
		a, b, c := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
		for _, p := range [][2]*Node{{a, b}, {a, c}, {b, c}} {
			_, err := p[0].Dial(context.Background(), controlapi.DialRequest{Addr: p[1].Addr})
			require.NoError(t, err)
		}
		time.Sleep(10 * time.Second) // into each other's routing tables
		cut.Store(true)
		began := time.Now()
		for connected(a, b) || connected(b, a) {
			require.Less(t, time.Since(began), 5*time.Minute, "the cut link never timed out")
			time.Sleep(time.Second)
		}
		t.Logf("connection timed out after %s", time.Since(began))
		require.True(t, connected(a, c) && connected(b, c), "a and b each keep their other peer")
		cut.Store(false)
		healed := time.Now()
		for !connected(a, b) {
			require.Less(t, time.Since(healed), time.Minute, "a and b never reconnected after the link came back")
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("reconnected %s after the link came back", time.Since(healed))
	})
}
