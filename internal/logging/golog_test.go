package logging

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// A zap logger on GoLogCore writes through the slog handler, with its name
// as the component and its fields as attributes, and below the handler's
// level writes nothing.
func TestGoLogCoreWritesThroughSlog(t *testing.T) {
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})
	z := zap.New(GoLogCore(h)).Named("badger4").With(zap.String("dir", "/d"))
	z.Info("not shown")
	require.Empty(t, buf.String())
	z.Error("Received err: file does not exist for table 1", zap.Int("table", 1))
	out := buf.String()
	require.Contains(t, out, `"level":"ERROR"`)
	require.Contains(t, out, `"msg":"Received err: file does not exist for table 1"`)
	require.Contains(t, out, `"component":"badger4"`)
	require.Contains(t, out, `"dir":"/d"`)
	require.Contains(t, out, `"table":1`)
}
