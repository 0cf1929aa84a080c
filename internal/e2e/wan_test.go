package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/netem"
	"github.com/intercooperative/icn/node/controlapi"
)

// Emulated-WAN figures with real daemons (docs/benchmarks.md, "Emulated
// WAN"). Each test measures the loopback baseline in the same run, then
// the same through the emulated links of wanConds. With ICN_BENCH=1 they
// take more samples and the ledger is 100,000 entries; without, they are
// sized to keep the suite short and still fail when a figure is far off.
//
//	ICN_BENCH=1 go test -timeout 30m -run TestWAN -v ./internal/e2e/

// Connect + first byte: the time of `network dial` until the node holds
// the peer's DID binding. That is the QUIC handshake (1 RTT), identify,
// which the host waits for (1 RTT), and the node's own identity exchange,
// /icn/id/1.0.0 (1 RTT): 3 RTTs, go-libp2p's published figure for QUIC.
func TestWANConnect(t *testing.T) {
	logMachine(t)
	samples := 7
	if wanBench() {
		samples = 30
	}
	dirs, ids := initWANDirs(t, 2)
	// A is reachable; B, like a node behind a NAT, announces an address
	// nobody can dial, so A never dials around the link.
	nodes := startWANNodes(t, dirs, ids, []string{"", blackhole(t)})
	a, b := nodes[0], nodes[1]
	conds := wanConds()
	links := make([]*netem.Forwarder, len(conds))
	for i, c := range conds {
		links[i] = c.link(t, a, uint64(i+1))
	}
	took := make([]dist, len(conds))
	// Round 0 warms each path up (the first dial of a process pays for
	// lazy set-up) and is not counted; the conditions take turns, so a
	// busy moment of the shared machine does not hit one of them only.
	for round := range samples + 1 {
		for i := range conds {
			b.disconnect(t, a)
			start := time.Now()
			p, err := b.c.Dial(wanCtx(t, 30*time.Second), controlapi.DialRequest{Addr: a.addrVia(links[i])})
			d := time.Since(start)
			require.NoError(t, err, conds[i].name)
			require.Equal(t, a.id.DID, p.DID, "the dial returned without the peer's DID")
			b.requireVia(t, a, links[i])
			if round > 0 {
				took[i] = append(took[i], d)
			}

		}
	}
	base := took[0].q(0.5)
	t.Logf("WAN connect: connect + first byte (dial until the DID binding is held), %d dials each:", samples)
	t.Logf("WAN connect | path | median ms | p90 ms | min ms | median RTTs | (median − loopback) RTTs |")
	for i, c := range conds {
		med := took[i].q(0.5)
		t.Logf("WAN connect | %s | %s | %s | %s | %s | %s |", c.name, ms(med), ms(took[i].q(0.9)), ms(took[i].q(0)),
			rtts(med, c.rtt), rtts(med-base, c.rtt))
		t.Logf("  link: %s", linkReport(links[i]))
	}
	for i, c := range conds {
		if c.rtt == 0 {
			continue
		}
		// Fewer than 2 RTTs cannot be (a handshake and one request): the
		// link is not in the path. More than 6 is a regression.
		med := took[i].q(0.5)
		require.GreaterOrEqual(t, took[i].q(0), 2*c.rtt, "%s: fastest dial %s", c.name, took[i].q(0))
		require.Less(t, med, 6*c.rtt+500*time.Millisecond, "%s: median %s", c.name, med)
	}
}

