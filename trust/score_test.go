package trust

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
)

// names are the DIDs of the hand-computed cases; S is the seed.
type names map[string]did.DID

func newNames(t *testing.T) names {
	n := names{}
	for _, s := range []string{"S", "A", "B", "C", "D", "E", "X", "Y"} {
		n[s] = newMember(t, "hand", int(s[0])).id
	}
	return n
}

type e struct {
	from, to string
	w        float64
}

func (n names) graph(t *testing.T, es []e) *Graph {
	var as []*Attestation
	for _, x := range es {
		as = append(as, edge(n[x.from], n[x.to], x.w))
	}
	return graphOf(t, as...)
}

func TestComputeHandComputed(t *testing.T) {
	n := newNames(t)
	for _, tc := range []struct {
		name  string
		edges []e
		want  map[string]float64 // the rest score 0 (S 1)
	}{
		{"direct", []e{{"S", "A", 0.8}}, map[string]float64{"A": 0.8}},
		// A attests only B: it passes half its (capped) energy.
		{"friend of a friend", []e{{"S", "A", 1}, {"A", "B", 1}}, map[string]float64{"A": 1, "B": 0.5}},
		{"chain halves", []e{{"S", "A", 1}, {"A", "B", 1}, {"B", "C", 1}, {"C", "D", 1}},
			map[string]float64{"A": 1, "B": 0.5, "C": 0.25, "D": 0.125}},
		// A's budget is split over what it attests.
		{"split", []e{{"S", "A", 1}, {"A", "B", 1}, {"A", "C", 1}}, map[string]float64{"A": 1, "B": 0.25, "C": 0.25}},
		{"split by weight", []e{{"S", "A", 1}, {"A", "B", 1}, {"A", "C", 0.5}, {"A", "D", 0.5}},
			map[string]float64{"A": 1, "B": 0.25, "C": 0.125, "D": 0.125}},
		// Vouches add up.
		{"converging", []e{{"S", "A", 1}, {"S", "B", 1}, {"A", "C", 1}, {"B", "C", 1}},
			map[string]float64{"A": 1, "B": 1, "C": 1}},
		{"direct plus indirect", []e{{"S", "A", 1}, {"S", "B", 0.3}, {"A", "B", 1}}, map[string]float64{"A": 1, "B": 0.8}},
		// 0.5 × 0.6 (A's energy) × 0.5 (the weight; A's total is below 1).
		{"weak chain", []e{{"S", "A", 0.6}, {"A", "B", 0.5}}, map[string]float64{"A": 0.6, "B": 0.15}},
		// A weak attestation is not scaled up because it is A's only one.
		{"weak edge passes its weight", []e{{"S", "A", 1}, {"A", "B", 0.2}}, map[string]float64{"A": 1, "B": 0.1}},
		// rA = 1 + 0.5 min(rB, 1) = 1.25 -> 1; rB = 0.5 min(rA, 1) = 0.5.
		{"cycle", []e{{"S", "A", 1}, {"A", "B", 1}, {"B", "A", 1}}, map[string]float64{"A": 1, "B": 0.5}},
		// rA = 0.4 + 0.5 rB, rB = 0.5 rA: rA = 0.4/0.75.
		{"cycle below the cap", []e{{"S", "A", 0.4}, {"A", "B", 1}, {"B", "A", 1}},
			map[string]float64{"A": 0.4 / 0.75, "B": 0.2 / 0.75}},
		// The attestation of S takes no part of A's budget.
		{"attestations of the seed", []e{{"S", "A", 0.5}, {"A", "S", 1}, {"A", "B", 1}}, map[string]float64{"A": 0.5, "B": 0.25}},
		// D receives 1.5 but vouches with at most 1.
		{"the cap bounds what passes", []e{{"S", "A", 1}, {"S", "B", 1}, {"S", "C", 1}, {"A", "D", 1}, {"B", "D", 1}, {"C", "D", 1}, {"D", "E", 1}},
			map[string]float64{"A": 1, "B": 1, "C": 1, "D": 1, "E": 0.5}},
		{"unreachable issuers carry nothing", []e{{"S", "A", 1}, {"X", "Y", 1}, {"X", "A", 1}, {"Y", "B", 1}},
			map[string]float64{"A": 1}},
		{"revocation", []e{{"S", "A", 0}, {"A", "B", 1}}, map[string]float64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Compute(n.graph(t, tc.edges), n["S"], Params{}, t0)
			require.Equal(t, 1.0, s.Score(n["S"]))
			for name, d := range n {
				if name == "S" {
					continue
				}
				require.InDelta(t, tc.want[name], s.Score(d), 1e-9, "%s", name)
			}
			require.Len(t, s.All(), 1+len(tc.want))
		})
	}
}

