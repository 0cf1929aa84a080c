package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/node/controlapi"
)

func blockedList(t *testing.T, dir string) []controlapi.BlockEntry {
	t.Helper()
	return decode[[]controlapi.BlockEntry](t, ok(t, dir, "network", "blocked", "--json"))
}

func blockedMetricValue(t *testing.T, d *daemon, direction string) float64 {
	t.Helper()
	_, m := d.get("/metrics")
	return metricValue(t, m, fmt.Sprintf("icn_network_connections_blocked_total{direction=%q}", direction))
}

// The operator's way to stop a bad peer: a block holds against the peer's
// redials (here its bootstrap watchdog), lists with reason and expiry,
// refuses bad input with a hint, survives an icnd restart, and unblocking
// lets the peer back.
func TestBlockHoldsAgainstRedialsAndSurvivesRestart(t *testing.T) {
	dirA, dirB := tempDir(t), tempDir(t)
	idA, idB := initID(t, dirA), initID(t, dirB)
	cfgA, pa := writeConfig(t, dirA, "127.0.0.1:0", "")
	a := startDaemon(t, dirA, cfgA, pa)
	sa := status(t, dirA)
	hostA := udpHostPort(t, sa.ListenAddrs[0])
	// b redials a whenever it is cut off: what made `network disconnect` useless.
	cfgB, pb := writeConfig(t, dirB, "127.0.0.1:0", fmt.Sprintf("bootstrap_peers = [%q]", sa.ListenAddrs[0]+"/p2p/"+sa.PeerID))
	b := startDaemon(t, dirB, cfgB, pb)
	require.Eventually(t, func() bool { return hasPeer(peers(t, dirA), idB.PeerID, idB.DID) }, 30*time.Second, 100*time.Millisecond)

	require.Equal(t, "nothing blocked\n", ok(t, dirA, "network", "blocked"))
	require.Empty(t, blockedList(t, dirA))

	// Bad input: a clear error and a hint, nothing blocked.
	for _, tc := range []struct {
		args      []string
		err, hint string
	}{
		{[]string{"garbage"}, `"garbage" is neither a peer ID nor a DID`, "icnctl: hint: give a peer ID (12D3Koo…) or a DID (did:icn:z…)"},
		{[]string{"did:icn:zzz"}, "neither a peer ID nor a DID", "icnctl: hint: give a peer ID"},
		{[]string{idA.DID}, "is this node itself", "icnctl: hint: block another node's peer ID or DID"},
		{[]string{idA.PeerID}, "is this node itself", "icnctl: hint: block another node's peer ID or DID"},
		{[]string{idB.DID, "--for", "-5m"}, "a block lasts a positive time", "icnctl: hint: --for takes a positive duration"},
		{[]string{idB.DID, "--for", "soon"}, `--for "soon" is not a duration`, "icnctl: hint: --for takes a positive duration"},
		{[]string{idB.DID, "--reason", "two\nlines"}, "the reason holds control characters", "icnctl: hint: --reason takes one line of text"},
		{[]string{}, "expected one PEER_ID or DID, got 0 arguments", "icnctl: hint: usage: icnctl network block PEER_ID|DID"},
	} {
		r := fail(t, dirA, append([]string{"network", "block"}, tc.args...)...)
		require.Contains(t, r.stderr, tc.err, tc.args)
		require.Contains(t, r.stderr, tc.hint, tc.args)
	}
	r := fail(t, dirA, "network", "unblock", idB.DID)
	require.Equal(t, "icnctl: error: "+idB.DID+" is not blocked\nicnctl: hint: `icnctl network blocked` lists them\n", r.stderr)
	require.Empty(t, blockedList(t, dirA))

	// Block b's DID: disconnected now, and b's redials are refused.
	res := decode[controlapi.BlockResult](t, ok(t, dirA, "network", "block", idB.DID, "--reason", "bad ledger entries", "--json"))
	require.Equal(t, idB.DID, res.Blocked.Target)
	require.Equal(t, "did", res.Blocked.Kind)
	require.Equal(t, []string{idB.PeerID}, res.Disconnected)
	require.Equal(t, []string{idB.PeerID}, res.Blocked.Peers)
	require.Nil(t, res.Blocked.ExpiresAt)
	before := blockedMetricValue(t, a, "inbound")
	require.Eventually(t, func() bool {
		require.False(t, hasPeer(peers(t, dirA), idB.PeerID, idB.DID), "a blocked peer is connected")
		return blockedMetricValue(t, a, "inbound") >= before+2
	}, 60*time.Second, 200*time.Millisecond, "b's redials never reached a")
	require.Contains(t, a.logs.String(), "SECURITY blocked peer refused")
	// a cannot dial b either.
	r = fail(t, dirA, "network", "dial", status(t, dirB).ListenAddrs[0]+"/p2p/"+idB.PeerID)
	require.Contains(t, r.stderr, idB.PeerID+" is refused: its DID "+idB.DID+" is blocked (bad ledger entries)")

	// A second, timed block by peer ID, in text.
	out := ok(t, dirA, "network", "block", idB.PeerID, "--for", "2h")
	require.True(t, strings.HasPrefix(out, "blocked peer "+idB.PeerID+" until "), out)
	list := blockedList(t, dirA)
	require.Len(t, list, 2)
	require.Equal(t, idB.DID, list[0].Target)
	require.Equal(t, "bad ledger entries", list[0].Reason)
	require.Equal(t, idB.PeerID, list[1].Target)
	require.Equal(t, "peer", list[1].Kind)
	require.NotNil(t, list[1].ExpiresAt)
	require.Equal(t, 2*time.Hour, list[1].ExpiresAt.Sub(list[1].CreatedAt))
	raw := decode[[]map[string]any](t, ok(t, dirA, "network", "blocked", "--json"))
	for _, k := range []string{"target", "kind", "reason", "created_at", "expires_at", "peers"} {
		require.Contains(t, raw[0], k)
	}
	require.Nil(t, raw[0]["expires_at"])
	text := ok(t, dirA, "network", "blocked")
	require.Contains(t, text, "TARGET")
	require.Contains(t, text, "bad ledger entries")
	require.Contains(t, text, "never")
	require.Contains(t, text, "peer "+idB.PeerID)

	// Restart a on the same address: the blocks are still there and held.
	a.stop()
	cfgA, pa = writeConfig(t, dirA, hostA, "")
	a = startDaemon(t, dirA, cfgA, pa)
	after := blockedList(t, dirA)
	require.Len(t, after, 2)
	for i := range list {
		require.Equal(t, list[i].Target, after[i].Target)
		require.True(t, list[i].CreatedAt.Equal(after[i].CreatedAt))
	}
	require.Eventually(t, func() bool {
		require.False(t, hasPeer(peers(t, dirA), idB.PeerID, idB.DID), "a blocked peer is connected after restart")
		return blockedMetricValue(t, a, "inbound") >= 1
	}, 60*time.Second, 200*time.Millisecond, "b's redials never reached the restarted a")

	// Unblock both: a may dial b again.
	require.Equal(t, "unblocked DID "+idB.DID+"\n", ok(t, dirA, "network", "unblock", idB.DID))
	u := decode[controlapi.UnblockResult](t, ok(t, dirA, "network", "unblock", idB.PeerID, "--json"))
	require.Equal(t, idB.PeerID, u.Unblocked.Target)
	require.Equal(t, "nothing blocked\n", ok(t, dirA, "network", "blocked"))
	ok(t, dirA, "network", "dial", status(t, dirB).ListenAddrs[0]+"/p2p/"+idB.PeerID)
	require.Eventually(t, func() bool { return hasPeer(peers(t, dirB), idA.PeerID, idA.DID) }, 10*time.Second, 100*time.Millisecond)

	a.stop()
	b.stop()
}
