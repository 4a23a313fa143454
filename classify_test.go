package sqlitesafe

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/sqlite"
	lib "modernc.org/sqlite/lib"
)

// Shorthands for the flags of the common kinds of statement.
const (
	clsRead       stmtFlags = 0
	clsWrite                = flagWrite
	clsDML                  = flagWrite | flagBatchable
	clsSession              = flagSession
	clsBegin                = flagBegin | flagTxControl
	clsSavepoint            = flagSavepoint | flagTxControl
	clsTxEnd                = flagTxEnd | flagTxControl
	clsRollbackTo           = flagTxControl
	clsMulti                = flagMulti
)

// classifyTests maps SQL texts to the flags classify must give them. Most
// of them also run through the oracle and execution checks below, against
// the schema in classifySchema.
var classifyTests = []struct {
	query string
	want  stmtFlags
}{
	// Nothing at all.
	{"", clsRead},
	{"   \n\t ", clsRead},
	{";", clsRead},
	{" ; ;; ", clsRead},
	{"-- just a comment", clsRead},
	{"/* just a comment */", clsRead},
	{"/* unterminated comment ; DELETE FROM t", clsRead},
	{"-- a; DELETE FROM t\n", clsRead},

	// Reads.
	{"SELECT 1", clsRead},
	{"select * from t", clsRead},
	{"  SeLeCt v FROM t WHERE id = ?", clsRead},
	{"SELECT 1;", clsRead},
	{";;SELECT 1;;", clsRead},
	{"VALUES (1), (2)", clsRead},
	{"values(1)", clsRead},
	{"SELECT * FROM tv", clsRead},
	{"SELECT t.id, u.w FROM t JOIN u ON u.t_id = t.id WHERE t.v > 3 ORDER BY 1 LIMIT 10", clsRead},
	{"SELECT (SELECT count(*) FROM u) + (SELECT max(id) FROM t)", clsRead},
	{"SELECT id, sum(v) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM t", clsRead},
	{"SELECT * FROM pragma_table_info('t')", clsRead},
	{"SELECT name FROM sqlite_schema WHERE type = 'table'", clsRead},
	{"SELECT json_extract('{\"a\":1}', '$.a')", clsRead},
	{"SELECT 1 -- ; DELETE FROM t", clsRead},
	{"SELECT 1 /* ; DELETE FROM t */", clsRead},
	{"SELECT 1 /* ; DELETE FROM t", clsRead},
	{"SELECT 'x", clsRead},
	{"SELECT \"x", clsRead},

	// Disguises: comments, white space, case.
	{"\n\t SELECT 1 \n", clsRead},
	{"SELECT/**/1", clsRead},
	{"/* insert */ SELECT /* update */ 1 -- delete", clsRead},
	{"-- DROP TABLE t\nSELECT 1", clsRead},
	{"/*a*/--b\n/*c*/ INSERT INTO t(v) VALUES (1) /* d */ ; -- e", clsDML},
	{"\uFEFFSELECT 1", clsRead},
	{"sElEcT 1", clsRead},

	// Keywords inside strings, quoted identifiers and blobs.
	{"SELECT 'INSERT INTO t VALUES(1)'", clsRead},
	{"SELECT 'DROP TABLE x; --'", clsRead},
	{"SELECT 'it''s; DELETE FROM t'", clsRead},
	{"SELECT '/*'; DELETE FROM t; -- */", clsWrite | clsMulti},
	{"SELECT \"insert\" FROM (SELECT 1 AS \"insert\")", clsRead},
	{"SELECT \"a\"\"; DELETE FROM t\" FROM (SELECT 1 AS \"a\"\"; DELETE FROM t\")", clsRead},
	{"SELECT [update] FROM (SELECT 1 AS [update])", clsRead},
	{"SELECT [a;b] FROM (SELECT 1 AS [a;b])", clsRead},
	{"SELECT `delete` FROM (SELECT 1 AS `delete`)", clsRead},
	{"SELECT `a``;DROP` FROM (SELECT 1 AS `a``;DROP`)", clsRead},
	{"SELECT x'00ff', X'', 1e3, .5, 0x1F, 1_000", clsRead},
	{"SELECT v AS \"begin\", id AS [commit] FROM t", clsRead},

	// Parameters of every kind.
	{"SELECT * FROM t WHERE id = ?", clsRead},
	{"SELECT * FROM t WHERE id = ?1 OR v = ?2", clsRead},
	{"SELECT * FROM t WHERE id = :id", clsRead},
	{"SELECT * FROM t WHERE id = @id", clsRead},
	{"SELECT * FROM t WHERE id = $id", clsRead},
	{"SELECT $a::b, :c", clsRead},
	{"SELECT $a(x;y)", clsRead}, // one TCL-style variable, ';' and all
	{"SELECT ?, ?7, :a, @b, $c", clsRead},
	{"INSERT INTO t(id, v) VALUES (?1, :v)", clsDML},
	{"UPDATE t SET v = @v WHERE id = $id", clsDML},

	// EXPLAIN.
	{"EXPLAIN SELECT 1", clsRead},
	{"EXPLAIN QUERY PLAN SELECT * FROM t WHERE id = 1", clsRead},
	{"EXPLAIN INSERT INTO t(v) VALUES (1)", clsRead},
	{"explain query plan delete from t", clsRead},
	{"EXPLAIN BEGIN", clsRead},
	{"EXPLAIN CREATE TRIGGER tx AFTER INSERT ON t BEGIN DELETE FROM u; END", clsRead},

	// WITH.
	{"WITH x AS (SELECT 1) SELECT * FROM x", clsRead},
	{"WITH x AS (SELECT 1) VALUES (2)", clsRead},
	{"WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < (SELECT (10))) SELECT n FROM c", clsRead},
	{"WITH a AS MATERIALIZED (SELECT 'INSERT'), b(x, y) AS NOT MATERIALIZED (SELECT ')', '(') SELECT * FROM a, b", clsRead},
	{"WITH \"insert\" AS (SELECT 1) SELECT * FROM \"insert\"", clsRead},
	{"with recursive\n  a(x) as (select 1), b as (select * from a) select * from b", clsRead},
	{"WITH x AS (SELECT 'SELECT') INSERT INTO t(v) SELECT * FROM x", clsDML},
	{"WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c LIMIT 5) INSERT INTO t(v) SELECT n FROM c", clsDML},
	{"WITH x(id) AS (SELECT 1) DELETE FROM t WHERE id IN x", clsDML},
	{"WITH x AS (SELECT 1) UPDATE t SET v = (SELECT * FROM x)", clsDML},
	{"WITH x AS (SELECT 1) REPLACE INTO t(id, v) SELECT 1, 2", clsDML},
	{"WITH x AS (SELECT 1 SELECT * FROM x", clsWrite}, // unbalanced
	{"WITH SELECT 1", clsWrite},                          // malformed
	{"WITH x AS (SELECT 1) CREATE TABLE y(a)", clsWrite}, // not a known verb

	// INSERT, REPLACE, UPDATE, DELETE.
	{"INSERT INTO t(v) VALUES (1)", clsDML},
	{"insert into t(v) values (1);", clsDML},
	{"INSERT INTO t DEFAULT VALUES", clsDML},
	{"INSERT INTO t(v) SELECT v FROM t WHERE id < 3", clsDML},
	{"INSERT OR REPLACE INTO t(id, v) VALUES (1, 'x')", clsDML},
	{"INSERT OR IGNORE INTO t(id, v) VALUES (1, 'x')", clsDML},
	{"INSERT OR ROLLBACK INTO t(id, v) VALUES (1, 'x')", clsDML},
	{"INSERT OR ABORT INTO t(id, v) VALUES (1, 'x')", clsDML},
	{"INSERT OR FAIL INTO t(id, v) VALUES (1, 'x')", clsDML},
	{"REPLACE INTO t(id, v) VALUES (1, 2)", clsDML},
	{"UPDATE t SET v = v + 1 WHERE id = 1", clsDML},
	{"UPDATE OR IGNORE t SET v = 1", clsDML},
	{"UPDATE t SET v = u.w FROM u WHERE u.t_id = t.id", clsDML},
	{"DELETE FROM t WHERE id = 1", clsDML},
	{"DELETE FROM t RETURNING *", clsDML},
	{"INSERT INTO t(v) VALUES (1) RETURNING id, v", clsDML},
	{"INSERT INTO t(id, v) VALUES (1, 2) ON CONFLICT(id) DO UPDATE SET v = excluded.v", clsDML},
	{"INSERT INTO t(id, v) VALUES (1, 2) ON CONFLICT DO NOTHING", clsDML},
	{"INSERT INTO t(id, v) VALUES (1, 2) ON CONFLICT(id) DO UPDATE SET v = excluded.v WHERE v IS NOT excluded.v RETURNING *", clsDML},
	{"/* select */ INSERT INTO t(v) VALUES ('select') -- select", clsDML},
	{"INSERT INTO t(v) VALUES ('a;b'); ", clsDML},
	{"INSERT INTO t(v) VALUES (1); INSERT INTO t(v) VALUES (2)", clsWrite | clsMulti},
	{"SELECT 1; DELETE FROM t", clsWrite | clsMulti},
	{"SELECT 'a;b'; UPDATE t SET v = 1", clsWrite | clsMulti},
	{"DELETE FROM t; SELECT changes()", clsWrite | clsMulti},

	// CREATE, DROP, ALTER.
	{"CREATE TABLE x(a)", clsWrite},
	{"CREATE TABLE IF NOT EXISTS x(a)", clsWrite},
	{"create unique index if not exists i on t(v)", clsWrite},
	{"CREATE INDEX i2 ON u(w) WHERE w IS NOT NULL", clsWrite},
	{"CREATE VIEW w AS SELECT * FROM t", clsWrite},
	{"CREATE VIRTUAL TABLE f USING fts5(a)", clsWrite},
	{"CREATE TABLE main.x(a)", clsWrite},
	{"CREATE TABLE tempx(a)", clsWrite},
	{"CREATE TABLE temp_x.y(a)", clsWrite},
	{"CREATE TABLE x AS SELECT * FROM t", clsWrite},
	{"CREATE TRIGGER tr AFTER UPDATE ON t BEGIN UPDATE u SET w = 'x;y' WHERE t_id = new.id; DELETE FROM u WHERE t_id = old.id; END", clsWrite},
	{"CREATE TRIGGER tr2 BEFORE DELETE ON t BEGIN SELECT CASE WHEN old.id > 10 THEN RAISE(ABORT, 'no') END; UPDATE u SET w = CASE WHEN w IS NULL THEN 'a' ELSE 'b' END WHERE t_id = old.id; END;", clsWrite},
	{"CREATE TRIGGER tr3 AFTER INSERT ON t WHEN new.v > 0 BEGIN INSERT INTO u(t_id, w) VALUES (new.id, 'end'); END; SELECT 1", clsWrite | clsMulti},
	{"create trigger if not exists tr4 after insert on t begin select case when 1 then 2 end; select \"end\"; end", clsWrite},
	{"CREATE TRIGGER tr5 INSTEAD OF INSERT ON tv BEGIN INSERT INTO t(v) VALUES (new.v); END; CREATE TEMP TABLE x(a)", clsWrite | clsSession | clsMulti},
	{"CREATE TEMP TABLE x(a)", clsSession},
	{"create temporary table x as select * from t", clsSession},
	{"CREATE TABLE temp.x(a)", clsSession},
	{"CREATE TABLE IF NOT EXISTS TEMP.x(a)", clsSession},
	{"CREATE TABLE \"temp\".x(a)", clsSession},
	{"CREATE TABLE [temp].x(a)", clsSession},
	{"CREATE INDEX temp.i ON tmp(a)", clsSession},
	{"CREATE UNIQUE INDEX IF NOT EXISTS temp.i ON tmp(a)", clsSession},
	{"CREATE VIEW temp.v2 AS SELECT * FROM t", clsSession},
	{"CREATE TEMP VIEW v2 AS SELECT 1", clsSession},
	{"CREATE VIRTUAL TABLE temp.f USING fts5(a)", clsSession},
	{"CREATE TEMP TRIGGER tt AFTER INSERT ON t BEGIN SELECT 1; END", clsSession},
	{"CREATE TRIGGER temp.tt AFTER INSERT ON t BEGIN SELECT CASE 1 WHEN 1 THEN 1 END; END", clsSession},
	{"CREATE TEMP TRIGGER tt AFTER INSERT ON t BEGIN DELETE FROM u; END; DELETE FROM t", clsSession | clsWrite | clsMulti},
	{"DROP TABLE t", clsWrite},
	{"DROP TABLE IF EXISTS x", clsWrite},
	{"DROP INDEX u_t", clsWrite},
	{"DROP VIEW tv", clsWrite},
	{"DROP TRIGGER t_ai", clsWrite},
	{"DROP TABLE temp.tmp", clsSession},
	{"DROP INDEX temp.tmp_a", clsSession},
	{"INSERT INTO temp.tmp VALUES (1)", clsDML}, // a write as far as classify knows
	{"DROP TABLE IF EXISTS temp.x", clsSession},
	{"ALTER TABLE t ADD COLUMN c", clsWrite},
	{"ALTER TABLE t RENAME TO t2", clsWrite},
	{"ALTER TABLE u RENAME COLUMN w TO w2", clsWrite},
	{"ALTER TABLE temp.tmp ADD COLUMN b", clsSession},

	// VACUUM, REINDEX, ANALYZE.
	{"VACUUM", clsWrite | flagNoTx},
	{"VACUUM INTO 'other.db'", clsWrite | flagNoTx},
	{"REINDEX", clsWrite},
	{"REINDEX t", clsWrite},
	{"ANALYZE", clsWrite},
	{"analyze t", clsWrite},

	// ATTACH, DETACH.
	{"ATTACH DATABASE ':memory:' AS m", clsSession},
	{"attach 'other.db' as o", clsSession},
	{"DETACH m", clsSession},
	{"DETACH DATABASE m", clsSession},

	// Transaction control.
	{"BEGIN", clsBegin},
	{"begin;", clsBegin},
	{"BEGIN TRANSACTION", clsBegin},
	{"BEGIN TRANSACTION tx1", clsBegin},
	{"begin deferred", clsBegin},
	{"BEGIN DEFERRED TRANSACTION", clsBegin},
	{"BEGIN IMMEDIATE", clsBegin},
	{"BEGIN IMMEDIATE TRANSACTION", clsBegin},
	{"BEGIN EXCLUSIVE", clsBegin},
	{"SAVEPOINT sp", clsSavepoint},
	{"savepoint \"sp 1\"", clsSavepoint},
	{"COMMIT", clsTxEnd},
	{"COMMIT TRANSACTION", clsTxEnd},
	{"END", clsTxEnd},
	{"end transaction", clsTxEnd},
	{"ROLLBACK", clsTxEnd},
	{"ROLLBACK TRANSACTION", clsTxEnd},
	{"RELEASE sp", clsTxEnd},
	{"RELEASE SAVEPOINT sp", clsTxEnd},
	{"ROLLBACK TO sp", clsRollbackTo},
	{"ROLLBACK TRANSACTION TO SAVEPOINT sp", clsRollbackTo},
	{"rollback to savepoint sp", clsRollbackTo},
	{"BEGIN; INSERT INTO t(v) VALUES (1); COMMIT", clsBegin | clsTxEnd | clsWrite | clsMulti},
	{"BEGIN IMMEDIATE; SELECT 1; COMMIT;", clsBegin | clsTxEnd | clsMulti},
	{"BEGIN; SAVEPOINT a; DELETE FROM t; ROLLBACK TO a; RELEASE a; END", clsBegin | clsSavepoint | clsTxEnd | clsWrite | clsMulti},
	{"SAVEPOINT a; CREATE TEMP TABLE x(a); RELEASE a", clsSavepoint | clsTxEnd | clsSession | clsMulti},

	// PRAGMA: settings of the connection.
	{"PRAGMA foreign_keys", clsRead},
	{"PRAGMA foreign_keys = ON", clsSession},
	{"PRAGMA foreign_keys(1)", clsSession},
	{"pragma main.cache_size = -2000", clsSession},
	{"PRAGMA cache_size", clsRead},
	{"PRAGMA busy_timeout = 1000", clsSession},
	{"PRAGMA busy_timeout", clsRead},
	{"PRAGMA synchronous=NORMAL", clsSession},
	{"PRAGMA synchronous", clsRead},
	{"PRAGMA temp_store = MEMORY", clsSession},
	{"PRAGMA query_only = 0", clsSession},
	{"PRAGMA query_only", clsRead},
	{"PRAGMA recursive_triggers = 1", clsSession},
	{"PRAGMA defer_foreign_keys = 1", clsSession},
	{"PRAGMA locking_mode = NORMAL", clsSession},
	{"PRAGMA locking_mode", clsRead},
	{"PRAGMA mmap_size = 0", clsSession},
	{"PRAGMA trusted_schema = 0", clsSession},
	{"PRAGMA threads = 2", clsSession},
	{"PRAGMA analysis_limit = 100", clsSession},
	{"PRAGMA automatic_index = 0", clsSession},
	{"PRAGMA cache_spill = 0", clsSession},
	{"PRAGMA case_sensitive_like = 1", clsSession},
	{"PRAGMA cell_size_check = 1", clsSession},
	{"PRAGMA checkpoint_fullfsync = 1", clsSession},
	{"PRAGMA count_changes = 0", clsSession},
	{"PRAGMA empty_result_callbacks = 0", clsSession},
	{"PRAGMA full_column_names = 0", clsSession},
	{"PRAGMA fullfsync = 0", clsSession},
	{"PRAGMA hard_heap_limit = 0", clsSession},
	{"PRAGMA ignore_check_constraints = 0", clsSession},
	{"PRAGMA journal_size_limit = -1", clsSession},
	{"PRAGMA legacy_alter_table = 0", clsSession},
	{"PRAGMA read_uncommitted = 0", clsSession},
	{"PRAGMA reverse_unordered_selects = 0", clsSession},
	{"PRAGMA secure_delete = 0", clsSession},
	{"PRAGMA short_column_names = 1", clsSession},
	{"PRAGMA soft_heap_limit = 0", clsSession},
	{"PRAGMA wal_autocheckpoint = 1000", clsSession},
	{"PRAGMA wal_autocheckpoint", clsRead},
	{"PRAGMA writable_schema = 0", clsSession},
	{"PRAGMA \"foreign_keys\" = 1", clsSession},
	{"PRAGMA FOREIGN_KEYS=1", clsSession},

	// PRAGMA: settings of the file.
	{"PRAGMA user_version = 7", clsWrite},
	{"PRAGMA user_version", clsRead},
	{"PRAGMA main.user_version", clsRead},
	{"PRAGMA main.user_version = 7", clsWrite},
	{"PRAGMA main.journal_mode", clsWrite},
	{"PRAGMA \"user_version\"", clsRead},
	{"PRAGMA application_id = 1", clsWrite},
	{"PRAGMA application_id", clsRead},
	{"PRAGMA journal_mode = WAL", clsWrite | flagJournalMode | flagNoTx},
	{"PRAGMA main.journal_mode(DELETE)", clsWrite | flagJournalMode | flagNoTx},
	{"PRAGMA journal_mode", clsWrite}, // SQLite: not read-only
	{"PRAGMA auto_vacuum = 0", clsWrite},
	{"PRAGMA auto_vacuum", clsRead},
	{"PRAGMA page_size = 4096", clsWrite},
	{"PRAGMA page_size", clsRead},
	{"PRAGMA encoding = 'UTF-8'", clsWrite},
	{"PRAGMA encoding", clsRead},
	{"PRAGMA schema_version", clsRead},
	{"PRAGMA max_page_count = 1000000", clsWrite},
	{"PRAGMA max_page_count", clsRead},
	{"PRAGMA legacy_file_format = 0", clsWrite},

	// PRAGMA: actions that write.
	{"PRAGMA wal_checkpoint", clsWrite | flagNoTx},
	{"PRAGMA wal_checkpoint(TRUNCATE)", clsWrite | flagNoTx},
	{"PRAGMA optimize", clsWrite},
	{"PRAGMA optimize(0x10002)", clsWrite},
	{"PRAGMA incremental_vacuum", clsWrite},
	{"PRAGMA incremental_vacuum(10)", clsWrite},

	// PRAGMA: reads.
	{"PRAGMA table_info(t)", clsRead},
	{"pragma TABLE_INFO('t')", clsRead},
	{"PRAGMA main.table_info(t)", clsRead},
	{"PRAGMA table_xinfo(t)", clsRead},
	{"PRAGMA table_list", clsRead},
	{"PRAGMA index_list(u)", clsRead},
	{"PRAGMA index_info(u_t)", clsRead},
	{"PRAGMA index_xinfo(u_t)", clsRead},
	{"PRAGMA foreign_key_list(u)", clsRead},
	{"PRAGMA foreign_key_check", clsRead},
	{"PRAGMA foreign_key_check(u)", clsRead},
	{"PRAGMA integrity_check", clsRead},
	{"PRAGMA integrity_check(10)", clsRead},
	{"PRAGMA quick_check", clsRead},
	{"PRAGMA database_list", clsRead},
	{"PRAGMA collation_list", clsRead},
	{"PRAGMA function_list", clsRead},
	{"PRAGMA module_list", clsRead},
	{"PRAGMA pragma_list", clsRead},
	{"PRAGMA compile_options", clsRead},
	{"PRAGMA data_version", clsRead},
	{"PRAGMA freelist_count", clsRead},
	{"PRAGMA page_count", clsRead},
	{"PRAGMA stats", clsRead},

	// PRAGMA: unknown or malformed.
	{"PRAGMA no_such_pragma", clsWrite},
	{"PRAGMA no_such_pragma = 1", clsWrite},
	{"PRAGMA", clsWrite},
	{"PRAGMA foreign_keys ON", clsWrite},

	// Anything else.
	{"foo", clsWrite},
	{"(SELECT 1)", clsWrite},
	{"'SELECT 1'", clsWrite},
	{"? SELECT", clsWrite},
	{"SELECT 1; foo", clsWrite | clsMulti},

	// Scripts.
	{"SELECT 1; SELECT 2", clsMulti},
	{"SELECT * FROM t; PRAGMA table_info(t); VALUES (1)", clsMulti},
	{"CREATE TABLE IF NOT EXISTS x(a); INSERT INTO x VALUES (1); SELECT * FROM x", clsWrite | clsMulti},
	{"PRAGMA foreign_keys = ON; PRAGMA user_version = 3", clsSession | clsWrite | clsMulti},
	{"ATTACH ':memory:' AS m; CREATE TABLE m.x(a); DETACH m", clsSession | clsWrite | clsMulti},
	{"SELECT 1\x00; DELETE FROM t", clsRead}, // SQLite stops at the NUL
}

