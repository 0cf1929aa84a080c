package blocklist_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger/store"
	"github.com/intercooperative/icn/node/blocklist"
	"github.com/intercooperative/icn/protocols/identity"
)

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newID(t *testing.T) *did.Identity {
	t.Helper()
	id, err := did.Generate(time.Now())
	require.NoError(t, err)
	return id
}

func rotate(t *testing.T, id *did.Identity) {
	t.Helper()
	require.NoError(t, id.Rotate(time.Now()))
}

// openStore opens a real ledger store (Badger) in dir and returns the
// blocklist's namespace of it.
func openStore(t *testing.T, dir string) (*store.Store, ds.Batching) {
	t.Helper()
	s, err := store.Open(context.Background(), dir, store.Options{NoSync: true})
	require.NoError(t, err)
	ns, err := s.Namespace("/blocklist")
	require.NoError(t, err)
	return s, ns
}

type fixture struct {
	list  *blocklist.List
	book  *identity.Book
	clock *clock
	ns    ds.Batching
	self  *did.Identity
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s, ns := openStore(t, filepath.Join(t.TempDir(), "datastore"))
	t.Cleanup(func() { s.Close() })
	f := &fixture{book: identity.NewBook(), clock: &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}, ns: ns, self: newID(t)}
	l, err := blocklist.Open(context.Background(), ns, blocklist.Options{
		Bindings: f.book,
		Now:      f.clock.Now,
		Self:     func() (did.DID, peer.ID) { return f.self.DID, f.self.PeerID() },
	})
	require.NoError(t, err)
	f.list = l
	return f
}

func (f *fixture) block(t *testing.T, target string, d time.Duration, reason string) blocklist.Entry {
	t.Helper()
	e, _, err := f.list.Block(context.Background(), target, d, reason)
	require.NoError(t, err)
	return e
}

// A blocked peer ID blocks that peer only; a blocked DID blocks the DID
// key's own peer ID, every peer ID the Book binds to it (a rotated key the
// list never saw), and peer IDs learnt for it even after the Book forgot them.
func TestBlockedMatchesPeersAndDIDs(t *testing.T) {
	f := newFixture(t)
	byPeer, byDID, learnt, other := newID(t), newID(t), newID(t), newID(t)

	// byDID rotated before the block; the Book knows only its new key.
	oldDIDPeer := byDID.PeerID()
	rotate(t, byDID)
	f.book.Put(byDID.Binding)
	f.book.Put(byPeer.Binding)
	f.book.Put(other.Binding)

	f.block(t, byPeer.PeerID().String(), 0, "spam")
	e := f.block(t, byDID.DID.String(), 0, "fraud")
	require.Equal(t, blocklist.KindDID, e.Kind)
	require.ElementsMatch(t, []peer.ID{byDID.DID.PeerID(), byDID.PeerID()}, e.Peers)

	// learnt: blocked by DID; its key rotates twice after the block.
	f.block(t, learnt.DID.String(), 0, "")
	rotate(t, learnt)
	afterFirst := learnt.PeerID()
	require.True(t, f.book.Put(learnt.Binding))
	got, ok := f.list.Learn(context.Background(), learnt.Binding)
	require.True(t, ok)
	require.Equal(t, learnt.DID.String(), got.Target)
	rotate(t, learnt)
	// The Book drops afterFirst once it sees the next binding; the list keeps it.
	require.True(t, f.book.Put(learnt.Binding))
	_, inBook := f.book.ByPeer(afterFirst)
	require.False(t, inBook)

	unknownNew := newID(t) // never bound to anything
	for _, tc := range []struct {
		name   string
		p      peer.ID
		target string // "" means not blocked
	}{
		{"peer entry", byPeer.PeerID(), byPeer.PeerID().String()},
		{"DID key's own peer ID", byDID.DID.PeerID(), byDID.DID.String()},
		{"rotated key from the Book", byDID.PeerID(), byDID.DID.String()},
		{"old key the Book forgot, kept at block time", oldDIDPeer, byDID.DID.String()},
		{"key learnt after the block, forgotten by the Book", afterFirst, learnt.DID.String()},
		{"newest key, known from the Book only", learnt.PeerID(), learnt.DID.String()},
		{"unrelated peer", other.PeerID(), ""},
		{"unknown peer", unknownNew.PeerID(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := f.list.Blocked(tc.p)
			if tc.target == "" {
				require.False(t, ok, "blocked by %s", e.Target)
				return
			}
			require.True(t, ok)
			require.Equal(t, tc.target, e.Target)
		})
	}

	// Rotating a peer-ID-blocked node escapes a peer block (that is what DID
	// blocks are for).
	rotate(t, byPeer)
	f.book.Put(byPeer.Binding)
	_, ok = f.list.Blocked(byPeer.PeerID())
	require.False(t, ok)

	// Learn for an unblocked DID records nothing and reports not blocked.
	_, ok = f.list.Learn(context.Background(), other.Binding)
	require.False(t, ok)

	// The listing shows each DID's refused peer IDs.
	var listed blocklist.Entry
	for _, e := range f.list.List() {
		if e.Target == learnt.DID.String() {
			listed = e
		}
	}
	require.ElementsMatch(t, []peer.ID{learnt.DID.PeerID(), afterFirst, learnt.PeerID()}, listed.Peers)
}

