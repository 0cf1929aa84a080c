package sim

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
)

// sizes are the network sizes to simulate: ICN_SIM_NODES ("100,200,500"
// for make bench), else a smoke size that keeps CI quick.
func sizes(t *testing.T) []int {
	v := os.Getenv("ICN_SIM_NODES")
	if v == "" {
		if raceOn {
			return []int{8}
		}
		return []int{24}
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		require.NoError(t, err, "ICN_SIM_NODES=%q", v)
		out = append(out, n)
	}
	return out
}

// simTune: relays carry the whole network's traffic, so the per-peer
// gossip bucket is sized for it (the default protects a small node from
// one flooding peer, not a 500-node benchmark).
//
// The connection manager keeps 20 to 40 peers, with a grace period of
// 5 s instead of a minute: the DHT connects to every peer a lookup asks
// (and its start-up refresh asks most of a small network), so with the
// default grace a node holds a connection to nearly every other for its
// first minute, and the CPU a virtual second costs grows with the square
// of the size (docs/benchmarks.md).
func simTune(_ int, cfg *config.Config) {
	cfg.RateLimiting.MessagesPerSecond = 1000
	cfg.RateLimiting.Burst = 2000
	cfg.Network.ConnLowWater, cfg.Network.ConnHighWater = 20, 40
	cfg.Network.ConnGracePeriod.Duration = 5 * time.Second
}

// degrees samples every node's peer count once a (virtual) second until
// stop is called, which returns the highest mean and the highest single
// count seen.
func degrees(nw *Network) (stop func() (peakMean float64, peakMax int)) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var peakMean float64
	var peakMax int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Second):
			}
			sum := 0
			for _, nd := range nw.Nodes {
				d := nd.Status().Peers
				sum += d
				peakMax = max(peakMax, d)
			}
			peakMean = max(peakMean, float64(sum)/float64(len(nw.Nodes)))
		}
	}()
	return func() (float64, int) {
		close(done)
		wg.Wait()
		return peakMean, peakMax
	}
}

// meanDegree is the nodes' mean peer count now.
func meanDegree(nw *Network) float64 {
	sum := 0
	for _, nd := range nw.Nodes {
		sum += nd.Status().Peers
	}
	return float64(sum) / float64(len(nw.Nodes))
}

// connectRandomly has node i dial `degree` random nodes among those
// before it: a connected graph, as with a few bootstrap peers each.
func connectRandomly(t *testing.T, nw *Network, degree int, r *rand.Rand) {
	connectRange(t, nw, 1, len(nw.Nodes), degree, r)
}

// connectRange has each node in [from, to) dial `degree` random nodes
// among those before it.
func connectRange(t *testing.T, nw *Network, from, to, degree int, r *rand.Rand) {
	var wg sync.WaitGroup
	for i := max(from, 1); i < to; i++ {
		targets := map[int]bool{}
		for len(targets) < min(degree, i) {
			targets[r.IntN(i)] = true
		}
		for j := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_, err := nw.Nodes[i].Dial(ctx, controlapi.DialRequest{Addr: nw.Nodes[j].Addr})
				if err != nil {
					t.Errorf("node %d dialling %d: %v", i, j, err)
				}
			}()
		}
	}
	wg.Wait()
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// Networks of up to joinAtOnce nodes boot at once: every node dials its
// four bootstrap peers in the same instant, the cold boot of the
// GossipSub evaluation. Larger ones join joinWave nodes at a time,
// joinGap apart. Each joining node's first DHT refresh connects it to
// much of a network of a few hundred (in a cold boot of 200, 141 peers a
// node on average at the peak, 163 at most), and the CPU of the whole
// simulation, on two cores, grows with nodes × connections
// (docs/benchmarks.md). In waves, what is already running sees only the
// joiners' refreshes, and the connection manager trims them within 15 s.
const (
	joinAtOnce = 200
	joinWave   = 50
	joinGap    = 10 * time.Second
)

