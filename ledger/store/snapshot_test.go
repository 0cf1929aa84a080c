package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/ledgertest"
	"github.com/intercooperative/icn/ledger"
)

func ingestAll(t *testing.T, s *Store, blocks [][]byte, batch int) {
	t.Helper()
	for i := 0; i < len(blocks); i += batch {
		res, err := s.Ingest(context.Background(), blocks[i:min(i+batch, len(blocks))], nil)
		require.NoError(t, err)
		for _, r := range res {
			require.NoError(t, r.Err)
		}
	}
}

func stateOf(s *Store) (hash [32]byte, counts [3]int) {
	s.Read(func(l *ledger.Ledger) {
		hash = l.StateHash()
		counts[0], counts[1], counts[2] = l.Counts()
	})
	return
}

// A clean stop writes a snapshot; the next open restores it and decodes no
// block.
func TestReopenFromSnapshot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ds")
	blocks := ledgertest.History(t, 5, 300)
	s := openStore(t, dir)
	ingestAll(t, s, blocks, 64)
	hash, counts := stateOf(s)
	require.NoError(t, s.Close())

	s = openStore(t, dir)
	defer s.Close()
	info := s.Loaded()
	require.NoError(t, info.SnapshotError)
	require.Equal(t, 300, info.FromSnapshot)
	require.Zero(t, info.Replayed)
	h, c := stateOf(s)
	require.Equal(t, hash, h)
	require.Equal(t, counts, c)
	require.Equal(t, uint64(300), s.Count())
	rep, err := s.Verify(context.Background(), nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "%v", rep.Problems)
}

// After a crash (no Close), the store restores the last periodic snapshot
// and replays only the blocks that came after it.
func TestCrashReplaysOnlyTheTail(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "ds")
	blocks := ledgertest.History(t, 4, 250)
	s, err := Open(ctx, dir, Options{SnapshotEvery: 100})
	require.NoError(t, err)
	ingestAll(t, s, blocks, 30)
	hash, counts := stateOf(s)
	require.NoError(t, s.SnapshotErr())
	s.mu.Lock()
	covered := s.snapCovers
	s.mu.Unlock()
	require.GreaterOrEqual(t, covered, uint64(200))
	require.NoError(t, s.ds.Close()) // a crash: no final snapshot

	s = openStore(t, dir)
	defer s.Close()
	info := s.Loaded()
	require.NoError(t, info.SnapshotError)
	require.Equal(t, int(covered), info.FromSnapshot)
	require.Equal(t, 250-int(covered), info.Replayed)
	h, c := stateOf(s)
	require.Equal(t, hash, h)
	require.Equal(t, counts, c)
	// Appending after the restore continues the arrival numbers.
	more := ledgertest.History(t, 2, 3)
	ingestAll(t, s, more, 3)
	require.Equal(t, uint64(253), s.Count())
}

// A damaged snapshot is ignored: the store replays every block, says why,
// and ends in the same state.
func TestDamagedSnapshotFallsBackToReplay(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "ds")
	blocks := ledgertest.History(t, 3, 120)
	s := openStore(t, dir)
	ingestAll(t, s, blocks, 50)
	hash, _ := stateOf(s)
	require.NoError(t, s.Close())

	s = openStore(t, dir)
	m, _, err := s.readSnapshot(ctx)
	require.NoError(t, err)
	chunk, err := s.ds.Get(ctx, snapChunkKey(m.gen, 0))
	require.NoError(t, err)
	chunk[len(chunk)/2] ^= 0x40
	require.NoError(t, s.ds.Put(ctx, snapChunkKey(m.gen, 0), chunk))
	require.NoError(t, s.ds.Close())

	s = openStore(t, dir)
	info := s.Loaded()
	require.ErrorIs(t, info.SnapshotError, ledger.ErrSnapshot)
	require.Zero(t, info.FromSnapshot)
	require.Equal(t, 120, info.Replayed)
	h, _ := stateOf(s)
	require.Equal(t, hash, h)
	// Closing writes a good snapshot again, replacing the damaged one.
	require.NoError(t, s.Close())
	s = openStore(t, dir)
	defer s.Close()
	require.NoError(t, s.Loaded().SnapshotError)
	require.Equal(t, 120, s.Loaded().FromSnapshot)
}

