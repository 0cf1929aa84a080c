package trust

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
)

// The Sybil tests: an attacker makes as many DIDs as it likes, all
// attesting each other at 1.0, and gets k attestations ("attack edges")
// from honest DIDs into its region. The score rule must bound the trust
// the region gathers by the attack edges, not by its size.

// honestGraph: each honest DID attests deg random others at weights in
// [0.3, 1].
func honestGraph(r *rand.Rand, honest []did.DID, deg int) []*Attestation {
	var out []*Attestation
	seen := map[EdgeKey]bool{}
	for i := range honest {
		for range deg {
			j := r.IntN(len(honest))
			a := edge(honest[i], honest[j], float64(3000+r.IntN(7001))/MaxBP)
			if i != j && !seen[a.Key()] {
				seen[a.Key()] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// sybilRegion: every Sybil attests every other at 1.0 when the region is
// small, and deg random others (and the next one, so the region is
// strongly connected) when it is not.
func sybilRegion(r *rand.Rand, sybils []did.DID, deg int) []*Attestation {
	var out []*Attestation
	m := len(sybils)
	for i := range sybils {
		if m-1 <= deg {
			for j := range sybils {
				if i != j {
					out = append(out, edge(sybils[i], sybils[j], 1))
				}
			}
			continue
		}
		seen := map[int]bool{i: true, (i + 1) % m: true}
		out = append(out, edge(sybils[i], sybils[(i+1)%m], 1))
		for len(seen) < deg+1 {
			j := r.IntN(m)
			if !seen[j] {
				seen[j] = true
				out = append(out, edge(sybils[i], sybils[j], 1))
			}
		}
	}
	return out
}

// energyBound is the bound docs/trust.md proves for a set of DIDs without
// the seed: sum of energy <= (D + Spread*A) / (1 - Spread), where D is the
// weight of the seed's attestations into the set and A the attestations
// from outside it, each weighted by what its issuer can pass per unit of
// weight, min(r, 1)/max(W, 1).
func energyBound(g *Graph, s *Scores, set map[did.DID]bool) float64 {
	edges := g.Edges(t0)
	total := map[did.DID]float64{}
	for _, a := range edges {
		if a.Subject != s.Seed() {
			total[a.Issuer] += a.Score
		}
	}
	var d, in float64
	for _, a := range edges {
		if !set[a.Subject] || set[a.Issuer] {
			continue
		}
		if a.Issuer == s.Seed() {
			d += a.Score
		} else {
			in += a.Score * s.Score(a.Issuer) / math.Max(total[a.Issuer], 1)
		}
	}
	alpha := DefaultSpread
	return (d + alpha*in) / (1 - alpha)
}

func sumOver(s *Scores, set []did.DID, f func(*Scores, did.DID) float64) float64 {
	var sum float64
	for _, d := range set {
		sum += f(s, d)
	}
	return sum
}

func TestSybilRegionIsBoundedByAttackEdges(t *testing.T) {
	r := rand.New(rand.NewPCG(71, 72))
	honest := ids(t, "honest", 50)
	seed := honest[0]
	base := honestGraph(r, honest, 4)
	sybilPool := ids(t, "sybil", 1000)
	// The attack edges come from the honest DIDs the seed trusts most.
	attackers := slices.Clone(honest[1:])
	hs := Compute(graphOf(t, base...), seed, Params{}, t0)
	slices.SortStableFunc(attackers, func(a, b did.DID) int { return cmp.Compare(hs.Score(b), hs.Score(a)) })
	ks := []int{1, 2, 4, 8}
	totals := map[int]map[int]float64{} // size -> k -> total score
	for _, m := range []int{10, 100, 1000} {
		sybils := sybilPool[:m]
		g := graphOf(t, append(append([]*Attestation(nil), base...), sybilRegion(r, sybils, 100)...)...)
		require.Zero(t, sumOver(Compute(g, seed, Params{}, t0), sybils, (*Scores).Score), "no attack edge, no trust")
		set := map[did.DID]bool{}
		for _, d := range sybils {
			set[d] = true
		}
		totals[m] = map[int]float64{}
		k := 0
		for _, want := range ks {
			for ; k < want; k++ {
				// Each attacker attests one Sybil at 1.0.
				require.Equal(t, Accepted, g.Add(edge(attackers[k], sybils[k%m], 1), t0))
			}
			s := Compute(g, seed, Params{}, t0)
			total := sumOver(s, sybils, (*Scores).Score)
			totals[m][k] = total
			require.LessOrEqual(t, sumOver(s, sybils, (*Scores).Energy), energyBound(g, s, set)+1e-9)
			// The crude form: at most Spread/(1-Spread) = 1 per unit of
			// attack-edge weight.
			require.LessOrEqual(t, total, float64(k)+1e-9)
			t.Logf("region %4d, %d attack edges: total %.4f, the best Sybil %.4f", m, k, total, best(s, sybils))
		}
	}
	for _, k := range ks {
		// The same k gives about the same total, whatever the size: all
		// the energy that enters keeps circulating inside.
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, m := range []int{10, 100, 1000} {
			lo, hi = math.Min(lo, totals[m][k]), math.Max(hi, totals[m][k])
		}
		require.Positive(t, lo)
		require.Less(t, (hi-lo)/hi, 0.01, "k=%d: %v", k, totals)
	}
	for _, m := range []int{10, 100, 1000} {
		for i := 1; i < len(ks); i++ {
			require.GreaterOrEqual(t, totals[m][ks[i]], totals[m][ks[i-1]]-1e-12)
		}
		require.Greater(t, totals[m][8], 2*totals[m][1], "it grows with k")
	}
}

func best(s *Scores, set []did.DID) float64 {
	var b float64
	for _, d := range set {
		b = math.Max(b, s.Score(d))
	}
	return b
}

// The property over random graphs: for the Sybil region, and for any set
// of DIDs without the seed, the energy is within the bound.
func TestSybilBoundOnRandomGraphs(t *testing.T) {
	r := rand.New(rand.NewPCG(81, 82))
	honestPool := ids(t, "p-honest", 50)
	sybilPool := ids(t, "p-sybil", 300)
	for iter := range 60 {
		honest := honestPool[:20+r.IntN(31)]
		sybils := sybilPool[:5+r.IntN(len(sybilPool)-4)]
		seed := honest[0]
		as := append(honestGraph(r, honest, 1+r.IntN(6)), sybilRegion(r, sybils, 1+r.IntN(30))...)
		seen := map[EdgeKey]bool{}
		for _, a := range as {
			seen[a.Key()] = true
		}
		add := func(a *Attestation) {
			if !seen[a.Key()] {
				seen[a.Key()] = true
				as = append(as, a)
			}
		}
		k := r.IntN(11)
		for range k {
			add(edge(honest[1+r.IntN(len(honest)-1)], sybils[r.IntN(len(sybils))], float64(1+r.IntN(MaxBP))/MaxBP))
		}
		if r.IntN(4) == 0 { // the seed itself attests a Sybil
			add(edge(seed, sybils[r.IntN(len(sybils))], float64(1+r.IntN(MaxBP))/MaxBP))
		}
		for range r.IntN(20) { // Sybils attest honest DIDs too
			add(edge(sybils[r.IntN(len(sybils))], honest[r.IntN(len(honest))], 1))
		}
		g := graphOf(t, as...)
		s := Compute(g, seed, Params{}, t0)
		region := map[did.DID]bool{}
		for _, d := range sybils {
			region[d] = true
		}
		name := fmt.Sprintf("iteration %d: %d honest, %d Sybils, %d attack edges", iter, len(honest), len(sybils), k)
		require.LessOrEqual(t, sumOver(s, sybils, (*Scores).Energy), energyBound(g, s, region)+1e-9, name)
		// Any set without the seed.
		all := append(append([]did.DID(nil), honest[1:]...), sybils...)
		for range 5 {
			set := map[did.DID]bool{}
			var members []did.DID
			for _, d := range all {
				if r.IntN(3) == 0 {
					set[d] = true
					members = append(members, d)
				}
			}
			require.LessOrEqual(t, sumOver(s, members, (*Scores).Energy), energyBound(g, s, set)+1e-9, name)
		}
	}
}

// oldRule is the reference implementation's score, from seed's view:
// 0.7 × the seed's direct attestation + 0.3 × the mean, over the seed's
// direct contacts I that attest X, of direct(I) × w(I, X).
func oldRule(g *Graph, seed did.DID) func(did.DID) float64 {
	w := map[EdgeKey]float64{}
	var contacts []*Attestation
	for _, a := range g.Edges(t0) {
		w[a.Key()] = a.Score
		if a.Issuer == seed {
			contacts = append(contacts, a)
		}
	}
	return func(x did.DID) float64 {
		var sum float64
		var n int
		for _, c := range contacts {
			if v := w[EdgeKey{c.Subject, x}]; v > 0 {
				sum += c.Score * v
				n++
			}
		}
		two := 0.0
		if n > 0 {
			two = sum / float64(n)
		}
		return 0.7*w[EdgeKey{seed, x}] + 0.3*two
	}
}

// The old rule is inflated by a crowd of Sybils: when the seed attests one
// DID that turns out to be the gateway of a Sybil region, every Sybil the
// gateway attests is two hops away and gets 0.3 × its weight, so the
// region's total grows with its size and a thousand Sybils are "known".
// The flow rule gives the whole region at most twice the seed's weight.
func TestOldRuleIsInflatedBySybilsTheFlowRuleIsNot(t *testing.T) {
	r := rand.New(rand.NewPCG(91, 92))
	honest := ids(t, "honest", 50)
	seed := honest[0]
	base := honestGraph(r, honest, 4)
	sybilPool := ids(t, "sybil", 1000)
	for _, m := range []int{10, 100, 1000} {
		sybils := sybilPool[:m]
		g := graphOf(t, append(append([]*Attestation(nil), base...), sybilRegion(r, sybils, 100)...)...)
		// The gateway attests all the others.
		for _, d := range sybils[1:] {
			if _, ok := g.Get(EdgeKey{sybils[0], d}); !ok {
				require.Equal(t, Accepted, g.Add(edge(sybils[0], d, 1), t0))
			}
		}
		require.Equal(t, Accepted, g.Add(edge(seed, sybils[0], 0.5), t0))
		s := Compute(g, seed, Params{}, t0)
		old := oldRule(g, seed)
		var oldTotal, newTotal float64
		var oldKnown, newKnown int
		for _, d := range sybils {
			o, n := old(d), s.Score(d)
			oldTotal += o
			newTotal += n
			if ClassOf(o) >= Known {
				oldKnown++
			}
			if ClassOf(n) >= Known {
				newKnown++
			}
		}
		t.Logf("region %4d: old rule total %8.2f (%4d known or above), flow rule total %.4f (%d)", m, oldTotal, oldKnown, newTotal, newKnown)
		require.InDelta(t, 0.7*0.5+0.3*0.5*float64(m-1), oldTotal, 1e-9, "the old rule grows with the region")
		require.Equal(t, m, oldKnown, "every Sybil known, the gateway too")
		require.LessOrEqual(t, newTotal, 2*0.5+1e-9, "the flow rule: at most (0.5)/(1-0.5)")
		require.Equal(t, 1, newKnown, "only the gateway the seed attested")
		require.GreaterOrEqual(t, s.Score(sybils[0]), 0.5)
	}
}
