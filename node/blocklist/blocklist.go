// Package blocklist owns the node's decision to refuse a peer: entries keyed
// by a peer ID or a DID, each with a reason, when it was made and when it
// lapses, kept in the node's datastore under their own prefix so blocks
// survive restarts. It answers "is this peer blocked?" for the connection
// gater and the identity service: a blocked DID blocks every peer ID bound
// to it, those known from verified bindings and those learnt later (after
// the DID rotates its node key). Expired entries lapse by themselves: they
// are dropped when a lookup or a listing meets them.
package blocklist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/intercooperative/icn/did"
)

// Kind says what an entry is keyed by.
type Kind string

// Kinds of entries.
const (
	KindPeer Kind = "peer"
	KindDID  Kind = "did"
)

// MaxReasonLen bounds an entry's reason, in bytes.
const MaxReasonLen = 500

// Entry is one block.
type Entry struct {
	// Target is the canonical peer ID or DID.
	Target string
	Kind   Kind
	Reason string
	// Created is when the block was made (or last replaced).
	Created time.Time
	// Expires is when it lapses; zero means never.
	Expires time.Time
	// Peers are, for a DID, the peer IDs refused for it: the DID key's own
	// and every peer ID seen bound to the DID (kept with the entry, so they
	// are refused even before the node relearns the bindings after a
	// restart), plus, in listings, the peer IDs the bindings source knows.
	// Nil for a peer entry.
	Peers []peer.ID
}

// Permanent reports whether the entry never lapses.
func (e Entry) Permanent() bool { return e.Expires.IsZero() }

func (e Entry) live(now time.Time) bool { return e.Expires.IsZero() || now.Before(e.Expires) }

// Bindings is what the list knows about DIDs and their peer IDs: the
// identity Book in protocols/identity.
type Bindings interface {
	// ByPeer returns the verified binding a peer presented.
	ByPeer(peer.ID) (did.Binding, bool)
	// PeersOf returns the peer IDs known to be bound to a DID.
	PeersOf(did.DID) []peer.ID
}

// Options configure a List.
type Options struct {
	// Bindings resolves peers to DIDs and back; required.
	Bindings Bindings
	// Self returns this node's DID and current peer ID, which cannot be
	// blocked; nil means no check.
	Self func() (did.DID, peer.ID)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives a warning for a stored entry that cannot be read or a
	// lapsed entry that cannot be removed; nil discards them.
	Log *slog.Logger
}

// Errors.
var (
	// ErrNotBlocked means the target has no (live) entry.
	ErrNotBlocked = errors.New("not blocked")
	// ErrSelf means the target is this node.
	ErrSelf = errors.New("that is this node itself")
	// ErrNotTarget means the target is neither a peer ID nor a DID.
	ErrNotTarget = errors.New("neither a peer ID nor a DID")
)

// TargetError is a target the list refuses: ErrNotTarget (with the parse
// error) or ErrSelf.
type TargetError struct {
	Target string
	// Err is ErrSelf, or wraps ErrNotTarget and the reason it failed to parse.
	Err error
}

func (e *TargetError) Error() string {
	if errors.Is(e.Err, ErrSelf) {
		return fmt.Sprintf("%s is this node itself; a node cannot block itself", e.Target)
	}
	return fmt.Sprintf("%q is %v", e.Target, e.Err)
}

func (e *TargetError) Unwrap() error { return e.Err }

// DurationError is a negative block duration.
type DurationError struct{ Duration time.Duration }

func (e *DurationError) Error() string {
	return fmt.Sprintf("block duration %s is negative", e.Duration)
}

// ReasonError is a reason the list refuses: longer than MaxReasonLen, not
// valid UTF-8, or holding control characters (a newline would break the
// listing and the log line).
type ReasonError struct{ Problem string }

func (e *ReasonError) Error() string { return "the reason " + e.Problem }

// BlockedError is a connection refused because of a block (an explicit
// dial of a blocked peer). Control APIs answer it with 409 Conflict.
type BlockedError struct {
	Peer  peer.ID
	Entry Entry
}

