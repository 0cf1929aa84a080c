package trustgraph_test

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/testutil"
	"github.com/intercooperative/icn/ledger/store"
	"github.com/intercooperative/icn/node/trustgraph"
	"github.com/intercooperative/icn/trust"
)

type member struct {
	did did.DID
	key ed25519.PrivateKey
}

func newMember(t *testing.T, seed byte) member {
	t.Helper()
	k := ed25519.NewKeyFromSeed(append(make([]byte, 31), seed))
	d, err := did.FromPublicKey(k.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	return member{d, k}
}

// open opens a graph over a namespace of a real Badger store in dir.
func open(t *testing.T, dir string, self did.DID, now func() time.Time) (*trustgraph.Graph, *prometheus.Registry, func()) {
	t.Helper()
	s, err := store.Open(context.Background(), dir, store.Options{})
	require.NoError(t, err)
	ns, err := s.Namespace("/trust")
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	g, err := trustgraph.Open(context.Background(), ns, trustgraph.Options{Self: self, Registry: reg, Now: now})
	require.NoError(t, err)
	return g, reg, func() { require.NoError(t, s.Close()) }
}

func attestation(t *testing.T, by member, about did.DID, score float64, seq uint64, issued, expires time.Time) []byte {
	t.Helper()
	b, err := trust.Sign(&trust.Attestation{Issuer: by.did, Subject: about, Score: score, IssuedAt: issued, ExpiresAt: expires, Seq: seq}, by.key)
	require.NoError(t, err)
	return b
}

// What the graph accepts is kept across a reopen, counted by result, and
// changes the scores at once.
func TestIngestPersistsAndScores(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ds")
	me, alice, bob := newMember(t, 1), newMember(t, 2), newMember(t, 3)
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	g, reg, closeStore := open(t, dir, me.did, clock)

	_, _, err := g.Attest(context.Background(), me.key, alice.did, 0.9, []string{"coop:bakery"}, time.Time{})
	require.NoError(t, err)
	require.Equal(t, trust.Federated, g.Class(alice.did))
	res, err := g.Ingest(context.Background(), [][]byte{
		attestation(t, alice, bob.did, 1, 1, now, time.Time{}),
		attestation(t, alice, bob.did, 1, 1, now, time.Time{}), // the same again
		{0x01, 0x02},
	})
	require.NoError(t, err)
	require.Equal(t, []trust.Result{trust.Accepted, trust.Duplicate, trust.Malformed}, res)
	require.Greater(t, g.Scores().Score(bob.did), 0.0, "bob is scored through alice")
	require.Equal(t, float64(2), testutil.MetricSum(t, reg, "icn_trust_edges_total", nil))
	require.Equal(t, float64(1), testutil.MetricSum(t, reg, "icn_trust_attestations_received_total", map[string]string{"result": "malformed"}))
	before := g.Scores().Score(bob.did)
	closeStore()

	g, _, closeStore = open(t, dir, me.did, clock)
	defer closeStore()
	require.Len(t, g.Edges(), 2)
	require.Equal(t, before, g.Scores().Score(bob.did), "the same graph gives the same score")
}

// An attestation newer than the held one that has already lapsed is held
// and stored as the issuer's newest word: the edge carries nothing, and the
// older attestation, replayed, is outdated, after a reopen too.
func TestLapsedNewerWordDropsTheEdge(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ds")
	me, alice, bob := newMember(t, 1), newMember(t, 2), newMember(t, 3)
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	g, _, closeStore := open(t, dir, me.did, clock)
	_, err := g.Ingest(context.Background(), [][]byte{attestation(t, alice, bob.did, 1, 1, now.Add(-time.Hour), time.Time{})})
	require.NoError(t, err)
	_, held := g.Get(alice.did, bob.did)
	require.True(t, held)
	res, err := g.Ingest(context.Background(), [][]byte{attestation(t, alice, bob.did, 1, 2, now.Add(-time.Hour), now.Add(-time.Minute))})
	require.NoError(t, err)
	require.Equal(t, []trust.Result{trust.Expired}, res)
	a, held := g.Get(alice.did, bob.did)
	require.True(t, held)
	require.Equal(t, uint64(2), a.Seq)
	require.Empty(t, g.Edges())
	closeStore()
	g, _, closeStore = open(t, dir, me.did, clock)
	defer closeStore()
	a, held = g.Get(alice.did, bob.did)
	require.True(t, held, "storage followed the graph")
	require.Equal(t, uint64(2), a.Seq)
	res, err = g.Ingest(context.Background(), [][]byte{attestation(t, alice, bob.did, 1, 1, now.Add(-time.Hour), time.Time{})})
	require.NoError(t, err)
	require.Equal(t, []trust.Result{trust.Outdated}, res, "the older word cannot come back")
	require.Empty(t, g.Edges())
}

// This node's own attestations get a seq that supersedes what it made
// before, even in the same millisecond, and a revocation takes the edge out.
func TestAttestSupersedes(t *testing.T) {
	me, alice := newMember(t, 1), newMember(t, 2)
	now := time.Unix(1_800_000_000, 0)
	g, _, closeStore := open(t, filepath.Join(t.TempDir(), "ds"), me.did, func() time.Time { return now })
	defer closeStore()
	a1, _, err := g.Attest(context.Background(), me.key, alice.did, 0.5, nil, time.Time{})
	require.NoError(t, err)
	a2, _, err := g.Attest(context.Background(), me.key, alice.did, 0.8, nil, time.Time{})
	require.NoError(t, err)
	require.Greater(t, a2.Seq, a1.Seq)
	require.Equal(t, trust.Federated, g.Class(alice.did))
	_, _, err = g.Attest(context.Background(), me.key, alice.did, 0, nil, time.Time{})
	require.NoError(t, err)
	require.Equal(t, trust.Isolated, g.Class(alice.did))
	require.Empty(t, g.Edges())
}
