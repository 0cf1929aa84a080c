package store

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/testutil"
	"github.com/intercooperative/icn/ledger"
)

// With less free space than MinFree, every write is refused with a
// DiskFullError that names the directory, and nothing changes: not the
// ledger in memory, not the disk. Once there is room the same writes go
// through on the same store, with no gap in the author's chain.
func TestDiskFullRefusesWritesAndRecovers(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "datastore")
	var free atomic.Uint64
	free.Store(1 << 30)
	logs := &testutil.LogBuffer{}
	s, err := Open(ctx, dir, Options{MinFree: 64 << 20, SnapshotEvery: -1, Log: slog.New(slog.NewTextHandler(logs, nil)),
		freeBytes: func(string) (uint64, error) { return free.Load(), nil }})
	require.NoError(t, err)
	alice, bob := newAuthor(t), newAuthor(t)
	cur := ledger.CurrencyID{Symbol: "hours", Issuer: alice.DID}
	_, err = s.Append(ctx, func(l *ledger.Ledger) ([]byte, error) {
		return alice.next(l, ledger.KindCurrency, &ledger.CurrencyDef{Symbol: "hours", CreditLimit: 500}, nil)
	})
	require.NoError(t, err)
	payOne := func() (Result, error) {
		return s.Append(ctx, func(l *ledger.Ledger) ([]byte, error) {
			return alice.next(l, ledger.KindTransfer, nil, pay(alice.DID, bob.DID, cur, 1))
		})
	}
	_, err = payOne()
	require.NoError(t, err)
	hash := stateHash(s)

	free.Store(10 << 20) // 10 MiB: under the 64 MiB kept free
	_, err = payOne()
	var full *DiskFullError
	require.ErrorAs(t, err, &full)
	require.Equal(t, dir, full.Dir)
	require.Equal(t, uint64(10<<20), full.Free)
	require.Contains(t, err.Error(), "no space left for the ledger: the filesystem of "+dir+" has 10.0 MiB free")
	require.Equal(t, uint64(2), s.Count())
	require.Equal(t, hash, stateHash(s), "a refused write changes nothing")
	require.Contains(t, logs.String(), "disk nearly full")
	require.Equal(t, 1, countLines(logs.String(), "disk nearly full"), "logged once per episode, not per write")
	_, err = payOne()
	require.ErrorAs(t, err, &full)
	require.Equal(t, 1, countLines(logs.String(), "disk nearly full"))

	// Blocks from a peer, the node's own records and snapshots: refused too.
	other := openStore(t, filepath.Join(t.TempDir(), "other"))
	_, err = other.Append(ctx, func(l *ledger.Ledger) ([]byte, error) {
		return bob.next(l, ledger.KindCurrency, &ledger.CurrencyDef{Symbol: "beans", CreditLimit: 5}, nil)
	})
	require.NoError(t, err)
	var cids []cid.Cid
	other.Read(func(l *ledger.Ledger) { cids = l.AuthorCIDs(bob.DID, 0) })
	block, err := other.Block(ctx, cids[0])
	require.NoError(t, err)
	require.NoError(t, other.Close())
	_, err = s.Ingest(ctx, [][]byte{block}, nil)
	require.ErrorAs(t, err, &full)
	ns, err := s.Namespace("/blocklist")
	require.NoError(t, err)
	require.ErrorAs(t, ns.Put(ctx, ds.NewKey("/a"), []byte("x")), &full)
	b, err := ns.Batch(ctx)
	require.NoError(t, err)
	require.NoError(t, b.Put(ctx, ds.NewKey("/b"), []byte("y")))
	require.ErrorAs(t, b.Commit(ctx), &full)
	require.ErrorAs(t, s.Snapshot(ctx), &full)
	require.Equal(t, uint64(2), s.Count())
	rep, err := s.Verify(ctx, nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "%v", rep.Problems)

	// Room again: the same store takes them all.
	free.Store(1 << 30)
	r, err := payOne()
	require.NoError(t, err)
	require.Equal(t, ledger.StatusAccepted, r.Status)
	res, err := s.Ingest(ctx, [][]byte{block}, nil)
	require.NoError(t, err)
	require.NoError(t, res[0].Err)
	require.NoError(t, ns.Put(ctx, ds.NewKey("/a"), []byte("x")))
	require.NoError(t, b.Commit(ctx))
	require.NoError(t, s.Snapshot(ctx))
	require.Contains(t, logs.String(), "disk space is back")
	require.Equal(t, uint64(4), s.Count())
	rep, err = s.Verify(ctx, nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "%v", rep.Problems)

	// Closing on a full disk leaves Badger open (its flush could crash the
	// process); a later Close, with room, closes it.
	free.Store(1 << 20)
	require.NoError(t, s.Close())
	require.Contains(t, logs.String(), "disk nearly full at close")
	free.Store(1 << 30)
	require.NoError(t, s.Close())

	// Opening on a full disk is refused before Badger runs.
	free.Store(1 << 20)
	_, err = Open(ctx, dir, Options{freeBytes: func(string) (uint64, error) { return free.Load(), nil }})
	require.ErrorAs(t, err, &full)
	require.True(t, full.AtOpen)
	require.Contains(t, err.Error(), "it was not opened")
	require.Contains(t, full.Hint(), "then start icnd again")
	free.Store(1 << 30)
	s, err = Open(ctx, dir, Options{freeBytes: func(string) (uint64, error) { return free.Load(), nil }})
	require.NoError(t, err)
	require.Equal(t, uint64(4), s.Count())
	require.NoError(t, s.Close())
}

// A negative MinFree turns the guard off; a filesystem statfs cannot ask
// is not refused.
func TestDiskSpaceGuardOffAndUnknown(t *testing.T) {
	sp := newSpace("/x", Options{MinFree: -1, freeBytes: func(string) (uint64, error) { return 0, nil }}, slog.New(slog.DiscardHandler))
	require.NoError(t, sp.check(1))
	sp = newSpace("/x", Options{freeBytes: func(string) (uint64, error) { return 0, errors.New("no statfs") }}, slog.New(slog.DiscardHandler))
	require.NoError(t, sp.check(1))
	sp = newSpace("/x", Options{freeBytes: func(string) (uint64, error) { return DefaultMinFree + 100, nil }}, slog.New(slog.DiscardHandler))
	require.NoError(t, sp.check(100))
	require.Error(t, sp.check(101), "the write's own size counts")
	// The real statfs answers for an existing directory.
	n, err := freeBytes(t.TempDir())
	require.NoError(t, err)
	require.Positive(t, n)
}

func stateHash(s *Store) [32]byte {
	var h [32]byte
	s.Read(func(l *ledger.Ledger) { h = l.StateHash() })
	return h
}

func countLines(logs, sub string) int { return strings.Count(logs, sub) }
