package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/trustgraph"
	"github.com/intercooperative/icn/protocols/gossip"
	"github.com/intercooperative/icn/protocols/trustsync"
	"github.com/intercooperative/icn/trust"
)

// Trust topic and payload type (docs/trust.md).
const (
	TrustTopic           = "trust:attestations"
	TrustAttestationType = "icn/trust-attestation"
	trustNamespace       = "/trust"
)

// checkAttestation is the gossip payload check of TrustAttestationType:
// it decodes and verifies, so a bad attestation is refused (and its sender
// scored down) before it is relayed.
func checkAttestation(p []byte) error {
	a, err := trust.Decode(p)
	if err != nil {
		return err
	}
	return a.Verify()
}

func (n *Node) openTrust(ctx context.Context, self did.DID) (*trustgraph.Graph, error) {
	ns, err := n.ledger.Namespace(trustNamespace)
	if err != nil {
		return nil, err
	}
	return trustgraph.Open(ctx, ns, trustgraph.Options{Self: self, Registry: n.reg, Log: n.log.With("component", "trust"),
		// A revoked or lapsed attestation can drop a connected peer
		// below the connect bar: hang up on it.
		OnChange: func() {
			if st := n.current(); st != nil {
				n.deps.trustG.recheck(st.h)
			}
		}})
}

// trustGossip pushes this node's own attestations on the trust topic and
// ingests what others push.
type trustGossip struct {
	g     *gossip.Service
	graph *trustgraph.Graph
	pub   <-chan []byte
	log   *slog.Logger
}

func (tg *trustGossip) Close() error { return nil }

func (tg *trustGossip) Run(ctx context.Context) error {
	sub, err := tg.g.Subscribe(TrustTopic, gossip.DefaultSubscriberBuffer)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", TrustTopic, err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer sub.Cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m := range sub.Messages() {
			if m.Local || m.Type != TrustAttestationType {
				continue
			}
			if _, err := tg.graph.Ingest(ctx, [][]byte{m.Payload}); err != nil && ctx.Err() == nil {
				tg.log.Warn("storing a trust attestation failed", "err", err)
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-tg.pub:
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := tg.g.Publish(pctx, TrustTopic, TrustAttestationType, b)
			cancel()
			if err != nil && ctx.Err() == nil {
				tg.log.Info("could not push a trust attestation; peers will sync it", "err", err)
			}
		}
	}
}

// trustSyncGraph adapts the graph to trustsync.
type trustSyncGraph struct{ g *trustgraph.Graph }

func (a trustSyncGraph) Summary() trust.Summary { return a.g.Summary() }

func (a trustSyncGraph) Missing(r trust.Summary, limit int) [][]byte { return a.g.Missing(r, limit) }

func (a trustSyncGraph) Ingest(ctx context.Context, _ peer.ID, blocks [][]byte) trustsync.Stats {
	res, err := a.g.Ingest(ctx, blocks)
	st := trustsync.Stats{Received: len(blocks)}
	if err != nil {
		return st
	}
	for _, r := range res {
		switch r {
		case trust.Accepted:
			st.New++
		case trust.Duplicate, trust.Outdated:
		default:
			st.Rejected++
		}
	}
	return st
}

func edgeOf(a *trust.Attestation) controlapi.TrustEdge {
	e := controlapi.TrustEdge{Issuer: a.Issuer.String(), Subject: a.Subject.String(), Score: a.Score, Labels: append([]string{}, a.Labels...),
		IssuedAt: a.IssuedAt.UTC(), Seq: a.Seq}
	if !a.ExpiresAt.IsZero() {
		t := a.ExpiresAt.UTC()
		e.ExpiresAt = &t
	}
	return e
}

// ErrTrustSelf means an attestation about this node's own DID.
var ErrTrustSelf = errors.New("a node does not attest trust in itself")

// TrustAdd attests that this node trusts req.DID with req.Score, stores it
// durably and gossips it.
func (n *Node) TrustAdd(ctx context.Context, req controlapi.TrustAddRequest) (controlapi.TrustEdge, error) {
	subject, err := did.Parse(req.DID)
	if err != nil {
		return controlapi.TrustEdge{}, argErr(ArgDID, req.DID, err)
	}
	if req.Score < 0 || req.Score > 1 || req.Score != req.Score {
		return controlapi.TrustEdge{}, argErrf(ArgScore, fmt.Sprint(req.Score), "score %v is not from 0 to 1", req.Score)
	}
	var expires time.Time
	if req.Expires != "" {
		d, err := time.ParseDuration(req.Expires)
		if err != nil || d <= 0 {
			return controlapi.TrustEdge{}, argErrf(ArgDuration, req.Expires, "--expires %q is not a positive duration", req.Expires)
		}
		expires = time.Now().Add(d).Truncate(time.Second)
	}
	return n.attest(ctx, subject, req.Score, req.Labels, expires)
}

