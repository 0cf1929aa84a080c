package trust

import (
	"math/rand/v2"
	"testing"

	"github.com/intercooperative/icn/did"
)

// benchGraph is 2,000 DIDs each attesting 5 random others: 10,000 edges.
func benchGraph(b *testing.B) (*Graph, []did.DID) {
	b.Helper()
	r := rand.New(rand.NewPCG(1, 1))
	ds := ids(b, "bench", 2000)
	g := NewGraph()
	for i := range ds {
		for n := 0; n < 5; {
			j := r.IntN(len(ds))
			if j == i {
				continue
			}
			if g.Add(edge(ds[i], ds[j], float64(1+r.IntN(MaxBP))/MaxBP), t0) == Accepted {
				n++
			}
		}
	}
	if g.Len() != 10000 {
		b.Fatalf("%d edges", g.Len())
	}
	return g, ds
}

func BenchmarkCompute10kEdges(b *testing.B) {
	g, ds := benchGraph(b)
	b.ReportAllocs()
	var s *Scores
	for b.Loop() {
		s = Compute(g, ds[0], Params{}, t0)
	}
	b.ReportMetric(float64(len(s.All())), "scored")
	b.ReportMetric(float64(s.Rounds()), "rounds")
}

func BenchmarkPaths10kEdges(b *testing.B) {
	g, ds := benchGraph(b)
	s := Compute(g, ds[0], Params{}, t0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Paths(ds[1+i%(len(ds)-1)], 5)
		i++
	}
}

// BenchmarkAdd: Add of a verified attestation, a new seq of one of 10,000
// edges each time (the encoding and hash are in it; no signature check).
func BenchmarkAdd(b *testing.B) {
	g, _ := benchGraph(b)
	pool := g.All()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a := *pool[i%len(pool)]
		a.Seq = uint64(2 + i/len(pool))
		if g.Add(&a, t0) != Accepted {
			b.Fatal("not accepted")
		}
		i++
	}
}

// BenchmarkAddBlock: decode, verify the signature, add: the cost of one
// attestation from the network.
func BenchmarkAddBlock(b *testing.B) {
	const n = 2048
	issuers := make([]member, 64)
	for i := range issuers {
		issuers[i] = newMember(b, "bench-issuer", i)
	}
	subjects := ids(b, "bench-subject", n/len(issuers))
	blocks := make([][]byte, 0, n)
	for _, m := range issuers {
		for _, s := range subjects {
			_, block := signed(b, m, Attestation{Subject: s, Score: 0.75, Labels: []string{"member"}, IssuedAt: t0, Seq: 1})
			blocks = append(blocks, block)
		}
	}
	b.ReportAllocs()
	g := NewGraph()
	i := 0
	for b.Loop() {
		if i%n == 0 {
			b.StopTimer()
			g = NewGraph()
			b.StartTimer()
		}
		if r, _ := g.AddBlock(blocks[i%n], t0); r != Accepted {
			b.Fatal(r)
		}
		i++
	}
}

// BenchmarkAddBlockDuplicate: a block already held (gossip brings most
// blocks more than once): decoded and hashed, no signature check.
func BenchmarkAddBlockDuplicate(b *testing.B) {
	m, s := newMember(b, "dup", 0), newMember(b, "dup", 1)
	_, block := signed(b, m, Attestation{Subject: s.id, Score: 0.75, IssuedAt: t0, Seq: 1})
	g := NewGraph()
	g.AddBlock(block, t0)
	b.ReportAllocs()
	for b.Loop() {
		if r, _ := g.AddBlock(block, t0); r != Duplicate {
			b.Fatal(r)
		}
	}
}

// BenchmarkDecode: the strict decode alone (both keys are checked to be
// curve points, the block re-encoded).
func BenchmarkDecode(b *testing.B) {
	m, s := newMember(b, "dec", 0), newMember(b, "dec", 1)
	_, block := signed(b, m, Attestation{Subject: s.id, Score: 0.75, Labels: []string{"member"}, IssuedAt: t0, Seq: 1})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(block); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify: the signature check of a decoded attestation.
func BenchmarkVerify(b *testing.B) {
	m, s := newMember(b, "ver", 0), newMember(b, "ver", 1)
	a, _ := signed(b, m, Attestation{Subject: s.id, Score: 0.75, Labels: []string{"member"}, IssuedAt: t0, Seq: 1})
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Verify(); err != nil {
			b.Fatal(err)
		}
	}
}
