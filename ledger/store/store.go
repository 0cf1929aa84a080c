// Package store keeps the ledger on disk: every verified entry as a
// content-addressed block in the Badger datastore (go-datastore +
// go-ds-badger4), with its arrival order, written in one transaction per
// batch so a crash never leaves half an entry, and acknowledged only once
// that transaction is synced to disk. The ledger state (statuses, balances,
// heads, indexes) is derived from the blocks by package ledger, in memory;
// Open restores the last snapshot of it (snapshot.go) and replays, in
// arrival order, only the blocks written after that snapshot, without
// re-checking signatures that were checked before the blocks were written.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	badger4 "github.com/ipfs/go-ds-badger4"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"
)

// Key layout.
var (
	blockPrefix = ds.NewKey("/ledger/block")
	orderPrefix = ds.NewKey("/ledger/order")
)

func blockKey(c cid.Cid) ds.Key { return blockPrefix.ChildString(c.String()) }

// orderKey sorts numerically as a string: fixed-width hex.
func orderKey(n uint64) ds.Key { return orderPrefix.ChildString(fmt.Sprintf("%016x", n)) }

// Options configure the store.
type Options struct {
	// NoSync skips the fsync of each commit: faster, and acknowledged
	// entries may be lost in a power cut. Only for tests and benchmarks.
	NoSync bool
	// Workers verifies signatures in parallel; 0 means GOMAXPROCS.
	Workers int
	// SnapshotEvery is how many new entries trigger a snapshot of the
	// ledger state (see snapshot.go); 0 means DefaultSnapshotEvery, and a
	// negative value takes snapshots only on Close.
	SnapshotEvery int
	// Log gets the store's warnings (a periodic snapshot that failed); nil
	// means slog.Default().
	Log *slog.Logger
	// InMemory keeps everything in memory, in small tables, and nothing
	// on disk (dir is ignored): for simulations of many nodes in one
	// process. Everything is lost on Close.
	InMemory bool
	// MinFree is the free space, in bytes, kept on the datastore's
	// filesystem: a write that would leave less is refused with a
	// DiskFullError (see DefaultMinFree for why). 0 means DefaultMinFree;
	// a negative value turns the guard off.
	MinFree int64

	// freeBytes replaces statfs (tests).
	freeBytes func(dir string) (uint64, error)

	// tune adjusts Badger's options (tests: namespace bans).
	tune func(badger.Options) badger.Options
}

// Store is the durable ledger. It is safe for concurrent use.
type Store struct {
	ds      *badger4.Datastore
	workers int
	keys    ledger.KeyCache

	snapEvery int
	loaded    LoadInfo // set by Open
	log       *slog.Logger
	// snapFailures counts periodic snapshots that failed.
	snapFailures atomic.Uint64

	snapMu sync.Mutex // held while a snapshot is written

	space *space // refuses writes when the disk is nearly full

	mu       sync.Mutex // guards the fields below
	applied  *sync.Cond // signalled when inflight shrinks
	led      *ledger.Ledger
	next     uint64           // the next arrival number
	stored   uint64           // blocks on disk
	inflight map[cid.Cid]bool // blocks an Ingest is committing
	// The snapshot in force: its generation and the first arrival number
	// it does not cover; entries applied since.
	snapGen, snapCovers uint64
	sinceSnap           int
	snapErr             error // the last periodic snapshot's failure
	// snapRetryAt: after a failure, the next periodic snapshot waits until
	// sinceSnap reaches it (another SnapshotEvery entries), so a disk that
	// refuses writes costs one attempt and one log line per that many.
	snapRetryAt int

	checked checkedBlocks // blocks Check passed, for Ingest
	// admit is the admission policy of Ingest (SetAdmit).
	admit atomic.Pointer[func(*ledger.Entry) error]
}

