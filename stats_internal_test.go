package sqlitesafe

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkStatsCost shows what the metrics cost: recording one latency in a
// histogram (done twice per hold of the writer lock: the wait and the hold),
// an uncontended lock and unlock of the writer queue with its bookkeeping,
// and a GetStats call. Compare them with the microseconds of a write
// (BenchmarkInsert).
func BenchmarkStatsCost(b *testing.B) {
	b.Run("histogram-record", func(b *testing.B) {
		var h histogram
		b.ReportAllocs()
		for i := range b.N {
			h.record(time.Duration(i))
		}
	})
	b.Run("queue-lock-unlock", func(b *testing.B) {
		q := &writeQueue{file: "bench.db"}
		h := holder{kind: holdExec, since: time.Now()}
		ctx := context.Background()
		b.ReportAllocs()
		for range b.N {
			if err := q.lock(ctx, time.Second, h); err != nil {
				b.Fatal(err)
			}
			q.unlock()
		}
	})
	b.Run("GetStats", func(b *testing.B) {
		db, _ := openWhite(b, filepath.Join(b.TempDir(), "app.db"))
		defer db.Close()
		if _, err := db.Exec("CREATE TABLE t(x); INSERT INTO t VALUES (1)"); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := GetStats(db); err != nil {
				b.Fatal(err)
			}
		}
	})
}
