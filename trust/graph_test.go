package trust

import (
	"crypto/sha256"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
)

func TestAddResults(t *testing.T) {
	alice, bob, carol := newMember(t, "alice", 0), newMember(t, "bob", 0), newMember(t, "carol", 0)
	at := func(seq uint64, score float64, expires time.Time) *Attestation {
		a, _ := signed(t, alice, Attestation{Subject: bob.id, Score: score, IssuedAt: t0, ExpiresAt: expires, Seq: seq})
		return a
	}
	g := NewGraph()
	require.Equal(t, Accepted, g.Add(at(2, 0.5, time.Time{}), t0))
	require.Equal(t, Duplicate, g.Add(at(2, 0.5, time.Time{}), t0))
	require.Equal(t, Outdated, g.Add(at(1, 0.9, time.Time{}), t0))
	require.Equal(t, Replayed, g.Add(at(2, 0.9, time.Time{}), t0), "same seq, other content")
	got, ok := g.Get(EdgeKey{alice.id, bob.id})
	require.True(t, ok)
	require.Equal(t, 0.5, got.Score)
	require.Equal(t, Accepted, g.Add(at(3, 0.7, time.Time{}), t0))
	got, _ = g.Get(EdgeKey{alice.id, bob.id})
	require.Equal(t, 0.7, got.Score)
	require.Equal(t, 1, g.Len())

	// A revocation is the newest word: it is held, and beats older ones.
	require.Equal(t, Accepted, g.Add(at(4, 0, time.Time{}), t0))
	require.Equal(t, Outdated, g.Add(at(3, 0.7, time.Time{}), t0))
	require.Empty(t, g.Edges(t0))
	require.Len(t, g.All(), 1)

	// A live attestation that expires later: held, then carrying nothing
	// from its ExpiresAt.
	c, _ := signed(t, alice, Attestation{Subject: carol.id, Score: 0.5, IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), Seq: 1})
	require.Equal(t, Accepted, g.Add(c, t0))
	require.Len(t, g.Edges(t0.Add(time.Hour-time.Second)), 1)
	require.Empty(t, g.Edges(t0.Add(time.Hour)), "expired at ExpiresAt")

	// An attestation newer than the held one that has already expired is
	// the issuer's newest word all the same: held (carrying nothing), so
	// the older one replayed later is outdated, as on a node that held the
	// newer one while it was live.
	c2, _ := signed(t, alice, Attestation{Subject: carol.id, Score: 0.9, IssuedAt: t0, ExpiresAt: t0.Add(time.Minute), Seq: 2})
	require.Equal(t, Expired, g.Add(c2, t0.Add(2*time.Minute)))
	got, ok = g.Get(c.Key())
	require.True(t, ok)
	require.Equal(t, uint64(2), got.Seq)
	require.Equal(t, Outdated, g.Add(c, t0))
	require.Empty(t, g.Edges(t0.Add(2*time.Minute)), "an expired newest word leaves the edge empty")
	require.Equal(t, 2, g.Len())

	// So is an expired attestation of an edge never seen before.
	dave := newMember(t, "dave", 0)
	d2, _ := signed(t, alice, Attestation{Subject: dave.id, Score: 0.9, IssuedAt: t0, ExpiresAt: t0.Add(time.Minute), Seq: 2})
	d1, _ := signed(t, alice, Attestation{Subject: dave.id, Score: 0.9, IssuedAt: t0, Seq: 1})
	require.Equal(t, Expired, g.Add(d2, t0.Add(time.Hour)))
	require.Equal(t, Outdated, g.Add(d1, t0.Add(time.Hour)))

	require.Equal(t, Malformed, g.Add(nil, t0))
	unsigned := *at(9, 0.5, time.Time{})
	unsigned.Signature = nil
	require.Equal(t, Malformed, g.Add(&unsigned, t0), "Add needs a signature to store a block")
}

func TestAddKeepsACopy(t *testing.T) {
	a, b := newMember(t, "a", 0).id, newMember(t, "b", 0).id
	e := edge(a, b, 0.5)
	e.Labels = []string{"x"}
	g := graphOf(t, e)
	e.Score, e.Labels[0] = 0.9, "y"
	got, _ := g.Get(e.Key())
	require.Equal(t, 0.5, got.Score)
	require.Equal(t, []string{"x"}, got.Labels)
}