// gossipRounds is how many messages each publisher sends (one every 2 s)
// in a network of n nodes: ten up to joinAtOnce nodes, four above, where
// the deliveries (publishers × rounds × receivers) grow with n².
func gossipRounds(n int) int {
	if n > joinAtOnce {
		return 4
	}
	return 10
}

// scaleResult is one network size's figures.
type scaleResult struct {
	nodes                    int
	heapPerNode              float64 // MiB
	goroutinesPerNode        float64
	published, expected, got int
	p50, p99                 time.Duration
	dhtP50, dhtP99           time.Duration
	dhtQueried               float64 // peers asked per lookup, mean
	dhtFound                 int
	dhtLookups               int
	ledgerConverge           time.Duration
	payments                 int
	degree                   float64       // mean peers per node once settled
	peakDegree               float64       // highest mean over the run
	peakMaxDegree            int           // highest single node's over the run
	rssPerNode               float64       // MiB
	totalWall                time.Duration // real time, outside the bubble
}

// TestSimScale runs the real node at each size of ICN_SIM_NODES on a
// simulated network with 100 ms RTT and 50 Mbit/s links, in virtual time,
// and reports (docs/benchmarks.md):
//   - memory and goroutines per node;
//   - gossip: one node in ten publishes a 2 KiB message every 2 s
//     (gossipRounds of them);
//     delivery ratio and latency p50/p99 from publish to each receiver;
//   - DHT: time (and peers asked) to resolve a DID binding;
//   - ledger: time until every node has the same state hash after
//     payments from many authors.
//
// What it requires is what the protocols promise (every message delivered,
// every lookup found, every state hash equal); the figures are logged.
func TestSimScale(t *testing.T) {
	for _, n := range sizes(t) {
		t.Run(fmt.Sprintf("nodes=%d", n), func(t *testing.T) {
			r := simScale(t, n)
			t.Logf("SIMSCALE nodes=%d heap_per_node_mib=%.2f goroutines_per_node=%.0f published=%d delivery=%.4f gossip_p50=%s gossip_p99=%s "+
				"dht_lookups=%d dht_found=%d dht_p50=%s dht_p99=%s dht_peers_asked=%.1f ledger_payments=%d ledger_converge=%s rss_per_node_mib=%.2f "+
				"degree=%.1f peak_mean_degree=%.1f peak_max_degree=%d wall=%s",
				r.nodes, r.heapPerNode, r.goroutinesPerNode, r.published, float64(r.got)/float64(r.expected), r.p50, r.p99,
				r.dhtLookups, r.dhtFound, r.dhtP50, r.dhtP99, r.dhtQueried, r.payments, r.ledgerConverge, r.rssPerNode,
				r.degree, r.peakDegree, r.peakMaxDegree, r.totalWall.Round(time.Millisecond))
		})
	}
}

