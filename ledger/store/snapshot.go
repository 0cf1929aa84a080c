package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"

	"github.com/intercooperative/icn/ledger"
)

// Snapshots. The blocks and their arrival order are the truth; the ledger
// state is derived from them. So that reopening does not re-decode and
// re-evaluate every entry, the store also keeps a snapshot of the derived
// state (ledger.MarshalBinary) that covers the blocks with arrival numbers
// below some n, and on open restores it and replays only the blocks from n
// on. A snapshot is written on Close and after SnapshotEvery new entries
// (or a quarter of the ledger, if more); a crash costs the replay of the
// blocks since the last one. It lives in the datastore in chunks small enough to stay in Badger's
// LSM tree (so an overwritten snapshot is compacted away rather than left
// in the value log), under a generation number:
//
//	/ledger/snapshot/meta                 generation, n, chunk count
//	/ledger/snapshot/<generation>/<chunk> the payload, in order
//
// The chunks of a new generation are written first, in as many
// transactions as they need, then the meta record in one: a crash in
// between leaves the previous snapshot in force. Chunks of other
// generations are deleted afterwards. An unusable snapshot (another format
// version, a checksum that fails) is ignored: the store replays every block
// and says so in LoadInfo.
var (
	snapPrefix = ds.NewKey("/ledger/snapshot")
	snapMeta   = snapPrefix.ChildString("meta")
)

const (
	// DefaultSnapshotEvery is how many new entries trigger a snapshot.
	DefaultSnapshotEvery = 50_000
	// snapChunk stays under the value threshold set in Open.
	snapChunk = 60 << 10
	// snapChunksPerTxn keeps a transaction well inside one memtable.
	snapChunksPerTxn = 8
)

func snapChunkKey(gen uint64, i int) ds.Key {
	return snapPrefix.ChildString(fmt.Sprintf("%016x", gen)).ChildString(fmt.Sprintf("%08x", i))
}

// LoadInfo says how Open rebuilt the ledger state.
type LoadInfo struct {
	// FromSnapshot is the number of entries restored from a snapshot.
	FromSnapshot int
	// Replayed is the number of blocks decoded and applied.
	Replayed int
	// SnapshotError says why a snapshot present was not used.
	SnapshotError error
}

// Loaded reports how Open rebuilt the ledger state.
func (s *Store) Loaded() LoadInfo { return s.loaded }

// snapshotPayload is what a snapshot holds besides the ledger bytes: the
// pending entries, which a ledger snapshot leaves out.
func encodePayload(led []byte, pending []cid.Cid) []byte {
	out := binary.LittleEndian.AppendUint32(nil, uint32(len(led)))
	out = append(out, led...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(pending)))
	for _, c := range pending {
		b := c.Bytes()
		out = append(out, byte(len(b)))
		out = append(out, b...)
	}
	return out
}

func decodePayload(p []byte) (led []byte, pending []cid.Cid, err error) {
	bad := fmt.Errorf("%w: payload truncated", ledger.ErrSnapshot)
	if len(p) < 4 {
		return nil, nil, bad
	}
	n := binary.LittleEndian.Uint32(p)
	p = p[4:]
	if uint64(len(p)) < uint64(n)+4 {
		return nil, nil, bad
	}
	led, p = p[:n], p[n:]
	count := binary.LittleEndian.Uint32(p)
	p = p[4:]
	for ; count > 0; count-- {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return nil, nil, bad
		}
		c, err := cid.Cast(p[1 : 1+int(p[0])])
		if err != nil {
			return nil, nil, fmt.Errorf("%w: pending CID: %v", ledger.ErrSnapshot, err)
		}
		pending = append(pending, c)
		p = p[1+int(p[0]):]
	}
	return led, pending, nil
}

type snapMetaRecord struct {
	gen, covers uint64
	chunks      int
}

func (m snapMetaRecord) encode() []byte {
	b := binary.LittleEndian.AppendUint64(nil, m.gen)
	b = binary.LittleEndian.AppendUint64(b, m.covers)
	return binary.LittleEndian.AppendUint32(b, uint32(m.chunks))
}

func decodeMeta(b []byte) (snapMetaRecord, error) {
	if len(b) != 20 {
		return snapMetaRecord{}, fmt.Errorf("%w: meta record of %d bytes", ledger.ErrSnapshot, len(b))
	}
	return snapMetaRecord{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:]), int(binary.LittleEndian.Uint32(b[16:]))}, nil
}

// readSnapshot returns the snapshot in force, if any.
func (s *Store) readSnapshot(ctx context.Context) (snapMetaRecord, []byte, error) {
	mb, err := s.ds.Get(ctx, snapMeta)
	if err != nil {
		return snapMetaRecord{}, nil, err // ds.ErrNotFound when there is none
	}
	m, err := decodeMeta(mb)
	if err != nil {
		return m, nil, err
	}
	var payload []byte
	for i := 0; i < m.chunks; i++ {
		b, err := s.ds.Get(ctx, snapChunkKey(m.gen, i))
		if err != nil {
			return m, nil, fmt.Errorf("%w: chunk %d: %v", ledger.ErrSnapshot, i, err)
		}
		payload = append(payload, b...)
	}
	return m, payload, nil
}

