package node

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/ledgertest"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/ledger/store"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/trustgraph"
	"github.com/intercooperative/icn/protocols/identity"
	"github.com/intercooperative/icn/trust"
)

// benchKey derives a key from a label and an index: the same label, the
// same key.
func benchKey(label string, i int) (ed25519.PrivateKey, did.DID) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(i))
	seed := sha256.Sum256(append([]byte(label), n[:]...))
	key := ed25519.NewKeyFromSeed(seed[:])
	d, err := did.FromPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		panic(err)
	}
	return key, d
}

// benchGuard is a trusted-mode trustGuard (the default classes: known for
// the ledger and gossip) over a trust graph of realistic size: 2,000 DIDs
// each attesting 5 random others (10,000 signed edges, as in
// trust/bench_test.go), which this node reaches through 8 of them it
// attests, plus this node's own attestations of members (at 0.8). It
// returns the guard and this node's DID.
func benchGuard(b *testing.B, members []did.DID) (*trustGuard, did.DID) {
	b.Helper()
	ctx := context.Background()
	now := time.Now()
	selfKey, self := benchKey("bench-self", 0)
	g, err := trustgraph.Open(ctx, dssync.MutexWrap(ds.NewMapDatastore()), trustgraph.Options{Self: self})
	require.NoError(b, err)

	const dids, degree = 2000, 5
	keys := make([]ed25519.PrivateKey, dids)
	ids := make([]did.DID, dids)
	for i := range keys {
		keys[i], ids[i] = benchKey("bench-did", i)
	}
	r := rand.New(rand.NewPCG(1, 1))
	blocks := make([][]byte, 0, dids*degree)
	for i := range ids {
		picked := map[int]bool{i: true}
		for len(picked) <= degree {
			j := r.IntN(dids)
			if picked[j] {
				continue
			}
			picked[j] = true
			a := &trust.Attestation{Issuer: ids[i], Subject: ids[j], Score: float64(1+r.IntN(100)) / 100,
				IssuedAt: now.Add(-time.Hour).Truncate(time.Second), Seq: 1}
			blk, err := trust.Sign(a, keys[i])
			require.NoError(b, err)
			blocks = append(blocks, blk)
		}
	}
	res, err := g.Ingest(ctx, blocks)
	require.NoError(b, err)
	for _, r := range res {
		require.Equal(b, trust.Accepted, r)
	}
	for _, d := range append(ids[:8:8], members...) {
		_, _, err := g.Attest(ctx, selfKey, d, 0.8, nil, time.Time{})
		require.NoError(b, err)
	}
	require.Len(b, g.Edges(), dids*degree+8+len(members))
	require.Greater(b, len(g.Scores().All()), dids*9/10, "the node reaches most of the graph")

	cfg := config.Default()
	cfg.Trust.Mode = config.TrustTrusted
	guard, err := newTrustGuard(cfg, g, identity.NewBook(), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(b, err)
	return guard, self
}

// authorsOf are the distinct authors of blocks.
func authorsOf(b *testing.B, blocks [][]byte) []did.DID {
	b.Helper()
	seen := map[did.DID]bool{}
	var out []did.DID
	for _, blk := range blocks {
		e, err := ledger.Decode(blk)
		require.NoError(b, err)
		if !seen[e.Author] {
			seen[e.Author] = true
			out = append(out, e.Author)
		}
	}
	return out
}

// BenchmarkIngestTrustCheck measures what the ledger admission policy of
// trusted mode (admitEntry, installed with store.SetAdmit as node.New
// does) costs durable ingest: 10,000 entries by 16 authors, each a member
// this node attests, into a fresh real Badger store with synced commits of
// 512 entries and two ingesters (as BenchmarkIngest in ledger/store and
// ledgersync run it). Each iteration ingests once without the policy and
// once with it, in alternating order, so both see the same machine; it
// reports both rates, the ratio of total times (with/without) and the
// median of the per-iteration ratios. vs=control runs the same pairs with
// no policy on either side: the ratios it reports are the noise.
//
// Run: go test -run='^$' -bench=IngestTrustCheck -benchtime=10x -count=3 ./node/
func BenchmarkIngestTrustCheck(b *testing.B) {
	const n = 10_000
	blocks := ledgertest.History(b, 16, n)
	guard, self := benchGuard(b, authorsOf(b, blocks))
	admit := guard.admitEntry(self)
	// The policy does run, and admits these authors.
	stranger, _ := benchKey("bench-stranger", 0)
	strangerDID, _ := did.FromPublicKey(stranger.Public().(ed25519.PublicKey))
	require.Error(b, admit(&ledger.Entry{Author: strangerDID}))
	for _, d := range authorsOf(b, blocks) {
		require.NoError(b, admit(&ledger.Entry{Author: d}))
	}

	ingest := func(b *testing.B, policy func(*ledger.Entry) error) time.Duration {
		dir := filepath.Join(b.TempDir(), "ds")
		s, err := store.Open(context.Background(), dir, store.Options{})
		require.NoError(b, err)
		s.SetAdmit(policy)
		batches := make(chan [][]byte)
		var wg sync.WaitGroup
		start := time.Now()
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for batch := range batches {
					res, err := s.Ingest(context.Background(), batch, nil)
					if err != nil {
						panic(err)
					}
					for _, r := range res {
						if r.Err != nil {
							panic(r.Err)
						}
					}
				}
			}()
		}
		for i := 0; i < len(blocks); i += 512 {
			batches <- blocks[i:min(i+512, len(blocks))]
		}
		close(batches)
		wg.Wait()
		took := time.Since(start)
		require.Equal(b, uint64(n), s.Count())
		require.NoError(b, s.Close())
		require.NoError(b, os.RemoveAll(dir))
		return took
	}

	for _, pair := range []struct {
		name string
		with func(*ledger.Entry) error
	}{{"check", admit}, {"control", nil}} {
		b.Run("vs="+pair.name, func(b *testing.B) {
			var off, on time.Duration
			ratios := make([]float64, 0, b.N)
			for i := range b.N {
				var tOff, tOn time.Duration
				if i%2 == 0 {
					tOff, tOn = ingest(b, nil), ingest(b, pair.with)
				} else {
					tOn, tOff = ingest(b, pair.with), ingest(b, nil)
				}
				off, on = off+tOff, on+tOn
				ratios = append(ratios, tOn.Seconds()/tOff.Seconds())
			}
			slices.Sort(ratios)
			b.ReportMetric(float64(n*b.N)/off.Seconds(), "entries/s-without")
			b.ReportMetric(float64(n*b.N)/on.Seconds(), "entries/s-with")
			b.ReportMetric(on.Seconds()/off.Seconds(), "time-ratio")
			b.ReportMetric(ratios[len(ratios)/2], "median-ratio")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkTrustChecks measures each trust check alone, as node.New
// installs them, on the graph of benchGuard: admitEntry per ledger entry,
// allowAuthor per gossip envelope (a member, and a DID reached through the
// graph only), tier per peer (asked by the gossip limiter at most every 2 s
// per peer, and for a relayed message whose relay is over its limit), with
// the peer's binding in the book (a connected peer, once identified) and
// without (its DID derived from its key).
func BenchmarkTrustChecks(b *testing.B) {
	id, err := did.Generate(time.Now())
	require.NoError(b, err)
	member := id.DID
	guard, self := benchGuard(b, []did.DID{member})
	// far is reached through the graph only: a map hit below the class.
	_, far := benchKey("bench-did", 1999)
	require.Greater(b, guard.graph.Scores().Score(far), 0.0)
	require.Less(b, guard.graph.Class(far), trust.Known)
	e := &ledger.Entry{Author: member}
	b.Run("check=admitEntry", func(b *testing.B) {
		admit := guard.admitEntry(self)
		for b.Loop() {
			if admit(e) != nil {
				b.Fatal("refused")
			}
		}
	})
	b.Run("check=allowAuthor", func(b *testing.B) {
		allow := guard.allowAuthor()
		for b.Loop() {
			if !allow(member) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("check=allowAuthor-far", func(b *testing.B) {
		allow := guard.allowAuthor()
		for b.Loop() {
			if allow(far) {
				b.Fatal("admitted")
			}
		}
	})
	tier := func(b *testing.B) {
		p := id.PeerID()
		b.ReportAllocs()
		for b.Loop() {
			if guard.tier(p).Class != "federated" {
				b.Fatal("wrong class")
			}
		}
	}
	b.Run("check=tier-unbound", tier)
	guard.book.Put(id.Binding)
	b.Run("check=tier-bound", tier)
}