func TestClassify(t *testing.T) {
	for _, tt := range classifyTests {
		if got := analyze(tt.query).flags; got != tt.want {
			t.Errorf("analyze(%q) = %v, want %v", tt.query, got, tt.want)
		}
		if got := classify(tt.query).flags; got != tt.want {
			t.Errorf("classify(%q) = %v, want %v", tt.query, got, tt.want)
		}
		// The cached answer is the same.
		if a, b := classify(tt.query), classify(tt.query); a != b {
			t.Errorf("classify(%q) twice gave two answers", tt.query)
		}
	}
}

var withBeginTests = []struct {
	query string
	lock  TxLock
	want  string
}{
	{"BEGIN", TxLockDefault, "BEGIN IMMEDIATE"},
	{"BEGIN", TxLockImmediate, "BEGIN IMMEDIATE"},
	{"BEGIN", TxLockExclusive, "BEGIN EXCLUSIVE"},
	{"BEGIN", TxLockDeferred, "BEGIN"},
	{"begin;", TxLockDefault, "begin IMMEDIATE;"},
	{"begin transaction", TxLockImmediate, "begin IMMEDIATE transaction"},
	{"BEGIN TRANSACTION tx1", TxLockExclusive, "BEGIN EXCLUSIVE TRANSACTION tx1"},
	{"begin deferred", TxLockImmediate, "begin IMMEDIATE"},
	{"BEGIN DEFERRED TRANSACTION", TxLockExclusive, "BEGIN EXCLUSIVE TRANSACTION"},
	{"BEGIN DEFERRED TRANSACTION", TxLockDeferred, "BEGIN DEFERRED TRANSACTION"},
	{"BEGIN IMMEDIATE", TxLockExclusive, "BEGIN IMMEDIATE"},
	{"BEGIN EXCLUSIVE", TxLockImmediate, "BEGIN EXCLUSIVE"},
	{"begin exclusive transaction", TxLockDefault, "begin exclusive transaction"},
	{"  /* x */ BEGIN -- c\n;", TxLockDefault, "  /* x */ BEGIN IMMEDIATE -- c\n;"},
	{"BEGIN/*x*/TRANSACTION", TxLockImmediate, "BEGIN IMMEDIATE/*x*/TRANSACTION"},
	{"BEGIN\tTRANSACTION t1 ; ", TxLockImmediate, "BEGIN IMMEDIATE\tTRANSACTION t1 ; "},
	{"BEGIN /*deferred*/ DEFERRED", TxLockExclusive, "BEGIN /*deferred*/ EXCLUSIVE"},
	{"\uFEFFbegin", TxLockImmediate, "\uFEFFbegin IMMEDIATE"},
	{"BEGIN;INSERT INTO t(v) VALUES (1);COMMIT", TxLockImmediate, "BEGIN IMMEDIATE;INSERT INTO t(v) VALUES (1);COMMIT"},
	{"BEGIN; COMMIT; BEGIN DEFERRED; ROLLBACK; BEGIN EXCLUSIVE; END; begin immediate; end; Begin Transaction; End",
		TxLockExclusive,
		"BEGIN EXCLUSIVE; COMMIT; BEGIN EXCLUSIVE; ROLLBACK; BEGIN EXCLUSIVE; END; begin immediate; end; Begin EXCLUSIVE Transaction; End"},
	{"SELECT 'BEGIN'; BEGIN; SELECT 'x'", TxLockImmediate, "SELECT 'BEGIN'; BEGIN IMMEDIATE; SELECT 'x'"},

	// Nothing to do.
	{"SELECT 1", TxLockImmediate, "SELECT 1"},
	{"SELECT 'BEGIN'", TxLockImmediate, "SELECT 'BEGIN'"},
	{"SELECT 1 AS begin", TxLockImmediate, "SELECT 1 AS begin"},
	{"EXPLAIN BEGIN", TxLockImmediate, "EXPLAIN BEGIN"},
	{"-- BEGIN\nCOMMIT", TxLockImmediate, "-- BEGIN\nCOMMIT"},
	{"SAVEPOINT a", TxLockExclusive, "SAVEPOINT a"},

	// A BEGIN inside a trigger is not a transaction.
	{"CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END", TxLockImmediate,
		"CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END"},
	{"CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT CASE WHEN 1 THEN 2 END; END; BEGIN", TxLockImmediate,
		"CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT CASE WHEN 1 THEN 2 END; END; BEGIN IMMEDIATE"},
	{"BEGIN; CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM u; END; COMMIT", TxLockExclusive,
		"BEGIN EXCLUSIVE; CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM u; END; COMMIT"},
}

