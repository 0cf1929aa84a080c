package logging

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
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