func TestAddBlock(t *testing.T) {
	alice, bob := newMember(t, "alice", 0), newMember(t, "bob", 0)
	a, block := signed(t, alice, Attestation{Subject: bob.id, Score: 0.5, IssuedAt: t0, Seq: 1})
	g := NewGraph()
	r, got := g.AddBlock(block, t0)
	require.Equal(t, Accepted, r)
	require.Equal(t, a.Signature, got.Signature)
	held, ok := g.Block(a.Key())
	require.True(t, ok)
	require.Equal(t, block, held)
	block[len(block)-1] ^= 1 // the graph holds its own copy
	held, _ = g.Block(a.Key())
	require.NotEqual(t, block, held)
	block[len(block)-1] ^= 1

	r, _ = g.AddBlock(block, t0)
	require.Equal(t, Duplicate, r)

	forged := append([]byte(nil), block...)
	forged[len(forged)-1] ^= 1
	r, got = g.AddBlock(forged, t0)
	require.Equal(t, BadSignature, r)
	require.NotNil(t, got)

	// A bad signature is reported as such even where the seq would be
	// replayed or outdated: only what verifies is counted as those.
	_, b2 := signed(t, alice, Attestation{Subject: bob.id, Score: 0.6, IssuedAt: t0, Seq: 1})
	r, _ = g.AddBlock(b2, t0)
	require.Equal(t, Replayed, r)

	r, got = g.AddBlock([]byte{0xa0}, t0)
	require.Equal(t, Malformed, r)
	require.Nil(t, got)
}

func TestMaxPerIssuer(t *testing.T) {
	ds := ids(t, "cap", 5)
	g := NewGraph()
	g.SetMaxPerIssuer(3)
	for i := 1; i <= 3; i++ {
		require.Equal(t, Accepted, g.Add(edge(ds[0], ds[i], 0.5), t0))
	}
	require.Equal(t, TooMany, g.Add(edge(ds[0], ds[4], 0.5), t0))
	// A newer attestation of an edge held is not a new edge.
	e := edge(ds[0], ds[1], 0.9)
	e.Seq = 2
	require.Equal(t, Accepted, g.Add(e, t0))
	require.Equal(t, Accepted, g.Add(edge(ds[1], ds[4], 0.5), t0), "per issuer")
	require.Equal(t, 4, g.Len())
}

func TestEdgesSortedAndPrune(t *testing.T) {
	ds := ids(t, "sort", 6)
	var as []*Attestation
	for i := range ds {
		for j := range ds {
			if i != j {
				e := edge(ds[i], ds[j], 0.5)
				switch (i + j) % 3 {
				case 0:
					e.ExpiresAt = t0.Add(time.Hour) // expired at t0+1h, pruned after t0+1h+7d
				case 1:
					e.Score = 0 // revoked: never pruned
				}
				as = append(as, e)
			}
		}
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(as), func(i, j int) { as[i], as[j] = as[j], as[i] })
	g := graphOf(t, as...)
	all := g.All()
	require.Len(t, all, 30)
	for i := 1; i < len(all); i++ {
		require.Negative(t, all[i-1].Key().Compare(all[i].Key()))
	}
	live := g.Edges(t0)
	require.Len(t, live, 10+10) // (i+j)%3 == 0 (live until 1h) and == 2
	require.Len(t, g.Edges(t0.Add(time.Hour)), 10)
	for i := 1; i < len(live); i++ {
		require.Negative(t, live[i-1].Key().Compare(live[i].Key()))
	}
	before := g.Summary()
	require.Zero(t, g.Prune(t0.Add(time.Hour+PruneAfter)))
	require.Equal(t, 10, g.Prune(t0.Add(time.Hour+PruneAfter+time.Second)))
	require.Equal(t, 20, g.Len())
	require.Len(t, g.All(), 20)
	require.NotEqual(t, before, g.Summary())
	require.Equal(t, summaryOf(g.All(), g), g.Summary())
}

// summaryOf computes a summary from scratch, from the blocks.
func summaryOf(as []*Attestation, g *Graph) Summary {
	s := Summary{}
	for _, a := range as {
		b, _ := g.Block(a.Key())
		h := sha256.Sum256(b)
		d := s[a.Issuer]
		d.Count++
		xor(&d.Digest, &h)
		s[a.Issuer] = d
	}
	return s
}

