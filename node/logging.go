package node

import (
	"io"
	"log/slog"

	"github.com/intercooperative/icn/node/config"
)

// NewLogger builds the slog logger for the configured level and format
// ("text" or "json"). The config has already validated both.
func NewLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	switch config.Level(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