func TestExpiry(t *testing.T) {
	f := newFixture(t)
	brief, forever, did1 := newID(t), newID(t), newID(t)
	ctx := context.Background()

	e := f.block(t, brief.PeerID().String(), time.Hour, "cool off")
	require.Equal(t, f.clock.Now().Add(time.Hour), e.Expires)
	require.False(t, e.Permanent())
	require.True(t, f.block(t, forever.PeerID().String(), 0, "").Permanent())
	f.block(t, did1.DID.String(), 90*time.Minute, "")

	for _, step := range []struct {
		advance             time.Duration
		brief, forever, did bool
		listed              int
	}{
		{0, true, true, true, 3},
		{59 * time.Minute, true, true, true, 3},
		{time.Minute, false, true, true, 2}, // exactly at Expires: lapsed
		{29 * time.Minute, false, true, true, 2},
		{time.Minute, false, true, false, 1},
		{1000 * time.Hour, false, true, false, 1},
	} {
		f.clock.Add(step.advance)
		_, b := f.list.Blocked(brief.PeerID())
		_, fv := f.list.Blocked(forever.PeerID())
		_, d := f.list.Blocked(did1.DID.PeerID())
		require.Equal(t, []bool{step.brief, step.forever, step.did}, []bool{b, fv, d}, "at %s", f.clock.Now())
		require.Len(t, f.list.List(), step.listed)
	}
	// Lapsed entries are gone from the datastore too.
	for _, target := range []string{brief.PeerID().String(), did1.DID.String()} {
		has, err := f.ns.Has(ctx, ds.NewKey("/").ChildString(target))
		require.NoError(t, err)
		require.False(t, has, target)
	}
	has, err := f.ns.Has(ctx, ds.NewKey("/").ChildString(forever.PeerID().String()))
	require.NoError(t, err)
	require.True(t, has)

	_, err = f.list.Unblock(ctx, brief.PeerID().String())
	require.ErrorIs(t, err, blocklist.ErrNotBlocked)
}

func TestBlockReplacesAndUnblockRemoves(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := newID(t)
	_, replaced, err := f.list.Block(ctx, p.DID.String(), time.Hour, "first")
	require.NoError(t, err)
	require.False(t, replaced)
	f.clock.Add(time.Minute)
	e, replaced, err := f.list.Block(ctx, "  "+p.DID.String()+" ", 0, "second")
	require.NoError(t, err)
	require.True(t, replaced)
	require.Equal(t, "second", e.Reason)
	require.True(t, e.Permanent())
	require.Len(t, f.list.List(), 1)

	u, err := f.list.Unblock(ctx, p.DID.String())
	require.NoError(t, err)
	require.Equal(t, "second", u.Reason)
	_, ok := f.list.Blocked(p.PeerID())
	require.False(t, ok)
	_, err = f.list.Unblock(ctx, p.DID.String())
	require.ErrorIs(t, err, blocklist.ErrNotBlocked)
	require.Equal(t, p.DID.String()+" is not blocked", err.Error())
	require.Empty(t, f.list.List())
}

