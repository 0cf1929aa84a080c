package trust

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
)

// t0 is the tests' clock.
var t0 = time.Unix(1_700_000_000, 0).UTC()

// member is a DID and its key.
type member struct {
	id  did.DID
	key ed25519.PrivateKey
}

// newMember derives a member from a label: the same label, the same key.
func newMember(tb testing.TB, label string, i int) member {
	tb.Helper()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	seed := sha256.Sum256(append([]byte(label), b[:]...))
	key := ed25519.NewKeyFromSeed(seed[:])
	id, err := did.FromPublicKey(key.Public().(ed25519.PublicKey))
	require.NoError(tb, err)
	return member{id, key}
}

// ids returns n DIDs derived from label.
func ids(tb testing.TB, label string, n int) []did.DID {
	tb.Helper()
	out := make([]did.DID, n)
	for i := range out {
		out[i] = newMember(tb, label, i).id
	}
	return out
}

// edge is an attestation that was never signed, for Graph.Add (which
// trusts its caller to have verified it).
func edge(iss, sub did.DID, score float64) *Attestation {
	return &Attestation{Issuer: iss, Subject: sub, Score: score, IssuedAt: t0, Seq: 1, Signature: make([]byte, ed25519.SignatureSize)}
}

// graphOf adds the attestations to a new graph; each must be accepted.
func graphOf(tb testing.TB, as ...*Attestation) *Graph {
	tb.Helper()
	g := NewGraph()
	g.SetMaxPerIssuer(0)
	for _, a := range as {
		require.Equal(tb, Accepted, g.Add(a, t0), "%s -> %s", a.Issuer, a.Subject)
	}
	return g
}

// signed signs a copy of a with m's key and returns it and its block.
func signed(tb testing.TB, m member, a Attestation) (*Attestation, []byte) {
	tb.Helper()
	a.Issuer = m.id
	b, err := Sign(&a, m.key)
	require.NoError(tb, err)
	return &a, b
}
