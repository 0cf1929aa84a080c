package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/node/controlapi"
)

// writeTrustConfig is writeConfig for a loopback node with a [trust] table
// holding trustTOML.
func writeTrustConfig(t *testing.T, dir, trustTOML string) (string, ports) {
	t.Helper()
	path, p := writeConfig(t, dir, "127.0.0.1:0", "")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = fmt.Fprintf(f, "\n[trust]\n%s\n", trustTOML)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return path, p
}

// dialAddr is the multiaddr another node dials to reach the node in dir.
func dialAddr(t *testing.T, dir string) string {
	t.Helper()
	st := status(t, dir)
	require.NotEmpty(t, st.ListenAddrs)
	return st.ListenAddrs[0] + "/p2p/" + st.PeerID
}

// metricSum sums every series of the metric name in an exposition (0 when
// it has none).
func metricSum(t *testing.T, exposition, name string) float64 {
	t.Helper()
	var sum float64
	for _, line := range strings.Split(exposition, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		require.NoError(t, err, line)
		sum += v
	}
	return sum
}

func (d *daemon) metric(t *testing.T, name string) float64 {
	t.Helper()
	_, m := d.get("/metrics")
	return metricSum(t, m, name)
}

// logLine says whether one line of the logs holds every one of parts.
func logLine(logs string, parts ...string) bool {
	for _, line := range strings.Split(logs, "\n") {
		all := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func trustView(t *testing.T, dir, d string) controlapi.TrustView {
	t.Helper()
	return decode[controlapi.TrustView](t, ok(t, dir, "trust", "show", d, "--json"))
}

func trustGraph(t *testing.T, dir string) controlapi.TrustGraph {
	t.Helper()
	return decode[controlapi.TrustGraph](t, ok(t, dir, "trust", "graph", "--json"))
}

func hasEdge(g controlapi.TrustGraph, issuer, subject string) (controlapi.TrustEdge, bool) {
	for _, e := range g.Edges {
		if e.Issuer == issuer && e.Subject == subject {
			return e, true
		}
	}
	return controlapi.TrustEdge{}, false
}

// In trusted mode a stranger's connection is refused after the handshake,
// logged with its peer ID and DID, and counted; the stranger's operator is
// told the guard hung up and what its operator would run. The guard's own
// dial to the stranger is refused with the command that admits it. Once
// the guard attests the stranger, it connects; once it revokes, it is cut
// off again.
func TestTrustedModeRefusesUntrustedConnections(t *testing.T) {
	dirG, dirS := tempDir(t), tempDir(t)
	initID(t, dirG)
	idS := initID(t, dirS)
	cfgG, pg := writeTrustConfig(t, dirG, `mode = "trusted"`)
	g := startDaemon(t, dirG, cfgG, pg)
	cfgS, ps := writeConfig(t, dirS, "127.0.0.1:0", "")
	s := startDaemon(t, dirS, cfgS, ps)
	addrG, addrS := dialAddr(t, dirG), dialAddr(t, dirS)

	v := trustView(t, dirG, idS.DID)
	require.Equal(t, "trusted", v.Mode)
	require.Equal(t, "isolated", v.Class)
	require.False(t, v.MayConnect)

	r := fail(t, dirS, "network", "dial", addrG)
	require.Equal(t, float64(1), g.metric(t, "icn_network_connections_rejected_untrusted_total"), "one dial, one refused handshake")
	require.Contains(t, r.stderr, "closed the connection right after the handshake: it refuses this node")
	require.Contains(t, r.stderr, "icnctl: hint: if that node runs [trust] mode = \"trusted\", its operator admits this one with `icnctl trust add "+idS.DID+" SCORE`")
	require.Eventually(t, func() bool {
		return logLine(g.logs.String(), "SECURITY untrusted peer refused", "peer="+idS.PeerID, "did="+idS.DID, "direction=inbound")
	}, 10*time.Second, 50*time.Millisecond, "no SECURITY line for the stranger")
	require.False(t, hasPeer(peers(t, dirG), idS.PeerID, idS.DID))

	// The guard dialling the stranger is refused by its own policy.
	before := g.metric(t, "icn_network_connections_rejected_untrusted_total")
	r = fail(t, dirG, "network", "dial", addrS)
	require.Contains(t, r.stderr, "icnctl: error: "+idS.PeerID+" is refused: its DID "+idS.DID+" scores 0 here (isolated), and trusted mode connects only to DIDs scoring 0.1 or more")
	require.Contains(t, r.stderr, "icnctl: hint: this node runs in trusted mode: `icnctl trust add "+idS.DID+" 0.1` (or more) admits it")
	require.Greater(t, g.metric(t, "icn_network_connections_rejected_untrusted_total"), before)

	// Trusted: the stranger connects.
	e := decode[controlapi.TrustEdge](t, ok(t, dirG, "trust", "add", idS.DID, "0.5", "--json"))
	require.Equal(t, idS.DID, e.Subject)
	require.Equal(t, 0.5, e.Score)
	v = trustView(t, dirG, idS.DID)
	require.Equal(t, "partner", v.Class)
	require.True(t, v.MayConnect)
	out := ok(t, dirS, "network", "dial", addrG)
	require.Contains(t, out, "connected to "+status(t, dirG).PeerID+" (did:icn:")
	require.Eventually(t, func() bool { return hasPeer(peers(t, dirG), idS.PeerID, idS.DID) }, 10*time.Second, 100*time.Millisecond)

	// Revoked: the guard hangs up on it, and counts it (the log line is
	// not repeated within 10 s of the last one for that peer).
	before = g.metric(t, "icn_network_connections_rejected_untrusted_total")
	ok(t, dirG, "trust", "remove", idS.DID)
	require.Eventually(t, func() bool { return !hasPeer(peers(t, dirG), idS.PeerID, idS.DID) }, 10*time.Second, 100*time.Millisecond,
		"the guard kept a peer whose attestation it revoked")
	require.Greater(t, g.metric(t, "icn_network_connections_rejected_untrusted_total"), before)
	s.stop()
	g.stop()
}

// In trusted mode with connections open to all but ledger entries only by
// known DIDs, a stranger's entries are refused (a completed sync stores
// none of them, and the stranger is not blamed); once trusted, they arrive.
func TestTrustedModeRefusesUntrustedLedgerEntries(t *testing.T) {
	dirG, dirS := tempDir(t), tempDir(t)
	idG, idS := initID(t, dirG), initID(t, dirS)
	cfgG, pg := writeTrustConfig(t, dirG, "mode = \"trusted\"\nmin_connect_class = \"isolated\"\nmin_ledger_class = \"known\"")
	g := startDaemon(t, dirG, cfgG, pg)
	cfgS, ps := writeConfig(t, dirS, "127.0.0.1:0", "")
	s := startDaemon(t, dirS, cfgS, ps)

	ok(t, dirS, "ledger", "currency", "create", "hours", "--decimals", "2")
	ok(t, dirS, "ledger", "pay", idG.DID, "5", "hours", "--memo", "bread")
	headS := decode[controlapi.Head](t, ok(t, dirS, "ledger", "head", "--json"))
	require.Equal(t, 2, headS.Entries, "the currency and the payment")

	v := trustView(t, dirG, idS.DID)
	require.True(t, v.MayConnect)
	require.False(t, v.MayLedger)
	ok(t, dirS, "network", "dial", dialAddr(t, dirG))
	require.Eventually(t, func() bool { return hasPeer(peers(t, dirG), idS.PeerID, idS.DID) }, 10*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool { return g.metric(t, "icn_ledger_sync_last_success_timestamp_seconds") > 0 },
		30*time.Second, 100*time.Millisecond, "the guard never completed a sync")
	rep := decode[controlapi.SyncReport](t, ok(t, dirG, "ledger", "sync", idS.DID, "--json"))
	require.Equal(t, 2, rep.Received, "the stranger offered its entries")
	require.Zero(t, rep.New)
	require.Zero(t, rep.Rejected, "the policy refused them, not the stranger's fault")
	headG := decode[controlapi.Head](t, ok(t, dirG, "ledger", "head", "--json"))
	require.Zero(t, headG.Entries, "the guard stored an untrusted author's entries")
	require.Zero(t, g.metric(t, "icn_ledger_sync_entries_rejected_total"))

	ok(t, dirG, "trust", "add", idS.DID, "0.5")
	require.True(t, trustView(t, dirG, idS.DID).MayLedger)
	require.Eventually(t, func() bool {
		ctl(t, dirG, "ledger", "sync", idS.DID)
		h := decode[controlapi.Head](t, ok(t, dirG, "ledger", "head", "--json"))
		return h.Entries == 2 && h.StateHash == headS.StateHash
	}, 30*time.Second, 200*time.Millisecond, "the stranger's entries never arrived once it was trusted")
	bal := decode[[]controlapi.Balance](t, ok(t, dirG, "ledger", "balance", idG.DID, "--currency", "hours", "--json"))
	require.Equal(t, "5.00", bal[0].Balance)
	s.stop()
	g.stop()
}

// An attestation made on one node reaches the others and changes their
// view: B (trusted mode) trusts A; A attests C; B holds the edge, scores C
// through A, and so lets C connect; A's revocation reaches B, which drops
// C's score and its connection.
func TestTrustAttestationsSpread(t *testing.T) {
	dirA, dirB, dirC := tempDir(t), tempDir(t), tempDir(t)
	idA, idB, idC := initID(t, dirA), initID(t, dirB), initID(t, dirC)
	cfgA, pa := writeConfig(t, dirA, "127.0.0.1:0", "")
	a := startDaemon(t, dirA, cfgA, pa)
	cfgB, pb := writeTrustConfig(t, dirB, `mode = "trusted"`)
	b := startDaemon(t, dirB, cfgB, pb)
	cfgC, pc := writeConfig(t, dirC, "127.0.0.1:0", "")
	c := startDaemon(t, dirC, cfgC, pc)
	addrB := dialAddr(t, dirB)

	ok(t, dirB, "trust", "add", idA.DID, "0.9")
	ok(t, dirA, "network", "dial", addrB)
	require.Eventually(t, func() bool { return hasPeer(peers(t, dirB), idA.PeerID, idA.DID) }, 10*time.Second, 100*time.Millisecond)
	// A holds B's attestation of it (sync on connect, or gossip).
	require.Eventually(t, func() bool {
		_, ok := hasEdge(trustGraph(t, dirA), idB.DID, idA.DID)
		return ok
	}, 30*time.Second, 100*time.Millisecond, "B's attestation never reached A")

	// C is a stranger to B.
	require.Equal(t, "isolated", trustView(t, dirB, idC.DID).Class)
	fail(t, dirC, "network", "dial", addrB)

	ok(t, dirA, "trust", "add", idC.DID, "0.8", "--label", "coop:bakery")
	require.Eventually(t, func() bool {
		_, ok := hasEdge(trustGraph(t, dirB), idA.DID, idC.DID)
		return ok
	}, 30*time.Second, 100*time.Millisecond, "A's attestation never reached B")
	gB := trustGraph(t, dirB)
	require.Equal(t, idB.DID, gB.Self)
	e, _ := hasEdge(gB, idA.DID, idC.DID)
	require.Equal(t, 0.8, e.Score)
	require.Equal(t, []string{"coop:bakery"}, e.Labels)
	v := trustView(t, dirB, idC.DID)
	require.Greater(t, v.Score, 0.1, "B scores C through A")
	require.Nil(t, v.Direct, "B attests nothing about C itself")
	require.NotEmpty(t, v.Paths)
	require.Equal(t, []string{idB.DID, idA.DID, idC.DID}, v.Paths[0].Via)
	require.True(t, v.MayConnect)
	require.Equal(t, float64(len(gB.Edges)), b.metric(t, "icn_trust_edges_total"))
	_, m := b.get("/metrics")
	require.GreaterOrEqual(t, metricValue(t, m, `icn_trust_attestations_received_total{result="accepted"}`), float64(1), "A's attestation of C")

	// So C may connect to B now.
	ok(t, dirC, "network", "dial", addrB)
	require.Eventually(t, func() bool { return hasPeer(peers(t, dirB), idC.PeerID, idC.DID) }, 10*time.Second, 100*time.Millisecond)

	// A's revocation reaches B: the edge goes, C's score with it, and B
	// hangs up on C.
	ok(t, dirA, "trust", "remove", idC.DID)
	require.Eventually(t, func() bool {
		_, ok := hasEdge(trustGraph(t, dirB), idA.DID, idC.DID)
		return !ok
	}, 30*time.Second, 100*time.Millisecond, "A's revocation never reached B")
	v = trustView(t, dirB, idC.DID)
	require.Zero(t, v.Score)
	require.False(t, v.MayConnect)
	require.Eventually(t, func() bool { return !hasPeer(peers(t, dirB), idC.PeerID, idC.DID) }, 10*time.Second, 100*time.Millisecond,
		"B kept C connected after the revocation")
	for _, d := range []*daemon{c, b, a} {
		d.stop()
	}
}

// `icnctl trust` as an operator meets it: the outputs (text and JSON), and
// each bad input refused with the cause and a hint.
func TestTrustCommands(t *testing.T) {
	dir, dirO := tempDir(t), tempDir(t)
	id := initID(t, dir)
	other := initID(t, dirO) // never started: a DID to attest
	third := initID(t, tempDir(t))
	never := initID(t, tempDir(t))
	cfg, p := writeConfig(t, dir, "127.0.0.1:0", "")
	d := startDaemon(t, dir, cfg, p)

	require.Equal(t, "this node attests no trust yet (icnctl trust add DID SCORE)\n", ok(t, dir, "trust", "list"))
	require.Equal(t, "[]\n", ok(t, dir, "trust", "list", "--json"))
	out := ok(t, dir, "trust", "add", other.DID, "0.8", "--label", "coop:bakery", "--label", "region:north")
	require.Regexp(t, `^trusting `+other.DID+` at 0\.8 \[coop:bakery, region:north\] \(seq \d+\)\n$`, out)
	e := decode[controlapi.TrustEdge](t, ok(t, dir, "trust", "add", third.DID, "0.3", "--expires", "720h", "--json"))
	require.Equal(t, id.DID, e.Issuer)
	require.NotNil(t, e.ExpiresAt)
	require.WithinDuration(t, time.Now().Add(720*time.Hour), *e.ExpiresAt, time.Minute)
	list := decode[[]controlapi.TrustEdge](t, ok(t, dir, "trust", "list", "--json"))
	require.Len(t, list, 2)
	text := ok(t, dir, "trust", "list")
	require.Contains(t, text, "SUBJECT")
	require.Contains(t, text, "coop:bakery,region:north")
	require.Contains(t, text, "never")

	v := trustView(t, dir, other.DID)
	require.Equal(t, "federated", v.Class)
	require.Equal(t, "open", v.Mode)
	require.NotNil(t, v.Direct)
	text = ok(t, dir, "trust", "show", other.DID)
	require.Contains(t, text, "score 0.8, class federated (mode open: connect yes, ledger yes, gossip yes)")
	require.Contains(t, text, "direct: this node attests 0.8 [coop:bakery, region:north]")
	require.Contains(t, text, "path 0.8: "+id.DID+" -> "+other.DID)
	g := trustGraph(t, dir)
	require.Len(t, g.Edges, 2)
	require.Len(t, g.Scores, 3, "itself and the two it attests")
	text = ok(t, dir, "trust", "graph")
	require.Contains(t, text, "2 edges, 3 scored DIDs")
	require.Contains(t, text, id.DID+"  (this node)")

	for _, tc := range []struct {
		args      []string
		err, hint string
	}{
		{[]string{"add", "did:icn:zzz", "0.5"}, `invalid DID "did:icn:zzz"`, "a DID looks like did:icn:z…"},
		{[]string{"add", "bob", "0.5"}, `invalid DID "bob"`, "a DID looks like did:icn:z…"},
		{[]string{"add", other.DID, "1.5"}, "score 1.5 is not from 0 to 1", "a trust score is a number from 0 (none) to 1 (full), e.g. 0.8"},
		{[]string{"add", other.DID, "-0.2"}, "score -0.2 is not from 0 to 1", "a trust score is a number from 0 (none) to 1 (full)"},
		{[]string{"add", other.DID, "x"}, `score "x" is not a number`, "a trust score is a number from 0 (none) to 1 (full)"},
		{[]string{"add", other.DID, "NaN"}, `score "NaN" is not a number`, "a trust score is a number from 0 (none) to 1 (full)"},
		{[]string{"add", other.DID, "0.5", "--expires", "soon"}, `--expires "soon" is not a positive duration`, "give a duration such as 720h"},
		{[]string{"add", other.DID, "0.5", "--expires", "-5h"}, `--expires "-5h" is not a positive duration`, "give a duration such as 720h"},
		{[]string{"add", other.DID, "0.5", "--label", "Bad!"}, `label "Bad!" has 'B'`, "labels are 1-32 characters of a-z, 0-9 and : _ . -"},
		{[]string{"add", other.DID, "0.5", "--label", strings.Repeat("a", 33)}, "label", "labels are 1-32 characters"},
		{[]string{"add", id.DID, "0.5"}, "a node does not attest trust in itself", "attest trust in another member's DID"},
		{[]string{"add", other.DID}, "expected DID and SCORE, got 1 arguments", "usage: icnctl trust add DID SCORE"},
		{[]string{"remove", third.DID + "x"}, "invalid DID", "a DID looks like did:icn:z…"},
		{[]string{"remove", never.DID}, "this node does not attest trust in " + never.DID, "`icnctl trust list` lists this node's attestations"},
		{[]string{"show", "bob"}, `invalid DID "bob"`, "a DID looks like did:icn:z…"},
		{[]string{"show"}, "expected one DID, got 0 arguments", "usage: icnctl trust show DID"},
	} {
		r := fail(t, dir, append([]string{"trust"}, tc.args...)...)
		require.Contains(t, r.stderr, tc.err, tc.args)
		require.Contains(t, r.stderr, "\nicnctl: hint: ", tc.args)
		require.Contains(t, r.stderr, tc.hint, tc.args)
	}
	// A DID attested once and revoked has nothing left to remove.
	require.Regexp(t, `^no longer trusting `+third.DID+` \(seq \d+\)\n$`, ok(t, dir, "trust", "remove", third.DID))
	r := fail(t, dir, "trust", "remove", third.DID)
	require.Equal(t, "icnctl: error: this node does not attest trust in "+third.DID+"\nicnctl: hint: `icnctl trust list` lists this node's attestations\n", r.stderr)
	require.Len(t, decode[[]controlapi.TrustEdge](t, ok(t, dir, "trust", "list", "--json")), 1, "bad input changed nothing")
	d.stop()
}