// Open opens (or creates) the store in dir and rebuilds the ledger state.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	bopts := badger4.DefaultOptions
	bopts.Options = badger.DefaultOptions("").
		WithSyncWrites(!opts.NoSync).
		WithLogger(nil).
		// Sized for a node, not a database server: a few MiB of memtables
		// and caches keep a daemon with 100k entries small. A memtable
		// bounds one transaction to 15% of its size; persist splits
		// larger batches.
		WithMemTableSize(4 << 20).
		WithNumMemtables(2).
		WithBaseTableSize(1 << 20). // a compaction buffers two tables' worth
		WithNumCompactors(2).
		WithBlockCacheSize(4 << 20).
		WithIndexCacheSize(4 << 20).
		WithValueThreshold(64 << 10). // blocks (at most 16 KiB) stay in the LSM tree
		WithValueLogFileSize(64 << 20)
	bopts.GcInterval = 0
	if opts.InMemory {
		dir = ""
		opts.MinFree = -1 // no disk to fill
		bopts.Options = bopts.Options.WithInMemory(true).WithDir("").WithValueDir("").
			WithMemTableSize(1 << 20).WithBaseTableSize(256 << 10).WithNumCompactors(2).
			WithBlockCacheSize(256 << 10).WithIndexCacheSize(256 << 10).WithNumLevelZeroTables(2).WithNumLevelZeroTablesStall(4)
	}
	if opts.tune != nil {
		bopts.Options = opts.tune(bopts.Options)
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	// Opening may flush the logs a previous run left (into tables written
	// through memory maps): with the disk nearly full that would crash.
	sp := newSpace(dir, opts, log)
	if !opts.InMemory {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open datastore %s: %w", dir, err)
		}
		if free, err := sp.free(dir); err == nil && free < sp.minFree {
			return nil, &DiskFullError{Dir: dir, Free: free, MinFree: sp.minFree, AtOpen: true}
		}
	}
	d, err := badger4.NewDatastore(dir, &bopts)
	if err != nil {
		// Badger formats its lock error with %+v, so no error type
		// survives: its message is the only thing to go by.
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, &InUseError{Dir: dir}
		}
		return nil, fmt.Errorf("open datastore %s: %w", dir, err)
	}
	s := &Store{ds: d, workers: opts.Workers, snapEvery: opts.SnapshotEvery, log: log, led: ledger.New(), inflight: map[cid.Cid]bool{}}
	s.space = sp
	s.applied = sync.NewCond(&s.mu)
	if s.workers <= 0 {
		s.workers = runtime.GOMAXPROCS(0)
	}
	switch {
	case s.snapEvery == 0:
		s.snapEvery = DefaultSnapshotEvery
	case s.snapEvery < 0:
		s.snapEvery = math.MaxInt
	}
	if err := s.load(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return s, nil
}

// Close writes a snapshot of the ledger state, so the next Open has
// little to replay, and closes the datastore.
//
// With the disk nearly full (under MinFree) it closes nothing: Badger's
// close flushes its memtable into a table written through a memory map,
// and a write into space the disk lacks would crash the process. The
// datastore is left as a crash leaves it, which loses nothing (every commit
// is in the synced log, replayed by the next Open), and the process
// releases its lock when it exits; the same process cannot reopen it.
func (s *Store) Close() error {
	if err := s.space.check(0); err != nil {
		s.log.Warn("disk nearly full at close: the datastore is left open, as after a crash, rather than risk a flush into space the disk lacks; "+
			"nothing is lost (the next start replays its synced log) once there is room", "err", err)
		return nil
	}
	serr := s.Snapshot(context.Background())
	if serr != nil {
		serr = fmt.Errorf("ledger snapshot (the next start replays the blocks instead): %w", serr)
	}
	return errors.Join(serr, s.ds.Close())
}

// Result is what became of one ingested block.
type Result struct {
	CID       cid.Cid
	Status    ledger.Status
	Reason    string
	Duplicate bool
	// Err is set when the block was refused (malformed, bad signature, a
	// static rule) and nothing was stored.
	Err error
}