// Gossip latency: a message published on A (the control API's publish)
// until B's subscription stream delivers it; 2 KiB messages, one every
// 50 ms, each waited for.
func TestWANGossip(t *testing.T) {
	logMachine(t)
	samples := 20
	if wanBench() {
		samples = 200
	}
	const topic = "wan:latency"
	dirs, ids := initWANDirs(t, 2)
	nodes := startWANNodes(t, dirs, ids, []string{"", blackhole(t)})
	a, b := nodes[0], nodes[1]

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := b.c.GossipSubscribe(ctx, topic)
	require.NoError(t, err)
	defer sub.Close()
	type arrival struct {
		text string
		at   time.Time
	}
	arrivals := make(chan arrival, 1024)
	go func() {
		defer close(arrivals)
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				return
			}
			arrivals <- arrival{m.Text, time.Now()}
		}
	}()
	// await waits for the message that starts with prefix, skipping others.
	await := func(prefix string, within time.Duration) (time.Time, bool) {
		deadline := time.After(within)
		for {
			select {
			case m, ok := <-arrivals:
				if !ok {
					return time.Time{}, false // the subscription ended
				}
				if strings.HasPrefix(m.text, prefix) {
					return m.at, true
				}
			case <-deadline:
				return time.Time{}, false
			}
		}
	}
	publish := func(text string) controlapi.GossipPublished {
		p, err := a.c.GossipPublish(wanCtx(t, 10*time.Second), controlapi.GossipPublishRequest{Topic: topic, Data: []byte(text)})
		require.NoError(t, err)
		return p
	}
	pad := strings.Repeat("x", 2048)

	conds := wanConds()
	took := make([]dist, len(conds))
	links := make([]*netem.Forwarder, len(conds))
	for i, c := range conds {
		links[i] = c.link(t, a, uint64(10+i))
		b.disconnect(t, a)
		_, err := b.c.Dial(wanCtx(t, 30*time.Second), controlapi.DialRequest{Addr: a.addrVia(links[i])})
		require.NoError(t, err, c.name)
		b.requireVia(t, a, links[i])
		// Until A has heard of B's subscription, it publishes to nobody.
		probes := 0
		require.Eventually(t, func() bool {
			probes++
			prefix := fmt.Sprintf("probe %d %d ", i, probes)
			p, err := a.c.GossipPublish(wanCtx(t, 10*time.Second), controlapi.GossipPublishRequest{Topic: topic, Data: []byte(prefix + pad)})
			if err != nil || p.Peers == 0 {
				return false
			}
			_, ok := await(prefix, 3*time.Second)
			return ok
		}, 60*time.Second, 100*time.Millisecond, "%s: no probe message reached B", c.name)
		tick := time.NewTicker(50 * time.Millisecond)
		for s := range samples {
			<-tick.C
			prefix := fmt.Sprintf("msg %d %d ", i, s)
			start := time.Now()
			publish(prefix + pad)
			at, ok := await(prefix, 20*time.Second)
			require.True(t, ok, "%s: message %d never arrived", c.name, s)
			took[i] = append(took[i], at.Sub(start))
		}
		tick.Stop()
	}
	t.Logf("WAN gossip: latency (publish on A → B's subscription), %d messages of 2 KiB each:", samples)
	t.Logf("WAN gossip | path | p50 ms | p90 ms | p99 ms | max ms | p50 − loopback p50, in one-way delays |")
	base := took[0].q(0.5)
	for i, c := range conds {
		med := took[i].q(0.5)
		t.Logf("WAN gossip | %s | %s | %s | %s | %s | %s |", c.name, ms(med), ms(took[i].q(0.9)), ms(took[i].q(0.99)), ms(took[i].q(1)),
			rtts(med-base, c.rtt/2))
		t.Logf("  link: %s", linkReport(links[i]))
	}
	for i, c := range conds {
		if c.rtt == 0 {
			continue
		}
		// A message crosses once: at least the one-way delay, and on a
		// lossy path the median is still about one crossing.
		med := took[i].q(0.5)
		require.GreaterOrEqual(t, med, c.rtt/2, "%s: p50 %s", c.name, med)
		require.Less(t, med, 2*c.rtt+250*time.Millisecond, "%s: p50 %s", c.name, med)
	}
}

