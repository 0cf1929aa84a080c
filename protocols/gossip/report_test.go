package gossip

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	icntest "github.com/intercooperative/icn/internal/testutil"
	"github.com/stretchr/testify/require"
)

// logBuffer collects JSON log lines (safe for concurrent use).
type logBuffer struct{ icntest.LogBuffer }

// lines returns the records whose message contains substr.
func (b *logBuffer) lines(t testing.TB, substr string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &rec), l)
		if strings.Contains(rec["msg"].(string), substr) {
			out = append(out, rec)
		}
	}
	return out
}

func TestPeerReporterOneLinePerWindow(t *testing.T) {
	const window = 10 * time.Second
	r := newPeerReporter(kindRateLimited, window, 2)
	t0 := time.Now()
	a, b, c := peer.ID("a"), peer.ID("b"), peer.ID("c")

	// The first event from a quiet peer is written at once.
	reps := r.note(a, "chat:x", RateLimitMessages, t0)
	require.Len(t, reps, 1)
	require.Equal(t, 1, reps[0].total)
	// The rest of the window is counted, not written.
	for i := 1; i < 50; i++ {
		require.Empty(t, r.note(a, "chat:x", RateLimitMessages, t0.Add(time.Duration(i)*100*time.Millisecond)))
	}
	require.Empty(t, r.note(a, "chat:y", RateLimitRequests, t0.Add(5*time.Second)))
	require.Empty(t, r.flush(t0.Add(window-time.Millisecond)), "written before the window passed")
	// Once the window has passed, flush writes what was counted.
	reps = r.flush(t0.Add(window))
	require.Len(t, reps, 1)
	require.Equal(t, 50, reps[0].total)
	topic, reason, also := reps[0].main()
	require.Equal(t, "chat:x", topic)
	require.Equal(t, RateLimitMessages, reason)
	require.Equal(t, "chat:y/requests=1", also)
	require.Empty(t, r.flush(t0.Add(2*window)), "nothing new: no line")
	// A peer quiet for a window is forgotten; its next event is written at once.
	require.Len(t, r.note(a, "chat:x", RateLimitMessages, t0.Add(3*window)), 1)

	// When full, the peer written longest ago goes, and what it had
	// pending is written rather than lost.
	require.Empty(t, r.note(a, "chat:x", RateLimitMessages, t0.Add(3*window+time.Second)))
	require.Len(t, r.note(b, "chat:x", RateLimitMessages, t0.Add(3*window+2*time.Second)), 1)
	reps = r.note(c, "chat:x", RateLimitMessages, t0.Add(3*window+3*time.Second))
	require.Len(t, reps, 2, "the evicted peer's pending line and c's first")
	require.Equal(t, a, reps[0].peer)
	require.Equal(t, 1, reps[0].total)
	require.Equal(t, c, reps[1].peer)
}