// Entries waiting for their parents survive a snapshot and complete when
// the parents arrive after the restart.
func TestSnapshotKeepsPendingEntries(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ds")
	blocks := ledgertest.History(t, 3, 40)
	s := openStore(t, dir)
	// Everything but block 20: the ones after it that need it wait.
	ingestAll(t, s, append(append([][]byte{}, blocks[:20]...), blocks[21:]...), 10)
	_, counts := stateOf(s)
	require.Positive(t, counts[2], "some entries pending")
	require.NoError(t, s.Close())

	s = openStore(t, dir)
	defer s.Close()
	require.Zero(t, s.Loaded().Replayed)
	_, c := stateOf(s)
	require.Equal(t, counts, c)
	var missing []cid.Cid
	s.Read(func(l *ledger.Ledger) { missing = l.Missing() })
	require.Equal(t, []cid.Cid{ledger.BlockCID(blocks[20])}, missing)
	ingestAll(t, s, blocks[20:21], 1)
	_, c = stateOf(s)
	require.Equal(t, [3]int{40, 0, 0}, c)
}

// Snapshots of older generations are deleted.
func TestOldSnapshotsAreDropped(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "ds")
	blocks := ledgertest.History(t, 3, 60)
	s := openStore(t, dir)
	defer s.Close()
	for i := 0; i < 3; i++ {
		ingestAll(t, s, blocks[i*20:(i+1)*20], 20)
		require.NoError(t, s.Snapshot(ctx))
	}
	m, _, err := s.readSnapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(3), m.gen)
	require.NoError(t, s.dropOldSnapshots(ctx, m.gen))
	for gen := uint64(1); gen < 3; gen++ {
		has, err := s.ds.Has(ctx, snapChunkKey(gen, 0))
		require.NoError(t, err)
		require.False(t, has, "generation %d", gen)
	}
}

// A periodic snapshot that fails (here Badger refuses every write under
// /ledger/snapshot, as a full or failing disk would refuse them all) is
// logged at WARN and counted, costs the ingest nothing, is retried only
// after another SnapshotEvery entries, and means what the log says: the
// next start replays every entry since the last snapshot written.
func TestPeriodicSnapshotFailureIsLoggedAndCounted(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "ds")
	blocks := ledgertest.History(t, 3, 45)
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
	warnings := func() []string {
		logMu.Lock()
		defer logMu.Unlock()
		var out []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "level=WARN") {
				out = append(out, l)
			}
		}
		return out
	}
	// The datastore key's bytes 8-15 are its namespace: "snapshot" for
	// /ledger/snapshot/…, "block/ba" and "order/00" for the entries.
	s, err := Open(ctx, dir, Options{SnapshotEvery: 10, Log: log,
		tune: func(o badger.Options) badger.Options { return o.WithNamespaceOffset(8) }})
	require.NoError(t, err)
	ingestAll(t, s, blocks[:10], 10)
	require.NoError(t, s.SnapshotErr())
	s.mu.Lock()
	covered := s.snapCovers
	s.mu.Unlock()
	require.Equal(t, uint64(10), covered, "the first snapshot was written")
	require.NoError(t, s.ds.DB.BanNamespace(binary.BigEndian.Uint64([]byte("snapshot"))))

	ingestAll(t, s, blocks[10:20], 10)
	require.Equal(t, uint64(20), s.Count(), "the entries are stored all the same")
	require.ErrorIs(t, s.SnapshotErr(), badger.ErrBannedKey)
	require.Equal(t, uint64(1), s.SnapshotFailures())
	w := warnings()
	require.Len(t, w, 1)
	require.Contains(t, w[0], "ledger snapshot failed")
	require.Contains(t, w[0], "replays")
	require.Contains(t, w[0], badger.ErrBannedKey.Error())

	// No retry, and no log line, until another SnapshotEvery entries.
	ingestAll(t, s, blocks[20:29], 3)
	require.Equal(t, uint64(1), s.SnapshotFailures())
	require.Len(t, warnings(), 1)
	ingestAll(t, s, blocks[29:30], 1)
	require.Equal(t, uint64(2), s.SnapshotFailures())
	require.Len(t, warnings(), 2)
	ingestAll(t, s, blocks[30:], 15)
	hash, counts := stateOf(s)
	require.Error(t, s.Close(), "the final snapshot fails too, and Close says so")

	// The next start replays everything since the snapshot written.
	s = openStore(t, dir)
	defer s.Close()
	info := s.Loaded()
	require.NoError(t, info.SnapshotError)
	require.Equal(t, 10, info.FromSnapshot)
	require.Equal(t, 35, info.Replayed)
	h, c := stateOf(s)
	require.Equal(t, hash, h)
	require.Equal(t, counts, c)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
