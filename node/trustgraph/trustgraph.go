// Package trustgraph owns the node's trust graph as the node keeps it: the
// attestations (package trust) held in memory and in a namespace of the
// node's datastore, so they survive restarts; the scores computed from this
// node's own view after every change; what this node attests itself (signed
// with its DID key); and the counts of what arrived. Gossip, sync and the
// control routes go through it; it does no networking itself.
package trustgraph

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/trust"
)

// Options configure a Graph.
type Options struct {
	// Self is this node's DID: the seed of its scores and the issuer of
	// what it attests.
	Self did.DID
	// Params tune the score; zero means trust.DefaultParams().
	Params *trust.Params
	// Registry receives the metrics; nil registers none.
	Registry prometheus.Registerer
	Log      *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnChange, when set, is called (outside any lock) after the scores
	// changed, so policy can re-check connected peers.
	OnChange func()
}

// Graph is the node's trust graph. It is safe for concurrent use.
type Graph struct {
	store  ds.Datastore
	opts   Options
	params trust.Params
	log    *slog.Logger

	mu     sync.Mutex
	g      *trust.Graph
	scores atomic.Pointer[trust.Scores]

	received *prometheus.CounterVec
}

// Open loads the attestations kept in store (a namespace of the node's
// datastore that the graph owns) and computes the scores.
func Open(ctx context.Context, store ds.Datastore, opts Options) (*Graph, error) {
	if opts.Self.IsZero() {
		return nil, errors.New("trustgraph: no Self")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	g := &Graph{store: store, opts: opts, params: trust.DefaultParams(), log: opts.Log, g: trust.NewGraph()}
	if opts.Params != nil {
		g.params = *opts.Params
	}
	g.received = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icn_trust_attestations_received_total",
		Help: "Trust attestations received by gossip or sync, by result (accepted, duplicate, outdated, replayed, expired, bad_signature, malformed, too_many)."},
		[]string{"result"})
	for _, r := range []trust.Result{trust.Accepted, trust.Duplicate, trust.Outdated, trust.Replayed, trust.Expired, trust.BadSignature, trust.Malformed, trust.TooMany} {
		g.received.WithLabelValues(string(r))
	}
	if opts.Registry != nil {
		edges := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "icn_trust_edges_total",
			Help: "Trust edges held: live attestations (not expired, score above 0)."}, func() float64 { return float64(g.liveEdges()) })
		for _, c := range []prometheus.Collector{g.received, edges} {
			if err := opts.Registry.Register(c); err != nil {
				return nil, err
			}
		}
	}
	res, err := store.Query(ctx, dsq.Query{})
	if err != nil {
		return nil, fmt.Errorf("trustgraph: read the datastore: %w", err)
	}
	defer res.Close()
	now := opts.Now()
	for r := range res.Next() {
		if r.Error != nil {
			return nil, fmt.Errorf("trustgraph: read the datastore: %w", r.Error)
		}
		if res, _ := g.g.AddBlock(r.Value, now); res != trust.Accepted && res != trust.Expired {
			g.log.Warn("SECURITY stored trust attestation refused on load; it is not used", "key", r.Key, "result", res)
		}
	}
	g.recompute()
	return g, nil
}

func key(a *trust.Attestation) ds.Key {
	k := a.Key()
	return ds.NewKey("/a/" + k.Issuer.String() + "/" + k.Subject.String())
}

func (g *Graph) liveEdges() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.g.Edges(g.opts.Now()))
}

// recompute replaces the scores; g.mu must not be held.
func (g *Graph) recompute() {
	g.mu.Lock()
	s := trust.Compute(g.g, g.opts.Self, g.params, g.opts.Now())
	g.mu.Unlock()
	g.scores.Store(s)
}

// Scores are the current scores (never nil once Open returned).
func (g *Graph) Scores() *trust.Scores { return g.scores.Load() }

// Class is d's class from this node's view.
func (g *Graph) Class(d did.DID) trust.Class { return g.Scores().Class(d) }