func TestWithBegin(t *testing.T) {
	for _, tt := range withBeginTests {
		if got := classify(tt.query).withBegin(tt.query, tt.lock); got != tt.want {
			t.Errorf("withBegin(%q, %q) = %q, want %q", tt.query, tt.lock, got, tt.want)
		}
		if got := analyze(tt.query).withBegin(tt.query, tt.lock); got != tt.want {
			t.Errorf("analyze(%q).withBegin(%q) = %q, want %q", tt.query, tt.lock, got, tt.want)
		}
	}
}

// TestWithBeginUnchanged checks that withBegin hands back the very string it
// was given, without allocating, when it has nothing to do.
func TestWithBeginUnchanged(t *testing.T) {
	for _, tt := range []struct {
		query string
		lock  TxLock
	}{
		{"BEGIN", TxLockDeferred},
		{"BEGIN; INSERT INTO t(v) VALUES (1); COMMIT", TxLockDeferred},
		{"BEGIN IMMEDIATE", TxLockExclusive},
		{"SELECT 1", TxLockImmediate},
		{"INSERT INTO t(v) VALUES (1)", TxLockExclusive},
	} {
		in := classify(tt.query)
		got := in.withBegin(tt.query, tt.lock)
		if unsafe.StringData(got) != unsafe.StringData(tt.query) || len(got) != len(tt.query) {
			t.Errorf("withBegin(%q, %q) = %q, a new string", tt.query, tt.lock, got)
		}
		if n := testing.AllocsPerRun(100, func() { in.withBegin(tt.query, tt.lock) }); n != 0 {
			t.Errorf("withBegin(%q, %q) allocates %v times", tt.query, tt.lock, n)
		}
	}
}

