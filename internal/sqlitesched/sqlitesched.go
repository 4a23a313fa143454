// Package sqlitesched fits SQLite's mutexes and sleeps, as modernc.org/sqlite
// runs them, to Go's scheduler. Importing it configures SQLite for the whole
// process, once, before SQLite is initialized.
//
// modernc.org/sqlite's SQLite for Linux takes pthread mutexes, which
// modernc.org/libc makes of sync.Mutex. Every connection of a process shares
// some of them: the page cache's (one for all databases: the library is built
// with SQLITE_ENABLE_MEMORY_MANAGEMENT) and each database's wal-index mutex,
// taken twice by every read transaction and many times by every write. Under
// many reading goroutines and a writing one they go into sync.Mutex's
// starvation mode, in which every Unlock hands the mutex to the next waiter
// and gives up the processor: the writer, which takes them most often, waits
// behind the readers once per release. The mutexes installed here
// (SQLITE_CONFIG_MUTEX) are taken by compare-and-swap, spin briefly while the
// holder (which holds them for well under a microsecond) runs, then yield
// the processor a few times, then park until released; a release gives the
// processor away only to a waiter whose connection comes first (below).
//
// SQLite's unix VFS sleeps with nanosleep, blocking the thread: between the
// retries of a read transaction whose start found the wal-index changing it
// sleeps 1 µs ("more of a scheduler yield than an actual delay", says
// SQLite), which nanosleep makes 50 µs or more of a thread held idle. The
// VFS's xSleep is replaced by one that yields the processor for such delays
// and parks the goroutine (time.Sleep) for longer ones, such as the busy
// handler's.
//
// Every page cache gets a group of its own (see separateCaches), so that
// page fetches take no mutex shared by all connections.
//
// A writer connection comes first at the mutexes (SetFirst): while it
// waits for one, the other connections leave it to it, and the releaser
// gives it its processor; at one wait in firstShare it waits as the others
// do. Beside reading goroutines the writer otherwise waits behind each of
// them for a turn of the processor at every wait it loses.
//
// The unix VFS's fcntl and close are replaced so that the process can keep
// the wal-index locks a writer connection lets go at the end of a
// transaction (Keep, Release; see writelock_linux.go): a lone writer's
// transaction then makes two fcntl calls instead of six.
//
// SQLite accepts SQLITE_CONFIG_MUTEX only before it is initialized. If it was
// initialized first (by another package's init), SQLite keeps its own
// mutexes, which are correct too; Installed reports false.
//
// The environment variable SQLITESAFE_SCHED=off, set when the program
// starts, leaves SQLite as modernc.org/sqlite ships it: its own mutexes and
// sleep, initialized on first use.
package sqlitesched

import (
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	sqlite3 "modernc.org/sqlite/lib"
)

var (
	mutexes atomic.Bool // Install configured SQLite's mutexes
	sleeps  atomic.Bool // Install replaced the unix VFS's xSleep
	caches  atomic.Bool // Install gave page caches a group each
)

// Installed reports whether SQLite runs on this package's mutexes.
func Installed() bool { return mutexes.Load() }

// SeparateCaches reports whether the page caches created since init have a
// group of their own each (see separateCaches).
func SeparateCaches() bool { return caches.Load() }

// SleepInstalled reports whether the unix VFS sleeps through this package.
func SleepInstalled() bool { return sleeps.Load() }

// Env is the environment variable that, set to "off", keeps init from
// changing SQLite.
const Env = "SQLITESAFE_SCHED"

func init() {
	if os.Getenv(Env) != "off" {
		install()
	}
}

// install configures SQLite's mutexes, initializes SQLite and replaces the
// unix VFSes' xSleep. Each step that fails leaves SQLite as it was.
func install() {
	tls := libc.NewTLS()
	defer tls.Close()
	if configureMutexes(tls) {
		mutexes.Store(true)
	}
	if sqlite3.Xsqlite3_initialize(tls) != sqlite3.SQLITE_OK {
		return
	}
	separateCaches()
	caches.Store(true)
	first := sqlite3.Xsqlite3_vfs_find(tls, 0)
	if first == 0 {
		return
	}
	unixSleep := vfsAt(first).FxSleep
	for p := first; p != 0; p = vfsAt(p).FpNext {
		if v := vfsAt(p); v.FxSleep == unixSleep {
			v.FxSleep = cfunc(sleep)
		}
	}
	sleeps.Store(true)
	installWriteLock(tls, first)
}