// Ingest verifies blocks in parallel, stores the new ones in one synced
// transaction, and only then applies them to the ledger and returns: the
// in-memory state never runs ahead of the disk. Batches from concurrent
// calls verify and commit side by side; only applying them to the ledger
// takes turns. want, when given, holds the CID each block was requested
// under (cid.Undef if none).
func (s *Store) Ingest(ctx context.Context, blocks [][]byte, want []cid.Cid) ([]Result, error) {
	return s.ingest(ctx, blocks, want, true)
}

// Import is Ingest without the admission policy (SetAdmit): for restoring
// a backup, which brings back what the node held, whoever wrote it.
func (s *Store) Import(ctx context.Context, blocks [][]byte, want []cid.Cid) ([]Result, error) {
	return s.ingest(ctx, blocks, want, false)
}

// SetAdmit installs the admission policy Ingest applies to every block
// that verified: a non-nil error refuses the block (its Result.Err; nothing
// stored), as an entry by an author the node's trust policy does not admit.
// nil admits every block. Append and Import do not apply it.
func (s *Store) SetAdmit(admit func(*ledger.Entry) error) {
	if admit == nil {
		s.admit.Store(nil)
		return
	}
	s.admit.Store(&admit)
}

func (s *Store) ingest(ctx context.Context, blocks [][]byte, want []cid.Cid, admission bool) ([]Result, error) {
	verified := make([]*ledger.Verified, len(blocks))
	results := make([]Result, len(blocks))
	cids := s.skipKnown(blocks, want, results)
	// Blocks Check passed a moment ago (gossip validation) are not checked
	// again.
	for i, c := range cids {
		if results[i].Duplicate || (i < len(want) && want[i].Defined() && !want[i].Equals(c)) {
			continue
		}
		if v := s.checked.take(c); v != nil {
			verified[i], results[i].CID = v, c
		}
	}
	s.verifyAll(blocks, want, verified, results)
	if a := s.admit.Load(); admission && a != nil {
		for i, v := range verified {
			if v == nil {
				continue
			}
			if err := (*a)(v.Entry); err != nil {
				results[i], verified[i] = Result{CID: v.CID, Err: err}, nil
			}
		}
	}

	// Claim the new blocks and their arrival numbers.
	s.mu.Lock()
	var fresh []*ledger.Verified
	for i, v := range verified {
		if v == nil {
			continue
		}
		if s.led.Has(v.CID) || s.inflight[v.CID] {
			results[i].Duplicate = true
			continue
		}
		s.inflight[v.CID] = true
		fresh = append(fresh, v)
	}
	first := s.next
	s.next += uint64(len(fresh))
	s.mu.Unlock()

	err := s.persist(ctx, fresh, first)

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range fresh {
		delete(s.inflight, v.CID)
	}
	s.applied.Broadcast()
	if err != nil {
		for i := range results {
			if results[i].Err == nil && !results[i].Duplicate {
				results[i] = Result{CID: results[i].CID, Err: err}
			}
		}
		return results, err
	}
	s.stored += uint64(len(fresh))
	for _, v := range fresh {
		s.led.Add(v)
	}
	for i := range results {
		if results[i].Err == nil {
			results[i].Status, results[i].Reason = s.led.Status(results[i].CID)
		}
	}
	s.sinceSnap += len(fresh)
	if s.snapshotDue() {
		s.mu.Unlock()
		s.periodicSnapshot(ctx)
		s.mu.Lock()
	}
	return results, nil
}

// snapshotDue says whether enough entries came since the last snapshot:
// SnapshotEvery, or a quarter of the ledger if that is more, so the
// snapshots written stay proportional to the entries ingested however large
// the ledger grows (a crash then replays at most that many). s.mu is held.
func (s *Store) snapshotDue() bool {
	return s.sinceSnap >= s.snapEvery && uint64(s.sinceSnap) >= s.stored/4 && s.sinceSnap >= s.snapRetryAt
}