// TestWithBeginOtherText checks that withBegin does not panic when given a
// text shorter than the one its stmtInfo was computed from.
func TestWithBeginOtherText(t *testing.T) {
	in := classify("SELECT 1; BEGIN")
	if got := in.withBegin("BEGIN", TxLockImmediate); got != "BEGIN" {
		t.Errorf("withBegin on another text = %q, want it unchanged", got)
	}
}

func TestClassifyCacheHitAllocs(t *testing.T) {
	const q = "SELECT v FROM t WHERE id = ?"
	classify(q)
	if n := testing.AllocsPerRun(1000, func() { classify(q) }); n != 0 {
		t.Errorf("classify on a cache hit allocates %v times", n)
	}
}

// TestClassifyCacheBounded checks that the cache does not grow without bound
// when every query text is new, and that it keeps serving right answers.
func TestClassifyCacheBounded(t *testing.T) {
	classifyCache.Store(new(classifyGen))
	for i := range 3 * classifyCacheEntries {
		q := fmt.Sprintf("SELECT * FROM t WHERE id = %d", i)
		if got := classify(q).flags; got != clsRead {
			t.Fatalf("classify(%q) = %v, want clsRead", q, got)
		}
	}
	g := classifyCache.Load()
	n := 0
	g.m.Range(func(any, any) bool { n++; return true })
	if n > classifyCacheEntries || g.entries.Load() > classifyCacheEntries+1 {
		t.Errorf("cache holds %d texts (counted %d), want at most %d", n, g.entries.Load(), classifyCacheEntries)
	}

	long := "SELECT '" + strings.Repeat("x", classifyCacheMaxText) + "'"
	if got := classify(long).flags; got != clsRead {
		t.Errorf("classify(long text) = %v, want clsRead", got)
	}
	if _, ok := classifyCache.Load().m.Load(long); ok {
		t.Errorf("a text of %d bytes was cached", len(long))
	}
}