// at returns the memory at p, an address in libc's heap or in SQLite's
// static data (never in Go's heap), as a *T.
func at[T any](p uintptr) *T { return (*T)(unsafe.Add(unsafe.Pointer(nil), p)) }

func vfsAt(p uintptr) *sqlite3.Tsqlite3_vfs { return at[sqlite3.Tsqlite3_vfs](p) }

// cfunc is the C function pointer of f as modernc.org/sqlite's transpiled
// code calls one: the address of the function value, which for a top-level
// function is static.
func cfunc[T any](f T) uintptr { return *(*uintptr)(unsafe.Pointer(&struct{ f T }{f})) }

// configureMutexes gives SQLite this package's mutex methods.
func configureMutexes(tls *libc.TLS) bool {
	for i := sqlite3.SQLITE_MUTEX_STATIC_MAIN; i < len(statics); i++ {
		if statics[i] = newMutex(false); statics[i] == 0 {
			return false
		}
	}
	methods := libc.Xcalloc(tls, 1, types.Size_t(unsafe.Sizeof(sqlite3.Tsqlite3_mutex_methods{})))
	args := libc.Xmalloc(tls, types.Size_t(unsafe.Sizeof(uintptr(0))))
	defer libc.Xfree(tls, args)
	if methods == 0 || args == 0 {
		return false
	}
	// SQLite copies the methods; the table is not needed afterwards.
	defer libc.Xfree(tls, methods)
	m := at[sqlite3.Tsqlite3_mutex_methods](methods)
	m.FxMutexInit = cfunc(mutexNoop)
	m.FxMutexEnd = cfunc(mutexNoop)
	m.FxMutexAlloc = cfunc(mutexAlloc)
	m.FxMutexFree = cfunc(mutexFree)
	m.FxMutexEnter = cfunc(mutexEnter)
	m.FxMutexTry = cfunc(mutexTry)
	m.FxMutexLeave = cfunc(mutexLeave)
	m.FxMutexHeld = cfunc(mutexHeld)
	m.FxMutexNotheld = cfunc(mutexNotheld)
	return sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_MUTEX, libc.VaList(args, methods)) == sqlite3.SQLITE_OK
}

// A mutex is one SQLite mutex. SQLite holds a handle to it (its
// sqlite3_mutex pointer, which it never dereferences): its index in
// mutexSlots. The mutexes live in Go's heap, where the race detector sees
// their atomics order what SQLite's code does under them.
type mutex struct {
	// state is 0 when free. Held, its two low bits are 1, or 2 when a
	// goroutine may be parked on it (stateMask), and for a recursive
	// mutex the bits above them are the holder's libc.TLS ID (holder): a
	// connection entering the mutex again sees that it holds it with one
	// load, and taking and leaving it is one compare-and-swap and one
	// swap, as for a fast mutex.
	state atomic.Uint64
	// first counts the waiters of connections that come first
	// (SetFirst): while there are any, the others leave it to them.
	first atomic.Int32
	// count is a recursive mutex's depth, touched by its holder only.
	count     int32
	recursive bool
}

const (
	stateHeld   = 1 // held, nobody parked
	stateParked = 2 // held, and a goroutine may be parked on it
	stateMask   = 3 // the bits that say which
)

// holder is the high bits of the state of a recursive mutex held by the
// connection of id.
func holder(id int32) uint64 { return uint64(uint32(id)) << 2 }

// heldBy reports whether state v is that of a mutex held by the connection
// whose holder bits are h (recursive mutexes only: a fast one has none).
func heldBy(v, h uint64) bool { return v != 0 && v&^stateMask == h }

const slotBits = 10

// mutexSlots are the mutexes by handle, in blocks allocated as needed:
// 16M handles at most, handle 0 being NULL.
var mutexSlots [1 << 14]atomic.Pointer[[1 << slotBits]mutex]

// handles hands out and takes back mutex handles.
var handles struct {
	sync.Mutex
	next uintptr   // the lowest handle never handed out, once past 0
	free []uintptr // handles freed, to hand out again
}

