package gossip

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/protocols/identity"
	"github.com/intercooperative/icn/trust"
)

// benchScores are the trust scores of a graph of realistic size, one per
// seed in selves, each from that seed's view: 2,000 DIDs each attesting 5
// random others (10,000 edges, as in trust/bench_test.go), and every seed
// attesting the other seeds at 0.8 and 8 of the 2,000 at 0.9.
func benchScores(b *testing.B, selves ...did.DID) []*trust.Scores {
	b.Helper()
	now := time.Now()
	at := now.Add(-time.Hour).Truncate(time.Second)
	edge := func(iss, sub did.DID, score float64) *trust.Attestation {
		return &trust.Attestation{Issuer: iss, Subject: sub, Score: score, IssuedAt: at, Seq: 1,
			Signature: make([]byte, ed25519.SignatureSize)} // Add trusts its caller to have verified it
	}
	const dids, degree = 2000, 5
	ids := make([]did.DID, dids)
	for i := range ids {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(i))
		seed := sha256.Sum256(append([]byte("bench-did"), n[:]...))
		d, err := did.FromPublicKey(ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey))
		require.NoError(b, err)
		ids[i] = d
	}
	g := trust.NewGraph()
	r := rand.New(rand.NewPCG(1, 1))
	for i := range ids {
		for n := 0; n < degree; {
			if j := r.IntN(dids); j != i && g.Add(edge(ids[i], ids[j], float64(1+r.IntN(100))/100), now) == trust.Accepted {
				n++
			}
		}
	}
	for _, s := range selves {
		for _, o := range selves {
			if o != s {
				require.Equal(b, trust.Accepted, g.Add(edge(s, o, 0.8), now))
			}
		}
		for _, d := range ids[:8] {
			require.Equal(b, trust.Accepted, g.Add(edge(s, d, 0.9), now))
		}
	}
	out := make([]*trust.Scores, len(selves))
	for i, s := range selves {
		out[i] = trust.Compute(g, s, trust.Params{}, now)
		require.Greater(b, len(out[i].All()), dids*9/10, "the seed reaches most of the graph")
	}
	return out
}

// trustHooks are Deps.Tier and Deps.AllowAuthor as node/trustpolicy.go
// builds them in trusted mode (min_gossip_class known): the peer's DID by
// its binding, else the DID its key derives; the class a map lookup in the
// current scores (an atomic pointer, as trustgraph.Graph.Scores). The
// buckets are out of the way, as in BenchmarkGossip: the limit is policy,
// the lookups are the cost.
func trustHooks(scores *trust.Scores, book Bindings) (func(peer.ID) Tier, func(did.DID) bool) {
	var cur atomic.Pointer[trust.Scores]
	cur.Store(scores)
	classOf := func(p peer.ID) trust.Class {
		if bd, ok := book.ByPeer(p); ok {
			return cur.Load().Class(bd.DID)
		}
		d, err := did.FromPeerID(p)
		if err != nil {
			return trust.Isolated
		}
		return cur.Load().Class(d)
	}
	tier := func(p peer.ID) Tier {
		c := classOf(p)
		return Tier{Class: c.String(), Rate: 1e9, Burst: 1 << 20, Relay: c >= trust.Known}
	}
	allow := func(d did.DID) bool { return cur.Load().Class(d) >= trust.Known }
	return tier, allow
}

