package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/ledgertest"
	"github.com/intercooperative/icn/ledger"
)

// author is a test member.
type author struct{ ledgertest.Member }

func newAuthor(t testing.TB) author { return author{ledgertest.NewMember(t)} }

func (a author) next(l *ledger.Ledger, kind ledger.Kind, def *ledger.CurrencyDef, postings []ledger.Posting) ([]byte, error) {
	return a.Next(l, kind, def, postings)
}

var pay = ledgertest.Pay

func openStore(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, Options{})
	require.NoError(t, err)
	return s
}

func TestAppendIngestReopen(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "datastore")
	alice, bob := newAuthor(t), newAuthor(t)
	cur := ledger.CurrencyID{Symbol: "hours", Issuer: alice.DID}
	s := openStore(t, dir)
	_, err := s.Append(ctx, func(l *ledger.Ledger) ([]byte, error) {
		return alice.next(l, ledger.KindCurrency, &ledger.CurrencyDef{Symbol: "hours", Decimals: 2, CreditLimit: 500}, nil)
	})
	require.NoError(t, err)
	for i := 0; i < 5; i++ {
		r, err := s.Append(ctx, func(l *ledger.Ledger) ([]byte, error) {
			return alice.next(l, ledger.KindTransfer, nil, pay(alice.DID, bob.DID, cur, 100))
		})
		require.NoError(t, err)
		require.Equal(t, ledger.StatusAccepted, r.Status)
	}
	// The sixth would take alice to -600, below -500: refused, not stored.
	r, err := s.Append(ctx, func(l *ledger.Ledger) ([]byte, error) {
		return alice.next(l, ledger.KindTransfer, nil, pay(alice.DID, bob.DID, cur, 100))
	})
	require.ErrorIs(t, err, ErrRefused)
	require.Contains(t, err.Error(), "over the credit limit")
	require.Equal(t, uint64(6), s.Count())
	var hash [32]byte
	s.Read(func(l *ledger.Ledger) {
		require.Equal(t, int64(-500), l.Balance(alice.DID, cur))
		require.Equal(t, int64(500), l.Balance(bob.DID, cur))
		st, _ := l.Status(r.CID)
		require.Equal(t, ledger.StatusUnknown, st)
		hash = l.StateHash()
	})

	// bob, on another store, ingests alice's blocks in reverse order.
	// (Blocks live on disk only: the ledger in memory keeps no entry bodies.)
	var cids []cid.Cid
	s.Read(func(l *ledger.Ledger) { cids = l.AuthorCIDs(alice.DID, 0) })
	var blocks [][]byte
	for _, c := range cids {
		b, err := s.Block(ctx, c)
		require.NoError(t, err)
		blocks = append([][]byte{b}, blocks...)
	}
	hist, err := s.History(ctx, bob.DID)
	require.NoError(t, err)
	require.NotEmpty(t, hist)
	for _, h := range hist {
		require.Equal(t, ledger.StatusAccepted, h.Status)
		require.True(t, h.Entry.Author == bob.DID || slices.ContainsFunc(h.Entry.Postings, func(p ledger.Posting) bool { return p.Account == bob.DID }))
	}
	missing, err := s.MissingFrom(ctx, nil, 0)
	require.NoError(t, err)
	require.Len(t, missing, len(blocks))
	other := openStore(t, filepath.Join(t.TempDir(), "ds2"))
	res, err := other.Ingest(ctx, blocks, nil)
	require.NoError(t, err)
	for _, r := range res {
		require.NoError(t, r.Err)
	}
	other.Read(func(l *ledger.Ledger) { require.Equal(t, hash, l.StateHash()) })
	// Garbage and a tampered block are refused with a reason, nothing stored.
	tampered := append([]byte{}, blocks[0]...)
	tampered[len(tampered)-3] ^= 0xff
	res, err = other.Ingest(ctx, [][]byte{[]byte("junk"), tampered, blocks[1]}, nil)
	require.NoError(t, err)
	require.ErrorIs(t, res[0].Err, ledger.ErrMalformed)
	require.Error(t, res[1].Err)
	require.True(t, res[2].Duplicate)
	require.Equal(t, uint64(6), other.Count())
	require.NoError(t, other.Close())

	// Reopen: same state, and verify is clean.
	require.NoError(t, s.Close())
	s = openStore(t, dir)
	defer s.Close()
	s.Read(func(l *ledger.Ledger) { require.Equal(t, hash, l.StateHash()) })
	var calls int
	rep, err := s.Verify(ctx, func(done, total int) { calls++; require.LessOrEqual(t, done, total) })
	require.NoError(t, err)
	require.True(t, rep.OK(), "%v", rep.Problems)
	require.Equal(t, 6, rep.Blocks)
	require.Equal(t, 6, rep.Accepted)
	require.Positive(t, calls)
}

// A batch too big for one Badger transaction is split, not refused.
func TestIngestBatchBeyondOneTransaction(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "ds"))
	defer s.Close()
	blocks := ledgertest.History(t, 4, 3000) // about 1 MB, over the 600 KB a transaction holds
	res, err := s.Ingest(context.Background(), blocks, nil)
	require.NoError(t, err)
	for _, r := range res {
		require.NoError(t, r.Err)
		require.Equal(t, ledger.StatusAccepted, r.Status)
	}
	require.Equal(t, uint64(3000), s.Count())
}