// TrustRemove revokes this node's attestation about a DID (an attestation
// with score 0 that supersedes it everywhere).
func (n *Node) TrustRemove(ctx context.Context, didStr string) (controlapi.TrustEdge, error) {
	subject, err := did.Parse(didStr)
	if err != nil {
		return controlapi.TrustEdge{}, argErr(ArgDID, didStr, err)
	}
	if a, ok := n.trust.Get(n.DID(), subject); !ok || a.Score == 0 {
		return controlapi.TrustEdge{}, &NoTrustEdgeError{DID: subject.String()}
	}
	return n.attest(ctx, subject, 0, nil, time.Time{})
}

func (n *Node) attest(ctx context.Context, subject did.DID, score float64, labels []string, expires time.Time) (controlapi.TrustEdge, error) {
	id := n.current().id
	if subject == id.DID {
		return controlapi.TrustEdge{}, ErrTrustSelf
	}
	a, b, err := n.trust.Attest(ctx, id.DIDKey, subject, score, labels, expires)
	if err != nil {
		var re *trust.RuleError
		if errors.As(err, &re) {
			return controlapi.TrustEdge{}, argErr(ArgLabel, "", err)
		}
		return controlapi.TrustEdge{}, err
	}
	select {
	case n.deps.trustPub <- b:
	default: // the push queue is full: sync carries it
	}
	n.log.Info("trust attestation made", "subject", subject, "score", score, "seq", a.Seq)
	return edgeOf(a), nil
}

// TrustList lists this node's own live attestations.
func (n *Node) TrustList() []controlapi.TrustEdge {
	me := n.DID()
	out := []controlapi.TrustEdge{}
	for _, a := range n.trust.Edges() {
		if a.Issuer == me {
			out = append(out, edgeOf(a))
		}
	}
	return out
}

// TrustShow says what this node thinks of a DID and why.
func (n *Node) TrustShow(didStr string) (controlapi.TrustView, error) {
	d, err := did.Parse(didStr)
	if err != nil {
		return controlapi.TrustView{}, argErr(ArgDID, didStr, err)
	}
	s := n.trust.Scores()
	v := controlapi.TrustView{DID: d.String(), Score: s.Score(d), Class: s.Class(d).String(), Paths: []controlapi.TrustPath{}, Mode: n.cfg.Trust.Mode}
	if a, ok := n.trust.Get(n.DID(), d); ok && a.Score > 0 {
		e := edgeOf(a)
		v.Direct = &e
	}
	for _, p := range s.Paths(d, 5) {
		tp := controlapi.TrustPath{Score: p.Score}
		for _, x := range p.Via {
			tp.Via = append(tp.Via, x.String())
		}
		v.Paths = append(v.Paths, tp)
	}
	v.MayConnect, v.MayLedger, v.MayGossip = n.trustAllows(d)
	return v, nil
}

// TrustGraph is every live edge held and every DID with a score.
func (n *Node) TrustGraph() controlapi.TrustGraph {
	g := controlapi.TrustGraph{Self: n.DID().String(), Edges: []controlapi.TrustEdge{}, Scores: []controlapi.TrustScore{}}
	for _, a := range n.trust.Edges() {
		g.Edges = append(g.Edges, edgeOf(a))
	}
	s := n.trust.Scores()
	for d, v := range s.All() {
		g.Scores = append(g.Scores, controlapi.TrustScore{DID: d.String(), Score: v, Class: trust.ClassOf(v).String()})
	}
	sort.Slice(g.Scores, func(i, j int) bool {
		if g.Scores[i].Score != g.Scores[j].Score {
			return g.Scores[i].Score > g.Scores[j].Score
		}
		return g.Scores[i].DID < g.Scores[j].DID
	})
	return g
}

// trustAllows says what d may do here under the trust policy.
func (n *Node) trustAllows(d did.DID) (connect, ledger, gossip bool) {
	if n.cfg.Trust.Mode != config.TrustTrusted {
		return true, true, true
	}
	s := n.trust.Scores()
	score := s.Score(d)
	connect = score >= n.cfg.MinConnectScore()
	ledger = s.Class(d) >= mustClass(n.cfg.Trust.MinLedgerClass)
	gossip = s.Class(d) >= mustClass(n.cfg.Trust.MinGossipClass)
	return connect, ledger, gossip
}

// mustClass parses a class name config.Validate has checked.
func mustClass(name string) trust.Class {
	c, err := trust.ParseClass(name)
	if err != nil {
		return trust.Federated // unreachable after Validate; the strictest bar
	}
	return c
}