// BenchmarkGossipTrustCheck measures what the trust hooks cost gossip
// between real hosts: two lines of three nodes as in BenchmarkGossip, side
// by side in one process, each with Deps.Tier and Deps.AllowAuthor as the
// node sets them in trusted mode (over scores of a 10,000-edge graph in
// which the three nodes attest each other). Messages go in rounds of 500 on
// each line; in each round the hooks of one line are switched off (they
// answer at once: the static bucket, every author allowed) and the lines
// swap every round, so both measurements see the same lines and the same
// machine. It reports throughput and latency with and without the checks
// and the ratios (with/without). vs=control never switches the checks on:
// its ratios are the noise.
//
// Run: go test -run='^$' -bench=GossipTrustCheck -benchtime=10000x -count=3 ./protocols/gossip/
func BenchmarkGossipTrustCheck(b *testing.B) {
	if testing.Short() {
		b.Skip("network benchmark")
	}
	const round = 500
	for _, mode := range []struct {
		name   string
		window int
	}{{"throughput", 128}, {"latency", 1}} {
		for _, vs := range []string{"check", "control"} {
			b.Run("mode="+mode.name+"/vs="+vs, func(b *testing.B) {
				type line struct {
					publish func([]byte) error
					recv    <-chan []byte
					checks  atomic.Bool
				}
				var lines [2]*line
				for k := range lines {
					l := &line{}
					var scores []*trust.Scores
					l.publish, l.recv = setupICNWith(b, func(i int, ids [3]*did.Identity, d *Deps) {
						if scores == nil {
							scores = benchScores(b, ids[0].DID, ids[1].DID, ids[2].DID)
						}
						tier, allow := trustHooks(scores[i], d.Bindings)
						d.Tier = func(p peer.ID) Tier {
							if !l.checks.Load() {
								return Tier{Rate: 1e9, Burst: 1 << 20}
							}
							return tier(p)
						}
						d.AllowAuthor = func(a did.DID) bool { return !l.checks.Load() || allow(a) }
					})
					warmUp(b, l.publish, l.recv)
					lines[k] = l
				}
				var tOff, tOn time.Duration
				var latOff, latOn []time.Duration
				b.ResetTimer()
				for i := 0; i < b.N; i += round {
					n := min(round, b.N-i)
					r := i / round
					on := lines[r%2]
					on.checks.Store(vs == "check")
					lines[1-r%2].checks.Store(false)
					for k := range 2 {
						l := lines[(r+k)%2] // which line goes first alternates too
						t, lat := deliver(b, l.publish, l.recv, mode.window, n)
						if l == on {
							tOn, latOn = tOn+t, append(latOn, lat...)
						} else {
							tOff, latOff = tOff+t, append(latOff, lat...)
						}
					}
				}
				b.StopTimer()
				reportDelivery(b, "-without", tOff, b.N, latOff)
				reportDelivery(b, "-with", tOn, b.N, latOn)
				b.ReportMetric(tOn.Seconds()/tOff.Seconds(), "time-ratio")
				b.ReportMetric(float64(latOn[len(latOn)/2])/float64(latOff[len(latOff)/2]), "p50-ratio")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// BenchmarkValidateTrustCheck measures the validator alone (what GossipSub
// runs on every message it received: the rate limiter, then admit) on two
// Services that are not running (no network), one without the trust hooks
// and one with them, in alternating chunks of 256 messages so both see the
// same machine. It reports each one's time per message and the ratio
// (with/without). path=direct is a message published by its author's node
// (GossipSub checked that signature: admit verifies nothing, so the hooks
// weigh most there); path=verified has the envelope signature checked too
// (a rotated key, a relayed envelope, gossip.verify_envelopes).
// vs=control compares two Services without hooks: its ratio is the noise.
//
// Run: go test -run='^$' -bench=ValidateTrustCheck -count=3 ./protocols/gossip/
func BenchmarkValidateTrustCheck(b *testing.B) {
	author := testIdentity(b)
	self := testIdentity(b)
	scores := benchScores(b, self.DID, author.DID)[0]
	const pool, chunk = 4096, 256
	raws := make([][]byte, pool)
	for i := range raws {
		_, raws[i] = signedEnvelope(b, author, testWire, uint64(i+1), TypeBinary, make([]byte, benchPayload))
	}
	from := author.PeerID()
	type validator struct {
		s        *Service
		validate pubsub.ValidatorEx
		msgs     []*pubsub.Message
		next     int
	}
	newValidator := func(b *testing.B, verify, hooks bool) *validator {
		book := identity.NewBook()
		book.Put(self.Binding)
		book.Put(author.Binding)
		m, err := NewMetrics(prometheus.NewRegistry(), nil, nil)
		require.NoError(b, err)
		cfg := Config{NetworkID: testNet, RateLimit: 1e9, RateBurst: 1 << 20, VerifyEnvelopes: verify}
		deps := Deps{Host: newHost(b, self.NodeKey), Identity: self, Bindings: book, Metrics: m, Log: slog.New(slog.DiscardHandler)}
		if hooks {
			deps.Tier, deps.AllowAuthor = trustHooks(scores, book)
		}
		s, err := New(cfg, deps)
		require.NoError(b, err)
		b.Cleanup(func() { _ = s.Close() })
		require.NoError(b, s.Join(chatTopic))
		v := &validator{s: s, validate: s.validator(s.topics[chatTopic]), msgs: make([]*pubsub.Message, pool)}
		for i, raw := range raws {
			v.msgs[i] = &pubsub.Message{Message: &pb.Message{Data: raw, From: []byte(from), Topic: &testWire}}
		}
		return v
	}
	// run validates n messages (n divides pool) and returns the time taken.
	run := func(b *testing.B, v *validator, n int) time.Duration {
		if v.next == pool {
			// A fresh replay window: the envelopes are new again.
			v.s.mem.window = newReplayWindow(v.s.cfg.DuplicateGrace, v.s.cfg.MaxAge+v.s.cfg.ClockSkew)
			v.next = 0
		}
		ctx := context.Background()
		start := time.Now()
		for _, pm := range v.msgs[v.next : v.next+n] {
			if res := v.validate(ctx, from, pm); res != pubsub.ValidationAccept {
				b.Fatalf("not accepted: %v", res)
			}
		}
		took := time.Since(start)
		v.next += n
		return took
	}
	for _, path := range []string{"direct", "verified"} {
		for _, vs := range []string{"check", "control"} {
			b.Run("path="+path+"/vs="+vs, func(b *testing.B) {
				off, on := newValidator(b, path == "verified", false), newValidator(b, path == "verified", vs == "check")
				var tOff, tOn time.Duration
				b.ResetTimer()
				for i := 0; i < b.N; i += chunk {
					if (i/chunk)%2 == 0 {
						tOff += run(b, off, chunk)
						tOn += run(b, on, chunk)
					} else {
						tOn += run(b, on, chunk)
						tOff += run(b, off, chunk)
					}
				}
				b.StopTimer()
				msgs := float64((b.N + chunk - 1) / chunk * chunk)
				b.ReportMetric(float64(tOff.Nanoseconds())/msgs, "ns/msg-without")
				b.ReportMetric(float64(tOn.Nanoseconds())/msgs, "ns/msg-with")
				b.ReportMetric(tOn.Seconds()/tOff.Seconds(), "time-ratio")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
