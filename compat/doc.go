// Package compat holds no code: it is the module of sqlite-safe's tests with
// the ORMs and tools people put in front of database/sql (sqlx, gorm, bun,
// goose, ent, golang-migrate, xorm, River) and of the driver wrappers that
// trace or hook its calls (otelsql, sqlmw), kept out of the driver's go.mod
// so that a program importing the driver does not get them in its module
// graph.
//
// Its examples show the one thing each tool needs to use the driver "sqlite-safe",
// and its tests run each tool under concurrency against a real file, check the
// exact final state, and run the same workload on plain modernc.org/sqlite as a
// control that must fail.
//
// The controls use plain modernc.org/sqlite with its defaults
// (sql.Open("sqlite", path)), which is what a user of these tools gets by
// pointing the tool at modernc.org/sqlite. dbtest.RawCareful (BEGIN IMMEDIATE
// and a 5 s busy timeout) is not used for them: on workloads this small it
// usually completes without an error, its hazard being latency and
// unfairness (see the demo), which a test cannot assert on reliably.
//
// Everything here builds and passes with CGO_ENABLED=0: gorm.io/driver/sqlite
// imports github.com/mattn/go-sqlite3, which is then a stub that registers
// "sqlite3" and is never used. Do not add a package that registers "sqlite"
// (github.com/glebarez/sqlite does): modernc.org/sqlite registers it too, and
// the test binary panics at start.
//
// Each tool has a test file of its own (gorm_test.go, river_test.go, ...),
// the examples are in example_test.go, and the helpers shared with the
// driver's own tests are in internal/dbtest of the root module. Run the
// tests from this directory: go test ./...
package compat
