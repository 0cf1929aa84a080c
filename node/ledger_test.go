package node_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"

	"github.com/intercooperative/icn/internal/harness"
	"github.com/intercooperative/icn/internal/ledgertest"
	"github.com/intercooperative/icn/node"
	"github.com/intercooperative/icn/node/controlapi"
)

func pay(t *testing.T, from, to *harness.Node, amount, cur string) controlapi.Entry {
	t.Helper()
	e, err := from.Pay(context.Background(), controlapi.PayRequest{To: to.Identity.DID.String(), Amount: amount, Currency: cur})
	require.NoError(t, err)
	return e
}

func sameState(nodes ...*harness.Node) func() bool {
	return func() bool {
		h := nodes[0].LedgerHead()
		for _, n := range nodes[1:] {
			if n.LedgerHead().StateHash != h.StateHash {
				return false
			}
		}
		return true
	}
}

// Four nodes split two and two, both sides pay, the partition heals, and
// all four converge to the same state hash.
func TestPartitionHeals(t *testing.T) {
	nodes := harness.Start(t, 4)
	a, b, c, d := nodes[0], nodes[1], nodes[2], nodes[3]
	for _, pair := range [][2]*harness.Node{{a, b}, {c, d}, {a, c}} {
		harness.Connect(t, pair[0], pair[1])
	}
	_, err := a.CreateCurrency(context.Background(), controlapi.CurrencyRequest{Symbol: "hours", Decimals: 2, CreditLimit: "1000"})
	require.NoError(t, err)
	require.Eventually(t, sameState(nodes...), 60*time.Second, 100*time.Millisecond, "the currency never reached everyone")

	// Partition: {a,b} | {c,d}.
	for _, x := range []*harness.Node{a, b} {
		for _, y := range []*harness.Node{c, d} {
			_, _ = x.Disconnect(y.Identity.DID.String())
		}
	}
	require.Eventually(t, func() bool {
		for _, x := range []*harness.Node{a, b} {
			for _, p := range x.Peers() {
				if p.DID == c.Identity.DID.String() || p.DID == d.Identity.DID.String() {
					return false
				}
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond)
	for i := 0; i < 5; i++ {
		pay(t, a, b, fmt.Sprintf("%d", i+1), "hours")
		pay(t, c, d, "2.50", "hours")
		pay(t, d, a, "1", "hours")
	}
	require.NotEqual(t, a.LedgerHead().StateHash, c.LedgerHead().StateHash)

	// Heal.
	harness.Connect(t, b, d)
	require.Eventually(t, sameState(nodes...), 60*time.Second, 100*time.Millisecond, "the four never converged")
	h := a.LedgerHead()
	require.Equal(t, 16, h.Accepted)
	bs, err := a.Balances("", "")
	require.NoError(t, err)
	var sum int64
	for _, x := range bs {
		sum += x.Units
	}
	require.Zero(t, sum)
}

// A node joining a network that holds many entries catches up by itself.
func TestCatchUp(t *testing.T) {
	n := 10_000
	if testing.Short() {
		n = 1000
	}
	nodes := harness.Start(t, 2)
	a, b := nodes[0], nodes[1]
	_, err := a.CreateCurrency(context.Background(), controlapi.CurrencyRequest{Symbol: "hours", CreditLimit: "100000000"})
	require.NoError(t, err)
	for i := 1; i < n; i++ {
		pay(t, a, b, "1", "hours")
	}
	require.Equal(t, n, a.LedgerHead().Accepted)
	newcomer := harness.Start(t, 1, harness.Bootstrap(a))[0]
	require.Eventually(t, sameState(a, newcomer), 120*time.Second, 200*time.Millisecond,
		"the newcomer holds %d of %d entries", newcomer.LedgerHead().Accepted, n)
	_ = b
}

// A member signs two different entries with the same seq and hands one to
// each end of a three-node line. All three converge on the same winner
// (the smaller CID), keep the loser in quarantine, and agree on the state.
func TestEquivocationAcrossThreeNodes(t *testing.T) {
	nodes := harness.Start(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	harness.Connect(t, a, b)
	harness.Connect(t, b, c)
	def, err := a.CreateCurrency(context.Background(), controlapi.CurrencyRequest{Symbol: "hours", CreditLimit: "100"})
	require.NoError(t, err)
	require.Eventually(t, sameState(nodes...), 60*time.Second, 100*time.Millisecond)

	pub, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	m, err := did.FromPublicKey(pub)
	require.NoError(t, err)
	cur := ledger.CurrencyID{Symbol: "hours", Issuer: a.Identity.DID}
	defCID, err := cid.Decode(def.CID)
	require.NoError(t, err)
	twin := func(to did.DID) ([]byte, cid.Cid) {
		e := &ledger.Entry{Author: m, Seq: 1, Parents: []cid.Cid{defCID}, Kind: ledger.KindTransfer,
			Postings: []ledger.Posting{{Account: m, Currency: cur, Amount: -80}, {Account: to, Currency: cur, Amount: 80}}}
		blk, c, err := ledger.Sign(e, key)
		require.NoError(t, err)
		return blk, c
	}
	b1, c1 := twin(b.Identity.DID)
	b2, c2 := twin(c.Identity.DID)
	_, err = a.IngestLedgerBlocks(context.Background(), [][]byte{b1})
	require.NoError(t, err)
	_, err = c.IngestLedgerBlocks(context.Background(), [][]byte{b2})
	require.NoError(t, err)
	winner, loser := c1, c2
	if bytesLess(c2, c1) {
		winner, loser = c2, c1
	}
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			h := n.LedgerHead()
			if h.Accepted != 2 || h.Quarantined != 1 {
				return false
			}
		}
		return sameState(nodes...)()
	}, 60*time.Second, 100*time.Millisecond, "the three never agreed")
	for _, n := range nodes {
		hist, err := n.History(context.Background(), m.String())
		require.NoError(t, err)
		for _, e := range hist {
			switch e.CID {
			case winner.String():
				require.Equal(t, "accepted", e.Status)
			case loser.String():
				require.Equal(t, "quarantined", e.Status)
				require.Contains(t, e.Reason, "equivocation")
			}
		}
	}
}

func bytesLess(a, b cid.Cid) bool { return string(a.Bytes()) < string(b.Bytes()) }

// Gossip validation refuses pushed ledger blocks that are not valid entries
// (checked with the ledger store's keys) and lets valid ones through.
func TestGossipChecksLedgerEntries(t *testing.T) {
	n := harness.Start(t, 1)[0]
	ctx := context.Background()
	blocks := ledgertest.History(t, 2, 3)
	_, err := n.Gossip().Publish(ctx, node.LedgerTopic("T"), node.LedgerEntryType, blocks[0])
	require.NoError(t, err)
	bad := append([]byte(nil), blocks[1]...)
	bad[len(bad)-1] ^= 1 // the signature's last byte
	_, err = n.Gossip().Publish(ctx, node.LedgerTopic("T"), node.LedgerEntryType, bad)
	require.ErrorContains(t, err, "signature")
	_, err = n.Gossip().Publish(ctx, node.LedgerTopic("T"), node.LedgerEntryType, []byte("not a block"))
	require.Error(t, err)
}
