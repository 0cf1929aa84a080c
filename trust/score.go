package trust

import (
	"container/heap"
	"fmt"
	"math"
	"time"

	"github.com/intercooperative/icn/did"
)

// Params tune Compute. The zero value of a field means its default
// (DefaultParams); docs/trust.md explains each choice.
type Params struct {
	// Spread (α) is the fraction of its energy, capped at 1, that a DID
	// passes on to the DIDs it attests; the rest it keeps. It must be in
	// (0, 1). It sets both how fast trust fades along a chain (a full
	// attestation by a DID of energy 1 that attests nobody else brings
	// Spread) and the Sybil bound: a set of DIDs the seed does not attest
	// gathers at most Spread/(1-Spread) times the weight of the
	// attestations into it. Default 0.5, so the bound is the weight itself.
	Spread float64
	// MaxDepth bounds the length of the attestation chains that count,
	// which is the number of rounds of spreading. Default 32: past it a
	// chain brings less than Spread^31 (5e-10 at 0.5).
	MaxDepth int
	// Epsilon ends the spreading before MaxDepth once a round changes the
	// total energy by less than it. Default 1e-9, far below one basis
	// point.
	Epsilon float64
	// PathBudget bounds the partial paths Scores.Paths examines per call.
	// Default 20000.
	PathBudget int
}

// Defaults of Params.
const (
	DefaultSpread     = 0.5
	DefaultMaxDepth   = 32
	DefaultEpsilon    = 1e-9
	DefaultPathBudget = 20000
	// maxMaxDepth bounds MaxDepth (Validate).
	maxMaxDepth = 256
)

// DefaultParams are the parameters docs/trust.md documents.
func DefaultParams() Params {
	return Params{Spread: DefaultSpread, MaxDepth: DefaultMaxDepth, Epsilon: DefaultEpsilon, PathBudget: DefaultPathBudget}
}

// Validate reports a parameter out of range (zero values are fine: they
// mean the defaults).
func (p Params) Validate() error {
	switch {
	case p.Spread != 0 && !(p.Spread > 0 && p.Spread < 1):
		return fmt.Errorf("trust spread %v is not in (0, 1)", p.Spread)
	case p.MaxDepth < 0 || p.MaxDepth > maxMaxDepth:
		return fmt.Errorf("trust max depth %d is not in [1, %d]", p.MaxDepth, maxMaxDepth)
	case p.Epsilon < 0 || math.IsNaN(p.Epsilon):
		return fmt.Errorf("trust epsilon %v is negative", p.Epsilon)
	case p.PathBudget < 0:
		return fmt.Errorf("trust path budget %d is negative", p.PathBudget)
	}
	return nil
}

// orDefaults replaces zero and invalid fields by the defaults.
func (p Params) orDefaults() Params {
	d := DefaultParams()
	if !(p.Spread > 0 && p.Spread < 1) {
		p.Spread = d.Spread
	}
	if p.MaxDepth <= 0 || p.MaxDepth > maxMaxDepth {
		p.MaxDepth = d.MaxDepth
	}
	if !(p.Epsilon > 0) {
		p.Epsilon = d.Epsilon
	}
	if p.PathBudget <= 0 {
		p.PathBudget = d.PathBudget
	}
	return p
}

// Scores are the trust of every DID from one seed's point of view, at one
// time. They do not change when the graph does: compute again.
type Scores struct {
	seed   did.DID
	p      Params
	dids   []did.DID // by index; the seed is 0
	index  map[did.DID]int32
	energy []float64
	// The live edges among the DIDs the seed reaches, by issuer index
	// (compressed rows): the edges of i are to[start[i]:start[i+1]] with
	// weights w[...]. Attestations of the seed are left out.
	start []int32
	to    []int32
	w     []float64
	// pass[i] is the part of each unit of energy arriving at i that leaves
	// along an edge of weight 1 (1 for the seed): see Paths.
	pass   []float64
	rounds int
}

