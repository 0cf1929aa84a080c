package store

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"syscall"

	ds "github.com/ipfs/go-datastore"
)

// DefaultMinFree is the free space the store keeps on the filesystem of its
// datastore (Options.MinFree): a write that would leave less is refused
// with a DiskFullError.
//
// Why refuse before the disk is full rather than when a write fails:
// Badger writes its write-ahead log (the memtable's .mem file), its tables
// and its discard stats through memory-mapped files that it creates sparse.
// A page of such a file gets its disk block when it is first written, and
// on a full filesystem that write is not an error Badger could return but a
// SIGBUS that kills the process mid-commit. The reserve covers what Badger
// may still write after the last accepted commit: the rest of the current
// memtable's log (2 × 4 MiB), flushing it to a table (about 4 MiB) and a
// compaction of the first levels (tens of MiB at most, tables of 1 MiB).
const DefaultMinFree = 64 << 20

// DiskFullError means a write was refused because the filesystem holding
// the datastore has less free space than the store keeps (MinFree).
// Nothing was written; the same write succeeds once there is room, without
// a restart.
type DiskFullError struct {
	Dir     string // the datastore directory
	Free    uint64 // bytes available on its filesystem
	MinFree uint64 // bytes the store keeps free
	Need    uint64 // bytes the refused write needed besides MinFree (an estimate)
	AtOpen  bool   // refused by Open: the store did not open
}

func (e *DiskFullError) Error() string {
	what := "nothing was written"
	if e.AtOpen {
		what = "it was not opened"
	}
	return fmt.Sprintf("no space left for the ledger: the filesystem of %s has %s free, and icnd keeps %s free for its datastore (%s)",
		e.Dir, byteSize(e.Free), byteSize(e.MinFree+e.Need), what)
}

// Hint says what to do.
func (e *DiskFullError) Hint() string {
	then := "icnd takes writes again by itself, without a restart"
	if e.AtOpen {
		then = "then start icnd again (nothing stored is lost)"
	}
	return fmt.Sprintf("free space on the filesystem of %s (or grow it) until at least %d MiB are free; %s (`df -h %s` shows the space)",
		e.Dir, (e.MinFree+e.Need+(1<<20)-1)>>20, then, e.Dir)
}

// byteSize prints n in B, KiB or MiB, one decimal.
func byteSize(n uint64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// entryOverhead is what one stored block costs besides its bytes: its key,
// its arrival-order record and Badger's framing (an estimate).
const entryOverhead = 256

// newSpace builds the guard of opts for the datastore in dir; its
// transitions are logged on log.
func newSpace(dir string, opts Options, log *slog.Logger) *space {
	sp := &space{dir: dir, free: opts.freeBytes}
	switch {
	case opts.MinFree == 0:
		sp.minFree = DefaultMinFree
	case opts.MinFree > 0:
		sp.minFree = uint64(opts.MinFree)
	}
	if sp.free == nil {
		sp.free = freeBytes
	}
	sp.onFull = func(e *DiskFullError) {
		log.Warn("disk nearly full: the ledger refuses new entries (and the node its other records) until there is room; nothing stored is lost",
			"dir", e.Dir, "free_bytes", e.Free, "min_free_bytes", e.MinFree,
			"hint", "free space on that filesystem or grow it; writes resume by themselves, without a restart")
	}
	sp.onRoom = func() { log.Info("disk space is back: the ledger accepts new entries again", "dir", dir) }
	return sp
}

// freeBytes is what statfs says an unprivileged process may still write
// on the filesystem of dir.
func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

// space guards writes against a full disk. It is safe for concurrent use.
type space struct {
	dir     string
	minFree uint64 // 0: no guard
	free    func(dir string) (uint64, error)
	full    atomic.Bool // the last check refused (for logging transitions)
	onFull  func(err *DiskFullError)
	onRoom  func()
}

// check refuses a write of about need bytes that would leave less than
// minFree free. A filesystem that cannot be asked is not refused.
func (sp *space) check(need int) error {
	if sp == nil || sp.minFree == 0 {
		return nil
	}
	free, err := sp.free(sp.dir)
	if err != nil {
		return nil
	}
	n := uint64(max(need, 0))
	if free < sp.minFree+n {
		e := &DiskFullError{Dir: sp.dir, Free: free, MinFree: sp.minFree, Need: n}
		if !sp.full.Swap(true) && sp.onFull != nil {
			sp.onFull(e)
		}
		return e
	}
	if sp.full.Swap(false) && sp.onRoom != nil {
		sp.onRoom()
	}
	return nil
}

// guardedBatch refuses to commit a batch when the disk is full.
type guardedBatch struct {
	ds.Batch
	sp   *space
	size int
}

func (b *guardedBatch) Put(ctx context.Context, k ds.Key, v []byte) error {
	b.size += len(k.String()) + len(v)
	return b.Batch.Put(ctx, k, v)
}

func (b *guardedBatch) Commit(ctx context.Context) error {
	if err := b.sp.check(b.size); err != nil {
		return err
	}
	return b.Batch.Commit(ctx)
}
