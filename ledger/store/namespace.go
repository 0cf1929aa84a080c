package store

import (
	"context"
	"fmt"

	ds "github.com/ipfs/go-datastore"
	ktds "github.com/ipfs/go-datastore/keytransform"
)

// ledgerRoot is where every key of the store lives (blockPrefix,
// orderPrefix, snapPrefix).
var ledgerRoot = ds.NewKey("/ledger")

// Namespace returns the part of the store's Badger datastore under prefix,
// for a node component that keeps its own small records beside the ledger
// (the blocklist). Keys read and written through it are relative to prefix;
// writes are synced like the ledger's, and refused with a DiskFullError as
// the ledger's are when the disk is nearly full. Prefixes under /ledger belong to the
// store and are refused. Closing the namespace does nothing: the datastore
// closes with the store, so the namespace must not be used after Close.
func (s *Store) Namespace(prefix string) (ds.Batching, error) {
	k := ds.NewKey(prefix)
	if k.Equal(ds.RawKey("/")) || k.Equal(ledgerRoot) || ledgerRoot.IsAncestorOf(k) || k.IsAncestorOf(ledgerRoot) {
		return nil, fmt.Errorf("datastore namespace %s overlaps the ledger's keys under %s", k, ledgerRoot)
	}
	return namespace{ktds.Wrap(s.ds, ktds.PrefixTransform{Prefix: k}), s.space}, nil
}

// namespace is a prefixed view of the store's datastore that leaves closing
// it to the store, and whose writes the store's disk-space guard checks.
type namespace struct {
	*ktds.Datastore
	sp *space
}

func (namespace) Close() error { return nil }

func (n namespace) Put(ctx context.Context, k ds.Key, v []byte) error {
	if err := n.sp.check(len(k.String()) + len(v)); err != nil {
		return err
	}
	return n.Datastore.Put(ctx, k, v)
}

func (n namespace) Batch(ctx context.Context) (ds.Batch, error) {
	b, err := n.Datastore.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &guardedBatch{Batch: b, sp: n.sp}, nil
}