// Compute scores every DID from the point of view of seed, on the
// attestations that are live at now, by the rule of docs/trust.md:
//
//   - the seed injects into each DID it attests the weight of its
//     attestation (so a direct attestation of s gives at least s);
//   - every other DID v keeps the energy it receives, r(v), and passes on
//     Spread × min(r(v), 1), split over the DIDs it attests in proportion to
//     their weights and divided by max(total weight, 1): a DID can vouch
//     with no more than its own capped trust, whatever it attests, and
//     weak attestations pass only their weight;
//   - r is the least fixed point of r = inject + passed, reached by rounds
//     of spreading from r = 0 (at most MaxDepth, until a round changes the
//     total by less than Epsilon);
//   - the score is min(r, 1); the seed's own is 1.
//
// Attestations of the seed, expired ones, revocations and attestations by
// DIDs the seed does not reach carry nothing. The result depends on nothing
// but the graph, the seed, the parameters and now: no map order, no clock.
// Invalid parameters are replaced by the defaults (Params.Validate).
func Compute(g *Graph, seed did.DID, p Params, now time.Time) *Scores {
	p = p.orDefaults()
	s := &Scores{seed: seed, p: p, dids: []did.DID{seed}, index: map[did.DID]int32{seed: 0}}
	// Index the DIDs the seed reaches, breadth first (a deterministic
	// order: each issuer's edges are in subject order), and their live
	// edges.
	s.start = append(s.start, 0)
	for q := 0; q < len(s.dids); q++ {
		if ie := g.issuers[s.dids[q]]; ie != nil {
			for _, h := range ie.sorted {
				a := h.a
				if a.Subject == seed || !a.Live(now) {
					continue
				}
				j, seen := s.index[a.Subject]
				if !seen {
					j = int32(len(s.dids))
					s.index[a.Subject] = j
					s.dids = append(s.dids, a.Subject)
				}
				s.to = append(s.to, j)
				s.w = append(s.w, a.Score)
			}
		}
		s.start = append(s.start, int32(len(s.to)))
	}
	n := len(s.dids)
	inject := make([]float64, n)
	for e := s.start[0]; e < s.start[1]; e++ {
		inject[s.to[e]] = s.w[e]
	}
	// norm[i] is 1/max(total weight of i's edges, 1).
	norm := make([]float64, n)
	for i := 1; i < n; i++ {
		var total float64
		for e := s.start[i]; e < s.start[i+1]; e++ {
			total += s.w[e]
		}
		norm[i] = 1 / math.Max(total, 1)
	}
	r := append([]float64(nil), inject...)
	next := make([]float64, n)
	s.rounds = 1
	for s.rounds < p.MaxDepth {
		copy(next, inject)
		for i := 1; i < n; i++ {
			if r[i] == 0 {
				continue
			}
			c := p.Spread * math.Min(r[i], 1) * norm[i]
			for e := s.start[i]; e < s.start[i+1]; e++ {
				next[s.to[e]] += c * s.w[e]
			}
		}
		var delta float64
		for i := range next {
			delta += math.Abs(next[i] - r[i])
		}
		r, next = next, r
		s.rounds++
		if delta < p.Epsilon {
			break
		}
	}
	s.energy = r
	s.pass = make([]float64, n)
	s.pass[0] = 1
	for i := 1; i < n; i++ {
		if r[i] > 0 {
			s.pass[i] = p.Spread * math.Min(r[i], 1) / r[i] * norm[i]
		}
	}
	return s
}

// Seed is the DID whose point of view the scores are.
func (s *Scores) Seed() did.DID { return s.seed }

// Rounds is how many rounds of spreading Compute ran.
func (s *Scores) Rounds() int { return s.rounds }

// Energy is the trust energy d received (not capped at 1; the seed's is 1):
// how far above a full score d is, for display.
func (s *Scores) Energy(d did.DID) float64 {
	if d == s.seed {
		return 1
	}
	if i, ok := s.index[d]; ok {
		return s.energy[i]
	}
	return 0
}

// Score is d's trust in [0, 1]; the seed's is 1, a DID the seed does not
// reach has 0.
func (s *Scores) Score(d did.DID) float64 { return math.Min(s.Energy(d), 1) }

// Class is the class of d's score.
func (s *Scores) Class(d did.DID) Class { return ClassOf(s.Score(d)) }

// All returns every DID with a score above 0, the seed included.
func (s *Scores) All() map[did.DID]float64 {
	out := map[did.DID]float64{s.seed: 1}
	for i := 1; i < len(s.dids); i++ {
		if s.energy[i] > 0 {
			out[s.dids[i]] = math.Min(s.energy[i], 1)
		}
	}
	return out
}

// Path is one chain of attestations that brought trust to a DID: Via runs
// from the seed to the DID, both included. Score is the energy that flowed
// along it: the seed's weight for the first DID, times, at each DID after,
// the part of its energy it passed along the next attestation. When the
// spreading has converged, the Scores of all chains to a DID (cycles
// included) add up to its Energy.
type Path struct {
	Via   []did.DID
	Score float64
}

