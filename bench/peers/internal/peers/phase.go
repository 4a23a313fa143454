package peers

import (
	"math/rand/v2"
	"sync"
	"time"
)

// stream is one kind of call of a cell, made by its own goroutines.
type stream struct {
	name        string
	g           int   // goroutines
	rowsPerCall int64 // what one successful call counts for in the rate
	call        func(w *worker) error
	begin, end  func() error // optional: before the goroutines start, and after they end (timed)
}

// worker is what one goroutine of a stream keeps: its random numbers and
// what its successful calls changed, for the exact-count check.
type worker struct {
	rng         *rand.Rand
	inserted    int64 // rows of t inserted by successful calls
	incremented int64 // sum of the counter increments of successful calls
}

// streamStats is what one stream did in a phase.
type streamStats struct {
	calls, errors int64
	firstError    string
	hist          Hist
	inserted      int64
	incremented   int64
}

// phase is what every stream did in one phase of a cell.
type phase struct {
	streams []streamStats
	elapsed time.Duration // from the start until the last stream ended
}

// runPhase runs every stream for d: each goroutine calls until the
// deadline, timing each call. The effects of a stream whose end fails are
// dropped (its calls are counted as failed), since its transaction did not
// commit.
func runPhase(streams []*stream, d time.Duration, seed uint64) phase {
	ph := phase{streams: make([]streamStats, len(streams))}
	start := make(chan struct{})
	var deadline time.Time
	var all sync.WaitGroup
	for si, s := range streams {
		st := &ph.streams[si]
		if s.begin != nil {
			if err := s.begin(); err != nil {
				st.errors++
				st.firstError = "begin: " + err.Error()
				continue
			}
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for gi := range s.g {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w := &worker{rng: rand.New(rand.NewPCG(seed, uint64(si)<<32|uint64(gi)))}
				h := new(Hist)
				var calls, errs int64
				var first string
				<-start
				for {
					t0 := time.Now()
					if !t0.Before(deadline) {
						break
					}
					err := s.call(w)
					h.Record(time.Since(t0))
					if err != nil {
						errs++
						if first == "" {
							first = err.Error()
						}
						continue
					}
					calls++
				}
				mu.Lock()
				defer mu.Unlock()
				st.hist.Merge(h)
				st.calls += calls
				st.errors += errs
				if st.firstError == "" {
					st.firstError = first
				}
				st.inserted += w.inserted
				st.incremented += w.incremented
			}()
		}
		all.Add(1)
		go func() {
			defer all.Done()
			wg.Wait()
			if s.end != nil {
				if err := s.end(); err != nil {
					st.errors += st.calls
					st.calls = 0
					st.inserted, st.incremented = 0, 0
					st.firstError = "end: " + err.Error()
				}
			}
		}()
	}
	t0 := time.Now()
	deadline = t0.Add(d)
	close(start)
	all.Wait()
	ph.elapsed = time.Since(t0)
	return ph
}
