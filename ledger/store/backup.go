package store

import (
	"context"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"

	"github.com/intercooperative/icn/ledger"
)

// Backup is a consistent view of the stored blocks: every block stored at
// the moment Store.Backup was called and nothing stored after, with the
// ledger's heads and state hash of that same moment. The store keeps taking
// in entries while a Backup is read. Close it when done.
type Backup struct {
	Entries   int
	Heads     []cid.Cid
	StateHash [32]byte
	txn       *badger.Txn
}

// Backup opens a consistent view of the stored blocks. It waits for the
// commits in flight to be applied, so the view and the ledger state it
// reports cover the same blocks; the state hash is computed after the lock
// is released.
func (s *Store) Backup() *Backup {
	var b *Backup
	h := s.ReadWithStateHash(func(l *ledger.Ledger) {
		for len(s.inflight) > 0 {
			s.applied.Wait() // releases s.mu while it waits
		}
		b = &Backup{Entries: int(s.stored), Heads: l.Heads(), txn: s.ds.DB.NewTransaction(false)}
	})
	b.StateHash = h
	return b
}

// Each calls fn with every block of the view in arrival order, stopping at
// the first error fn returns. block is only valid during the call.
func (b *Backup) Each(ctx context.Context, fn func(c cid.Cid, block []byte) error) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(orderPrefix.String() + "/")
	it := b.txn.NewIterator(opts)
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		var c cid.Cid
		err := it.Item().Value(func(v []byte) error {
			var err error
			_, c, err = cid.CidFromBytes(v)
			return err
		})
		if err != nil {
			return fmt.Errorf("ledger order entry %s: %w (run `icnctl ledger verify`)", it.Item().Key(), err)
		}
		item, err := b.txn.Get([]byte(blockKey(c).String()))
		if err != nil {
			return fmt.Errorf("ledger block %s: %w (run `icnctl ledger verify`)", c, err)
		}
		err = item.Value(func(block []byte) error {
			if got := ledger.BlockCID(block); !got.Equals(c) {
				return fmt.Errorf("ledger block %s is corrupt: its bytes hash to %s (run `icnctl ledger verify`)", c, got)
			}
			return fn(c, block)
		})
		if err != nil {
			return err
		}
		n++
	}
	if n != b.Entries {
		return fmt.Errorf("the backup view holds %d blocks, the store counted %d (run `icnctl ledger verify`)", n, b.Entries)
	}
	return nil
}

// Close releases the view.
func (b *Backup) Close() { b.txn.Discard() }
