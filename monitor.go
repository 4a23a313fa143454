package sqlitesafe

import (
	"log/slog"
	"time"
)

// The monitor of a writer queue: a goroutine per open database file that
// looks, a few times per threshold, for a holder that has held the lock too
// long and for waiters that have waited too long, and logs one warning for
// each. It reads what the queue keeps anyway, so writes pay nothing for it.

// watch makes sure the queue is watched often enough for cfg's thresholds.
// The caller holds files.
func (q *writeQueue) watch(cfg *Config) {
	least := time.Duration(0)
	for _, d := range []time.Duration{cfg.slowHold(), cfg.slowWait()} {
		if d > 0 && (least == 0 || d < least) {
			least = d
		}
	}
	if least == 0 {
		return
	}
	tick := min(max(least/4, 5*time.Millisecond), 250*time.Millisecond)
	if cur := time.Duration(q.tick.Load()); cur == 0 || tick < cur {
		q.tick.Store(int64(tick))
	}
	if q.monitorStop == nil {
		q.monitorStop = make(chan struct{})
		go q.monitor(q.monitorStop)
	}
}

// stopWatching ends the monitor. The caller holds files.
func (q *writeQueue) stopWatching() {
	if q.monitorStop != nil {
		close(q.monitorStop)
		q.monitorStop = nil
		q.tick.Store(0)
	}
}

func (q *writeQueue) monitor(stop <-chan struct{}) {
	timer := time.NewTimer(time.Duration(q.tick.Load()))
	defer timer.Stop()
	for {
		select {
		case <-stop:
			return
		case <-timer.C:
		}
		q.checkSlow(time.Now())
		if t := q.tick.Load(); t > 0 {
			timer.Reset(time.Duration(t))
		}
	}
}

// checkSlow logs the warnings that are due at now.
func (q *writeQueue) checkSlow(now time.Time) {
	var warnings []func()
	q.mu.Lock()
	h, held, waiting, procWaiting := q.holder, q.held, len(q.waiters), q.holder.procWaiting
	if held && !h.warned && h.c != nil {
		if limit := h.c.cfg.slowHold(); limit > 0 && now.Sub(h.since) > limit {
			q.holder.warned = true
			warnings = append(warnings, func() { q.warnSlowHold(h, now, waiting, procWaiting, limit) })
		}
	}
	for _, w := range q.waiters {
		if w.warned || w.h.c == nil {
			continue
		}
		if limit := w.h.c.cfg.slowWait(); limit > 0 && now.Sub(w.h.since) > limit {
			w.warned = true
			wh := w.h
			warnings = append(warnings, func() { q.warnSlowWait(wh, h, held, procWaiting, now, limit) })
		}
	}
	q.mu.Unlock()
	for _, warn := range warnings {
		warn()
	}
}

func (q *writeQueue) warnSlowHold(h holder, now time.Time, waiting int, procWaiting bool, limit time.Duration) {
	q.stats.slowHolds.Add(1)
	held := now.Sub(h.since)
	msg := "sqlitesafe: a writer has held the write lock for " + round(held).String() +
		" (" + h.kind.String() + " at " + siteOrUnknown(h.site) + ")"
	attrs := []any{
		slog.String("file", q.file),
		slog.String("holder", h.kind.String()),
		slog.String("site", h.site.String()),
		slog.Duration("held", held),
		slog.Int("waiting", waiting),
		slog.Duration("threshold", limit),
	}
	if other := q.holderWaitsFor(procWaiting); other != "" {
		msg += "; it is itself waiting for " + other
		attrs = append(attrs, slog.Bool("waiting_for_other_process", true), slog.String("waiting_for", other))
	}
	msg, attrs = h.c.clusterNote(msg, attrs)
	h.c.cfg.logger().Warn(msg, attrs...)
}

func (q *writeQueue) warnSlowWait(w, h holder, held, procWaiting bool, now time.Time, limit time.Duration) {
	q.stats.slowWaits.Add(1)
	waited := now.Sub(w.since)
	msg := "sqlitesafe: a writer has waited " + round(waited).String() + " for the write lock"
	attrs := []any{
		slog.String("file", q.file),
		slog.String("site", w.site.String()),
		slog.Duration("waited", waited),
		slog.Duration("threshold", limit),
	}
	if held {
		msg += "; it is held by " + h.kind.String() + " at " + siteOrUnknown(h.site) +
			" for " + round(now.Sub(h.since)).String()
		attrs = append(attrs,
			slog.String("holder", h.kind.String()),
			slog.String("holder_site", h.site.String()),
			slog.Duration("held", now.Sub(h.since)))
		if other := q.holderWaitsFor(procWaiting); other != "" {
			msg += ", which is itself waiting for " + other
			attrs = append(attrs, slog.Bool("waiting_for_other_process", true), slog.String("waiting_for", other))
		}
	}
	msg, attrs = w.c.clusterNote(msg, attrs)
	w.c.cfg.logger().Warn(msg, attrs...)
}

// siteOrUnknown is a call site for a message.
func siteOrUnknown(s *callSite) string {
	if str := s.String(); str != "" {
		return str
	}
	return "an unknown place"
}