func TestBadTargetsDurationsReasons(t *testing.T) {
	f := newFixture(t)
	selfFirstPeer := f.self.PeerID()
	rotate(t, f.self) // self now has a peer ID other than its DID key's
	f.book.Put(f.self.Binding)

	for _, tc := range []struct {
		name   string
		target string
		d      time.Duration
		reason string
		check  func(t *testing.T, err error)
	}{
		{"garbage", "garbage", 0, "", isNotTarget},
		{"empty", "", 0, "", isNotTarget},
		{"bad DID", "did:icn:zNotBase58!", 0, "", isNotTarget},
		{"multiaddr", "/ip4/127.0.0.1/udp/7777/quic-v1", 0, "", isNotTarget},
		{"own DID", f.self.DID.String(), 0, "", isSelf},
		{"own peer ID", f.self.PeerID().String(), 0, "", isSelf},
		{"own DID key's peer ID", selfFirstPeer.String(), 0, "", isSelf},
		{"negative duration", newID(t).PeerID().String(), -time.Second, "", func(t *testing.T, err error) {
			var de *blocklist.DurationError
			require.ErrorAs(t, err, &de)
			require.Equal(t, -time.Second, de.Duration)
		}},
		{"long reason", newID(t).PeerID().String(), 0, strings.Repeat("x", blocklist.MaxReasonLen+1), func(t *testing.T, err error) {
			var re *blocklist.ReasonError
			require.ErrorAs(t, err, &re)
		}},
		{"reason not UTF-8", newID(t).PeerID().String(), 0, "\xff", func(t *testing.T, err error) {
			var re *blocklist.ReasonError
			require.ErrorAs(t, err, &re)
		}},
		{"reason with a newline", newID(t).PeerID().String(), 0, "one\ntwo", func(t *testing.T, err error) {
			var re *blocklist.ReasonError
			require.ErrorAs(t, err, &re)
			require.Contains(t, err.Error(), "control characters")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := f.list.Block(context.Background(), tc.target, tc.d, tc.reason)
			require.Error(t, err)
			tc.check(t, err)
		})
	}
	require.Empty(t, f.list.List())
	_, err := f.list.Unblock(context.Background(), "garbage")
	isNotTarget(t, err)
}

func isNotTarget(t *testing.T, err error) {
	t.Helper()
	var te *blocklist.TargetError
	require.ErrorAs(t, err, &te)
	require.ErrorIs(t, err, blocklist.ErrNotTarget)
	require.False(t, errors.Is(err, blocklist.ErrSelf))
	require.Contains(t, err.Error(), "neither a peer ID nor a DID")
}

func isSelf(t *testing.T, err error) {
	t.Helper()
	require.ErrorIs(t, err, blocklist.ErrSelf)
	require.Contains(t, err.Error(), "this node itself")
}

// Entries, learnt peer IDs included, survive closing and reopening the
// Badger datastore; entries that lapsed while the node was down are dropped.
func TestPersistenceRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "datastore")
	clk := &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)}
	byPeer, byDID, brief := newID(t), newID(t), newID(t)

	s, ns := openStore(t, dir)
	book := identity.NewBook()
	l, err := blocklist.Open(ctx, ns, blocklist.Options{Bindings: book, Now: clk.Now})
	require.NoError(t, err)
	_, _, err = l.Block(ctx, byPeer.PeerID().String(), 0, "spam, lots of it")
	require.NoError(t, err)
	_, _, err = l.Block(ctx, byDID.DID.String(), 48*time.Hour, "fraud")
	require.NoError(t, err)
	_, _, err = l.Block(ctx, brief.PeerID().String(), time.Hour, "")
	require.NoError(t, err)
	rotate(t, byDID)
	book.Put(byDID.Binding)
	_, ok := l.Learn(ctx, byDID.Binding)
	require.True(t, ok)
	before := l.List()
	require.NoError(t, s.Close())

	// Two hours later, with an empty Book (bindings are relearnt after a start).
	clk.Add(2 * time.Hour)
	s, ns = openStore(t, dir)
	defer s.Close()
	l, err = blocklist.Open(ctx, ns, blocklist.Options{Bindings: identity.NewBook(), Now: clk.Now})
	require.NoError(t, err)
	after := l.List()
	require.Len(t, after, 2)
	var want []blocklist.Entry
	for _, e := range before {
		if e.Target != brief.PeerID().String() {
			want = append(want, e)
		}
	}
	require.Len(t, want, 2)
	for i := range want {
		require.Equal(t, want[i].Target, after[i].Target)
		require.Equal(t, want[i].Kind, after[i].Kind)
		require.Equal(t, want[i].Reason, after[i].Reason)
		require.True(t, want[i].Created.Equal(after[i].Created), "%s vs %s", want[i].Created, after[i].Created)
		require.True(t, want[i].Expires.Equal(after[i].Expires))
		require.Equal(t, want[i].Peers, after[i].Peers)
	}
	// The rotated key is refused without the Book knowing it.
	e, ok := l.Blocked(byDID.PeerID())
	require.True(t, ok)
	require.Equal(t, "fraud", e.Reason)
	_, ok = l.Blocked(byPeer.PeerID())
	require.True(t, ok)
	has, err := ns.Has(ctx, ds.NewKey("/").ChildString(brief.PeerID().String()))
	require.NoError(t, err)
	require.False(t, has, "a lapsed entry is removed at load")

	// A record nobody can read is skipped, not fatal.
	require.NoError(t, ns.Put(ctx, ds.NewKey("/junk"), []byte("{not json")))
	l, err = blocklist.Open(ctx, ns, blocklist.Options{Bindings: identity.NewBook(), Now: clk.Now})
	require.NoError(t, err)
	require.Len(t, l.List(), 2)
}