func simScale(t *testing.T, n int) (res scaleResult) {
	res.nodes = n
	wallStart := time.Now()
	synctest.Test(t, func(t *testing.T) {
		virtualStart, realStart := time.Now(), realNow(t)
		r := rand.New(rand.NewPCG(uint64(n), 7))
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		rss0 := rssMiB(t)
		g0 := runtime.NumGoroutine()
		// progress logs each phase's end as it happens (go test -v
		// prints it at once), so a long run shows how far it got.
		progress := func(phase string) {
			t.Logf("SIMPROGRESS nodes=%d phase=%s virtual=%s wall=%s rss_mib=%.0f goroutines=%d", n, phase,
				time.Since(virtualStart).Round(time.Millisecond), (realNow(t) - realStart).Round(time.Second), rssMiB(t), runtime.NumGoroutine())
		}
		nw, err := Start(t, Config{Nodes: n, RTT: 100 * time.Millisecond, Bandwidth: 50 * OneMbps, Tune: simTune})
		require.NoError(t, err)
		defer func() { require.NoError(t, nw.Stop()) }()
		progress("started")
		stopDegrees := degrees(nw)
		// Past joinAtOnce nodes, the network boots in waves (see
		// joinWave): a whole network of them booting in the same second
		// costs this machine more than it has.
		if n <= joinAtOnce {
			connectRandomly(t, nw, 4, r)
		} else {
			for from := 0; from < n; from += joinWave {
				connectRange(t, nw, from, min(from+joinWave, n), 4, r)
				progress(fmt.Sprintf("joined-%d", min(from+joinWave, n)))
				time.Sleep(joinGap)
			}
		}
		progress("connected")
		// Let identify, the DHT's first rounds and GossipSub settle, and
		// the connection manager trim (it looks every 10 s).
		time.Sleep(30 * time.Second)
		res.degree = meanDegree(nw)
		progress("settled")
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		// Signed: a test before this one may have left more heap behind
		// than this network holds at first.
		res.heapPerNode = (float64(after.HeapInuse) - float64(before.HeapInuse)) / float64(n) / (1 << 20)
		res.goroutinesPerNode = float64(runtime.NumGoroutine()-g0) / float64(n)
		res.rssPerNode = (rssMiB(t) - rss0) / float64(n)

		t.Logf("SIMPHASE nodes=%d settled: heap_per_node_mib=%.2f goroutines_per_node=%.0f rss_per_node_mib=%.2f degree=%.1f",
			n, res.heapPerNode, res.goroutinesPerNode, res.rssPerNode, res.degree)
		gossipRound(t, nw, r, &res, progress)
		progress("gossip")
		t.Logf("SIMPHASE nodes=%d gossip: published=%d delivery=%.4f p50=%s p99=%s", n, res.published,
			float64(res.got)/float64(res.expected), res.p50, res.p99)
		dhtRound(t, nw, r, &res)
		progress("dht")
		t.Logf("SIMPHASE nodes=%d dht: lookups=%d found=%d p50=%s p99=%s peers_asked=%.1f", n, res.dhtLookups, res.dhtFound,
			res.dhtP50, res.dhtP99, res.dhtQueried)
		ledgerRound(t, nw, r, &res)
		progress("ledger")
		res.peakDegree, res.peakMaxDegree = stopDegrees()
	})
	res.totalWall = time.Since(wallStart)
	return res
}

// realNow is the real time since the epoch, even inside a synctest
// bubble (whose clock is virtual): the kernel's, not the time package's.
func realNow(t *testing.T) time.Duration {
	var tv syscall.Timeval
	require.NoError(t, syscall.Gettimeofday(&tv))
	return time.Duration(tv.Nano())
}

// rssMiB is the process's resident set size (VmRSS).
func rssMiB(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			require.NoError(t, err)
			return kb / 1024
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

const benchTopic = "bench"

func gossipRound(t *testing.T, nw *Network, r *rand.Rand, res *scaleResult, progress func(string)) {
	n := len(nw.Nodes)
	var mu sync.Mutex
	var lat []time.Duration
	got := 0
	var wg sync.WaitGroup
	for _, nd := range nw.Nodes {
		sub, err := nd.GossipSubscribe(benchTopic)
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range sub.Messages() {
				if m.Local || len(m.Payload) < 8 {
					continue
				}
				sent := time.Unix(0, int64(binary.BigEndian.Uint64(m.Payload)))
				mu.Lock()
				lat = append(lat, time.Since(sent))
				got++
				mu.Unlock()
			}
		}()
		defer sub.Cancel()
	}
	// The meshes form over a few heartbeats.
	time.Sleep(5 * time.Second)
	var pubs []int
	for i := 0; i < n; i += 10 {
		pubs = append(pubs, i)
	}
	rounds, every := gossipRounds(n), 2*time.Second
	var pwg sync.WaitGroup
	for _, p := range pubs {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			// Publishers start out of step, as real ones do.
			time.Sleep(time.Duration(r.Int64N(int64(every))))
			for k := 0; k < rounds; k++ {
				payload := make([]byte, 2048)
				binary.BigEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
				_, err := nw.Nodes[p].GossipPublish(context.Background(), controlapi.GossipPublishRequest{Topic: benchTopic, Type: "application/octet-stream", Data: payload})
				if err != nil {
					t.Errorf("node %d publish: %v", p, err)
				}
				time.Sleep(every)
			}
		}()
	}
	pwg.Wait()
	progress("published")
	res.published = len(pubs) * rounds
	res.expected = res.published * (n - 1)
	// Give the last messages (and any fetched by announce) time to land.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		done := got >= res.expected
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	res.got = got
	res.p50, res.p99 = percentile(lat, 0.50), percentile(lat, 0.99)
	mu.Unlock()
	require.Equal(t, res.expected, res.got, "every message reaches every node")
}