// TestClassifyConcurrent classifies the same and different texts from many
// goroutines at once; run it with -race.
func TestClassifyConcurrent(t *testing.T) {
	classifyCache.Store(new(classifyGen))
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				tt := classifyTests[(g+i)%len(classifyTests)]
				if got := classify(tt.query).flags; got != tt.want {
					errs <- fmt.Sprintf("classify(%q) = %v, want %v", tt.query, got, tt.want)
					return
				}
				q := fmt.Sprintf("INSERT INTO t(v) VALUES (%d)", g*10000+i)
				if got := classify(q).flags; got != clsDML {
					errs <- fmt.Sprintf("classify(%q) = %v, want %v", q, got, clsDML)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// classifySchema is the schema the oracle and execution checks run against.
const classifySchema = `
CREATE TABLE t(id INTEGER PRIMARY KEY, v);
CREATE TABLE u(id INTEGER PRIMARY KEY, t_id INTEGER REFERENCES t(id), w TEXT);
CREATE INDEX u_t ON u(t_id);
CREATE VIEW tv AS SELECT t.id, t.v, u.w FROM t LEFT JOIN u ON u.t_id = t.id;
CREATE TRIGGER t_ai AFTER INSERT ON t BEGIN INSERT INTO u(t_id, w) VALUES (new.id, 'auto'); END;
CREATE TRIGGER tv_ii INSTEAD OF INSERT ON tv BEGIN INSERT INTO t(id, v) VALUES (new.id, new.v); END;
INSERT INTO t(v) VALUES (1), (2), (3);
`

// classifyExtraCorpus holds more statements for the oracle and execution checks,
// beside those of classifyTests and withBeginTests.
var classifyExtraCorpus = []string{
	"SELECT count(*) FROM t",
	"SELECT * FROM t WHERE v IN (SELECT t_id FROM u) ORDER BY id DESC",
	"SELECT group_concat(w, ',') FROM u GROUP BY t_id HAVING count(*) > 1",
	"SELECT * FROM t NATURAL JOIN u",
	"SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.t_id = t.id)",
	"SELECT CASE WHEN v > 1 THEN 'big' ELSE 'small' END FROM t",
	"SELECT * FROM t UNION SELECT id, t_id FROM u",
	"SELECT * FROM t EXCEPT SELECT * FROM t WHERE id > 1",
	"SELECT * FROM json_each('[1,2,3]')",
	"SELECT * FROM temp.sqlite_schema",
	"SELECT * FROM main.t",
	"SELECT * FROM u INDEXED BY u_t WHERE t_id = 1",
	"SELECT * FROM u NOT INDEXED",
	"SELECT last_insert_rowid(), changes(), total_changes()",
	"SELECT sqlite_version(), random(), randomblob(4)",
	"SELECT * FROM t LIMIT 1 OFFSET 1",
	"SELECT v ->> '$.a', v -> 'b' FROM t",
	"SELECT * FROM tv WHERE w = 'auto'",
	"SELECT * FROM pragma_index_list('u')",
	"SELECT * FROM pragma_foreign_key_check",
	"WITH x AS (SELECT id FROM t) SELECT * FROM u WHERE t_id IN x",
	"EXPLAIN UPDATE t SET v = 1",
	"EXPLAIN QUERY PLAN WITH x AS (SELECT 1) INSERT INTO t(v) SELECT * FROM x",
	"EXPLAIN VACUUM",
	"EXPLAIN PRAGMA user_version = 1",
	"INSERT INTO u(t_id, w) SELECT id, 'copy' FROM t",
	"INSERT INTO tv(id, v, w) VALUES (1, 2, 3)",
	"UPDATE u SET w = upper(w) WHERE w LIKE 'a%'",
	"DELETE FROM u WHERE t_id NOT IN (SELECT id FROM t)",
	"REPLACE INTO u(id, t_id, w) VALUES (1, 1, 'r')",
	"INSERT INTO t(v) VALUES (zeroblob(10))",
	"CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v)",
	"CREATE INDEX IF NOT EXISTS t_v ON t(v)",
	"CREATE TABLE s(a INTEGER, b TEXT, PRIMARY KEY (a)) WITHOUT ROWID",
	"CREATE TABLE s(a INTEGER NOT NULL, b ANY) STRICT",
	"CREATE TABLE g(a, b GENERATED ALWAYS AS (a * 2) STORED)",
	"CREATE TEMP TABLE IF NOT EXISTS tmp(a); INSERT INTO temp.tmp VALUES (1)",
	"SELECT * FROM temp.tmp",
	"CREATE VIEW IF NOT EXISTS v3(a) AS SELECT 1",
	"DROP VIEW IF EXISTS nothere",
	"DROP INDEX IF EXISTS nothere",
	"DROP TRIGGER IF EXISTS nothere",
	"ALTER TABLE u DROP COLUMN w",
	"PRAGMA main.integrity_check",
	"PRAGMA temp.table_list",
	"PRAGMA index_list = u",
	"PRAGMA temp.user_version",
	"PRAGMA temp_store",
	"PRAGMA defer_foreign_keys",
	"PRAGMA recursive_triggers",
	"PRAGMA secure_delete",
	"PRAGMA trusted_schema",
	"PRAGMA cell_size_check",
	"PRAGMA automatic_index",
	"PRAGMA read_uncommitted",
	"PRAGMA journal_size_limit",
	"PRAGMA mmap_size",
	"PRAGMA threads",
	"PRAGMA analysis_limit",
	"PRAGMA soft_heap_limit",
	"PRAGMA hard_heap_limit",
	"PRAGMA cache_spill",
	"PRAGMA legacy_alter_table",
	"PRAGMA reverse_unordered_selects",
	"PRAGMA writable_schema",
	"PRAGMA fullfsync",
	"PRAGMA checkpoint_fullfsync",
	"PRAGMA ignore_check_constraints",
	"PRAGMA application_id",
	"PRAGMA default_cache_size",
	"PRAGMA default_cache_size = 100",
	"PRAGMA shrink_memory",
	"PRAGMA temp.cache_size = 10",
	"BEGIN; SELECT 1; ROLLBACK",
	"BEGIN DEFERRED; UPDATE t SET v = 1; END",
	"SAVEPOINT s1; RELEASE s1",
	"ANALYZE main",
	"ANALYZE u_t",
	"REINDEX u_t",
	"REINDEX NOCASE",
	"VACUUM main",
}

// corpus returns every query text of the tables above, each once.
func classifyCorpus() []string {
	seen := make(map[string]bool)
	var qs []string
	add := func(q string) {
		if !seen[q] {
			seen[q] = true
			qs = append(qs, q)
		}
	}
	for _, tt := range classifyTests {
		add(tt.query)
	}
	for _, tt := range withBeginTests {
		add(tt.query)
	}
	for _, q := range classifyExtraCorpus {
		add(q)
	}
	return qs
}

// oracle is a SQLite connection opened through the C API that modernc.org/sqlite
// compiles to Go, so that tests can ask SQLite itself about a statement.
type classifyOracle struct {
	tls *libc.TLS
	db  uintptr
}

// classifyOracleStmt is what SQLite says about one statement of a query text.
type classifyOracleStmt struct {
	text     string   // the statement, as a slice of the query text
	readonly bool     // sqlite3_stmt_readonly
	explain  bool     // sqlite3_stmt_isexplain
	params   []string // sqlite3_bind_parameter_name of each parameter, "" for ?
}

func openClassifyOracle(tb testing.TB, path string) *classifyOracle {
	tb.Helper()
	o := &classifyOracle{tls: libc.NewTLS()}
	name, err := libc.CString(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer libc.Xfree(o.tls, name)
	pdb := o.tls.Alloc(8)
	defer o.tls.Free(8)
	rc := lib.Xsqlite3_open_v2(o.tls, name, pdb, lib.SQLITE_OPEN_READWRITE|lib.SQLITE_OPEN_CREATE, 0)
	o.db = libc.AtomicLoadPUintptr(pdb)
	if rc != lib.SQLITE_OK {
		tb.Fatalf("sqlite3_open_v2(%q) = %d", path, rc)
	}
	tb.Cleanup(func() {
		lib.Xsqlite3_close_v2(o.tls, o.db)
		o.tls.Close()
	})
	o.resetTemp(tb)
	return o
}

// resetTemp gives the connection the session state that the statements
// about temp objects expect. Preparing some statements (PRAGMA temp_store =
// ...) drops the temp schema, so it is called before each query text.
func (o *classifyOracle) resetTemp(tb testing.TB) {
	o.exec(tb, "CREATE TEMP TABLE IF NOT EXISTS tmp(a); CREATE INDEX IF NOT EXISTS temp.tmp_a ON tmp(a)")
}

// exec runs every statement of q to completion.
func (o *classifyOracle) exec(tb testing.TB, q string) {
	tb.Helper()
	cq, err := libc.CString(q)
	if err != nil {
		tb.Fatal(err)
	}
	defer libc.Xfree(o.tls, cq)
	out := o.tls.Alloc(16)
	defer o.tls.Free(16)
	ppStmt, pzTail := out, out+8
	for z := cq; libc.AtomicLoadPUint8(z) != 0; z = libc.AtomicLoadPUintptr(pzTail) {
		if rc := lib.Xsqlite3_prepare_v2(o.tls, o.db, z, -1, ppStmt, pzTail); rc != lib.SQLITE_OK {
			tb.Fatalf("%q: %s", q, libc.GoString(lib.Xsqlite3_errmsg(o.tls, o.db)))
		}
		stmt := libc.AtomicLoadPUintptr(ppStmt)
		if stmt == 0 {
			continue
		}
		rc := lib.Xsqlite3_step(o.tls, stmt)
		for rc == lib.SQLITE_ROW {
			rc = lib.Xsqlite3_step(o.tls, stmt)
		}
		lib.Xsqlite3_finalize(o.tls, stmt)
		if rc != lib.SQLITE_DONE {
			tb.Fatalf("%q: %s", q, libc.GoString(lib.Xsqlite3_errmsg(o.tls, o.db)))
		}
	}
}

// statements prepares each statement of q in turn, as modernc.org/sqlite
// does when it runs q, and reports what SQLite says about each. It stops at
// the first statement that does not prepare and returns its error. Text that
// holds no statement (white space, comments, ";") gives none.
func (o *classifyOracle) statements(q string) ([]classifyOracleStmt, error) {
	cq, err := libc.CString(q)
	if err != nil {
		return nil, err
	}
	defer libc.Xfree(o.tls, cq)
	out := o.tls.Alloc(16)
	defer o.tls.Free(16)
	ppStmt, pzTail := out, out+8
	var stmts []classifyOracleStmt
	for z := cq; libc.AtomicLoadPUint8(z) != 0; {
		if rc := lib.Xsqlite3_prepare_v2(o.tls, o.db, z, -1, ppStmt, pzTail); rc != lib.SQLITE_OK {
			return stmts, errors.New(libc.GoString(lib.Xsqlite3_errmsg(o.tls, o.db)))
		}
		stmt, tail := libc.AtomicLoadPUintptr(ppStmt), libc.AtomicLoadPUintptr(pzTail)
		if stmt != 0 {
			s := classifyOracleStmt{
				text:     q[z-cq : tail-cq],
				readonly: lib.Xsqlite3_stmt_readonly(o.tls, stmt) != 0,
				explain:  lib.Xsqlite3_stmt_isexplain(o.tls, stmt) != 0,
			}
			for i := range lib.Xsqlite3_bind_parameter_count(o.tls, stmt) {
				s.params = append(s.params, libc.GoString(lib.Xsqlite3_bind_parameter_name(o.tls, stmt, i+1)))
			}
			lib.Xsqlite3_finalize(o.tls, stmt)
			stmts = append(stmts, s)
		}
		if tail <= z {
			break
		}
		z = tail
	}
	return stmts, nil
}

// complete returns what sqlite3_complete (sqlite3_incomplete(q) == 0) says
// of q: whether q ends with a complete statement, its ';' outside strings,
// comments and trigger bodies. ok is false where that simplified tokenizer
// differs from SQLite's own, which classify follows: TCL variables with
// "(...)", which can hold a ';', and byte-order marks; and for a text that
// ends in a comment.
func (o *classifyOracle) complete(q string) (complete, ok bool) {
	if i := strings.IndexByte(q, 0); i >= 0 {
		q = q[:i]
	}
	if strings.Contains(q, "\uFEFF") {
		return false, false
	}
	for _, t := range lex(q, nil) {
		if t.kind == tkParam && strings.Contains(q[t.start:t.end], "(") {
			return false, false
		}
	}
	cq, err := libc.CString(q)
	if err != nil {
		return false, false
	}
	defer libc.Xfree(o.tls, cq)
	r := lib.Xsqlite3_incomplete(o.tls, cq)
	if pending := (r >> 16) & 0xff; pending == '-' || pending == '/' {
		// A comment that runs to the end of the text: sqlite3_incomplete
		// calls that incomplete, as more may follow; the ';' before it
		// still ends its statement.
		return false, false
	}
	return r == 0, true
}

// splitsComplete is sqlite3_complete done with classify's lexer and
// statement splitter: whether the last statement of q ends with its ';'.
func splitsComplete(q string) bool {
	if i := strings.IndexByte(q, 0); i >= 0 {
		q = q[:i]
	}
	complete := false
	for toks := lex(q, nil); len(toks) > 0; {
		_, toks = nextStatement(q, toks)
		complete = toks != nil
	}
	return complete
}

// newClassifyDB creates a database file in WAL mode with classifySchema and
// returns its path and a read-write handle on it, which stays open until the
// test ends so that read-only connections find the WAL index.
func newClassifyDB(tb testing.TB) (string, *sql.DB) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "app.db")
	rw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { rw.Close() })
	var mode string
	if err := rw.QueryRow("PRAGMA journal_mode = WAL").Scan(&mode); err != nil || mode != "wal" {
		tb.Fatalf("journal_mode = WAL gave %q, %v", mode, err)
	}
	if _, err := rw.Exec(classifySchema); err != nil {
		tb.Fatal(err)
	}
	return path, rw
}

