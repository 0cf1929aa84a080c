package gossip

import (
	"encoding/binary"
	"sort"
	"sync"
	"time"

	"github.com/intercooperative/icn/did"
)

// Replay window bounds: at most windowAuthors authors, windowPerAuthor
// sequence numbers each (24 bytes apiece, so at most about 24 MiB in all).
const (
	windowAuthors   = 4096
	windowPerAuthor = 256
)

// verdict is the replay window's answer for one envelope.
type verdict int

const (
	// fresh: never seen; now recorded.
	fresh verdict = iota
	// duplicate: this very envelope again, within the duplicate grace of its
	// first arrival (it came by another path: a request, or gossip to a
	// re-keyed host). Harmless; dropped without penalty.
	duplicate
	// replay: the author's seq was seen with another envelope, or this
	// envelope is back after the grace, or its seq is below the window.
	replay
	// forgotten: the author's window was evicted and the timestamp is not
	// newer than what was evicted, so a replay cannot be ruled out.
	forgotten
	// belowWindow: the seq is below the author's window (pushed out by
	// newer ones) but the envelope was signed within the duplicate grace:
	// it may be a late copy of one accepted, as when a re-keyed host (a key
	// rotation starts GossipSub afresh, without its seen-messages cache)
	// asks a neighbour for the messages it gossips about. Dropped without
	// penalty: a replay of it gains nothing, and blaming the relay would
	// penalise honest neighbours of a fast author after every rotation.
	belowWindow
)

// replayWindow remembers, per author, the sequence numbers accepted while
// their messages can still pass the age check. It is safe for concurrent use.
type replayWindow struct {
	grace     time.Duration // duplicate grace
	horizon   time.Duration // max age + clock skew: older timestamps are stale anyway
	perAuthor int
	maxAuth   int

	mu      sync.Mutex
	authors map[did.DID]*authorWindow
	// floorTS is the newest timestamp (unix ms) of any author whose window
	// was evicted for space: such an author's older messages are "forgotten".
	floorTS uint64
}

type seenSeq struct {
	seq   uint64
	id    uint64 // first 8 bytes of the message ID
	first int64  // unix nanoseconds of the first arrival
}

type authorWindow struct {
	entries []seenSeq // sorted by seq
	floor   uint64    // seqs at or below were evicted: replays
	maxTS   uint64    // newest timestamp accepted, unix ms
	used    int64     // unix nanoseconds of the last check
}

func newReplayWindow(grace, horizon time.Duration) *replayWindow {
	return &replayWindow{grace: grace, horizon: horizon, perAuthor: windowPerAuthor, maxAuth: windowAuthors,
		authors: map[did.DID]*authorWindow{}}
}

// check decides whether an envelope that passed every other check is new,
// and records it if so.
func (w *replayWindow) check(author did.DID, seq, ts uint64, id MessageID, now time.Time) verdict {
	idp := binary.BigEndian.Uint64(id[:8])
	nowNS := now.UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	a := w.authors[author]
	if a == nil {
		if ts <= w.floorTS {
			return forgotten
		}
		if len(w.authors) >= w.maxAuth {
			w.evictLocked()
		}
		a = &authorWindow{}
		w.authors[author] = a
	}
	a.used = nowNS
	if seq <= a.floor {
		if signed := time.UnixMilli(int64(ts)); now.Sub(signed) < w.grace {
			return belowWindow
		}
		return replay
	}
	i := sort.Search(len(a.entries), func(i int) bool { return a.entries[i].seq >= seq })
	if i < len(a.entries) && a.entries[i].seq == seq {
		e := a.entries[i]
		if e.id == idp && time.Duration(nowNS-e.first) < w.grace {
			return duplicate
		}
		return replay
	}
	a.entries = append(a.entries, seenSeq{})
	copy(a.entries[i+1:], a.entries[i:])
	a.entries[i] = seenSeq{seq: seq, id: idp, first: nowNS}
	if len(a.entries) > w.perAuthor {
		a.floor = a.entries[0].seq
		n := copy(a.entries, a.entries[1:])
		a.entries = a.entries[:n]
	}
	a.maxTS = max(a.maxTS, ts)
	return fresh
}

// evictLocked drops the least recently used author, remembering its newest
// timestamp so its old messages are not taken for new ones.
func (w *replayWindow) evictLocked() {
	var victim did.DID
	var oldest int64
	first := true
	for d, a := range w.authors {
		if first || a.used < oldest {
			victim, oldest, first = d, a.used, false
		}
	}
	if a := w.authors[victim]; a != nil {
		w.floorTS = max(w.floorTS, a.maxTS)
		delete(w.authors, victim)
	}
}

// sweep drops authors whose newest message is beyond the horizon: whatever
// they sent is stale now and fails the age check on its own.
func (w *replayWindow) sweep(now time.Time) {
	cutoff := uint64(now.Add(-w.horizon).UnixMilli())
	w.mu.Lock()
	defer w.mu.Unlock()
	for d, a := range w.authors {
		if a.maxTS < cutoff {
			delete(w.authors, d)
		}
	}
}

// size returns the number of authors and of remembered sequence numbers.
func (w *replayWindow) size() (authors, seqs int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.authors {
		seqs += len(a.entries)
	}
	return len(w.authors), seqs
}
