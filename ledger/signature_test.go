package ledger

import (
	"crypto/ed25519"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
)

// The signing bytes cut from a block equal the ones encoded from the entry.
func TestSigningBytesCutFromTheBlock(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	sc := genScenario(t, r, 4, 60)
	for _, v := range sc.entries {
		want, err := v.Entry.SigningBytes()
		require.NoError(t, err)
		got, err := signingBytesOf(v.Block, v.Entry)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
}

// groupOrder is the order L of the Ed25519 base point.
var groupOrder, _ = new(big.Int).SetString("7237005577332262213973186563042994811857437003424580006680986596352009154099", 10)

// verifySignature with a cached point decides exactly as ed25519.Verify:
// valid signatures, tampered ones, a non-canonical S (S+L), high bits set,
// another key, another message.
func TestCachedVerifyMatchesStdlib(t *testing.T) {
	r := rand.New(rand.NewPCG(43, 44))
	var keys KeyCache
	for i := 0; i < 50; i++ {
		m := newMember(t, r)
		other := newMember(t, r)
		msg := make([]byte, r.IntN(300))
		for j := range msg {
			msg[j] = byte(r.IntN(256))
		}
		sig := ed25519.Sign(m.key, msg)
		cases := map[string][]byte{"valid": sig}
		flip := append([]byte{}, sig...)
		flip[r.IntN(64)] ^= 1 << r.IntN(8)
		cases["bit flipped"] = flip
		high := append([]byte{}, sig...)
		high[63] |= 0xe0
		cases["high bits"] = high
		// S+L encodes the same scalar non-canonically: both must refuse it.
		sLE := append([]byte{}, sig[32:]...)
		for a, b := 0, 31; a < b; a, b = a+1, b-1 {
			sLE[a], sLE[b] = sLE[b], sLE[a]
		}
		s := new(big.Int).SetBytes(sLE)
		s.Add(s, groupOrder)
		if s.BitLen() <= 256 {
			be := s.FillBytes(make([]byte, 32))
			for a, b := 0, 31; a < b; a, b = a+1, b-1 {
				be[a], be[b] = be[b], be[a]
			}
			cases["S+L"] = append(append([]byte{}, sig[:32]...), be...)
		}
		cases["short"] = sig[:63]
		for name, sg := range cases {
			want := ed25519.Verify(m.id.PublicKey(), msg, sg)
			require.Equal(t, want, keys.verifySignature(m.id, msg, sg), name)
			require.Equal(t, ed25519.Verify(other.id.PublicKey(), msg, sg), keys.verifySignature(other.id, msg, sg), name+" other key")
			var nilCache *KeyCache
			require.Equal(t, want, nilCache.verifySignature(m.id, msg, sg), name+" nil cache")
		}
		require.True(t, keys.verifySignature(m.id, msg, sig))
		if len(msg) > 0 {
			require.False(t, keys.verifySignature(m.id, msg[1:], sig))
		}
	}
	// Both ways were taken: each key's first signature without tables,
	// the later ones with.
	require.Len(t, keys.prepared, 100)
}

func FuzzCachedVerify(f *testing.F) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	id, err := did.FromPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("hello"), ed25519.Sign(key, []byte("hello")))
	f.Add([]byte(""), make([]byte, 64))
	var keys KeyCache
	f.Fuzz(func(t *testing.T, msg, sig []byte) {
		if got, want := keys.verifySignature(id, msg, sig), ed25519.Verify(id.PublicKey(), msg, sig); got != want {
			t.Fatalf("cached verify says %v, crypto/ed25519 says %v", got, want)
		}
	})
}

// Once every place for tables is taken, a key that keeps signing takes the
// place of the least used one; a key that signs a few times does not.
func TestPreparedKeysGoToThoseWhoKeepSigning(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var keys KeyCache
	msg := []byte("pay 1")
	check := func(m member, times int) {
		t.Helper()
		sig := ed25519.Sign(m.key, msg)
		for i := 0; i < times; i++ {
			require.True(t, keys.verifySignature(m.id, msg, sig))
		}
	}
	tablesOf := func(m member) bool {
		ck, err := keys.lookup(m.id.PublicKey())
		require.NoError(t, err)
		return ck.tables.Load() != nil
	}
	flood := make([]member, maxPreparedKeys)
	for i := range flood {
		flood[i] = newMember(t, r)
		check(flood[i], prepareAfter)
	}
	require.Len(t, keys.prepared, maxPreparedKeys)

	casual, steady := newMember(t, r), newMember(t, r)
	check(casual, evictEvery-1)
	require.False(t, tablesOf(casual), "all places taken, and it signed too little to take one")
	check(steady, evictEvery)
	require.True(t, tablesOf(steady), "signing more than the least used key takes its place")
	require.Len(t, keys.prepared, maxPreparedKeys)
	lost := 0
	for _, m := range flood {
		if !tablesOf(m) {
			lost++
		}
	}
	require.Equal(t, 1, lost)
	// Both ways still decide correctly.
	check(casual, 1)
	check(steady, 1)
	bad := ed25519.Sign(steady.key, []byte("pay 2"))
	require.False(t, keys.verifySignature(steady.id, msg, bad))
	require.False(t, keys.verifySignature(casual.id, msg, bad))
}