// TestClassifyOracle checks classify against SQLite: whenever SQLite says a
// statement is not read-only (sqlite3_stmt_readonly), classify must route it
// away from the read-only connections, with flagWrite, flagSession or
// flagTxControl, both for the statement alone and for the whole text it is
// part of. The other direction is not asserted: SQLite calls BEGIN, COMMIT,
// SAVEPOINT, ATTACH, DETACH, CREATE TEMP ... and many PRAGMA assignments
// read-only, since they do not write the database file themselves.
//
// One exception in the asserted direction: SQLite gives EXPLAIN the
// read-only flag of the statement it explains, but EXPLAIN only lists the
// program and runs on a read-only connection (TestClassifyReadsRunReadOnly
// runs the corpus's EXPLAINs there), so classify calls every EXPLAIN a read.
//
// Statements that do not prepare against the schema are skipped and
// counted.
func TestClassifyOracle(t *testing.T) {
	path, _ := newClassifyDB(t)
	o := openClassifyOracle(t, path)
	const away = flagWrite | flagSession | flagTxControl
	checked, skipped, notReadonly := 0, 0, 0
	for _, q := range classifyCorpus() {
		o.resetTemp(t)
		stmts, err := o.statements(q)
		if err != nil {
			skipped++
			t.Logf("skipped %q: %v", q, err)
		}
		whole := classify(q).flags
		if len(stmts) > 1 && whole&flagMulti == 0 {
			t.Errorf("SQLite sees %d statements in %q, classify says %v", len(stmts), q, whole)
		}
		for _, s := range stmts {
			checked++
			if s.readonly || s.explain {
				continue
			}
			notReadonly++
			if got := classify(s.text).flags; got&away == 0 {
				t.Errorf("SQLite says %q is not read-only, classify says %v", s.text, got)
			}
			if whole&away == 0 {
				t.Errorf("SQLite says %q in %q is not read-only, classify says %v", s.text, q, whole)
			}
		}
	}
	t.Logf("oracle: %d statements checked (%d not read-only), %d query texts skipped", checked, notReadonly, skipped)
	if skipped*5 > len(classifyCorpus()) {
		t.Errorf("%d of %d query texts did not prepare", skipped, len(classifyCorpus()))
	}
}

