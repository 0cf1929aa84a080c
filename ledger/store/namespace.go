package store

import (
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
// writes are synced like the ledger's. Prefixes under /ledger belong to the
// store and are refused. Closing the namespace does nothing: the datastore
// closes with the store, so the namespace must not be used after Close.
func (s *Store) Namespace(prefix string) (ds.Batching, error) {
	k := ds.NewKey(prefix)
	if k.Equal(ds.RawKey("/")) || k.Equal(ledgerRoot) || ledgerRoot.IsAncestorOf(k) || k.IsAncestorOf(ledgerRoot) {
		return nil, fmt.Errorf("datastore namespace %s overlaps the ledger's keys under %s", k, ledgerRoot)
	}
	return namespace{ktds.Wrap(s.ds, ktds.PrefixTransform{Prefix: k})}, nil
}

// namespace is a prefixed view of the store's datastore that leaves closing
// it to the store.
type namespace struct{ *ktds.Datastore }

func (namespace) Close() error { return nil }
