//go:build !unix

package sqlitesafe

import (
	"context"
	"log/slog"
	"time"
)

// procLock is the writer queue across processes. On this system there is
// none: writers of different processes meet only in SQLite's busy handler.
type procLock struct{ path string }

// newProcLock returns nil: no cross-process queue here.
func newProcLock(db, name string, log *slog.Logger) *procLock { return nil }

// on reports false: there is no lock.
func (l *procLock) on() bool { return false }

func (l *procLock) acquire(ctx context.Context, timeout time.Duration) (bool, error) {
	return false, nil
}

func (l *procLock) release()     {}
func (l *procLock) done()        {}
func (l *procLock) carry() bool  { return true }
func (l *procLock) releaseIdle() {}
func (l *procLock) close() error { return nil }

func (l *procLock) holders() []int { return nil }
