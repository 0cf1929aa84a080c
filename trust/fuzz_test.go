package trust

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func FuzzDecode(f *testing.F) {
	alice, bob := newMember(f, "alice", 0), newMember(f, "bob", 0)
	_, full := signed(f, alice, Attestation{Subject: bob.id, Score: 0.8, Labels: []string{"coop:bakery", "member"},
		IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), Seq: 7})
	_, revoke := signed(f, alice, Attestation{Subject: bob.id, IssuedAt: t0, Seq: 8})
	f.Add(full)
	f.Add(revoke)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Decode(b)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformed)
			return
		}
		// What decodes re-encodes to the same bytes, and passes the
		// static rules.
		again, err := a.Encode()
		require.NoError(t, err)
		require.Equal(t, b, again)
		require.NoError(t, a.checkStatic(true))
		// Adding it never panics, whatever the signature.
		g := NewGraph()
		r, _ := g.AddBlock(b, t0)
		require.NotEqual(t, Malformed, r)
	})
}

func FuzzDecodeSummary(f *testing.F) {
	g := graphOf(f, edge(newMember(f, "a", 0).id, newMember(f, "b", 0).id, 0.5))
	b, err := g.Summary().Encode()
	require.NoError(f, err)
	f.Add(b)
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSummary(b, 64)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformed)
			return
		}
		again, err := s.Encode()
		require.NoError(t, err)
		require.Equal(t, b, again)
	})
}