// Verify on a node that keeps taking in entries while it runs: the entries
// stored meanwhile are checked too, and the rebuilt state matches the live
// one (no false "differs").
func TestVerifyWhileIngesting(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "ds"))
	defer s.Close()
	blocks := ledgertest.History(t, 8, 12_000)
	_, err := s.Ingest(ctx, blocks[:8000], nil)
	require.NoError(t, err)
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		<-started
		for i := 8000; i < len(blocks); i += 100 {
			if _, err := s.Ingest(ctx, blocks[i:min(i+100, len(blocks))], nil); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var once sync.Once
	rep, err := s.Verify(ctx, func(done, total int) {
		once.Do(func() { close(started) })
		require.LessOrEqual(t, done, total)
	})
	require.NoError(t, err)
	require.NoError(t, <-done)
	require.True(t, rep.OK(), "%v", rep.Problems)
	require.GreaterOrEqual(t, rep.Blocks, 8000)
	// Whatever the verify took in, the state it rebuilt is the live one as
	// it was when the verify ended.
	require.Equal(t, rep.Blocks, rep.Accepted+rep.Quarantined+rep.Pending)
}

// A block Check passed is taken by Ingest without a second check, once;
// the memory of checked blocks is bounded, oldest out first; a block whose
// bytes do not match the CID it was requested under is still refused.
func TestIngestTakesWhatCheckPassed(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "ds"))
	defer s.Close()
	blocks := ledgertest.History(t, 2, checkedMax+3)

	require.NoError(t, s.Check(blocks[0]))
	c0 := ledger.BlockCID(blocks[0])
	require.Contains(t, s.checked.byCID, c0)
	res, err := s.Ingest(ctx, blocks[:1], nil)
	require.NoError(t, err)
	require.NoError(t, res[0].Err)
	require.Equal(t, c0, res[0].CID)
	require.Equal(t, ledger.StatusAccepted, res[0].Status)
	require.NotContains(t, s.checked.byCID, c0, "taken")

	// Requested under another CID: refused, and the check stays unused.
	require.NoError(t, s.Check(blocks[1]))
	res, err = s.Ingest(ctx, blocks[1:2], []cid.Cid{c0})
	require.NoError(t, err)
	require.ErrorIs(t, res[0].Err, ledger.ErrMalformed)
	require.Contains(t, s.checked.byCID, ledger.BlockCID(blocks[1]))

	// Bounded: the oldest are forgotten.
	for _, b := range blocks[1:] {
		require.NoError(t, s.Check(b))
	}
	require.Len(t, s.checked.byCID, checkedMax)
	require.NotContains(t, s.checked.byCID, ledger.BlockCID(blocks[1]))
	require.NotContains(t, s.checked.byCID, ledger.BlockCID(blocks[2]))
	require.Contains(t, s.checked.byCID, ledger.BlockCID(blocks[3]))
	res, err = s.Ingest(ctx, blocks[1:], nil)
	require.NoError(t, err)
	for _, r := range res {
		require.NoError(t, r.Err)
		require.Equal(t, ledger.StatusAccepted, r.Status)
	}
	require.Empty(t, s.checked.byCID)
	rep, err := s.Verify(ctx, nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "%v", rep.Problems)
}

// SetAdmit's policy refuses blocks at Ingest (nothing stored), Import
// ignores it, and nil admits everything again.
func TestAdmissionPolicy(t *testing.T) {
	ctx := context.Background()
	alice := newAuthor(t)
	src := openStore(t, filepath.Join(t.TempDir(), "src"))
	for i := 0; i < 3; i++ {
		_, err := src.Append(ctx, func(l *ledger.Ledger) ([]byte, error) {
			return alice.next(l, ledger.KindCurrency, &ledger.CurrencyDef{Symbol: fmt.Sprintf("c%d", i), CreditLimit: 1}, nil)
		})
		require.NoError(t, err)
	}
	var blocks [][]byte
	var cids []cid.Cid
	src.Read(func(l *ledger.Ledger) { cids = l.AuthorCIDs(alice.DID, 0) })
	for _, c := range cids {
		b, err := src.Block(ctx, c)
		require.NoError(t, err)
		blocks = append(blocks, b)
	}
	s := openStore(t, filepath.Join(t.TempDir(), "dst"))
	refused := errors.New("author not admitted")
	var asked []did.DID
	s.SetAdmit(func(e *ledger.Entry) error { asked = append(asked, e.Author); return refused })
	res, err := s.Ingest(ctx, blocks[:1], nil)
	require.NoError(t, err)
	require.ErrorIs(t, res[0].Err, refused)
	require.Equal(t, []did.DID{alice.DID}, asked)
	require.Zero(t, s.Count())
	res, err = s.Import(ctx, blocks[:1], nil)
	require.NoError(t, err)
	require.NoError(t, res[0].Err)
	require.EqualValues(t, 1, s.Count())
	s.SetAdmit(nil)
	res, err = s.Ingest(ctx, blocks[1:], nil)
	require.NoError(t, err)
	for _, r := range res {
		require.NoError(t, r.Err)
	}
	require.EqualValues(t, 3, s.Count())
}