// Ingest checks attestations (from gossip or sync) and keeps the accepted
// ones durably; it returns the result of each. The scores are recomputed
// once if anything was accepted.
func (g *Graph) Ingest(ctx context.Context, blocks [][]byte) ([]trust.Result, error) {
	now := g.opts.Now()
	out := make([]trust.Result, len(blocks))
	var keep []*trust.Attestation
	g.mu.Lock()
	for i, b := range blocks {
		res, a := g.g.AddBlock(b, now)
		out[i] = res
		// An expired newest word is held too (it carries nothing, and
		// keeps older attestations of its edge outdated): stored alike.
		if res == trust.Accepted || res == trust.Expired {
			if held, ok := g.g.Get(a.Key()); ok {
				keep = append(keep, held)
			}
		}
	}
	g.mu.Unlock()
	for _, r := range out {
		g.received.WithLabelValues(string(r)).Inc()
	}
	if len(keep) == 0 {
		return out, nil
	}
	if err := g.persist(ctx, keep); err != nil {
		return out, err
	}
	g.recompute()
	if g.opts.OnChange != nil {
		g.opts.OnChange()
	}
	return out, nil
}

func (g *Graph) persist(ctx context.Context, as []*trust.Attestation) error {
	for _, a := range as {
		b, err := a.Encode()
		if err != nil {
			return err
		}
		if err := g.store.Put(ctx, key(a), b); err != nil {
			return fmt.Errorf("trustgraph: store an attestation: %w", err)
		}
	}
	return nil
}

// Attest signs this node's attestation about subject (a score of 0
// revokes) with key, keeps it durably, and returns its encoding for the
// caller to gossip. Its seq follows the one held, and is at least the time
// in milliseconds, so an attestation made after the data dir was lost
// still supersedes the older ones peers hold.
func (g *Graph) Attest(ctx context.Context, key ed25519.PrivateKey, subject did.DID, score float64, labels []string, expires time.Time) (*trust.Attestation, []byte, error) {
	now := g.opts.Now().Truncate(time.Second)
	a := &trust.Attestation{Issuer: g.opts.Self, Subject: subject, Score: score, Labels: slices.Clone(labels), IssuedAt: now, ExpiresAt: expires}
	g.mu.Lock()
	seq := uint64(now.UnixMilli())
	if held, ok := g.g.Get(a.Key()); ok && held.Seq >= seq {
		seq = held.Seq + 1
	}
	a.Seq = seq
	b, err := trust.Sign(a, key)
	if err != nil {
		g.mu.Unlock()
		return nil, nil, err
	}
	res := g.g.Add(a, g.opts.Now())
	g.mu.Unlock()
	if res != trust.Accepted && res != trust.Expired {
		return nil, nil, fmt.Errorf("trustgraph: own attestation not accepted (%s)", res)
	}
	if err := g.persist(ctx, []*trust.Attestation{a}); err != nil {
		return nil, nil, err
	}
	g.recompute()
	if g.opts.OnChange != nil {
		g.opts.OnChange()
	}
	return a, b, nil
}

// Get returns the attestation held for an edge.
func (g *Graph) Get(issuer, subject did.DID) (*trust.Attestation, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.g.Get(trust.EdgeKey{Issuer: issuer, Subject: subject})
}

// Edges are the live edges, sorted.
func (g *Graph) Edges() []*trust.Attestation {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.g.Edges(g.opts.Now())
}

// Summary and Missing serve trustsync.
func (g *Graph) Summary() trust.Summary {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.g.Summary()
}

// Missing returns the encoded attestations a peer with summary remote
// lacks, at most limit.
func (g *Graph) Missing(remote trust.Summary, limit int) [][]byte {
	g.mu.Lock()
	as := g.g.Missing(remote, limit)
	g.mu.Unlock()
	out := make([][]byte, 0, len(as))
	for _, a := range as {
		if b, err := a.Encode(); err == nil {
			out = append(out, b)
		}
	}
	return out
}
