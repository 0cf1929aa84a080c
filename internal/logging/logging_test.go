package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// go-libp2p's loggers reach the node's stream at warn and above, except the
// records that only repeat an error libp2p.New returns: fx's, and the
// swarm's "listening failed".
func TestLibp2pHandlerDropsWhatLibp2pNewReturns(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, slog.LevelDebug, "text")
	lp := slog.New(Libp2pHandler(log.Handler()))

	lp.Info("below the floor")
	lp.With("logger", "p2p-config").With("system", "fx").Error("start failed", "error", "bind: address already in use")
	lp.With("logger", "swarm2").Warn("listening failed", "err", "bind: address already in use")
	require.Empty(t, buf.String())

	lp.With("logger", "swarm2").Warn("something else")
	lp.With("logger", "p2p-config").Error("not fx")
	out := buf.String()
	require.Contains(t, out, `msg="something else" logger=swarm2`)
	require.Contains(t, out, `msg="not fx" logger=p2p-config`)
}

// JSON logs write durations as text logs do, "1.5s", not as nanoseconds;
// also inside groups, in With attributes and through go-log's zap core.
func TestDurationsAreStrings(t *testing.T) {
	for _, format := range []string{"json", "JSON", "text"} {
		var buf bytes.Buffer
		log := New(&buf, slog.LevelInfo, format).With("took", 1500*time.Millisecond)
		log.Info("ledger loaded", "wait", 2*time.Minute, slog.Group("sync", "lag", 250*time.Microsecond))
		zap.New(GoLogCore(log.Handler())).Warn("compaction", zap.Duration("spent", 3*time.Second))
		out := buf.String()
		if strings.EqualFold(format, "json") {
			require.Contains(t, out, `"took":"1.5s"`)
			require.Contains(t, out, `"wait":"2m0s"`)
			require.Contains(t, out, `"sync":{"lag":"250µs"}`)
			require.Contains(t, out, `"spent":"3s"`)
			var rec map[string]any
			require.NoError(t, json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &rec))
		} else {
			require.Contains(t, out, "took=1.5s")
			require.Contains(t, out, "wait=2m0s")
			require.Contains(t, out, "sync.lag=250µs")
			require.Contains(t, out, "spent=3s")
		}
	}
}

func TestTraceIDsInLines(t *testing.T) {
	var b bytes.Buffer
	log := New(&b, slog.LevelInfo, "json")
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	log.With("component", "x").InfoContext(ctx, "in a span", "k", 1)
	log.Info("outside")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 2)
	var in, out map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &in))
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &out))
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", in["trace_id"])
	require.Equal(t, "00f067aa0ba902b7", in["span_id"])
	require.Equal(t, "x", in["component"])
	require.NotContains(t, out, "trace_id")
}
