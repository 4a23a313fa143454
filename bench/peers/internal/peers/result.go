package peers

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Result is what a cell prints on its standard output, as one line of JSON.
type Result struct {
	Config   string     `json:"config"`
	Workload string     `json:"workload"`
	SQLite   string     `json:"sqlite_version"`
	Settings []Settings `json:"settings"`
	Streams  []Stream   `json:"streams"`
	Seconds  float64    `json:"seconds"` // the measured phase, until the last call ended
	// Problems lists what was not as it must be: a count that is not exact,
	// a setting read back otherwise than configured. Empty for a good cell.
	Problems []string `json:"problems,omitempty"`
}

// Settings are a configuration's settings as read back from one of its
// pools.
type Settings struct {
	// Via is how they were read: "write tx" (inside a write transaction on
	// the writer) or "query" (plain queries, as reads are made).
	Via         string `json:"via"`
	JournalMode string `json:"journal_mode"`
	BusyTimeout int64  `json:"busy_timeout"`
	Synchronous int64  `json:"synchronous"`
	ForeignKeys int64  `json:"foreign_keys"`
	// TxLock is how a write transaction began, as seen from another
	// connection (write tx only): "immediate" if the write lock was taken
	// at BEGIN, "deferred" if it was not.
	TxLock string `json:"txlock,omitempty"`
}

// Stream is one rate of a cell: calls of one kind from its goroutines.
type Stream struct {
	Name       string  `json:"name"`
	Calls      int64   `json:"calls"`  // calls that succeeded
	Errors     int64   `json:"errors"` // calls that failed
	FirstError string  `json:"first_error,omitempty"`
	Ops        int64   `json:"ops"` // what the rate counts: calls, or rows for bulk loads
	PerSec     float64 `json:"per_sec"`
	// Latencies of every call, failed ones too, in nanoseconds.
	P50  int64 `json:"p50_ns"`
	P99  int64 `json:"p99_ns"`
	P999 int64 `json:"p999_ns"`
	Max  int64 `json:"max_ns"`
}

// ParseResult returns the result in a runner's standard output: its last
// line that starts with "{".
func ParseResult(out []byte) (Result, error) {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		line := bytes.TrimSpace(lines[i])
		if !bytes.HasPrefix(line, []byte("{")) {
			continue
		}
		var r Result
		if err := json.Unmarshal(line, &r); err != nil {
			return Result{}, fmt.Errorf("peers: the runner's result is not valid JSON: %w", err)
		}
		if r.Config == "" || r.Workload == "" || len(r.Streams) == 0 {
			return Result{}, fmt.Errorf("peers: the runner's result names no configuration, workload or stream")
		}
		return r, nil
	}
	return Result{}, fmt.Errorf("peers: the runner printed no result (no line starting with {)")
}