// TestClassifySplitsLikeSQLite checks the statement splitter against
// sqlite3_complete on the corpus and on texts cut short in trigger bodies,
// strings and comments.
func TestClassifySplitsLikeSQLite(t *testing.T) {
	path, _ := newClassifyDB(t)
	o := openClassifyOracle(t, path)
	qs := append(classifyCorpus(),
		"SELECT 1", "SELECT 1;", "SELECT 1; -- x", "SELECT 1; /* x", "SELECT ';", "SELECT 1 /* ; */",
		"CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1;",
		"CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END",
		"CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END;",
		"CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT CASE 1 WHEN 1 THEN 1 END;",
		"CREATE TEMP TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END; SELECT 2",
		"CREATE TEMP TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END; SELECT 2;",
		"EXPLAIN CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1;",
		"CREATE TABLE trigger(a); CREATE TRIGGER",
	)
	n := 0
	for _, q := range qs {
		want, ok := o.complete(q)
		if !ok {
			continue
		}
		n++
		if got := splitsComplete(q); got != want {
			t.Errorf("%q: sqlite3_complete says %v, the statement splitter %v", q, want, got)
		}
	}
	t.Logf("%d texts compared with sqlite3_complete", n)
}

// TestClassifyReadsRunReadOnly runs each text of the corpus that classify
// calls a pure read (no flags) on a read-only connection (mode=ro) to a WAL
// database, as the driver will, and checks that none fails with
// SQLITE_READONLY. Other errors (no such table, ...) do not matter here.
func TestClassifyReadsRunReadOnly(t *testing.T) {
	path, _ := newClassifyDB(t)
	o := openClassifyOracle(t, path)
	ro, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	ran, ok := 0, 0
	for _, q := range classifyCorpus() {
		if classify(q).flags != 0 || strings.TrimSpace(q) == "" {
			continue
		}
		ran++
		err := runClassified(ro, q, classifyArgs(o, q))
		if err == nil {
			ok++
			continue
		}
		var serr *sqlite.Error
		if errors.As(err, &serr) && serr.Code()&0xff == lib.SQLITE_READONLY {
			t.Errorf("%q, a read by classify, failed on a read-only connection: %v", q, err)
			continue
		}
		t.Logf("%q: %v", q, err)
	}
	t.Logf("read-only execution: %d reads run, %d without error, no SQLITE_READONLY", ran, ok)
	if ok*10 < ran*8 {
		t.Errorf("only %d of %d reads ran without error", ok, ran)
	}
}