// restore loads the snapshot in force into s.led and returns the first
// arrival number it does not cover (0 when there is no usable snapshot).
func (s *Store) restore(ctx context.Context) (uint64, error) {
	m, payload, err := s.readSnapshot(ctx)
	if errors.Is(err, ds.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, s.snapshotUnusable(err)
	}
	led, pending, err := decodePayload(payload)
	if err != nil {
		return 0, s.snapshotUnusable(err)
	}
	l, err := ledger.Restore(led)
	if err != nil {
		return 0, s.snapshotUnusable(err)
	}
	for _, c := range pending {
		_, e, err := s.readEntry(ctx, c)
		if err != nil {
			return 0, err
		}
		l.Add(&ledger.Verified{Entry: e, CID: c})
	}
	s.led, s.snapGen, s.snapCovers = l, m.gen, m.covers
	acc, quar, pend := l.Counts()
	s.loaded.FromSnapshot = acc + quar + pend
	return m.covers, nil
}

// snapshotUnusable records why the snapshot was not used; the store goes on
// with a full replay.
func (s *Store) snapshotUnusable(err error) error {
	s.loaded.SnapshotError = err
	return nil
}

// load rebuilds the ledger state: the snapshot, if any, then the blocks it
// does not cover, in arrival order.
func (s *Store) load(ctx context.Context) error {
	from, err := s.restore(ctx)
	if err != nil {
		return err
	}
	return s.ds.DB.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(orderPrefix.String() + "/")
		opts.PrefetchValues = false // most keys are only counted
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			key := ds.RawKey(string(item.Key()))
			n, err := strconv.ParseUint(key.BaseNamespace(), 16, 64)
			if err != nil {
				return fmt.Errorf("ledger order key %s: %w", key, err)
			}
			// Numbers of batches that failed to commit are never used: the
			// next number follows the highest, not the count.
			s.next = max(s.next, n+1)
			s.stored++
			if n < from {
				continue // in the snapshot
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("read ledger order %s: %w", key, err)
			}
			if err := s.replay(ctx, v); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) replay(ctx context.Context, cidBytes []byte) error {
	_, c, err := cid.CidFromBytes(cidBytes)
	if err != nil {
		return fmt.Errorf("ledger order entry: %w", err)
	}
	block, e, err := s.readEntry(ctx, c)
	if err != nil {
		return err
	}
	if got := ledger.BlockCID(block); !got.Equals(c) {
		return fmt.Errorf("ledger block %s is corrupt: its bytes hash to %s", c, got)
	}
	s.led.Add(&ledger.Verified{Entry: e, CID: c})
	s.loaded.Replayed++
	return nil
}

// Snapshot writes a snapshot of the current state if anything changed since
// the last one. It waits for batches being committed to be applied, so the
// snapshot covers exactly the blocks below one arrival number.
func (s *Store) Snapshot(ctx context.Context) error {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	return s.snapshot(ctx)
}

// snapshot is Snapshot with snapMu held.
func (s *Store) snapshot(ctx context.Context) error {
	s.mu.Lock()
	for len(s.inflight) > 0 {
		s.applied.Wait() // commits end, with or without error
	}
	if s.next == s.snapCovers {
		s.mu.Unlock()
		return nil
	}
	led, err := s.led.MarshalBinary()
	pending := s.led.PendingCIDs()
	covers := s.next
	s.mu.Unlock()
	if err != nil {
		return err
	}
	gen := s.snapGen + 1
	payload := encodePayload(led, pending)
	if err := s.space.check(len(payload)); err != nil {
		return fmt.Errorf("write ledger snapshot: %w", err)
	}
	chunks := (len(payload) + snapChunk - 1) / snapChunk
	for first := 0; first < chunks; first += snapChunksPerTxn {
		txn, err := s.ds.NewTransaction(ctx, false)
		if err != nil {
			return err
		}
		for i := first; i < min(first+snapChunksPerTxn, chunks); i++ {
			if err := txn.Put(ctx, snapChunkKey(gen, i), payload[i*snapChunk:min((i+1)*snapChunk, len(payload))]); err != nil {
				txn.Discard(ctx)
				return err
			}
		}
		if err := txn.Commit(ctx); err != nil {
			return fmt.Errorf("write ledger snapshot: %w", err)
		}
	}
	if err := s.ds.Put(ctx, snapMeta, snapMetaRecord{gen, covers, chunks}.encode()); err != nil {
		return fmt.Errorf("write ledger snapshot: %w", err)
	}
	s.mu.Lock()
	s.snapGen, s.snapCovers, s.sinceSnap, s.snapRetryAt = gen, covers, 0, 0
	s.mu.Unlock()
	return s.dropOldSnapshots(ctx, gen)
}

// dropOldSnapshots deletes the chunks of every generation but gen.
func (s *Store) dropOldSnapshots(ctx context.Context, gen uint64) error {
	res, err := s.ds.Query(ctx, dsq.Query{Prefix: snapPrefix.String(), KeysOnly: true})
	if err != nil {
		return err
	}
	keep := snapPrefix.ChildString(fmt.Sprintf("%016x", gen))
	var old []ds.Key
	for r := range res.Next() {
		if r.Error != nil {
			res.Close()
			return r.Error
		}
		k := ds.RawKey(r.Key)
		if !k.Equal(snapMeta) && !keep.IsAncestorOf(k) {
			old = append(old, k)
		}
	}
	res.Close()
	for len(old) > 0 {
		n := min(len(old), 256)
		txn, err := s.ds.NewTransaction(ctx, false)
		if err != nil {
			return err
		}
		for _, k := range old[:n] {
			if err := txn.Delete(ctx, k); err != nil {
				txn.Discard(ctx)
				return err
			}
		}
		if err := txn.Commit(ctx); err != nil {
			return err
		}
		old = old[n:]
	}
	return nil
}