func TestExpiredEdgesCarryNothing(t *testing.T) {
	n := newNames(t)
	a := edge(n["S"], n["A"], 1)
	a.ExpiresAt = t0.Add(time.Hour)
	g := graphOf(t, a, edge(n["A"], n["B"], 1))
	require.Equal(t, 0.5, Compute(g, n["S"], Params{}, t0).Score(n["B"]))
	s := Compute(g, n["S"], Params{}, t0.Add(time.Hour))
	require.Zero(t, s.Score(n["A"]))
	require.Zero(t, s.Score(n["B"]))
}

func TestPaths(t *testing.T) {
	n := newNames(t)
	g := n.graph(t, []e{{"S", "A", 1}, {"S", "B", 0.3}, {"A", "B", 1}, {"B", "C", 1}, {"A", "C", 0.5}})
	s := Compute(g, n["S"], Params{}, t0)
	ps := s.Paths(n["B"], 10)
	require.Len(t, ps, 2)
	require.Equal(t, []did.DID{n["S"], n["A"], n["B"]}, ps[0].Via)
	require.InDelta(t, 1/1.5*0.5, ps[0].Score, 1e-12) // A splits 1 + 0.5
	require.Equal(t, []did.DID{n["S"], n["B"]}, ps[1].Via)
	require.InDelta(t, 0.3, ps[1].Score, 1e-12)
	// Without cycles, the paths to a DID add up to its energy.
	for _, d := range []string{"A", "B", "C"} {
		var sum float64
		for _, p := range s.Paths(n[d], 100) {
			sum += p.Score
		}
		require.InDelta(t, s.Energy(n[d]), sum, 1e-12, d)
	}
	require.Len(t, s.Paths(n["C"], 1), 1)
	require.Nil(t, s.Paths(n["S"], 5))
	require.Nil(t, s.Paths(n["X"], 5))
	require.Nil(t, s.Paths(n["C"], 0))

	// A capped DID passes only part of what it receives: the path scores
	// say how much flowed.
	g = n.graph(t, []e{{"S", "A", 1}, {"A", "B", 1}, {"B", "A", 1}})
	s = Compute(g, n["S"], Params{}, t0)
	ps = s.Paths(n["B"], 5)
	require.Len(t, ps, 1)
	require.InDelta(t, 0.5*1/1.25, ps[0].Score, 1e-12)
}

func TestPathsSumToEnergyOnRandomDAGs(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	ds := ids(t, "dag", 12)
	for range 50 {
		var as []*Attestation
		for i := range ds {
			for j := i + 1; j < len(ds); j++ {
				if r.IntN(4) == 0 {
					as = append(as, edge(ds[i], ds[j], float64(1+r.IntN(MaxBP))/MaxBP))
				}
			}
		}
		s := Compute(graphOf(t, as...), ds[0], Params{}, t0)
		for _, d := range ds[1:] {
			var sum float64
			ps := s.Paths(d, 1<<20)
			for i, p := range ps {
				sum += p.Score
				require.Equal(t, ds[0], p.Via[0])
				require.Equal(t, d, p.Via[len(p.Via)-1])
				if i > 0 {
					require.LessOrEqual(t, p.Score, ps[i-1].Score)
				}
			}
			require.InDelta(t, s.Energy(d), sum, 1e-9)
		}
	}
}

// randomWeights is a random graph over ds: each DID attests about deg
// others at random weights (some revoked or expired).
func randomWeights(r *rand.Rand, ds []did.DID, deg int) []*Attestation {
	var out []*Attestation
	seen := map[EdgeKey]bool{}
	for i := range ds {
		for range deg {
			j := r.IntN(len(ds))
			a := edge(ds[i], ds[j], float64(r.IntN(MaxBP+1))/MaxBP)
			if i == j || seen[a.Key()] {
				continue
			}
			seen[a.Key()] = true
			if r.IntN(10) == 0 {
				a.ExpiresAt = t0.Add(time.Duration(1+r.IntN(100)) * time.Second)
			}
			out = append(out, a)
		}
	}
	return out
}