// periodicSnapshot writes a snapshot unless one is being written already.
// A failure is not returned (the blocks are stored; only the next start is
// slower, as it replays every entry since the last snapshot that was
// written): it is logged at WARN, counted (SnapshotFailures) and kept for
// SnapshotErr, and the next attempt waits for another SnapshotEvery entries.
func (s *Store) periodicSnapshot(ctx context.Context) {
	if !s.snapMu.TryLock() {
		return
	}
	defer s.snapMu.Unlock()
	err := s.snapshot(ctx)
	s.mu.Lock()
	failedBefore := s.snapErr != nil
	s.snapErr = err
	since := s.sinceSnap
	if err != nil {
		s.snapRetryAt = s.sinceSnap + s.snapEvery
	} else {
		s.snapRetryAt = 0
	}
	s.mu.Unlock()
	switch {
	case err != nil:
		n := s.snapFailures.Add(1)
		s.log.Warn("ledger snapshot failed: the entries are stored, but the next start replays every entry since the last snapshot written; retrying after more entries",
			"err", err, "entries_since_snapshot", since, "failures", n)
	case failedBefore:
		s.log.Info("ledger snapshot written again after failing")
	}
}

// SnapshotFailures is how many periodic snapshots have failed since Open.
func (s *Store) SnapshotFailures() uint64 { return s.snapFailures.Load() }

// SnapshotErr is the failure of the last periodic snapshot, if it failed.
func (s *Store) SnapshotErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapErr
}

// readEntry reads a stored block and decodes it (its signature was checked
// before it was stored).
func (s *Store) readEntry(ctx context.Context, c cid.Cid) ([]byte, *ledger.Entry, error) {
	block, err := s.Block(ctx, c)
	if err != nil {
		return nil, nil, fmt.Errorf("ledger block %s: %w", c, err)
	}
	e, err := s.keys.Decode(block)
	if err != nil {
		return nil, nil, fmt.Errorf("ledger block %s is corrupt: %w (run `icnctl ledger verify`)", c, err)
	}
	return block, e, nil
}

// Block reads a stored block.
func (s *Store) Block(ctx context.Context, c cid.Cid) ([]byte, error) {
	return s.ds.Get(ctx, blockKey(c))
}

// MissingCIDs returns the CIDs of the stored blocks a peer with the given
// summary lacks, at most limit (see ledger.Ledger.MissingCIDs); Block reads
// them one at a time.
func (s *Store) MissingCIDs(remote map[did.DID]ledger.AuthorSummary, limit int) []cid.Cid {
	var cids []cid.Cid
	s.Read(func(l *ledger.Ledger) { cids = l.MissingCIDs(remote, limit) })
	return cids
}

