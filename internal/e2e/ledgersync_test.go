package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/node/controlapi"
)

// `icnctl ledger sync` as an operator meets it: without a daemon, without
// peers, with a peer (all of them or one by DID), and with a DID that is
// not connected.
func TestLedgerSyncCommand(t *testing.T) {
	dirA, dirB, dirC := tempDir(t), tempDir(t), tempDir(t)
	idA := initID(t, dirA)
	initID(t, dirB)
	stranger := initID(t, dirC) // never started

	r := fail(t, dirA, "ledger", "sync")
	require.Contains(t, r.stderr, "icnctl: error: icnd is not running")
	require.Contains(t, r.stderr, "icnctl: hint: start it with `icnd")

	cfgA, pa := writeConfig(t, dirA, "127.0.0.1:0", "")
	a := startDaemon(t, dirA, cfgA, pa)
	r = fail(t, dirA, "ledger", "sync")
	require.Contains(t, r.stderr, "icnctl: error: no peers connected")
	require.Contains(t, r.stderr, "icnctl: hint: `icnctl network dial")

	ok(t, dirA, "ledger", "currency", "create", "hours")
	ok(t, dirA, "ledger", "pay", stranger.DID, "5", "hours")

	cfgB, pb := writeConfig(t, dirB, "127.0.0.1:0", "")
	b := startDaemon(t, dirB, cfgB, pb)
	sa := status(t, dirA)
	ok(t, dirB, "network", "dial", sa.ListenAddrs[0]+"/p2p/"+sa.PeerID)
	require.Eventually(t, func() bool { return hasPeer(peers(t, dirB), idA.PeerID, idA.DID) }, 10*time.Second, 100*time.Millisecond)

	rep := decode[controlapi.SyncReport](t, ok(t, dirB, "ledger", "sync", "--json"))
	require.Len(t, rep.Peers, 1)
	require.Equal(t, idA.PeerID, rep.Peers[0].PeerID)
	require.Equal(t, idA.DID, rep.Peers[0].DID)
	require.Empty(t, rep.Peers[0].Error)
	require.Zero(t, rep.Failed)
	headA := decode[controlapi.Head](t, ok(t, dirA, "ledger", "head", "--json"))
	headB := decode[controlapi.Head](t, ok(t, dirB, "ledger", "head", "--json"))
	require.Equal(t, headA.StateHash, headB.StateHash, "b holds a's entries once the sync has returned")

	out := ok(t, dirB, "ledger", "sync", idA.DID)
	require.Contains(t, out, "PEER ID")
	require.Contains(t, out, idA.PeerID)
	require.Contains(t, out, "total (1 peer)")

	r = fail(t, dirB, "ledger", "sync", stranger.DID)
	require.Contains(t, r.stderr, "icnctl: error: not connected to "+stranger.DID)
	require.Contains(t, r.stderr, "icnctl: hint: connect first with `icnctl network dial "+stranger.DID)
	r = fail(t, dirB, "ledger", "sync", "nobody")
	require.Contains(t, r.stderr, "neither a peer ID nor a DID")

	_, metrics := b.get("/metrics")
	require.Zero(t, metricValue(t, metrics, "icn_ledger_sync_lag_entries"), "no sync running: no lag")
	b.stop()
	a.stop()
}