// statics are SQLite's static mutexes, by type: SQLITE_MUTEX_STATIC_MAIN (2)
// to SQLITE_MUTEX_STATIC_VFS3 (13).
var statics [sqlite3.SQLITE_MUTEX_STATIC_VFS3 + 1]uintptr

// get returns the mutex of handle h.
func get(h uintptr) *mutex { return &mutexSlots[h>>slotBits].Load()[h&(1<<slotBits-1)] }

// newMutex returns the handle of a free mutex, or 0 when every handle is in
// use (SQLite reports SQLITE_NOMEM).
func newMutex(recursive bool) uintptr {
	handles.Lock()
	defer handles.Unlock()
	var h uintptr
	if n := len(handles.free); n > 0 {
		h, handles.free = handles.free[n-1], handles.free[:n-1]
	} else {
		h = max(handles.next, 1)
		b := h >> slotBits
		if b >= uintptr(len(mutexSlots)) {
			return 0
		}
		if mutexSlots[b].Load() == nil {
			mutexSlots[b].Store(new([1 << slotBits]mutex))
		}
		handles.next = h + 1
	}
	get(h).recursive = recursive
	return h
}

func mutexNoop(tls *libc.TLS) int32 { return sqlite3.SQLITE_OK }

func mutexAlloc(tls *libc.TLS, typ int32) uintptr {
	switch {
	case typ == sqlite3.SQLITE_MUTEX_FAST:
		return newMutex(false)
	case typ == sqlite3.SQLITE_MUTEX_RECURSIVE:
		return newMutex(true)
	case typ >= sqlite3.SQLITE_MUTEX_STATIC_MAIN && int(typ) < len(statics):
		return statics[typ]
	}
	return 0
}

// mutexFree takes back a mutex SQLite no longer uses (free, never a static
// one).
func mutexFree(tls *libc.TLS, h uintptr) {
	if h == 0 {
		return
	}
	for _, s := range statics {
		if s == h {
			return
		}
	}
	m := get(h)
	m.state.Store(0)
	m.count = 0
	handles.Lock()
	handles.free = append(handles.free, h)
	handles.Unlock()
}

const (
	// spins is how many times a waiter looks at a held mutex before it
	// yields its processor. Measured (bench/peers, W4-8w: 8 reading
	// goroutines beside an inserting one), longer spins starve the writer:
	// 16 gave it 11.1-11.4k inserts/s, 64 5.7-6.7k, 256 0.7-1.4k, 4 12.4-12.9k.
	spins = 4
	// firstSpins is how many times a waiter that comes first looks,
	// and how many times the others look while it waits.
	firstSpins = 2048
	// firstShare: at one in firstShare of its waits, a waiter that
	// comes first waits as the others do first. That sets the writer's
	// share of the processors beside reading goroutines. Measured with 8
	// readers beside one writer (bench/peers W4-8w, medians of 3), in
	// inserts/s and reads/s: with no connection first, 9.4k and 134.7k
	// (page caches shared) or 3.8-5.9k and 211-325k (separate); first at
	// every wait, 37.8k and 103.1k (the writer takes a processor); at one
	// in 2, 5.7-10.1k and 227-249k; in 4, 9.2k and 211.1k; in 8, 21.6k
	// and 163.4k, and in one run beside the peers 14.6k and 191.6k
	// against mattn two pools' 13.0k and 135.2k.
	firstShare = 8
	// yields is how many times a waiter yields its processor before it
	// parks until the mutex is released (with 16 spins, none gave the
	// writer above 6.4-7.8k inserts/s, 2 to 32 gave 10.2-11.7k).
	yields = 8
)