// randomGraphAttestations makes up to m random attestations among ds, some
// edges with several seqs (never two contents for one seq: those are
// replays, and which one a graph holds depends on arrival order).
func randomGraphAttestations(r *rand.Rand, ds []did.DID, m int) []*Attestation {
	type edgeSeq struct {
		k   EdgeKey
		seq uint64
	}
	seen := map[edgeSeq]bool{}
	var out []*Attestation
	for range m {
		i, j := r.IntN(len(ds)), r.IntN(len(ds))
		e := edge(ds[i], ds[j], float64(r.IntN(MaxBP+1))/MaxBP)
		e.Seq = uint64(1 + r.IntN(3))
		if i == j || seen[edgeSeq{e.Key(), e.Seq}] {
			continue
		}
		seen[edgeSeq{e.Key(), e.Seq}] = true
		out = append(out, e)
	}
	return out
}

func TestSummaryAndMissing(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	ds := ids(t, "sync", 30)
	for iter := range 20 {
		as := randomGraphAttestations(r, ds, 200)
		a, b := NewGraph(), NewGraph()
		for _, e := range as {
			a.Add(e, t0)
			if r.IntN(3) > 0 {
				b.Add(e, t0) // b misses a third, and may hold older seqs
			}
		}
		require.Equal(t, summaryOf(a.All(), a), a.Summary(), "iteration %d", iter)
		// One round trip brings b up to date with a.
		missing := a.Missing(b.Summary(), 0)
		for _, e := range missing {
			b.Add(e, t0)
		}
		require.Empty(t, a.Missing(b.Summary(), 0))
		for iss, d := range a.Summary() {
			require.Equal(t, d, b.Summary()[iss])
		}
		// The same in pages of 7, with the cursor.
		c := NewGraph()
		var after EdgeKey
		for pages := 0; ; pages++ {
			require.Less(t, pages, 100)
			page, more := a.MissingAfter(c.Summary(), after, 7)
			require.LessOrEqual(t, len(page), 7)
			for _, e := range page {
				require.Equal(t, Accepted, c.Add(e, t0))
				after = e.Key()
			}
			if !more {
				break
			}
		}
		require.Equal(t, a.Summary(), c.Summary())
		require.Len(t, a.Missing(Summary{}, 5), min(5, a.Len()))
	}
}

func TestSummaryOrderIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	ds := ids(t, "order", 10)
	as := randomGraphAttestations(r, ds, 60)
	g1 := NewGraph()
	for _, e := range as {
		g1.Add(e, t0)
	}
	r.Shuffle(len(as), func(i, j int) { as[i], as[j] = as[j], as[i] })
	g2 := NewGraph()
	for _, e := range as {
		g2.Add(e, t0)
	}
	require.Equal(t, g1.Summary(), g2.Summary())
	require.Equal(t, g1.All(), g2.All())
}

func TestSummaryEncoding(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	g := NewGraph()
	for _, e := range randomGraphAttestations(r, ids(t, "enc", 12), 50) {
		g.Add(e, t0)
	}
	s := g.Summary()
	b, err := s.Encode()
	require.NoError(t, err)
	got, err := DecodeSummary(b, len(s))
	require.NoError(t, err)
	require.Equal(t, s, got)
	_, err = DecodeSummary(b, len(s)-1)
	require.ErrorIs(t, err, ErrMalformed)
	empty, err := Summary{}.Encode()
	require.NoError(t, err)
	got, err = DecodeSummary(empty, 0)
	require.NoError(t, err)
	require.Empty(t, got)
	for _, bad := range [][]byte{nil, {0x81, 0x80}, {0x9f, 0xff}, append(b, 0)} {
		_, err := DecodeSummary(bad, 100)
		require.ErrorIs(t, err, ErrMalformed)
	}
}

func TestAddHoldsTimesAsDecoded(t *testing.T) {
	ds := ids(t, "tz", 2)
	e := edge(ds[0], ds[1], 0.5)
	e.IssuedAt = time.Unix(1_700_000_000, 0).In(time.FixedZone("x", 3600))
	e.ExpiresAt = time.Now().Add(time.Hour).Truncate(time.Second) // with a monotonic reading
	g := graphOf(t, e)
	got, _ := g.Get(e.Key())
	block, _ := g.Block(e.Key())
	dec, err := Decode(block)
	require.NoError(t, err)
	require.Equal(t, dec.IssuedAt, got.IssuedAt)
	require.Equal(t, dec.ExpiresAt, got.ExpiresAt)
}