// Requirement 1: a direct attestation of s gives at least s; scores are in
// [0, 1] and the seed's is 1.
func TestDirectAttestationIsAFloor(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	ds := ids(t, "floor", 40)
	for range 100 {
		g := graphOf(t, randomWeights(r, ds, 1+r.IntN(8))...)
		now := t0.Add(time.Duration(r.IntN(120)) * time.Second)
		seed := ds[r.IntN(len(ds))]
		s := Compute(g, seed, Params{}, now)
		require.Equal(t, 1.0, s.Score(seed))
		for _, a := range g.Edges(now) {
			if a.Issuer == seed {
				require.GreaterOrEqual(t, s.Score(a.Subject), a.Score)
			}
		}
		for d, v := range s.All() {
			require.True(t, v > 0 && v <= 1, "%s: %v", d, v)
			require.Equal(t, v, s.Score(d))
		}
	}
	// So `trust add DID 0.4` makes a partner at once, and 0.8 a federated
	// DID, whatever else the seed attests.
	seed := ds[0]
	var as []*Attestation
	for i, d := range ds[1:] {
		as = append(as, edge(seed, d, []float64{0.4, 0.8}[i%2]))
	}
	s := Compute(graphOf(t, as...), seed, Params{}, t0)
	for i, d := range ds[1:] {
		require.Equal(t, []Class{Partner, Federated}[i%2], s.Class(d))
	}
}

// Requirement 3: the same graph and seed give the same scores, bit for bit,
// whatever order the attestations arrived in.
func TestComputeIsDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	ds := ids(t, "det", 60)
	for range 20 {
		as := randomWeights(r, ds, 6)
		g1 := graphOf(t, as...)
		r.Shuffle(len(as), func(i, j int) { as[i], as[j] = as[j], as[i] })
		g2 := graphOf(t, as...)
		s1 := Compute(g1, ds[0], Params{}, t0)
		s2 := Compute(g2, ds[0], Params{}, t0)
		s3 := Compute(g1, ds[0], Params{}, t0)
		all := s1.All()
		require.Equal(t, len(all), len(s2.All()))
		for _, d := range ds {
			for _, other := range []*Scores{s2, s3} {
				require.Equal(t, math.Float64bits(s1.Energy(d)), math.Float64bits(other.Energy(d)))
			}
			require.Equal(t, s1.Paths(d, 5), s2.Paths(d, 5))
		}
		require.Equal(t, s1.Rounds(), s2.Rounds())
	}
}

// Requirement 4: expired and revoked attestations, attestations of the
// seed and attestations by DIDs the seed cannot reach change nothing.
func TestDeadEdgesChangeNothing(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	honest := ids(t, "dead-h", 30)
	outside := ids(t, "dead-o", 20)
	for range 30 {
		base := randomWeights(r, honest, 3)
		before := Compute(graphOf(t, base...), honest[0], Params{}, t0)
		more := append([]*Attestation(nil), base...)
		seen := map[EdgeKey]bool{}
		for _, a := range base {
			seen[a.Key()] = true
		}
		add := func(a *Attestation) {
			if a.Issuer != a.Subject && !seen[a.Key()] {
				seen[a.Key()] = true
				more = append(more, a)
			}
		}
		for range 60 {
			h, o := honest[r.IntN(len(honest))], outside[r.IntN(len(outside))]
			add(edge(o, h, 1))                                    // by a DID the seed cannot reach
			add(edge(o, outside[r.IntN(len(outside))], 1))        // among them
			add(edge(h, honest[0], float64(r.IntN(MaxBP))/MaxBP)) // of the seed
			revoked := edge(h, o, 0)                              // revoked
			add(revoked)
			expired := edge(honest[r.IntN(len(honest))], o, 1) // expired
			expired.ExpiresAt = t0.Add(-time.Second)
			expired.IssuedAt = t0.Add(-time.Hour)
			add(expired)
		}
		g := NewGraph()
		g.SetMaxPerIssuer(0)
		for _, a := range more {
			g.Add(a, t0.Add(-time.Hour)) // before the expired ones expired
		}
		after := Compute(g, honest[0], Params{}, t0)
		for _, d := range append(append([]did.DID(nil), honest...), outside...) {
			require.Equal(t, math.Float64bits(before.Energy(d)), math.Float64bits(after.Energy(d)), "%s", d)
		}
	}
}