// lock takes m for the holder bits h (0 for a fast mutex): at once when
// free; else it spins, yields, and parks, in that order, retrying after each.
func (m *mutex) lock(h uint64) {
	if m.first.Load() == 0 && m.state.CompareAndSwap(0, h|stateHeld) {
		return
	}
	for range yields {
		// While a connection that comes first waits, look longer: it
		// takes the mutex at the release, and this waiter the one after.
		for j := 0; j < spins || (j < firstSpins && m.first.Load() != 0); j++ {
			if m.first.Load() == 0 && m.state.Load() == 0 && m.state.CompareAndSwap(0, h|stateHeld) {
				return
			}
		}
		runtime.Gosched()
		if m.first.Load() == 0 && m.state.CompareAndSwap(0, h|stateHeld) {
			return
		}
	}
	// Park: mark the mutex as having a waiter; whoever releases it then
	// wakes one. Taking it with the mark set is harmless: the release
	// wakes a waiter that may find nobody to wait for.
	for {
		if m.first.Load() != 0 {
			// One that comes first waits: leave the mutex to it, but
			// keep the mark, or its release would wake nobody while
			// others are parked.
			if v := m.state.Load(); v&stateMask == stateHeld {
				m.state.CompareAndSwap(v, v&^stateMask|stateParked)
			}
			runtime.Gosched()
			continue
		}
		if m.takeOrMark(h) {
			return
		}
		park(m, false)
	}
}

// takeOrMark takes m for the holder bits h, marked as having a parked
// waiter, if it is free; else it marks the holder's state so, and reports
// false.
func (m *mutex) takeOrMark(h uint64) bool {
	for {
		v := m.state.Load()
		if v == 0 {
			if m.state.CompareAndSwap(0, h|stateParked) {
				return true
			}
			continue
		}
		if v&stateMask == stateParked || m.state.CompareAndSwap(v, v&^stateMask|stateParked) {
			return false
		}
	}
}

// lockFirst is lock for a connection that comes first. At one wait in
// firstShare that it loses, it first waits as the others do, yielding its
// processor once; then (and at the other waits at once) the others leave
// the mutex to it while it spins, longer than they do (a holder may hold
// the mutex across a system call), then parks, to be woken first and given
// the releaser's processor (unlock).
func (m *mutex) lockFirst(h uint64) {
	if m.state.CompareAndSwap(0, h|stateHeld) {
		return
	}
	if firstWaits.Add(1)%firstShare == 0 {
		for range spins {
			if m.state.Load() == 0 && m.state.CompareAndSwap(0, h|stateHeld) {
				return
			}
		}
		runtime.Gosched()
		if m.state.CompareAndSwap(0, h|stateHeld) {
			return
		}
	}
	m.first.Add(1)
	defer m.first.Add(-1)
	for range firstSpins {
		if m.state.Load() == 0 && m.state.CompareAndSwap(0, h|stateHeld) {
			return
		}
	}
	// Parked, it is woken first, and the releaser gives it its
	// processor (unlock).
	for !m.takeOrMark(h) {
		park(m, true)
	}
}

// firstWaits counts the waits that connections which come first lost.
var firstWaits atomic.Uint32

// firsts lists the libc.TLS IDs of the connections that come first at
// SQLite's mutexes (SetFirst); 0 is a free slot.
var firsts [16]atomic.Int32

// SetFirst makes the connection whose libc.TLS ID is id come first at
// SQLite's mutexes (on) or no longer (off): while it waits for one, other
// connections leave the mutex to it. sqlite-safe sets it for each writer
// connection, which beside reading goroutines would otherwise wait behind
// each of them, one processor's turn at a time. It reports whether id is
// listed (at most 16 are).
func SetFirst(id int32, on bool) bool {
	if id == 0 {
		return false
	}
	if !on {
		for i := range firsts {
			firsts[i].CompareAndSwap(id, 0)
		}
		return false
	}
	for i := range firsts {
		if firsts[i].CompareAndSwap(0, id) {
			return true
		}
	}
	return false
}

// isFirst reports whether the connection of id comes first.
func isFirst(id int32) bool {
	for i := range firsts {
		if firsts[i].Load() == id {
			return true
		}
	}
	return false
}

func (m *mutex) unlock() {
	if m.state.Swap(0)&stateMask == stateParked && wake(m) {
		// The waiter woken comes first: it runs now, on this
		// processor, rather than after this goroutine's turn.
		runtime.Gosched()
	}
}

// parked holds the goroutines parked on each mutex, by mutex. It is touched
// only by waiters that spun and yielded in vain, and by the releases that
// find one. A parked goroutine waits on a sync.Mutex of its own, which the
// release unlocks: unlike a channel, that works from any goroutine to any
// other, inside and outside testing/synctest bubbles alike, as the
// sync.Mutex of modernc.org/libc's pthread mutexes did.
var parked struct {
	sync.Mutex
	q map[*mutex][]*parkedWaiter
}