// Ledger catch-up: a new, empty node dials one that holds n entries and
// pulls them all (/icn/ledgersync/2.0.0, started when identify completes),
// until its state hash is the other's.
func TestWANLedgerCatchUp(t *testing.T) {
	logMachine(t)
	n := 2000
	if wanBench() {
		n = 100_000
	}
	// A first pull over loopback warms A up (its block cache, the first
	// response of a process) and is reported but not the baseline.
	conds := append([]wanCond{{name: "loopback, warm-up"}}, wanConds()...)
	const baseline = 1
	dirs, ids := initWANDirs(t, 1+len(conds))
	size := fillWANLedger(t, dirs[0], n)
	hole := blackhole(t)
	announce := []string{""}
	for range conds {
		announce = append(announce, hole)
	}
	nodes := startWANNodes(t, dirs, ids, announce)
	a := nodes[0]
	var want string
	require.Eventually(t, func() bool {
		h, err := a.c.Head(wanCtx(t, 10*time.Second))
		want = h.StateHash
		return err == nil && h.Accepted == n
	}, 5*time.Minute, 50*time.Millisecond, "A did not load its ledger")

	took := make([]time.Duration, len(conds))
	cpu := make([]time.Duration, len(conds)) // B's CPU time during its catch-up
	links := make([]*netem.Forwarder, len(conds))
	for i, c := range conds {
		links[i] = c.link(t, a, uint64(20+i))
	}
	// catchUp has node 1+i pull everything over conds[i]'s path. It runs
	// on the test's goroutine or another: it fails with Errorf, not
	// FailNow.
	catchUp := func(i int) {
		c, b := conds[i], nodes[1+i]
		cpu0 := procCPU(t, b.d.cmd.Process.Pid)
		start := time.Now()
		_, err := b.c.Dial(wanCtx(t, 30*time.Second), controlapi.DialRequest{Addr: a.addrVia(links[i])})
		if !assert.NoError(t, err, c.name) || !b.assertVia(t, a, links[i]) {
			return
		}
		if !assert.Eventually(t, func() bool {
			h, err := b.c.Head(wanCtx(t, 10*time.Second))
			return err == nil && h.StateHash == want
		}, 15*time.Minute, 20*time.Millisecond, "%s: B never caught up", c.name) {
			return
		}
		took[i] = time.Since(start)
		cpu[i] = procCPU(t, b.d.cmd.Process.Pid) - cpu0
		b.assertVia(t, a, links[i]) // the whole pull went over the link
		if f := links[i]; f != nil {
			_, down := f.Stats()
			assert.GreaterOrEqual(t, down.DeliveredBytes, int64(size), "%s: the entries did not all cross the link", c.name)
		}
		b.d.stop()
	}
	// The paths without impairment are bound by CPU: one at a time, the
	// baseline alone. The impaired ones are bound by their links (a
	// receiver uses a quarter of a core or less): all at once, which takes
	// the slowest one's time instead of the sum.
	var wg sync.WaitGroup
	for i, c := range conds {
		if !c.impaired() {
			catchUp(i)
			require.False(t, t.Failed())
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			catchUp(i)
		}()
	}
	wg.Wait()
	require.False(t, t.Failed())
	t.Logf("WAN catchup: ledger catch-up of %d entries (%s of blocks; %.0f bytes each):", n, mib(int64(size)), float64(size)/float64(n))
	t.Logf("WAN catchup | path | seconds | entries/s | × loopback | goodput Mbit/s | link bytes / block bytes | receiver CPU, cores |")
	for i, c := range conds {
		over := "–"
		if f := links[i]; f != nil {
			up, down := f.Stats()
			over = fmt.Sprintf("%.2f", float64(up.Bytes+down.Bytes)/float64(size))
		}
		t.Logf("WAN catchup | %s | %.2f | %.0f | %.2f | %.2f | %s | %.2f |", c.name, took[i].Seconds(), float64(n)/took[i].Seconds(),
			took[i].Seconds()/took[baseline].Seconds(), float64(size)*8/took[i].Seconds()/1e6, over, cpu[i].Seconds()/took[i].Seconds())
		t.Logf("  link: %s", linkReport(links[i]))
	}
	for i, c := range conds {
		if c.rate == 0 {
			continue
		}
		// The rate limit is a floor: the blocks cannot cross faster.
		floor := time.Duration(float64(size) * 8 / float64(c.rate) * float64(time.Second))
		require.GreaterOrEqual(t, took[i], floor, "%s: faster than the link's rate", c.name)
	}
}