// Requirement 5: raising the seed's attestation of X never lowers X's
// score (nor, in fact, anyone's).
func TestRaisingTheSeedsEdgeIsMonotone(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	ds := ids(t, "mono", 40)
	seed := ds[0]
	for range 200 {
		g := graphOf(t, randomWeights(r, ds, 1+r.IntN(6))...)
		x := ds[1+r.IntN(len(ds)-1)]
		before := Compute(g, seed, Params{}, t0)
		old, ok := g.Get(EdgeKey{seed, x})
		up := edge(seed, x, float64(1+r.IntN(MaxBP))/MaxBP)
		if ok {
			up.Seq = old.Seq + 1
			if old.Live(t0) && up.Score < old.Score {
				bp, err := ScoreToBP(old.Score)
				require.NoError(t, err)
				up.Score, err = BPToScore(min(MaxBP, bp+1))
				require.NoError(t, err)
			}
		}
		require.Equal(t, Accepted, g.Add(up, t0))
		after := Compute(g, seed, Params{}, t0)
		require.GreaterOrEqual(t, after.Score(x), before.Score(x))
		if before.Score(x) < 1 {
			require.Greater(t, after.Score(x), before.Score(x), "a raise of at least one basis point shows")
		}
		for _, d := range ds {
			require.GreaterOrEqual(t, after.Score(d), before.Score(d)-DefaultEpsilon, "%s", d)
		}
	}
}

func TestParams(t *testing.T) {
	require.NoError(t, DefaultParams().Validate())
	require.NoError(t, Params{}.Validate())
	for _, p := range []Params{{Spread: 1}, {Spread: -0.1}, {Spread: math.NaN()}, {MaxDepth: -1}, {MaxDepth: 1000}, {Epsilon: -1}, {PathBudget: -1}} {
		require.Error(t, p.Validate(), "%+v", p)
	}
	// Spread shapes the chain: with 0.25, a friend of a friend gets 0.25.
	n := newNames(t)
	g := n.graph(t, []e{{"S", "A", 1}, {"A", "B", 1}})
	require.Equal(t, 0.25, Compute(g, n["S"], Params{Spread: 0.25}, t0).Score(n["B"]))
	// MaxDepth 1 counts the seed's own attestations only.
	require.Zero(t, Compute(g, n["S"], Params{MaxDepth: 1}, t0).Score(n["B"]))
	require.Equal(t, 0.5, Compute(g, n["S"], Params{Spread: 7}, t0).Score(n["B"]), "invalid: the default")
}

func TestClasses(t *testing.T) {
	for _, tc := range []struct {
		score float64
		want  Class
	}{{0, Isolated}, {0.0999, Isolated}, {0.1, Known}, {0.3999, Known}, {0.4, Partner}, {0.6999, Partner}, {0.7, Federated}, {1, Federated}, {math.NaN(), Isolated}} {
		require.Equal(t, tc.want, ClassOf(tc.score), "%v", tc.score)
	}
	for c := Isolated; c <= Federated; c++ {
		got, err := ParseClass(c.String())
		require.NoError(t, err)
		require.Equal(t, c, got)
		require.Equal(t, c, ClassOf(c.MinScore()))
		b, err := c.MarshalText()
		require.NoError(t, err)
		var back Class
		require.NoError(t, back.UnmarshalText(b))
		require.Equal(t, c, back)
	}
	require.Equal(t, []string{"isolated", "known", "partner", "federated"}, []string{Isolated.String(), Known.String(), Partner.String(), Federated.String()})
	got, err := ParseClass("Partner")
	require.NoError(t, err)
	require.Equal(t, Partner, got)
	_, err = ParseClass("friend")
	require.ErrorContains(t, err, "isolated, known, partner or federated")
	_, err = Class(7).MarshalText()
	require.Error(t, err)
	require.Equal(t, "class(7)", Class(7).String())
}
