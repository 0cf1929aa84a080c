package ledger

import (
	"crypto/sha256"
	"math/rand/v2"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"
)

// A ledger restored from a snapshot is the ledger it was taken of: same
// answers now, and the same answers after both take the same further
// entries (equivocations and recomputes included).
func TestSnapshotRestore(t *testing.T) {
	for seed := uint64(1); seed <= 25; seed++ {
		r := rand.New(rand.NewPCG(seed, 77))
		sc := genScenario(t, r, 2+r.IntN(5), 30+r.IntN(80))
		order := r.Perm(len(sc.entries))
		cut := r.IntN(len(order) + 1)
		byCID := map[cid.Cid]*Verified{}
		for _, v := range sc.entries {
			byCID[v.CID] = v
		}
		a := New()
		if seed%2 == 0 {
			a = newSmallClocks()
		}
		for _, i := range order[:cut] {
			a.Add(sc.entries[i])
		}
		snap, err := a.MarshalBinary()
		require.NoError(t, err)
		b, err := Restore(snap)
		require.NoError(t, err, "seed %d", seed)
		for _, c := range a.PendingCIDs() {
			b.Add(byCID[c])
		}
		requireSameLedger(t, a, b, seed)
		if len(a.recs) > 0 {
			require.Equal(t, a.recs, b.recs, "seed %d", seed)
		}
		for _, i := range order[cut:] {
			// Pending entries were added back in another order, so entries
			// they complete may be evaluated in another order, passing
			// through other intermediate statuses: compare the outcome
			// without its list of decisions, and the states.
			oa, ob := a.Add(sc.entries[i]), b.Add(sc.entries[i])
			oa.Decisions, ob.Decisions = nil, nil
			require.Equal(t, oa, ob, "seed %d", seed)
			require.Equal(t, a.Quarantine(), b.Quarantine(), "seed %d", seed)
			require.Equal(t, a.StateHash(), b.StateHash(), "seed %d", seed)
		}
		requireSameLedger(t, a, b, seed)
		checkInvariants(t, b)
	}
}

func requireSameLedger(t *testing.T, a, b *Ledger, seed uint64) {
	t.Helper()
	require.Equal(t, a.StateHash(), b.StateHash(), "seed %d", seed)
	require.Equal(t, a.Balances(), b.Balances(), "seed %d", seed)
	require.Equal(t, a.Heads(), b.Heads(), "seed %d", seed)
	require.Equal(t, a.Quarantine(), b.Quarantine(), "seed %d", seed)
	require.Equal(t, a.Summary(), b.Summary(), "seed %d", seed)
	require.Equal(t, a.Missing(), b.Missing(), "seed %d", seed)
	require.Equal(t, a.Stats(), b.Stats(), "seed %d", seed)
	require.Equal(t, a.Currencies(), b.Currencies(), "seed %d", seed)
	for i := range a.recs {
		ib, ok := b.byKey.find(b.recs, &a.recs[i].key)
		require.True(t, ok)
		require.Equal(t, a.recs[i].status, b.recs[ib].status)
		require.Equal(t, a.clocks.get(a, uint32(i)), b.clocks.get(b, ib), "seed %d record %d", seed, i)
	}
}

// A damaged, truncated or foreign snapshot is refused, never half used.
func TestSnapshotRefusesDamage(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	sc := genScenario(t, r, 4, 60)
	snap, err := replay(sc.entries, identity(len(sc.entries))).MarshalBinary()
	require.NoError(t, err)
	for _, bad := range [][]byte{
		nil,
		snap[:len(snap)/2],
		append(append([]byte{}, snap[:100]...), append([]byte{snap[100] ^ 1}, snap[101:]...)...),
	} {
		_, err := Restore(bad)
		require.ErrorIs(t, err, ErrSnapshot)
	}
	// A well-formed snapshot of another version.
	w := snapWriter{}
	w.u32(snapshotVersion + 1)
	_, err = Restore(withSum(w.b))
	require.ErrorContains(t, err, "version")
	// Checksummed but inconsistent: a parent index beyond the records.
	l := replay(sc.entries, identity(len(sc.entries)))
	l.parents = append(l.parents, uint32(len(l.recs)+5))
	bad, err := l.MarshalBinary()
	require.NoError(t, err)
	_, err = Restore(bad)
	require.ErrorIs(t, err, ErrSnapshot)
}

func withSum(b []byte) []byte {
	sum := sha256.Sum256(b)
	return append(append([]byte{}, b...), sum[:]...)
}

// FuzzRestore: no input makes Restore panic, and the queries on whatever it
// accepts do not either. (Restore checks bounds, not meaning: a snapshot is
// checksummed and written by this node; `ledger verify` compares the state
// with a rebuild from the blocks.)
func FuzzRestore(f *testing.F) {
	// A small seed: the fuzzer minimises every input it finds interesting,
	// which takes long on large ones.
	r := rand.New(rand.NewPCG(5, 6))
	sc := genScenario(f, r, 2, 6)
	snap, err := replay(sc.entries, identity(len(sc.entries))).MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(snap[:len(snap)-32])
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, body []byte) {
		l, err := Restore(withSum(body))
		if err != nil {
			return
		}
		l.StateHash()
		l.Balances()
		l.Heads()
		l.Quarantine()
		l.Summary()
		l.Currencies()
		l.Stats()
	})
}