func dhtRound(t *testing.T, nw *Network, r *rand.Rand, res *scaleResult) {
	n := len(nw.Nodes)
	lookups := min(20, n-1)
	var times []time.Duration
	queried := 0
	for k := 0; k < lookups; k++ {
		a, b := r.IntN(n), r.IntN(n)
		for a == b {
			b = r.IntN(n)
		}
		cctx, cancel := context.WithCancel(context.Background())
		ctx, events := routing.RegisterForQueryEvents(cctx)
		asked := map[string]bool{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for e := range events {
				if e.Type == routing.SendingQuery {
					asked[e.ID.String()] = true
				}
			}
		}()
		began := time.Now()
		rs, err := nw.Nodes[a].Resolve(ctx, nw.Nodes[b].Identity.DID)
		took := time.Since(began)
		cancel() // closes events
		<-done
		require.NoError(t, err)
		if rs.DHT == "found" {
			res.dhtFound++
		}
		times = append(times, took)
		queried += len(asked)
	}
	res.dhtLookups = lookups
	res.dhtP50, res.dhtP99 = percentile(times, 0.5), percentile(times, 0.99)
	res.dhtQueried = float64(queried) / float64(lookups)
	require.Equal(t, lookups, res.dhtFound, "every binding is found in the DHT")
}

func ledgerRound(t *testing.T, nw *Network, r *rand.Rand, res *scaleResult) {
	n := len(nw.Nodes)
	issuer := nw.Nodes[0]
	_, err := issuer.CreateCurrency(context.Background(), controlapi.CurrencyRequest{Symbol: "hours", Decimals: 0, CreditLimit: "1000000"})
	require.NoError(t, err)
	// Every node learns the currency and joins its topic.
	want := issuer.LedgerHead().StateHash
	waitEqual(t, nw, want, 60*time.Second)
	time.Sleep(5 * time.Second)
	authors := min(n, 50)
	began := time.Now()
	var wg sync.WaitGroup
	for _, a := range r.Perm(n)[:authors] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 3; k++ {
				to := nw.Nodes[(a+1+k)%n].Identity.DID.String()
				if _, err := nw.Nodes[a].Pay(context.Background(), controlapi.PayRequest{To: to, Amount: "1", Currency: "hours"}); err != nil {
					t.Errorf("node %d pay: %v", a, err)
				}
			}
		}()
	}
	wg.Wait()
	res.payments = authors * 3
	// Converged: every node holds every entry (1 currency + the payments)
	// and the same state hash.
	entries := 1 + res.payments
	deadline := time.Now().Add(120 * time.Second)
	for {
		h := nw.Nodes[0].LedgerHead()
		all := h.Entries == entries
		for _, nd := range nw.Nodes[1:] {
			if o := nd.LedgerHead(); o.StateHash != h.StateHash || o.Entries != entries {
				all = false
				break
			}
		}
		if all {
			break
		}
		require.True(t, time.Now().Before(deadline), "state hashes never converged")
		time.Sleep(50 * time.Millisecond)
	}
	res.ledgerConverge = time.Since(began)
}

func waitEqual(t *testing.T, nw *Network, want string, within time.Duration) {
	deadline := time.Now().Add(within)
	for _, nd := range nw.Nodes {
		for nd.LedgerHead().StateHash != want {
			require.True(t, time.Now().Before(deadline), "node %d never reached state %s", nd.Index, want)
			time.Sleep(50 * time.Millisecond)
		}
	}
}
