package sqlitesafe_test

import (
	_ "github.com/sqlitesafe/sqlitesafe"
	"github.com/sqlitesafe/sqlitesafe/internal/dbtest"
)

// The helpers the tests share with the compat module, under the short names
// these tests use; see internal/dbtest for what each does.
var (
	dbPath        = dbtest.Path
	open          = dbtest.Open
	openSafe      = dbtest.OpenSafe
	rawCareful    = dbtest.RawCareful
	mustExec      = dbtest.MustExec
	queryInt      = dbtest.QueryInt
	watchdog      = dbtest.Watchdog
	parallel      = dbtest.Parallel
	sqliteCode    = dbtest.Code
	isBusy        = dbtest.IsBusy
	onlyBusy      = dbtest.OnlyBusy
	noErrors      = dbtest.NoErrors
	rmw           = dbtest.RMW
	counterSchema = dbtest.CounterSchema
)

type (
	execer  = dbtest.Execer
	queryer = dbtest.Queryer
)