// parkedWaiter is one goroutine parked on a mutex.
type parkedWaiter struct {
	sync.Mutex      // locked until the waiter is woken
	first      bool // its connection comes first: woken before the others
}

// park waits until m is released, unless it was released already (no
// longer marked stateParked), and returns: the caller tries again.
func park(m *mutex, first bool) {
	parked.Lock()
	if m.state.Load()&stateMask != stateParked {
		parked.Unlock()
		return
	}
	if parked.q == nil {
		parked.q = make(map[*mutex][]*parkedWaiter)
	}
	w := &parkedWaiter{first: first}
	w.Lock()
	q := parked.q[m]
	i := len(q)
	if first {
		// Behind the other first ones, before the rest.
		for i = 0; i < len(q) && q[i].first; i++ {
		}
	}
	parked.q[m] = slices.Insert(q, i, w)
	parked.Unlock()
	w.Lock() // until wake unlocks it
}

// wake lets the longest-parked waiter of m, if any, try again: one whose
// connection comes first if any is parked. It reports whether it woke one
// of those.
func wake(m *mutex) (first bool) {
	parked.Lock()
	q := parked.q[m]
	if len(q) == 0 {
		parked.Unlock()
		return false
	}
	w := q[0]
	if len(q) == 1 {
		delete(parked.q, m)
	} else {
		parked.q[m] = q[1:]
	}
	parked.Unlock()
	w.Unlock()
	return w.first
}

func mutexEnter(tls *libc.TLS, p uintptr) {
	if p == 0 {
		return
	}
	m := get(p)
	if m.recursive {
		h := holder(tls.ID)
		if heldBy(m.state.Load(), h) {
			m.count++
			return
		}
		m.lockFor(tls, h)
		m.count = 1
		return
	}
	m.lockFor(tls, 0)
}

// lockFor is lock or lockFirst, as the connection of tls comes first or not.
func (m *mutex) lockFor(tls *libc.TLS, h uint64) {
	if m.first.Load() == 0 && m.state.CompareAndSwap(0, h|stateHeld) {
		return
	}
	if isFirst(tls.ID) {
		m.lockFirst(h)
		return
	}
	m.lock(h)
}

func mutexTry(tls *libc.TLS, p uintptr) int32 {
	if p == 0 {
		return sqlite3.SQLITE_OK
	}
	m := get(p)
	var h uint64
	if m.recursive {
		h = holder(tls.ID)
		if heldBy(m.state.Load(), h) {
			m.count++
			return sqlite3.SQLITE_OK
		}
	}
	if !m.state.CompareAndSwap(0, h|stateHeld) {
		return sqlite3.SQLITE_BUSY
	}
	if m.recursive {
		m.count = 1
	}
	return sqlite3.SQLITE_OK
}

func mutexLeave(tls *libc.TLS, p uintptr) {
	if p == 0 {
		return
	}
	m := get(p)
	if m.recursive {
		if m.count--; m.count > 0 {
			return
		}
	}
	m.unlock()
}

// mutexHeld and mutexNotheld serve SQLite's assertions (debug builds only):
// whether the calling connection holds a recursive mutex, whether anyone
// holds another.
func mutexHeld(tls *libc.TLS, p uintptr) int32 {
	if p == 0 {
		return 1
	}
	m := get(p)
	if v := m.state.Load(); v != 0 && (!m.recursive || heldBy(v, holder(tls.ID))) {
		return 1
	}
	return 0
}

func mutexNotheld(tls *libc.TLS, p uintptr) int32 {
	if p == 0 {
		return 1
	}
	m := get(p)
	if v := m.state.Load(); v == 0 || m.recursive && !heldBy(v, holder(tls.ID)) {
		return 1
	}
	return 0
}

// sleep is the unix VFS's xSleep. A delay under 10 µs yields the processor
// (SQLite's 1 µs pause between the retries of a read transaction's start is
// meant as a scheduler yield); a longer one parks the goroutine, not its
// thread, for at least that long.
func sleep(tls *libc.TLS, vfs uintptr, microseconds int32) int32 {
	if microseconds < 10 {
		runtime.Gosched()
		return microseconds
	}
	time.Sleep(time.Duration(microseconds) * time.Microsecond)
	return microseconds
}
