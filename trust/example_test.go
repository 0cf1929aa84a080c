package trust_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log"
	"time"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/trust"
)

// member is a DID and its key, derived from a name so that the output is
// stable (Ed25519 signatures are deterministic).
type member struct {
	id  did.DID
	key ed25519.PrivateKey
}

func newMember(name string) member {
	seed := sha256.Sum256([]byte(name))
	key := ed25519.NewKeyFromSeed(seed[:])
	id, err := did.FromPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		log.Fatal(err)
	}
	return member{id, key}
}

// attest signs "issuer trusts subject this much" and returns the block.
func attest(issuer member, subject did.DID, score float64, seq uint64, now time.Time) []byte {
	b, err := trust.Sign(&trust.Attestation{Issuer: issuer.id, Subject: subject, Score: score, IssuedAt: now, Seq: seq}, issuer.key)
	if err != nil {
		log.Fatal(err)
	}
	return b
}

// A node (alice) trusts bob; bob trusts carol. Blocks arrive from the
// network, are added, and alice's node scores everyone from its own view.
func Example() {
	now := time.Unix(1_700_000_000, 0)
	alice, bob, carol := newMember("alice"), newMember("bob"), newMember("carol")

	g := trust.NewGraph()
	for _, b := range [][]byte{
		attest(alice, bob.id, 0.8, 1, now),
		attest(bob, carol.id, 1, 1, now),
		attest(bob, carol.id, 1, 1, now), // the same again
	} {
		r, _ := g.AddBlock(b, now)
		fmt.Println(r)
	}

	s := trust.Compute(g, alice.id, trust.DefaultParams(), now)
	for _, m := range []struct {
		name string
		id   did.DID
	}{{"alice", alice.id}, {"bob", bob.id}, {"carol", carol.id}} {
		fmt.Printf("%s %.2f %s\n", m.name, s.Score(m.id), s.Class(m.id))
	}
	for _, p := range s.Paths(carol.id, 3) {
		fmt.Printf("path of %d attestations brings %.2f\n", len(p.Via)-1, p.Score)
	}

	// Bob revokes: a newer seq with score 0.
	r, _ := g.AddBlock(attest(bob, carol.id, 0, 2, now), now)
	fmt.Println(r, trust.Compute(g, alice.id, trust.DefaultParams(), now).Class(carol.id))
	// Output:
	// accepted
	// accepted
	// duplicate
	// alice 1.00 federated
	// bob 0.80 federated
	// carol 0.40 partner
	// path of 2 attestations brings 0.40
	// accepted isolated
}

// Catch-up in one round trip: the new node sends its summary, the other
// answers with what differs.
func ExampleGraph_Missing() {
	now := time.Unix(1_700_000_000, 0)
	alice, bob, carol := newMember("alice"), newMember("bob"), newMember("carol")
	old, fresh := trust.NewGraph(), trust.NewGraph()
	for _, b := range [][]byte{attest(alice, bob.id, 0.5, 1, now), attest(bob, carol.id, 0.9, 1, now)} {
		old.AddBlock(b, now)
	}
	for _, a := range old.Missing(fresh.Summary(), 100) {
		block, _ := old.Block(a.Key())
		r, _ := fresh.AddBlock(block, now)
		fmt.Println(r)
	}
	fmt.Println(len(old.Missing(fresh.Summary(), 100)), "left")
	// Output:
	// accepted
	// accepted
	// 0 left
}

func ExampleScoreToBP() {
	bp, _ := trust.ScoreToBP(0.8)
	fmt.Println(bp)
	_, err := trust.ScoreToBP(0.12345)
	fmt.Println(err)
	// Output:
	// 8000
	// score 0.12345 has more than four decimals: scores are whole basis points (0.0001)
}
