package gossip

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// DefaultReportInterval is Config.ReportInterval's default: at most one
// log line per peer per kind of misbehaviour in this long.
const DefaultReportInterval = 10 * time.Second

// reportPeers bounds the peers a reporter remembers.
const reportPeers = limiterPeers

// Kinds of peer misbehaviour the service logs (the first words of the log
// line after "SECURITY:"; operators grep for them).
const (
	kindRateLimited = "Rate limited"
	kindRejected    = "Rejected invalid"
)

// peerReporter turns a stream of per-peer events (messages dropped by the
// rate limiter, messages rejected by validation) into at most one log line
// per peer per interval, each with the count since that peer's last line:
// an operator learns who floods or forges without the log being flooded
// in turn. The first event from a quiet peer is written at once; the
// events that follow within the interval are counted and written by flush
// once the interval has passed. Safe for concurrent use.
type peerReporter struct {
	kind     string
	interval time.Duration
	max      int

	mu    sync.Mutex
	peers map[peer.ID]*peerReport
}

type peerReport struct {
	last    time.Time         // when its last line was written
	pending map[reportKey]int // events since then, by topic and reason
	total   int               // sum of pending
}

type reportKey struct{ topic, reason string }

// report is one line to write: what peer did since its previous line.
type report struct {
	peer   peer.ID
	counts map[reportKey]int
	total  int
}

func newPeerReporter(kind string, interval time.Duration, max int) *peerReporter {
	return &peerReporter{kind: kind, interval: interval, max: max, peers: map[peer.ID]*peerReport{}}
}

// note records one event and returns the lines due now: this peer's, if
// its last line is older than the interval, and that of a peer evicted to
// make room, if any.
func (r *peerReporter) note(p peer.ID, topic, reason string, now time.Time) []report {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []report
	pr := r.peers[p]
	if pr == nil {
		if len(r.peers) >= r.max {
			out = append(out, r.evictLocked()...)
		}
		pr = &peerReport{pending: map[reportKey]int{}}
		r.peers[p] = pr
	}
	pr.pending[reportKey{topic, reason}]++
	pr.total++
	if pr.last.IsZero() || now.Sub(pr.last) >= r.interval {
		out = append(out, r.takeLocked(p, pr, now))
	}
	return out
}

func (r *peerReporter) takeLocked(p peer.ID, pr *peerReport, now time.Time) report {
	rep := report{peer: p, counts: pr.pending, total: pr.total}
	pr.pending, pr.total, pr.last = map[reportKey]int{}, 0, now
	return rep
}

// evictLocked forgets the peer written longest ago, returning its pending
// count as a line so no event goes unreported.
func (r *peerReporter) evictLocked() []report {
	var victim peer.ID
	var oldest time.Time
	first := true
	for p, pr := range r.peers {
		if first || pr.last.Before(oldest) {
			victim, oldest, first = p, pr.last, false
		}
	}
	pr := r.peers[victim]
	delete(r.peers, victim)
	if pr == nil || pr.total == 0 {
		return nil
	}
	return []report{{peer: victim, counts: pr.pending, total: pr.total}}
}

// flush returns the lines due: every peer with events pending whose last
// line is at least an interval old. Peers quiet for a whole interval are
// forgotten.
func (r *peerReporter) flush(now time.Time) []report {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []report
	for p, pr := range r.peers {
		if now.Sub(pr.last) < r.interval {
			continue
		}
		if pr.total == 0 {
			delete(r.peers, p)
			continue
		}
		out = append(out, r.takeLocked(p, pr, now))
	}
	return out
}

// main returns the topic and reason with the most events, and the others
// as "topic/reason=n" sorted by count, for the log line.
func (rep report) main() (topic, reason string, others string) {
	keys := make([]reportKey, 0, len(rep.counts))
	for k := range rep.counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if a, b := rep.counts[keys[i]], rep.counts[keys[j]]; a != b {
			return a > b
		}
		if keys[i].topic != keys[j].topic {
			return keys[i].topic < keys[j].topic
		}
		return keys[i].reason < keys[j].reason
	})
	if len(keys) == 0 {
		return "", "", ""
	}
	var b strings.Builder
	for i, k := range keys[1:] {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s/%s=%d", k.topic, k.reason, rep.counts[k])
	}
	return keys[0].topic, keys[0].reason, b.String()
}

// writeReports logs each line at WARN. Lines start with "SECURITY: " and
// the kind, so `grep -E "Rate limited|SECURITY"` finds them; the peer's DID
// comes from the identity book when the peer has identified.
func (s *Service) writeReports(r *peerReporter, reps []report) {
	for _, rep := range reps {
		topic, reason, others := rep.main()
		d := "unknown (the peer has not identified)"
		if bd, ok := s.bindings.ByPeer(rep.peer); ok {
			d = bd.DID.String()
		}
		var msg string
		attrs := []any{"peer", rep.peer.String(), "did", d, "topic", topic, "reason", reason}
		switch r.kind {
		case kindRateLimited:
			msg = "SECURITY: Rate limited gossip from a peer"
			attrs = append(attrs, "dropped", rep.total)
		default:
			msg = "SECURITY: Rejected invalid gossip from a peer; its GossipSub score drops"
			attrs = append(attrs, "rejected", rep.total)
		}
		attrs = append(attrs, "window", s.cfg.ReportInterval.String())
		if others != "" {
			attrs = append(attrs, "also", others)
		}
		s.log.Warn(msg, attrs...)
	}
}

func (s *Service) noteRateLimited(p peer.ID, topic, reason string, now time.Time) {
	s.m.rateLimit(topic, reason)
	if reps := s.rateReports.note(p, topic, reason, now); len(reps) > 0 {
		s.writeReports(s.rateReports, reps)
	}
}

func (s *Service) noteRejected(p peer.ID, topic, reason string, now time.Time) {
	if p == "" || p == s.h.ID() {
		return
	}
	if reps := s.rejectReports.note(p, topic, reason, now); len(reps) > 0 {
		s.writeReports(s.rejectReports, reps)
	}
}

// flushReports writes the lines that have come due.
func (s *Service) flushReports(now time.Time) {
	for _, r := range []*peerReporter{s.rateReports, s.rejectReports} {
		if reps := r.flush(now); len(reps) > 0 {
			s.writeReports(r, reps)
		}
	}
}