func (e *BlockedError) Error() string {
	by := "its peer ID is blocked"
	if e.Entry.Kind == KindDID {
		by = "its DID " + e.Entry.Target + " is blocked"
	}
	if e.Entry.Reason != "" {
		by += " (" + e.Entry.Reason + ")"
	}
	return fmt.Sprintf("%s is refused: %s", e.Peer, by)
}

// List is the blocklist. It is safe for concurrent use.
type List struct {
	store ds.Datastore
	opts  Options

	mu      sync.Mutex
	entries map[string]Entry // by Target
	// didOf indexes the Peers of DID entries.
	didOf map[peer.ID]did.DID
}

// Open loads the entries kept in store (a namespace of the node's
// datastore that the list owns), dropping those that have lapsed.
func Open(ctx context.Context, store ds.Datastore, opts Options) (*List, error) {
	if opts.Bindings == nil {
		return nil, errors.New("blocklist: no Bindings")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	l := &List{store: store, opts: opts, entries: map[string]Entry{}, didOf: map[peer.ID]did.DID{}}
	res, err := store.Query(ctx, dsq.Query{})
	if err != nil {
		return nil, fmt.Errorf("blocklist: read the datastore: %w", err)
	}
	defer res.Close()
	now := opts.Now()
	var lapsed []ds.Key
	for r := range res.Next() {
		if r.Error != nil {
			return nil, fmt.Errorf("blocklist: read the datastore: %w", r.Error)
		}
		e, err := decode(r.Value)
		if err != nil {
			opts.Log.Warn("SECURITY blocklist entry unreadable; it is not enforced", "key", r.Key, "err", err)
			continue
		}
		if !e.live(now) {
			lapsed = append(lapsed, ds.NewKey(r.Key))
			continue
		}
		l.index(e)
	}
	for _, k := range lapsed {
		if err := store.Delete(ctx, k); err != nil {
			opts.Log.Warn("could not remove a lapsed block", "key", k, "err", err)
		}
	}
	return l, nil
}

// Parse returns the canonical form and kind of a target: a DID
// (did:icn:z…) or a peer ID (12D3Koo…).
func Parse(target string) (string, Kind, error) {
	t, err := parse(target)
	return t.key, t.kind, err
}

type parsed struct {
	key  string
	kind Kind
	did  did.DID // KindDID
	peer peer.ID // KindPeer
}

func parse(target string) (parsed, error) {
	t := strings.TrimSpace(target)
	if strings.HasPrefix(t, "did:") {
		d, err := did.Parse(t)
		if err != nil {
			return parsed{}, &TargetError{Target: target, Err: fmt.Errorf("%w (%v)", ErrNotTarget, err)}
		}
		return parsed{key: d.String(), kind: KindDID, did: d}, nil
	}
	p, err := peer.Decode(t)
	if err != nil {
		if !strings.HasPrefix(t, "12D3Koo") && !strings.HasPrefix(t, "Qm") {
			// Not meant as a peer ID: the decoder's complaint says nothing useful.
			return parsed{}, &TargetError{Target: target, Err: ErrNotTarget}
		}
		return parsed{}, &TargetError{Target: target, Err: fmt.Errorf("%w (%v)", ErrNotTarget, err)}
	}
	return parsed{key: p.String(), kind: KindPeer, peer: p}, nil
}

// Block adds or replaces the entry for target, lapsing after d (0: never).
// It reports whether an entry was replaced.
func (l *List) Block(ctx context.Context, target string, d time.Duration, reason string) (Entry, bool, error) {
	t, err := parse(target)
	if err != nil {
		return Entry{}, false, err
	}
	key, kind := t.key, t.kind
	if d < 0 {
		return Entry{}, false, &DurationError{Duration: d}
	}
	switch {
	case len(reason) > MaxReasonLen:
		return Entry{}, false, &ReasonError{Problem: fmt.Sprintf("is %d bytes, longer than the %d allowed", len(reason), MaxReasonLen)}
	case !utf8.ValidString(reason):
		return Entry{}, false, &ReasonError{Problem: "is not valid UTF-8"}
	case strings.ContainsFunc(reason, unicode.IsControl):
		return Entry{}, false, &ReasonError{Problem: "holds control characters (a newline or tab?)"}
	}
	if l.opts.Self != nil {
		selfDID, selfPeer := l.opts.Self()
		if key == selfDID.String() || key == selfPeer.String() || key == selfDID.PeerID().String() {
			return Entry{}, false, &TargetError{Target: target, Err: ErrSelf}
		}
		if kind == KindPeer {
			if bd, ok := l.opts.Bindings.ByPeer(t.peer); ok && bd.DID == selfDID {
				return Entry{}, false, &TargetError{Target: target, Err: ErrSelf}
			}
		}
	}
	now := l.opts.Now()
	e := Entry{Target: key, Kind: kind, Reason: reason, Created: now}
	if d > 0 {
		e.Expires = now.Add(d)
	}
	if kind == KindDID {
		e.Peers = addPeers(nil, t.did.PeerID())
		e.Peers = addPeers(e.Peers, l.opts.Bindings.PeersOf(t.did)...)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	old, replaced := l.entries[key]
	if replaced && kind == KindDID {
		// Peer IDs learnt for the DID stay refused.
		e.Peers = addPeers(e.Peers, old.Peers...)
	}
	if err := l.put(ctx, e); err != nil {
		return Entry{}, false, err
	}
	if replaced {
		l.unindex(old)
	}
	l.index(e)
	return clone(e), replaced && old.live(now), nil
}

// Unblock removes the entry for target; a target without a live entry is
// an error wrapping ErrNotBlocked.
func (l *List) Unblock(ctx context.Context, target string) (Entry, error) {
	key, _, err := Parse(target)
	if err != nil {
		return Entry{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[key]
	if !ok {
		return Entry{}, fmt.Errorf("%s is %w", key, ErrNotBlocked)
	}
	if err := l.store.Delete(ctx, dsKey(key)); err != nil {
		return Entry{}, fmt.Errorf("blocklist: remove %s: %w", key, err)
	}
	l.unindex(e)
	if !e.live(l.opts.Now()) {
		return Entry{}, fmt.Errorf("%s is %w (its block lapsed at %s)", key, ErrNotBlocked, e.Expires.Format(time.RFC3339))
	}
	return clone(e), nil
}

// Blocked reports whether p is refused, and by which entry: an entry for p
// itself, or for the DID p is bound to (by a binding the Bindings know, or
// one seen before and kept with the entry).
func (l *List) Blocked(p peer.ID) (Entry, bool) {
	bd, bound := l.opts.Bindings.ByPeer(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.opts.Now()
	if e, ok := l.liveEntry(p.String(), now); ok {
		return e, true
	}
	if d, ok := l.didOf[p]; ok {
		if e, ok := l.liveEntry(d.String(), now); ok {
			return e, true
		}
	}
	if bound {
		if e, ok := l.liveEntry(bd.DID.String(), now); ok {
			return e, true
		}
	}
	return Entry{}, false
}

// Learn records that bd's peer ID speaks for bd's DID: if that DID is
// blocked, the peer ID is kept with its entry (refused from now on, across
// restarts). It reports whether the peer is blocked, by any entry.
func (l *List) Learn(ctx context.Context, bd did.Binding) (Entry, bool) {
	l.mu.Lock()
	e, ok := l.liveEntry(bd.DID.String(), l.opts.Now())
	if ok && !slices.Contains(e.Peers, bd.PeerID) {
		e.Peers = addPeers(slices.Clone(e.Peers), bd.PeerID)
		if err := l.put(ctx, e); err != nil {
			l.opts.Log.Warn("could not keep a blocked DID's new peer ID; it is refused until restart", "did", bd.DID, "peer", bd.PeerID, "err", err)
		}
		l.entries[e.Target] = e
		l.didOf[bd.PeerID] = bd.DID
	}
	l.mu.Unlock()
	return l.Blocked(bd.PeerID)
}

// List returns the live entries, oldest first; a DID entry's Peers include
// the peer IDs the Bindings know for it now.
func (l *List) List() []Entry {
	l.mu.Lock()
	now := l.opts.Now()
	out := make([]Entry, 0, len(l.entries))
	for k := range l.entries {
		if e, ok := l.liveEntry(k, now); ok {
			out = append(out, e)
		}
	}
	l.mu.Unlock()
	for i, e := range out {
		if e.Kind == KindDID {
			d, _ := did.Parse(e.Target)
			out[i].Peers = addPeers(e.Peers, l.opts.Bindings.PeersOf(d)...)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Target < out[j].Target
	})
	return out
}

// liveEntry returns the entry for key if it has not lapsed, and drops it
// if it has. l.mu is held.
func (l *List) liveEntry(key string, now time.Time) (Entry, bool) {
	e, ok := l.entries[key]
	if !ok {
		return Entry{}, false
	}
	if e.live(now) {
		return clone(e), true
	}
	l.unindex(e)
	// A short synced delete; a failure only leaves the record for the next
	// start to drop.
	if err := l.store.Delete(context.Background(), dsKey(key)); err != nil {
		l.opts.Log.Warn("could not remove a lapsed block", "target", key, "err", err)
	}
	return Entry{}, false
}

func (l *List) index(e Entry) {
	l.entries[e.Target] = e
	if e.Kind == KindDID {
		d, _ := did.Parse(e.Target)
		for _, p := range e.Peers {
			l.didOf[p] = d
		}
	}
}

func (l *List) unindex(e Entry) {
	delete(l.entries, e.Target)
	for _, p := range e.Peers {
		if l.didOf[p].String() == e.Target {
			delete(l.didOf, p)
		}
	}
}

func (l *List) put(ctx context.Context, e Entry) error {
	data, err := encode(e)
	if err != nil {
		return err
	}
	if err := l.store.Put(ctx, dsKey(e.Target), data); err != nil {
		return fmt.Errorf("blocklist: store %s: %w", e.Target, err)
	}
	return nil
}

func dsKey(target string) ds.Key { return ds.NewKey("/").ChildString(target) }

// record is an entry on disk.
type record struct {
	Version int       `json:"v"`
	Target  string    `json:"target"`
	Kind    Kind      `json:"kind"`
	Reason  string    `json:"reason,omitempty"`
	Created time.Time `json:"created_at"`
	Expires time.Time `json:"expires_at,omitzero"`
	Peers   []string  `json:"peers,omitempty"`
}

func encode(e Entry) ([]byte, error) {
	r := record{Version: 1, Target: e.Target, Kind: e.Kind, Reason: e.Reason, Created: e.Created, Expires: e.Expires}
	for _, p := range e.Peers {
		r.Peers = append(r.Peers, p.String())
	}
	return json.Marshal(r)
}

func decode(data []byte) (Entry, error) {
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return Entry{}, err
	}
	if r.Version != 1 {
		return Entry{}, fmt.Errorf("record version %d, want 1", r.Version)
	}
	key, kind, err := Parse(r.Target)
	if err != nil {
		return Entry{}, err
	}
	if kind != r.Kind || key != r.Target {
		return Entry{}, fmt.Errorf("record for %q says kind %q", r.Target, r.Kind)
	}
	e := Entry{Target: key, Kind: kind, Reason: r.Reason, Created: r.Created, Expires: r.Expires}
	for _, s := range r.Peers {
		p, err := peer.Decode(s)
		if err != nil {
			return Entry{}, fmt.Errorf("peer %q: %w", s, err)
		}
		e.Peers = append(e.Peers, p)
	}
	return e, nil
}

// addPeers appends the peer IDs not already in ps, keeping them sorted.
func addPeers(ps []peer.ID, add ...peer.ID) []peer.ID {
	for _, p := range add {
		if p != "" && !slices.Contains(ps, p) {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps
}

func clone(e Entry) Entry {
	e.Peers = slices.Clone(e.Peers)
	return e
}
