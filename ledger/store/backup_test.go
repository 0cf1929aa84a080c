package store

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/ledgertest"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/ledger/car"
)

// A backup taken while entries keep arriving holds exactly the blocks stored
// when it was taken, and a fresh store that takes them in reaches the state
// hash the backup reports.
func TestBackupWhileIngestingRestoresItsState(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "ds"))
	defer s.Close()
	blocks := ledgertest.History(t, 6, 6000)
	_, err := s.Ingest(ctx, blocks[:3000], nil)
	require.NoError(t, err)

	b := s.Backup()
	defer b.Close()
	require.Equal(t, 3000, b.Entries)

	// More arrives while the backup is read.
	done := make(chan error, 1)
	go func() {
		for i := 3000; i < len(blocks); i += 100 {
			if _, err := s.Ingest(ctx, blocks[i:i+100], nil); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var buf bytes.Buffer
	w, err := car.NewWriter(&buf, b.Heads)
	require.NoError(t, err)
	require.NoError(t, b.Each(ctx, w.Write))
	require.NoError(t, w.Close())
	require.NoError(t, <-done)
	require.Equal(t, uint64(6000), s.Count())

	r, err := car.NewReader(&buf)
	require.NoError(t, err)
	require.Equal(t, b.Heads, r.Roots())
	var got [][]byte
	var want []cid.Cid
	for {
		c, block, err := r.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		got, want = append(got, block), append(want, c)
	}
	require.Len(t, got, 3000)

	fresh := openStore(t, filepath.Join(t.TempDir(), "ds"))
	defer fresh.Close()
	res, err := fresh.Ingest(ctx, got, want)
	require.NoError(t, err)
	for _, r := range res {
		require.NoError(t, r.Err)
		require.Equal(t, ledger.StatusAccepted, r.Status)
	}
	fresh.Read(func(l *ledger.Ledger) {
		require.Equal(t, b.StateHash, l.StateHash())
		require.Equal(t, b.Heads, l.Heads())
	})
}

// Each stops at the first error of its callback and returns it.
func TestBackupEachStopsOnError(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "ds"))
	defer s.Close()
	_, err := s.Ingest(ctx, ledgertest.History(t, 2, 10), nil)
	require.NoError(t, err)
	b := s.Backup()
	defer b.Close()
	n := 0
	err = b.Each(ctx, func(cid.Cid, []byte) error {
		n++
		if n == 4 {
			return io.ErrShortWrite
		}
		return nil
	})
	require.ErrorIs(t, err, io.ErrShortWrite)
	require.Equal(t, 4, n)
}
