package sqlitesafe_test

import (
	"testing"

	_ "github.com/sqlitesafe/sqlitesafe"
	"github.com/sqlitesafe/sqlitesafe/internal/dbtest"
)

// The helpers the tests share with the compat module, under the short names
// these tests use; see internal/dbtest for what each does.
var (
	dbPath           = dbtest.Path
	open             = dbtest.Open
	openSafe         = dbtest.OpenSafe
	rawCareful       = dbtest.RawCareful
	mustExec         = dbtest.MustExec
	queryInt         = dbtest.QueryInt
	watchdog         = dbtest.Watchdog
	parallel         = dbtest.Parallel
	parallelUntil    = dbtest.ParallelUntil
	settleGoroutines = dbtest.SettleGoroutines
	stacks           = dbtest.Stacks
	sqliteCode       = dbtest.Code
	isBusy           = dbtest.IsBusy
	onlyBusy         = dbtest.OnlyBusy
	noErrors         = dbtest.NoErrors
	rmw              = dbtest.RMW
	counterSchema    = dbtest.CounterSchema
	fdCount          = dbtest.FDCount
	settles          = dbtest.Settles
)

type (
	execer     = dbtest.Execer
	queryer    = dbtest.Queryer
	syncBuffer = dbtest.SyncBuffer
)

// skipShort skips a test under -short: the test runs or kills other
// processes, or soaks for seconds, and go test -short is for every save.
// Without -short (as CI runs) it runs.
func skipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: " + why)
	}
}