// MissingFrom returns the stored blocks a peer with the given summary lacks
// (see ledger.Ledger.MissingCIDs), read from disk.
func (s *Store) MissingFrom(ctx context.Context, remote map[did.DID]ledger.AuthorSummary, limit int) ([][]byte, error) {
	cids := s.MissingCIDs(remote, limit)
	out := make([][]byte, 0, len(cids))
	for _, c := range cids {
		b, err := s.Block(ctx, c)
		if err != nil {
			return out, fmt.Errorf("read block %s: %w", c, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// Record is a stored entry with its status.
type Record struct {
	CID    cid.Cid
	Entry  *ledger.Entry
	Status ledger.Status
	Reason string
}

// History lists the complete entries written by account or posting to it,
// read from disk, ordered by author timestamp, then author, then seq.
func (s *Store) History(ctx context.Context, account did.DID) ([]Record, error) {
	var ds []ledger.Decision
	s.Read(func(l *ledger.Ledger) { ds = l.Involving(account) })
	out := make([]Record, 0, len(ds))
	for _, d := range ds {
		_, e, err := s.readEntry(ctx, d.CID)
		if err != nil {
			return nil, err
		}
		out = append(out, Record{d.CID, e, d.Status, d.Reason})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Entry, out[j].Entry
		if a.Timestamp != b.Timestamp {
			return a.Timestamp < b.Timestamp
		}
		if a.Author != b.Author {
			return a.Author.String() < b.Author.String()
		}
		return a.Seq < b.Seq
	})
	return out, nil
}

// skipKnown marks as duplicates the blocks already stored or being stored,
// before anything checks their signatures: a node that pulls the same
// history from several peers at once verifies it once. A block's bytes are
// known when its CID is (that is what a content address means), so nothing
// is skipped that a check could refuse; a block that does not hash to the
// CID it was requested under is left for verifyAll to refuse.
// It returns the blocks' CIDs.
func (s *Store) skipKnown(blocks [][]byte, want []cid.Cid, results []Result) []cid.Cid {
	cids := make([]cid.Cid, len(blocks))
	for i, b := range blocks {
		cids[i] = ledger.BlockCID(b)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, c := range cids {
		if i < len(want) && want[i].Defined() && !want[i].Equals(c) {
			continue
		}
		if s.led.Has(c) || s.inflight[c] {
			results[i] = Result{CID: c, Duplicate: true}
		}
	}
	return cids
}

// verifyAll checks the blocks that are neither duplicates nor verified
// already, in parallel, filling verified and results.
func (s *Store) verifyAll(blocks [][]byte, want []cid.Cid, verified []*ledger.Verified, results []Result) {
	var wg sync.WaitGroup
	jobs := make(chan int)
	for w := 0; w < min(s.workers, len(blocks)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				w := cid.Undef
				if i < len(want) {
					w = want[i]
				}
				v, err := s.keys.Verify(blocks[i], w)
				if err != nil {
					results[i] = Result{CID: ledger.BlockCID(blocks[i]), Err: err}
					continue
				}
				verified[i] = v
				results[i].CID = v.CID
			}
		}()
	}
	for i := range blocks {
		if !results[i].Duplicate && verified[i] == nil {
			jobs <- i
		}
	}
	close(jobs)
	wg.Wait()
}

// persist writes blocks and their arrival numbers, from first on, in one
// synced transaction, split in halves when Badger finds it too big for one
// (at Put or at Commit).
func (s *Store) persist(ctx context.Context, vs []*ledger.Verified, first uint64) error {
	if len(vs) == 0 {
		return nil
	}
	need := 0
	for _, v := range vs {
		need += len(v.Block) + entryOverhead
	}
	if err := s.space.check(need); err != nil {
		return err
	}
	err := s.persistOnce(ctx, vs, first)
	if errors.Is(err, badger.ErrTxnTooBig) && len(vs) > 1 {
		mid := len(vs) / 2
		if err := s.persist(ctx, vs[:mid], first); err != nil {
			return err
		}
		return s.persist(ctx, vs[mid:], first+uint64(mid))
	}
	return err
}

func (s *Store) persistOnce(ctx context.Context, vs []*ledger.Verified, first uint64) error {
	txn, err := s.ds.NewTransaction(ctx, false)
	if err != nil {
		return err
	}
	defer txn.Discard(ctx)
	for i, v := range vs {
		if err := txn.Put(ctx, blockKey(v.CID), v.Block); err != nil {
			return fmt.Errorf("store block %s: %w", v.CID, err)
		}
		if err := txn.Put(ctx, orderKey(first+uint64(i)), v.CID.Bytes()); err != nil {
			return fmt.Errorf("store block order: %w", err)
		}
	}
	if err := txn.Commit(ctx); err != nil {
		return fmt.Errorf("commit ledger blocks: %w", err)
	}
	return nil
}

// Check verifies a block on its own (decoding, signature, static rules)
// with the store's key cache, and stores nothing: for checks made before a
// block is offered to Ingest, such as gossip validation. The last few
// blocks it passed are remembered, so that Ingest does not check the same
// bytes again.
func (s *Store) Check(block []byte) error {
	v, err := s.keys.Verify(block, cid.Undef)
	if err == nil {
		s.checked.put(v)
	}
	return err
}

// VerifyBlock is Check returning the verified block (and remembering nothing).
func (s *Store) VerifyBlock(block []byte) (*ledger.Verified, error) {
	return s.keys.Verify(block, cid.Undef)
}

// checkedBlocks remembers the blocks Check passed, by CID, up to checkedMax
// of them, the oldest forgotten first. A CID is the hash of the block's bytes,
// so a block that hashes to a remembered CID is the block that was checked.
type checkedBlocks struct {
	mu    sync.Mutex
	byCID map[cid.Cid]*ledger.Verified
	order []cid.Cid // insertion order, a ring of checkedMax
	next  int
}

// checkedMax bounds checkedBlocks: enough for the entries gossip validates
// in the moment before they reach Ingest.
const checkedMax = 1024

func (c *checkedBlocks) put(v *ledger.Verified) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byCID == nil {
		c.byCID = make(map[cid.Cid]*ledger.Verified, checkedMax)
		c.order = make([]cid.Cid, checkedMax)
	}
	if _, ok := c.byCID[v.CID]; ok {
		return
	}
	if old := c.order[c.next]; old.Defined() {
		delete(c.byCID, old)
	}
	c.order[c.next] = v.CID
	c.next = (c.next + 1) % checkedMax
	c.byCID[v.CID] = v
}

// take returns the remembered check of the block whose bytes hash to id,
// if any.
func (c *checkedBlocks) take(id cid.Cid) *ledger.Verified {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.byCID[id]
	delete(c.byCID, id) // its ring slot goes when it comes round
	return v
}

// Read runs fn with the ledger state under the store's lock. fn must not
// keep the ledger beyond the call.
func (s *Store) Read(fn func(l *ledger.Ledger)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.led)
}