// A real flooding peer over loopback is named in the log: one WARN line
// per window with its peer ID, DID, the topic and the count dropped since
// the previous line, which add up to what the counters say.
func TestFloodingPeerIsNamed(t *testing.T) {
	const window = 10 * time.Second
	clk := newClock()
	logs := &logBuffer{}
	v := newNode(t, func(c *Config, d *Deps) {
		c.Now = clk.Now
		c.RateLimit, c.RateBurst = 1, 1 // the frozen clock refills nothing
		d.Log = slog.New(slog.NewJSONHandler(logs, nil))
	})
	_, err := v.svc.Subscribe(chatTopic, 0)
	require.NoError(t, err)
	mallory := testIdentity(t)
	v.book.Put(mallory.Binding) // she has identified: the line names her DID
	a := newAttacker(t, mallory.NodeKey, v)
	byTopic := func() float64 {
		return testutil.ToFloat64(v.m.rateLimitedBy.WithLabelValues(chatTopic, RateLimitMessages))
	}
	seq := uint64(0)
	flood := func(n int) {
		for range n {
			seq++
			a.send(t, envelopeBy(t, mallory.DID, mallory, seq, clk.Now(), TypeText, fmt.Appendf(nil, "flood %d", seq)))
		}
	}
	dropped := func(line map[string]any) int { return int(line["dropped"].(float64)) }

	// The first window: one message passes (the burst), 29 are dropped;
	// the first drop is written at once, the others are held for the next line.
	flood(30)
	require.Eventually(t, func() bool { return byTopic() == 29 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, 29.0, testutil.ToFloat64(v.m.rateLimited), "the guide's counter moves too")
	lines := logs.lines(t, "Rate limited")
	require.Len(t, lines, 1)
	l := lines[0]
	require.Equal(t, "WARN", l["level"])
	require.Contains(t, l["msg"], "SECURITY")
	require.Equal(t, a.h.ID().String(), l["peer"])
	require.Equal(t, mallory.DID.String(), l["did"])
	require.Equal(t, chatTopic, l["topic"])
	require.Equal(t, RateLimitMessages, l["reason"])
	require.Equal(t, 1, dropped(l))

	// The window passes: the next flush writes the 28 held back.
	clk.Advance(window)
	require.Eventually(t, func() bool { return len(logs.lines(t, "Rate limited")) == 2 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, 28, dropped(logs.lines(t, "Rate limited")[1]))

	// A second flood within the new window (the advance refilled the one
	// token of the burst): held until the window passes, then exactly one
	// more line with exactly its count.
	flood(40)
	require.Eventually(t, func() bool { return byTopic() == 29+39 }, 10*time.Second, 10*time.Millisecond)
	require.Len(t, logs.lines(t, "Rate limited"), 2, "written again within the window")
	clk.Advance(window)
	require.Eventually(t, func() bool { return len(logs.lines(t, "Rate limited")) >= 3 }, 10*time.Second, 10*time.Millisecond)
	lines = logs.lines(t, "Rate limited")
	require.Len(t, lines, 3)
	require.Equal(t, 39, dropped(lines[2]))
	total := 0
	for _, l := range lines {
		total += dropped(l)
	}
	require.Equal(t, int(byTopic()), total, "the lines account for every drop")
	require.Equal(t, testutil.ToFloat64(v.m.rateLimited), byTopic())
}

// A peer forging signatures is named too ("SECURITY: Rejected invalid"),
// with "unknown" for a peer that has not identified.
func TestForgingPeerIsNamed(t *testing.T) {
	clk := newClock()
	logs := &logBuffer{}
	v := newNode(t, func(c *Config, d *Deps) {
		c.Now = clk.Now
		d.Log = slog.New(slog.NewJSONHandler(logs, nil))
	})
	_, err := v.svc.Subscribe(chatTopic, 0)
	require.NoError(t, err)
	honest, mallory := testIdentity(t), testIdentity(t)
	a := newAttacker(t, mallory.NodeKey, v)
	for i := range 3 {
		a.send(t, envelopeBy(t, honest.DID, mallory, uint64(i+1), clk.Now(), TypeText, []byte("I am honest")))
	}
	require.Eventually(t, func() bool { return rejected(v.m, ReasonBadSignature) == 3 }, 10*time.Second, 10*time.Millisecond)
	lines := logs.lines(t, "Rejected invalid")
	require.Len(t, lines, 1, "one line per window")
	require.Contains(t, lines[0]["msg"], "SECURITY")
	require.Equal(t, a.h.ID().String(), lines[0]["peer"])
	require.Contains(t, lines[0]["did"], "unknown")
	require.Equal(t, ReasonBadSignature, lines[0]["reason"])
	clk.Advance(DefaultReportInterval)
	require.Eventually(t, func() bool { return len(logs.lines(t, "Rejected invalid")) == 2 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, 2.0, logs.lines(t, "Rejected invalid")[1]["rejected"])
}

// Requests beyond a peer's request bucket are counted by topic under
// reason "requests"; a topic this node has not joined counts as "other",
// so peers cannot make up label values.
func TestRequestRateLimitByTopic(t *testing.T) {
	clk := newClock()
	logs := &logBuffer{}
	v := newNode(t, func(c *Config, d *Deps) {
		c.Now = clk.Now
		d.Log = slog.New(slog.NewJSONHandler(logs, nil))
	})
	require.NoError(t, v.svc.Join(chatTopic))
	asker := newNode(t)
	link(t, asker, v)
	ask := func(wire string) error {
		_, err := asker.svc.request(t.Context(), v.h.ID(), wire, [][]byte{make([]byte, 32)})
		return err
	}
	for range requestBurst {
		require.NoError(t, ask(testWire))
	}
	require.Error(t, ask(testWire), "the bucket is empty and the clock frozen")
	require.Error(t, ask(WireTopic(testNet, "never-joined")))
	by := func(topic string) float64 {
		return testutil.ToFloat64(v.m.rateLimitedBy.WithLabelValues(topic, RateLimitRequests))
	}
	require.Equal(t, 1.0, by(chatTopic))
	require.Equal(t, 1.0, by(TopicOther))
	require.Equal(t, 0.0, by("never-joined"))
	require.Zero(t, testutil.ToFloat64(v.m.rateLimited), "requests are not gossip messages")
	lines := logs.lines(t, "Rate limited")
	require.Len(t, lines, 1)
	require.Equal(t, RateLimitRequests, lines[0]["reason"])
	require.Equal(t, asker.id.DID.String(), lines[0]["did"])
}
