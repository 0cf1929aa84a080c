package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/node/controlapi"
)

// mountTmpfs mounts a tmpfs of size (as mount's size=, e.g. "80m") on dir
// and unmounts it when the test ends; it skips when it cannot mount.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs root on Linux to mount a tmpfs (CI runs as root)")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs on %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// fill writes zeros to path until the filesystem is full, and returns how
// many bytes it wrote.
func fill(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			return n
		}
		require.NoError(t, err)
	}
}

// Chaos, disk full: the data dir is a small tmpfs, filled while payments go
// on. The node refuses payments with an error naming the disk and the way
// out (instead of dying of SIGBUS in Badger's memory-mapped log, as it did
// before ledger/store kept space free), stays up, keeps its ledger clean,
// and takes payments again once space returns, without a restart: first by
// deleting the filler, then by growing the filesystem. Stopped on a full
// disk it stops cleanly; started on one it refuses with a clear error; once
// there is room it starts with every acknowledged payment.
func TestChaosDiskFull(t *testing.T) {
	dir := tempDir(t)
	// 80 MiB: the store keeps 64 MiB free, so payments work at first.
	mountTmpfs(t, dir, "80m")
	other := tempDir(t)
	initID(t, dir)
	payee := initID(t, other)
	cfg, p := writeConfig(t, dir, "127.0.0.1:0", "")
	d := startDaemon(t, dir, cfg, p)
	ok(t, dir, "ledger", "currency", "create", "hours", "--decimals", "0", "--credit-limit", "1000000")
	filler := filepath.Join(dir, "filler")
	ds := filepath.Join(dir, "datastore")
	var acked []string

	// fullWhilePaying fills the disk while payments go on, and requires
	// that payments are then refused with 507 and a clear message.
	fullWhilePaying := func(what string) {
		t.Helper()
		pay := startLoad(t, dir, payee.DID, "hours", what, 3)
		require.Eventually(t, func() bool { return pay.count() >= 20 }, 30*time.Second, 5*time.Millisecond)
		n := fill(t, filler)
		before := pay.count()
		require.Eventually(t, func() bool { return pay.errorsWith(http.StatusInsufficientStorage) >= 10 }, 30*time.Second, 5*time.Millisecond,
			"%s: payments not refused on a full disk; last error: %v", what, pay.lastError())
		acked = append(acked, pay.stop()...)
		require.LessOrEqual(t, pay.count()-before, 3, "%s: at most the payments in flight when the disk filled got through", what)
		t.Logf("%s: %d MiB of filler; %d payments acknowledged, then %d refused with 507", what, n>>20, len(acked), pay.errorsWith(http.StatusInsufficientStorage))
		require.Zero(t, pay.errorsWith(0), "%s: the daemon stopped answering", what)

		r := fail(t, dir, "ledger", "pay", payee.DID, "1", "hours")
		require.Contains(t, r.stderr, "icnctl: error: no space left for the ledger: the filesystem of "+ds+" has ")
		require.Contains(t, r.stderr, "(nothing was written)")
		require.Contains(t, r.stderr, "icnctl: hint: free space on the filesystem of "+ds)
		require.Contains(t, r.stderr, "without a restart")
		// Still up, still ready, nothing corrupt.
		code, _ := d.get("/ready")
		require.Equal(t, http.StatusOK, code, "%s: /ready on a full disk", what)
		status(t, dir)
		checkLedger(t, dir, acked, what)
		require.Contains(t, d.logs.String(), "disk nearly full: the ledger refuses new entries")
	}
	// payAgain requires that payments are taken again.
	payAgain := func(what string) {
		t.Helper()
		pay := startLoad(t, dir, payee.DID, "hours", what, 3)
		require.Eventually(t, func() bool { return pay.count() >= 20 }, 30*time.Second, 5*time.Millisecond,
			"%s: payments not taken again; last error: %v", what, pay.lastError())
		acked = append(acked, pay.stop()...)
		checkLedger(t, dir, acked, what)
	}

	// 1. Space returns by deleting the filler.
	fullWhilePaying("full (filler)")
	require.NoError(t, os.Remove(filler))
	payAgain("after deleting the filler")
	require.Contains(t, d.logs.String(), "disk space is back")

	// 2. Space returns by growing the filesystem.
	fullWhilePaying("full again")
	out, err := exec.Command("mount", "-o", "remount,size=160m", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	payAgain("after growing the tmpfs to 160 MiB")

	// 3. Stopped on a full disk: a clean stop (Badger is left as after a
	// crash rather than flushed into space it lacks); started on one: a
	// clear refusal; with room: every acknowledged payment.
	fill(t, filler)
	r := fail(t, dir, "ledger", "pay", payee.DID, "1", "hours")
	require.Contains(t, r.stderr, "no space left for the ledger")
	d.stop()
	require.Contains(t, d.logs.String(), "disk nearly full at close")
	require.NotContains(t, d.logs.String(), "SIGBUS")
	d = spawn(t, withPass(passphrase), nil, "--data-dir", dir, "--config", cfg)
	require.Equal(t, 1, d.wait(30*time.Second))
	logs := d.logs.String()
	require.Contains(t, logs, "icnd: error: no space left for the ledger: the filesystem of "+ds)
	require.Contains(t, logs, "(it was not opened)")
	require.Contains(t, logs, "icnd: hint: free space on the filesystem of "+ds)
	require.Contains(t, logs, "then start icnd again")
	require.NoError(t, os.Remove(filler))
	d = startDaemon(t, dir, cfg, p)
	head := checkLedger(t, dir, acked, "restarted after the full disk")
	require.Equal(t, len(acked)+1, head.Entries, "the currency and every acknowledged payment, nothing else")
	d.stop()
}

// Chaos, partition and heal: four daemons on one LAN of network namespaces
// (lan_test.go), found by mDNS. The bridge is split in two (nodes 1-2 on
// one, 3-4 on another) and every node pays on while partitioned: each side
// converges on its own state and the two differ. After the heal every node
// holds every acknowledged payment and all four state hashes are equal; the
// time from heal to convergence is logged. ICN_CHAOS_PARTITION sets how
// long the partition lasts (default 10s, shorter than QUIC's 30 s idle
// timeout, so connections survive it; `make bench` sets 45s, past it).
func TestChaosPartitionHeal(t *testing.T) {
	requireNetns(t)
	hold := chaosDuration(t, "ICN_CHAOS_PARTITION", 10*time.Second)
	const n = 4
	l := newLAN(t, n)
	br := strings.TrimSuffix(l.nodes[0], "-1") + "-br"
	dirs := make([]string, n)
	ids := make([]idJSON, n)
	for i := range n {
		dirs[i] = tempDir(t)
		ids[i] = initID(t, dirs[i])
	}
	for i := range n {
		cfg := writeMDNSConfig(t, dirs[i], l.addr(i)+":7777", "")
		startIn(t, l.nodes[i], dirs[i], cfg)
	}
	require.Eventually(t, func() bool {
		for i := range n {
			ps := peersOf(t, dirs[i])
			for j := range n {
				if j != i && !hasPeer(ps, ids[j].PeerID, ids[j].DID) {
					return false
				}
			}
		}
		return true
	}, 60*time.Second, 250*time.Millisecond, "the four daemons never meshed")
	cur := func(i int) string { return fmt.Sprintf("c%d", i+1) }
	for i := range n {
		ok(t, dirs[i], "ledger", "currency", "create", cur(i), "--decimals", "0", "--credit-limit", "1000000")
	}
	require.Eventually(t, func() bool { return converged(t, dirs, n) }, 60*time.Second, 250*time.Millisecond,
		"the currency definitions never reached every node")

	// Partition: nodes 3 and 4 move to a bridge of their own.
	ipCmd(t, "-n", br, "link", "add", "br1", "type", "bridge")
	ipCmd(t, "-n", br, "link", "set", "br1", "up")
	side := [][]int{{0, 1}, {2, 3}}
	for _, i := range side[1] {
		ipCmd(t, "-n", br, "link", "set", fmt.Sprintf("v%d", i+1), "master", "br1")
	}
	parted := time.Now()
	loads := make([]*load, n)
	for i := range n {
		// 1→2 and 3→4 pay within a side, 2→3 and 4→1 across it.
		loads[i] = startLoadEvery(t, dirs[i], ids[(i+1)%n].DID, cur(i), "partitioned", 1, 20*time.Millisecond)
	}
	sideDirs := func(s int) []string { return []string{dirs[side[s][0]], dirs[side[s][1]]} }
	// Every node pays on for the length of the partition.
	require.Eventually(t, func() bool { return time.Since(parted) >= hold }, hold+time.Minute, 100*time.Millisecond)
	var acked []string
	for _, ld := range loads {
		got := ld.stop()
		require.NotEmpty(t, got, "a node took no payment while partitioned: %v", ld.lastError())
		acked = append(acked, got...)
	}
	// Each side converges on its own state; the two differ.
	require.Eventually(t, func() bool { return converged(t, sideDirs(0), 0) && converged(t, sideDirs(1), 0) },
		time.Minute, 100*time.Millisecond, "the sides did not converge on their own while partitioned")
	a, _ := headOf(t, dirs[0])
	b, _ := headOf(t, dirs[2])
	require.NotEqual(t, a.StateHash, b.StateHash, "the partition did not part anything")
	require.Less(t, a.Entries, n+len(acked), "side 1 holds entries of side 2")

	// Heal.
	for _, i := range side[1] {
		ipCmd(t, "-n", br, "link", "set", fmt.Sprintf("v%d", i+1), "master", "br0")
	}
	healed := time.Now()
	total := n + len(acked)
	require.Eventually(t, func() bool { return converged(t, dirs, total) }, 3*time.Minute, 100*time.Millisecond,
		"state hashes did not converge after the heal")
	took := time.Since(healed)
	for i := range n {
		dids := make([]string, n)
		for j := range n {
			dids[j] = ids[j].DID
		}
		head := checkLedger(t, dirs[i], acked, fmt.Sprintf("node %d after the heal", i+1), dids...)
		require.Equal(t, total, head.Entries)
	}
	t.Logf("chaos partition: %s partitioned (2+2 nodes), %d payments acknowledged meanwhile (side 1 held %d entries, side 2 %d); "+
		"equal state hashes on all 4 nodes (%d entries) %s after the heal",
		hold, len(acked), a.Entries, b.Entries, total, took.Round(time.Millisecond))
}

// The load of the restart and rotation scenarios: about 60 payments and 10
// chat messages a second, within the default gossip rate limit of 100
// messages a second per peer.
const (
	loadGap = 30 * time.Millisecond
	chatGap = 100 * time.Millisecond
)

// twoNodes is a paying node a (issuer of "hours") on a fixed UDP port and
// a peer b that knows a as its bootstrap peer, connected, with b
// subscribed to a chat topic.
type twoNodes struct {
	a      *ledgerNode
	idA    controlapi.Status
	dirB   string
	idB    idJSON
	b      *daemon
	sub    *subscriber
	topic  string
	hostA  string
	cfgA   string
	portsA ports
}

func startTwoNodes(t *testing.T) *twoNodes {
	t.Helper()
	a := startLedgerNode(t)
	st := status(t, a.dir)
	hostA := udpHostPort(t, st.ListenAddrs[0])
	// Again on that port, so that b can come back to it.
	a.d.stop()
	cfgA, pa := writeConfig(t, a.dir, hostA, "")
	a.d = startDaemon(t, a.dir, cfgA, pa)
	a.cfg, a.ports = cfgA, pa
	dirB := tempDir(t)
	idB := initID(t, dirB)
	cfgB, pb := writeConfig(t, dirB, "127.0.0.1:0", fmt.Sprintf("bootstrap_peers = [%q]", st.ListenAddrs[0]+"/p2p/"+st.PeerID))
	b := startDaemon(t, dirB, cfgB, pb)
	require.Eventually(t, func() bool { return hasPeer(peersOf(t, a.dir), idB.PeerID, idB.DID) }, 30*time.Second, 100*time.Millisecond)
	const topic = "chat:chaos"
	n := &twoNodes{a: a, idA: st, dirB: dirB, idB: idB, b: b, topic: topic, hostA: hostA, cfgA: cfgA, portsA: pa}
	n.sub = startSubscriber(t, dirB, topic)
	ok(t, a.dir, "gossip", "publish", topic, "hello")
	n.sub.receives(t, "hello", 30*time.Second)
	return n
}

// Chaos, restart under load: a daemon paying a peer from several
// goroutines and publishing gossip is stopped with SIGTERM, round after
// round (ICN_CHAOS_ROUNDS, default 2, at most 10). Each stop is clean (exit 0, the
// control socket removed) within the shutdown bound; after each restart
// every acknowledged payment is there, the ledger verifies, the peer comes
// back by itself and reaches the same state hash, and gossip flows again.
func TestChaosRestartUnderLoad(t *testing.T) {
	rounds := min(chaosRounds(t, 2), 10)
	n := startTwoNodes(t)
	dirA := n.a.dir
	var acked []string
	var stops, backs []time.Duration
	for round := range rounds {
		pay := startLoadEvery(t, dirA, n.idB.DID, "hours", fmt.Sprintf("restart %d", round), 2, loadGap)
		chat := startChatter(t, dirA, n.topic, chatGap)
		require.Eventually(t, func() bool { p, _ := chat.counts(); return pay.count() >= 100 && p >= 10 }, 60*time.Second, 10*time.Millisecond)
		t0 := time.Now()
		n.a.d.stop() // SIGTERM; requires exit 0 within 12 s and no socket left
		stops = append(stops, time.Since(t0))
		acked = append(acked, pay.stop()...)
		chat.stop()

		t1 := time.Now()
		n.a.d = startDaemon(t, dirA, n.a.cfg, n.a.ports)
		head := checkLedger(t, dirA, acked, fmt.Sprintf("round %d", round))
		require.Eventually(t, func() bool { return converged(t, []string{dirA, n.dirB}, head.Entries) }, 90*time.Second, 100*time.Millisecond,
			"round %d: the peer did not come back to the same state", round)
		backs = append(backs, time.Since(t1))
		text := fmt.Sprintf("after restart %d", round)
		ok(t, dirA, "gossip", "publish", n.topic, text)
		n.sub.receives(t, text, 60*time.Second)
	}
	checkLedger(t, n.dirB, acked, "the peer", n.idA.DID)
	t.Logf("chaos restart under load: %d rounds, %d payments acknowledged, 0 lost; SIGTERM to exit %v; start to equal state hashes on the peer (the ledger checked meanwhile) %v",
		rounds, len(acked), roundAll(stops), roundAll(backs))
	n.a.d.stop()
}

// Chaos, key rotation under load: `icnctl id rotate` on a daemon paying a
// peer and publishing gossip. The DID stays, the peer ID changes, the peer
// is connected to the new one by itself, payments go on (a failure during
// the swap of the network stack is counted and reported, never a lost
// acknowledgement), and both reach the same state hash.
func TestChaosKeyRotationUnderLoad(t *testing.T) {
	rounds := min(chaosRounds(t, 2), 5)
	n := startTwoNodes(t)
	dirA := n.a.dir
	pay := startLoadEvery(t, dirA, n.idB.DID, "hours", "rotation", 2, loadGap)
	chat := startChatter(t, dirA, n.topic, chatGap)
	var swaps []time.Duration
	peerID := n.idA.PeerID
	for round := range rounds {
		require.Eventually(t, func() bool { return pay.count() >= 50*(round+1) }, 60*time.Second, 10*time.Millisecond)
		t0 := time.Now()
		rot := decode[idJSON](t, ok(t, dirA, "id", "rotate", "--json"))
		require.Equal(t, n.idA.DID, rot.DID)
		require.NotEqual(t, peerID, rot.PeerID)
		require.Equal(t, uint64(round+2), rot.BindingSeq)
		peerID = rot.PeerID
		require.Eventually(t, func() bool { return hasPeer(peersOf(t, n.dirB), rot.PeerID, n.idA.DID) }, 30*time.Second, 100*time.Millisecond,
			"round %d: the peer is not connected to the new peer ID", round)
		swaps = append(swaps, time.Since(t0))
		before := pay.count()
		require.Eventually(t, func() bool { return pay.count() >= before+20 }, 30*time.Second, 10*time.Millisecond,
			"round %d: payments stopped after the rotation: %v", round, pay.lastError())
		text := fmt.Sprintf("after rotation %d", round)
		ok(t, dirA, "gossip", "publish", n.topic, text)
		n.sub.receives(t, text, 60*time.Second)
	}
	acked := pay.stop()
	chat.stop()
	published, chatFailed := chat.counts()
	head := checkLedger(t, dirA, acked, "after the rotations")
	require.Eventually(t, func() bool { return converged(t, []string{dirA, n.dirB}, head.Entries) }, 90*time.Second, 100*time.Millisecond,
		"the peer did not reach the same state")
	checkLedger(t, n.dirB, acked, "the peer", n.idA.DID)
	require.Equal(t, peerID, status(t, dirA).PeerID)
	var failed int
	pay.mu.Lock()
	for _, c := range pay.errs {
		failed += c
	}
	pay.mu.Unlock()
	t.Logf("chaos key rotation under load: %d rotations, %d payments acknowledged (0 lost), %d failed during the swaps (by status: %v); "+
		"%d gossip messages published, %d failed; rotate to reconnected %v",
		rounds, len(acked), failed, pay.errs, published, chatFailed, roundAll(swaps))
	n.a.d.stop()
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
