package trust

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"slices"
	"time"

	"github.com/intercooperative/icn/did"
)

const (
	// PruneAfter is how long an expired attestation is still held (so
	// that catch-up does not bring back the attestation it replaced)
	// before Prune drops it.
	PruneAfter = 7 * 24 * time.Hour
	// DefaultMaxPerIssuer bounds the edges a Graph holds per issuer, so
	// one key cannot fill a node's memory with attestations of random
	// DIDs (SetMaxPerIssuer changes it).
	DefaultMaxPerIssuer = 4096
)

// Result is what Add made of an attestation; the values are metric labels
// (icn_trust_attestations_received_total{result}).
type Result string

// Results of Add and AddBlock. Only Accepted adds; Expired may remove (see
// Add); the others change nothing.
const (
	// Accepted: the attestation is now the edge's newest.
	Accepted Result = "accepted"
	// Duplicate: the very same attestation (same bytes) is held.
	Duplicate Result = "duplicate"
	// Outdated: the edge holds a higher seq.
	Outdated Result = "outdated"
	// Replayed: the edge holds the same seq with other content: refused.
	Replayed Result = "replayed"
	// Expired: the attestation has expired.
	Expired Result = "expired"
	// BadSignature: not signed by its issuer (AddBlock only).
	BadSignature Result = "bad_signature"
	// Malformed: not a valid attestation (or block).
	Malformed Result = "malformed"
	// TooMany: a new edge of an issuer that holds the maximum already.
	TooMany Result = "too_many"
)

// held is one edge's newest attestation with its block.
type held struct {
	a       *Attestation
	block   []byte
	hash    [sha256.Size]byte // sha256 of block
	subject [ed25519.PublicKeySize]byte
}

// issuerEdges are one issuer's edges, sorted by subject key, and their
// digest.
type issuerEdges struct {
	id     did.DID
	key    [ed25519.PublicKeySize]byte
	sorted []*held
	digest [sha256.Size]byte // xor of the blocks' hashes
}

// find is the index of subject in ie.sorted, or where it would go.
func (ie *issuerEdges) find(subject *[ed25519.PublicKeySize]byte) (int, bool) {
	return slices.BinarySearchFunc(ie.sorted, subject, func(h *held, k *[ed25519.PublicKeySize]byte) int {
		return bytes.Compare(h.subject[:], k[:])
	})
}

// Graph holds the newest attestation per edge, whatever its score or
// expiry (a revocation must keep beating the attestation it revoked).
// It keeps them in (issuer, subject) order, so reading them in order costs
// no sorting. It is not safe for concurrent use (the caller locks) and
// does no I/O.
//
// The attestations and blocks it returns are its own: read, never modify.
type Graph struct {
	issuers      map[did.DID]*issuerEdges
	order        []*issuerEdges // sorted by issuer key
	byHash       map[[sha256.Size]byte]*held
	n            int
	maxPerIssuer int
}

// NewGraph returns an empty graph that holds at most DefaultMaxPerIssuer
// edges per issuer.
func NewGraph() *Graph {
	return &Graph{issuers: map[did.DID]*issuerEdges{}, byHash: map[[sha256.Size]byte]*held{}, maxPerIssuer: DefaultMaxPerIssuer}
}

// SetMaxPerIssuer sets how many edges one issuer may hold; n <= 0 means no
// limit. Edges held already stay.
func (g *Graph) SetMaxPerIssuer(n int) { g.maxPerIssuer = n }

// Add adds an attestation that the caller has verified (Verify): Add checks
// the static rules and encodes it, but checks no signature; AddBlock does
// the whole job for a block from the network. The graph keeps a copy.
//
// The edge's held attestation decides: the same bytes are a Duplicate, a
// lower seq is Outdated, the same seq with other content is Replayed.
// An attestation newer than the held one, or for a new edge, is Accepted
// and held; one that has already expired at now is held too, as the
// issuer's newest word (it carries nothing), and reported as Expired, so
// an older attestation of the edge replayed later is Outdated. Whoever
// mirrors the graph in storage stores what Get(a.Key()) returns after an
// Accepted or Expired result.
func (g *Graph) Add(a *Attestation, now time.Time) Result {
	if a == nil || a.checkStatic(true) != nil {
		return Malformed
	}
	block, err := a.Encode()
	if err != nil || len(block) > MaxSize {
		return Malformed
	}
	c := a.clone()
	// Held times are as decoded: UTC, no monotonic reading.
	c.IssuedAt = time.Unix(c.IssuedAt.Unix(), 0).UTC()
	if !c.ExpiresAt.IsZero() {
		c.ExpiresAt = time.Unix(c.ExpiresAt.Unix(), 0).UTC()
	}
	return g.add(c, block, now, false)
}

// AddBlock decodes a block, verifies it and adds it (see Add). It returns
// the decoded attestation (for a Duplicate, the one held) unless the block
// is Malformed. A block identical to one held is found by its hash: a
// Duplicate without decoding or a signature check. The graph keeps its own
// copy of b.
func (g *Graph) AddBlock(b []byte, now time.Time) (Result, *Attestation) {
	h := sha256.Sum256(b)
	if old := g.byHash[h]; old != nil {
		return Duplicate, old.a
	}
	a, err := Decode(b)
	if err != nil {
		return Malformed, nil
	}
	return g.addHashed(a, slices.Clone(b), h, now, true), a
}

