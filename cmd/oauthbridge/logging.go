package main

import (
	"io"
	"log/slog"

	"github.com/oauthbridge/oauthbridge/config"
)

// newLogger returns the daemon's logger per config log: slog text or JSON
// on w, at the level held in level (so a reload can change it).
func newLogger(l config.Log, w io.Writer, level *slog.LevelVar) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.Level)); err != nil {
		lv = slog.LevelInfo
	}
	level.Set(lv)
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