// runAll runs q on db and reads every row it returns.
func runClassified(db *sql.DB, q string, args []any) error {
	rows, err := db.Query(q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
	}
	return rows.Err()
}

// argsFor returns NULL arguments for the parameters of q, named or by
// position as SQLite numbers them.
func classifyArgs(o *classifyOracle, q string) []any {
	stmts, _ := o.statements(q)
	var args []any
	seen := make(map[string]bool)
	for _, s := range stmts {
		for i, name := range s.params {
			switch {
			case name == "" || name[0] == '?':
				for len(args) <= i {
					args = append(args, nil)
				}
			case !seen[name]:
				seen[name] = true
				args = append(args, sql.Named(name[1:], nil))
			}
		}
	}
	return args
}

// FuzzClassify checks that classify and withBegin never panic, that
// withBegin changes nothing unless there is a BEGIN to change, and that the
// text it returns classifies the same and needs no more rewriting. Where
// SQLite prepares the text, it also checks classify against SQLite as
// TestClassifyOracle does, and that classify sees several statements where
// SQLite does.
func FuzzClassify(f *testing.F) {
	for _, tt := range classifyTests {
		f.Add(tt.query)
	}
	for _, tt := range withBeginTests {
		f.Add(tt.query)
	}
	for _, q := range classifyExtraCorpus {
		f.Add(q)
	}
	path, _ := newClassifyDB(f)
	o := openClassifyOracle(f, path)
	locks := []TxLock{TxLockDefault, TxLockImmediate, TxLockExclusive, TxLockDeferred}
	f.Fuzz(func(t *testing.T, q string) {
		in := classify(q)
		if a := analyze(q); a.flags != in.flags {
			t.Fatalf("classify(%q) = %v, analyze = %v", q, in.flags, a.flags)
		}
		for _, lock := range locks {
			out := in.withBegin(q, lock)
			if (lock == TxLockDeferred || in.flags&flagBegin == 0) && out != q {
				t.Fatalf("withBegin(%q, %q) = %q, want it unchanged", q, lock, out)
			}
			if out == q {
				continue
			}
			again := classify(out)
			if again.flags != in.flags {
				t.Fatalf("withBegin(%q, %q) = %q, which classifies as %v, not %v", q, lock, out, again.flags, in.flags)
			}
			if out2 := again.withBegin(out, lock); out2 != out {
				t.Fatalf("withBegin(%q, %q) = %q, and again %q", q, lock, out, out2)
			}
		}

		if want, ok := o.complete(q); ok {
			if got := splitsComplete(q); got != want {
				t.Fatalf("%q: sqlite3_complete says %v, the statement splitter %v", q, want, got)
			}
		}

		// Some PRAGMAs take effect when they are prepared, and a few of
		// them (hard_heap_limit, ...) for the whole process: leave those
		// to the table tests.
		if strings.Contains(strings.ToLower(q), "pragma") {
			return
		}
		stmts, err := o.statements(q)
		if err != nil {
			return
		}
		if len(stmts) > 1 && in.flags&flagMulti == 0 {
			t.Fatalf("SQLite sees %d statements in %q, classify says %v", len(stmts), q, in.flags)
		}
		for _, s := range stmts {
			if !s.readonly && !s.explain && in.flags&(flagWrite|flagSession|flagTxControl) == 0 {
				t.Fatalf("SQLite says %q in %q is not read-only, classify says %v", s.text, q, in.flags)
			}
		}
	})
}

func BenchmarkClassify(b *testing.B) {
	const q = "SELECT id, v FROM t WHERE id = ? AND v > ? ORDER BY id LIMIT 10"
	classify(q)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			classify(q)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				classify(q)
			}
		})
	})
}

func BenchmarkClassifyMiss(b *testing.B) {
	for _, bb := range []struct{ name, format string }{
		{"select", "SELECT id, v FROM t WHERE id = %d AND v > ? ORDER BY id LIMIT 10"},
		{"insert", "INSERT INTO t(id, v) VALUES (%d, 'x') ON CONFLICT(id) DO UPDATE SET v = excluded.v RETURNING id"},
		{"script", "BEGIN; INSERT INTO t(v) VALUES (%d); UPDATE u SET w = 'x' WHERE t_id = 1; COMMIT"},
	} {
		// More distinct texts than the cache holds, so that each is
		// gone from it by the time it comes round again.
		qs := make([]string, 4*classifyCacheEntries)
		for i := range qs {
			qs[i] = fmt.Sprintf(bb.format, i)
		}
		b.Run(bb.name, func(b *testing.B) {
			classifyCache.Store(new(classifyGen))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				classify(qs[i%len(qs)])
				i++
			}
		})
	}
}