func (g *Graph) add(a *Attestation, block []byte, now time.Time, verify bool) Result {
	return g.addHashed(a, block, sha256.Sum256(block), now, verify)
}

func (g *Graph) addHashed(a *Attestation, block []byte, h [sha256.Size]byte, now time.Time, verify bool) Result {
	if g.byHash[h] != nil {
		return Duplicate
	}
	ie := g.issuers[a.Issuer]
	subject := keyOf(a.Subject)
	var old *held
	at, found := 0, false
	if ie != nil {
		if at, found = ie.find(&subject); found {
			old = ie.sorted[at]
		}
	}
	if verify && a.Verify() != nil {
		return BadSignature
	}
	if old != nil {
		switch {
		case a.Seq < old.a.Seq:
			return Outdated
		case a.Seq == old.a.Seq:
			return Replayed
		}
	}
	// An attestation that has already expired is held all the same (it
	// carries nothing: Edges leaves it out): it is the issuer's newest
	// word, so an older attestation of the edge, replayed later, is
	// Outdated here as on the nodes that held it while it was live.
	result := Accepted
	if a.Expired(now) {
		result = Expired
	}
	if ie == nil {
		ie = &issuerEdges{id: a.Issuer, key: keyOf(a.Issuer)}
		g.issuers[a.Issuer] = ie
		i, _ := g.findIssuer(&ie.key)
		g.order = slices.Insert(g.order, i, ie)
	}
	nh := &held{a: a, block: block, hash: h, subject: subject}
	if old == nil {
		if g.maxPerIssuer > 0 && len(ie.sorted) >= g.maxPerIssuer {
			return TooMany
		}
		ie.sorted = slices.Insert(ie.sorted, at, nh)
		g.n++
	} else {
		xor(&ie.digest, &old.hash)
		delete(g.byHash, old.hash)
		ie.sorted[at] = nh
	}
	g.byHash[h] = nh
	xor(&ie.digest, &h)
	return result
}

// findIssuer is the index of an issuer key in g.order, or where it would
// go.
func (g *Graph) findIssuer(key *[ed25519.PublicKeySize]byte) (int, bool) {
	return slices.BinarySearchFunc(g.order, key, func(ie *issuerEdges, k *[ed25519.PublicKeySize]byte) int {
		return bytes.Compare(ie.key[:], k[:])
	})
}

// remove drops ie.sorted[at].
func (g *Graph) remove(ie *issuerEdges, at int) {
	h := ie.sorted[at]
	ie.sorted = slices.Delete(ie.sorted, at, at+1)
	delete(g.byHash, h.hash)
	xor(&ie.digest, &h.hash)
	g.n--
	if len(ie.sorted) == 0 {
		delete(g.issuers, ie.id)
		if i, ok := g.findIssuer(&ie.key); ok {
			g.order = slices.Delete(g.order, i, i+1)
		}
	}
}

func xor(dst, h *[sha256.Size]byte) {
	for i := range dst {
		dst[i] ^= h[i]
	}
}

func (g *Graph) get(k EdgeKey) *held {
	if ie := g.issuers[k.Issuer]; ie != nil {
		subject := keyOf(k.Subject)
		if at, ok := ie.find(&subject); ok {
			return ie.sorted[at]
		}
	}
	return nil
}

// Get returns the attestation held for an edge, whatever its score or
// expiry.
func (g *Graph) Get(k EdgeKey) (*Attestation, bool) {
	if h := g.get(k); h != nil {
		return h.a, true
	}
	return nil, false
}

// Block returns the encoded attestation held for an edge.
func (g *Graph) Block(k EdgeKey) ([]byte, bool) {
	if h := g.get(k); h != nil {
		return h.block, true
	}
	return nil, false
}

// Len is the number of edges held, revocations and expired ones included.
func (g *Graph) Len() int { return g.n }

// each calls f on every held edge in (issuer, subject) order.
func (g *Graph) each(f func(*held)) {
	for _, ie := range g.order {
		for _, h := range ie.sorted {
			f(h)
		}
	}
}

// Edges returns the attestations that carry trust at now (not expired,
// score > 0), sorted by (issuer, subject) key bytes.
func (g *Graph) Edges(now time.Time) []*Attestation {
	out := make([]*Attestation, 0, g.n)
	g.each(func(h *held) {
		if h.a.Live(now) {
			out = append(out, h.a)
		}
	})
	return out
}

// All returns every attestation held, revocations and expired ones
// included (for storage and sync), sorted by (issuer, subject).
func (g *Graph) All() []*Attestation {
	out := make([]*Attestation, 0, g.n)
	g.each(func(h *held) { out = append(out, h.a) })
	return out
}

// Prune drops the attestations that expired more than PruneAfter before
// now and returns how many it dropped.
func (g *Graph) Prune(now time.Time) int {
	dropped := 0
	for _, ie := range slices.Clone(g.order) {
		for at := len(ie.sorted) - 1; at >= 0; at-- {
			if e := ie.sorted[at].a.ExpiresAt; !e.IsZero() && now.Sub(e) > PruneAfter {
				g.remove(ie, at)
				dropped++
			}
		}
	}
	return dropped
}