// Paths returns the max strongest simple paths from the seed to d, best
// first (ties in the order edges are sorted), each at most MaxDepth
// attestations long. The search is A* over partial paths, ordered by their
// score times the best any continuation to d could bring (a path's score
// only falls as it grows), so what it returns is exact unless it examines
// PathBudget partial paths first; then it returns those found. The seed
// itself and DIDs without score have no paths.
func (s *Scores) Paths(d did.DID, max int) []Path {
	target, ok := s.index[d]
	if !ok || target == 0 || max <= 0 || s.energy[target] == 0 {
		return nil
	}
	toGo := s.bestToTarget(target)
	type node struct {
		idx    int32
		parent int32 // in arena, -1 for the seed
		depth  int32
		score  float64
	}
	arena := []node{{idx: 0, parent: -1, score: 1}}
	h := &pathHeap{{priority: toGo[0], node: 0}}
	onPath := func(at int32, idx int32) bool {
		for ; at >= 0; at = arena[at].parent {
			if arena[at].idx == idx {
				return true
			}
		}
		return false
	}
	var out []Path
	for pops := 0; h.Len() > 0 && pops < s.p.PathBudget; pops++ {
		top := heap.Pop(h).(pathItem)
		nd := arena[top.node]
		if nd.idx == target {
			via := make([]did.DID, nd.depth+1)
			for at := top.node; at >= 0; at = arena[at].parent {
				via[arena[at].depth] = s.dids[arena[at].idx]
			}
			out = append(out, Path{Via: via, Score: nd.score})
			if len(out) == max {
				break
			}
			continue
		}
		if int(nd.depth) >= s.p.MaxDepth {
			continue
		}
		for e := s.start[nd.idx]; e < s.start[nd.idx+1]; e++ {
			j := s.to[e]
			if toGo[j] == 0 || onPath(top.node, j) {
				continue
			}
			sc := nd.score * s.pass[nd.idx] * s.w[e]
			if sc <= 0 {
				continue
			}
			arena = append(arena, node{idx: j, parent: top.node, depth: nd.depth + 1, score: sc})
			heap.Push(h, pathItem{priority: sc * toGo[j], node: int32(len(arena) - 1)})
		}
	}
	return out
}

// bestToTarget is, for every DID, the largest product of factors
// (pass × weight) along any walk from it to target: 1 for the target, 0
// for DIDs that cannot reach it. Every factor is at most 1, so Dijkstra's
// order works for products as it does for sums.
func (s *Scores) bestToTarget(target int32) []float64 {
	n := len(s.dids)
	// Reverse edges, compressed rows: the edges into j are
	// from[count[j]:count[j+1]] (with their edge index in via).
	count := make([]int32, n+1)
	for _, j := range s.to {
		count[j+1]++
	}
	for i := 1; i <= n; i++ {
		count[i] += count[i-1]
	}
	from := make([]int32, len(s.to))
	via := make([]int32, len(s.to))
	fill := append([]int32(nil), count[:n]...)
	for i := 0; i < n; i++ {
		for e := s.start[i]; e < s.start[i+1]; e++ {
			j := s.to[e]
			from[fill[j]], via[fill[j]] = int32(i), e
			fill[j]++
		}
	}
	best := make([]float64, n)
	done := make([]bool, n)
	best[target] = 1
	h := &pathHeap{{priority: 1, node: target}}
	for h.Len() > 0 {
		top := heap.Pop(h).(pathItem)
		j := top.node
		if done[j] {
			continue
		}
		done[j] = true
		for k := count[j]; k < count[j+1]; k++ {
			i := from[k]
			if v := s.pass[i] * s.w[via[k]] * best[j]; v > best[i] {
				best[i] = v
				heap.Push(h, pathItem{priority: v, node: i})
			}
		}
	}
	return best
}

type pathItem struct {
	priority float64
	node     int32 // smaller first among equal priorities
}

// pathHeap is a max-heap on priority, ties broken by node.
type pathHeap []pathItem

func (h pathHeap) Len() int { return len(h) }
func (h pathHeap) Less(i, j int) bool {
	if h[i].priority != h[j].priority {
		return h[i].priority > h[j].priority
	}
	return h[i].node < h[j].node
}
func (h pathHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pathHeap) Push(x any)   { *h = append(*h, x.(pathItem)) }
func (h *pathHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
