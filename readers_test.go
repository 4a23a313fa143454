package sqlitesafe_test

import (
	"database/sql"
	"runtime"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
)

// Readers in use at once are kept for the next burst of reads, even past one
// per processor: a burst as wide again opens no reader.
func TestReadersKeptForTheNextBurst(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	db := openSafe(t, dbPath(t))
	db.SetMaxIdleConns(64)
	mustExec(t, db, "CREATE TABLE t(x)")
	mustExec(t, db, "INSERT INTO t VALUES (1), (2)")
	wide := 2*runtime.GOMAXPROCS(0) + 4
	burst := func() {
		t.Helper()
		var open []*sql.Rows
		for range wide {
			rows, err := db.Query("SELECT x FROM t")
			if err != nil {
				t.Fatal(err)
			}
			open = append(open, rows)
		}
		for _, rows := range open {
			if err := rows.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	burst()
	first := mustStats(t, db)
	if first.ReadersOpen != wide || first.ReadersIdle != wide {
		t.Fatalf("after %d reads at once: %d readers open, %d idle; want %d and %d",
			wide, first.ReadersOpen, first.ReadersIdle, wide, wide)
	}
	burst()
	if second := mustStats(t, db); second.ReadersOpen != wide || second.ReadersIdle != wide {
		t.Fatalf("after a second burst: %d readers open, %d idle; want %d and %d",
			second.ReadersOpen, second.ReadersIdle, wide, wide)
	}
}

// The readers a burst left idle are closed once bursts that wide are
// over: two windows later, reads one at a time leave one per processor or
// two.
func TestReadersIdleShrinkAfterTheBurst(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	db := openSafe(t, dbPath(t))
	db.SetMaxIdleConns(64)
	mustExec(t, db, "CREATE TABLE t(x)")
	mustExec(t, db, "INSERT INTO t VALUES (1)")
	wide := 2*runtime.GOMAXPROCS(0) + 4
	var open []*sql.Rows
	for range wide {
		rows, err := db.Query("SELECT x FROM t")
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, rows)
	}
	for _, rows := range open {
		rows.Close()
	}
	if st := mustStats(t, db); st.ReadersIdle != wide {
		t.Fatalf("%d readers idle after the burst, want %d", st.ReadersIdle, wide)
	}
	want := max(2, runtime.GOMAXPROCS(0))
	deadline := time.Now().Add(10 * time.Second)
	for {
		var x int
		if err := db.QueryRow("SELECT x FROM t").Scan(&x); err != nil {
			t.Fatal(err)
		}
		st := mustStats(t, db)
		if st.ReadersOpen <= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d readers open 10 s after the burst, want %d at most", st.ReadersOpen, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// While a write has held the writer lock for 2 ms, each read begins by
// yielding the processor to it; otherwise no read yields.
// (The reads stay the reads they were: the ones during the write see only
// what was committed before it.)
func TestReadsYieldToALongWrite(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	db := openSafe(t, dbPath(t))
	mustExec(t, db, "CREATE TABLE t(x)")
	mustExec(t, db, "INSERT INTO t VALUES (1)")
	yields := func() int64 {
		t.Helper()
		st, err := sqlitesafe.GetStats(db)
		if err != nil {
			t.Fatal(err)
		}
		return st.ReadYields
	}
	read := func(n int) {
		t.Helper()
		for range n {
			if got := queryInt(t, db, "SELECT count(*) FROM t"); got != 1 {
				t.Fatalf("read %d rows, want the 1 committed", got)
			}
		}
	}
	read(20)
	if n := yields(); n != 0 {
		t.Fatalf("%d reads yielded with no write in progress", n)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Millisecond)
	read(10)
	if n := yields(); n != 10 {
		t.Fatalf("%d of 10 reads yielded to a write held for 3 ms", n)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	read(10)
	if n := yields(); n != 10 {
		t.Fatalf("%d reads yielded in all, want still 10 once the write ended", n)
	}
}
