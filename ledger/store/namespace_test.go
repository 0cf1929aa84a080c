package store

import (
	"context"
	"path/filepath"
	"testing"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/ledger"
)

func TestNamespaceKeepsItsKeysApartAndSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "datastore")
	alice := newAuthor(t)
	s := openStore(t, dir)
	_, err := s.Append(ctx, func(l *ledger.Ledger) ([]byte, error) {
		return alice.next(l, ledger.KindCurrency, &ledger.CurrencyDef{Symbol: "hours", Decimals: 2, CreditLimit: 500}, nil)
	})
	require.NoError(t, err)

	for _, bad := range []string{"/", "/ledger", "/ledger/block", "ledger/x"} {
		_, err := s.Namespace(bad)
		require.Error(t, err, bad)
	}
	ns, err := s.Namespace("/blocklist")
	require.NoError(t, err)
	require.NoError(t, ns.Put(ctx, ds.NewKey("/a"), []byte("one")))
	require.NoError(t, ns.Put(ctx, ds.NewKey("/b"), []byte("two")))
	// Closing the namespace leaves the store open.
	require.NoError(t, ns.Close())
	require.Equal(t, uint64(1), s.Count())

	// The ledger ignores the foreign keys; verify finds nothing wrong.
	rep, err := s.Verify(ctx, nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "%v", rep.Problems)
	require.NoError(t, s.Close())

	s = openStore(t, dir)
	defer s.Close()
	require.Equal(t, uint64(1), s.Count())
	ns, err = s.Namespace("/blocklist")
	require.NoError(t, err)
	res, err := ns.Query(ctx, dsq.Query{})
	require.NoError(t, err)
	all, err := res.Rest()
	require.NoError(t, err)
	got := map[string]string{}
	for _, e := range all {
		got[e.Key] = string(e.Value)
	}
	require.Equal(t, map[string]string{"/a": "one", "/b": "two"}, got)
	// The raw datastore holds them under the prefix.
	v, err := s.ds.Get(ctx, ds.NewKey("/blocklist/a"))
	require.NoError(t, err)
	require.Equal(t, "one", string(v))
}
