//go:build linux

package main

import (
	"context"
	"log/slog"
	"regexp"
	"sort"
	"sync"
)

// warnings is a log/slog handler that collects what the drivers log during a run (sqlite-safe's
// warnings of writers that waited or held the lock long), so that the lines do not drown the
// report; the report counts them, by message with its numbers taken out.
type warnings struct {
	mu     sync.Mutex
	counts map[string]int
	first  map[string]string
}

var digits = regexp.MustCompile(`[0-9]+(\.[0-9]+)?(ns|µs|ms|s)?`)

func newWarnings() *warnings {
	return &warnings{counts: map[string]int{}, first: map[string]string{}}
}

// Enabled implements slog.Handler: everything from Info up.
func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

// Handle implements slog.Handler.
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	key := r.Level.String() + " " + digits.ReplaceAllString(r.Message, "N")
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.counts[key] == 0 {
		w.first[key] = r.Level.String() + " " + r.Message
	}
	w.counts[key]++
	return nil
}

// WithAttrs implements slog.Handler; the attributes are dropped.
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }

// WithGroup implements slog.Handler.
func (w *warnings) WithGroup(string) slog.Handler { return w }

// take returns what was logged since the last take, most frequent first, each with its first
// message in full, and starts over.
func (w *warnings) take() []errCount {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []errCount
	for key, n := range w.counts {
		out = append(out, errCount{msg: w.first[key], n: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].n != out[j].n {
			return out[i].n > out[j].n
		}
		return out[i].msg < out[j].msg
	})
	w.counts, w.first = map[string]int{}, map[string]string{}
	return out
}