// ReadWithStateHash runs fn like Read and returns the state hash of the
// same moment, sorting and hashing the accepted CIDs after the lock is
// released (at a million entries that is a third of a second that ingest
// would otherwise wait).
func (s *Store) ReadWithStateHash(fn func(l *ledger.Ledger)) [32]byte {
	s.mu.Lock()
	if fn != nil {
		fn(s.led)
	}
	j := s.led.StateHashJob()
	s.mu.Unlock()
	h := j.Run()
	s.mu.Lock()
	s.led.KeepStateHash(j)
	s.mu.Unlock()
	return h
}

// RefusedError is the ErrRefused of one entry: the status it would have had
// and why.
type RefusedError struct {
	Status ledger.Status
	Reason string
}

func (e *RefusedError) Error() string        { return ErrRefused.Error() + ": " + e.Reason }
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// OverCreditLimit reports whether the entry was refused for taking its
// author below a credit limit.
func (e *RefusedError) OverCreditLimit() bool { return ledger.OverCreditLimit(e.Reason) }

// InUseError means another process holds the datastore open.
type InUseError struct{ Dir string }

func (e *InUseError) Error() string {
	return fmt.Sprintf("the ledger datastore %s is in use by another process (another icnd on this data dir?)", e.Dir)
}

// ErrRefused means a locally built entry would not be accepted; nothing was
// stored. The error says why.
var ErrRefused = errors.New("entry refused")

// Append builds, signs and stores a new entry by the local author: build
// gets the ledger under the lock and returns the signed block; Append checks
// that the entry would be accepted (over-limit or unknown-currency entries
// are refused, not stored) and stores it durably before returning.
func (s *Store) Append(ctx context.Context, build func(l *ledger.Ledger) ([]byte, error)) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	block, err := build(s.led)
	if err != nil {
		return Result{}, err
	}
	v, err := s.keys.Verify(block, cid.Undef)
	if err != nil {
		return Result{}, err
	}
	st, reason, err := s.led.Check(v)
	if err != nil {
		return Result{CID: v.CID}, err
	}
	if st != ledger.StatusAccepted {
		return Result{CID: v.CID, Status: st, Reason: reason}, &RefusedError{Status: st, Reason: reason}
	}
	if err := s.persist(ctx, []*ledger.Verified{v}, s.next); err != nil {
		return Result{CID: v.CID}, err
	}
	s.next++
	s.stored++
	s.sinceSnap++
	out := s.led.Add(v)
	return Result{CID: v.CID, Status: out.Status, Reason: out.Reason}, nil
}

// Count is the number of stored blocks.
func (s *Store) Count() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stored
}
