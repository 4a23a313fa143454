package sqlitesafe

import "testing"

// TestRoute is the routing decision as a table: where each kind of statement
// runs in each state of a connection.
func TestRoute(t *testing.T) {
	const (
		read    stmtFlags = 0
		write             = flagWrite
		batch             = flagWrite | flagBatchable
		txctl             = flagTxControl | flagBegin
		session           = flagSession
		sesWr             = flagSession | flagWrite
	)
	file := connState{queue: true}
	tests := []struct {
		name  string
		state connState
		flags stmtFlags
		want  target
	}{
		{"read on a file", file, read, toReader},
		{"write on a file", file, write, toWriter},
		{"batchable write on a file", file, batch, toWriter},
		{"BEGIN as text", file, txctl, toTxControl},
		{"TEMP table: pins", file, sesWr, toOwn},
		{"connection PRAGMA: pins", file, session, toOwn},
		{"read on a pinned connection", connState{queue: true, pinned: true}, read, toOwn},
		{"write on a pinned connection", connState{queue: true, pinned: true}, write, toOwn},
		{"anything inside a transaction", connState{queue: true, inTx: true}, write, toTx},
		{"read inside a transaction", connState{queue: true, inTx: true}, read, toTx},
		{"BEGIN inside a transaction: SQLite says no", connState{queue: true, inTx: true}, txctl, toTx},
		{"read on a pinned connection in a transaction", connState{queue: true, inTx: true, pinned: true}, read, toTx},
		{"write with the queue off", connState{}, write, toOwn},
		{"read with the queue off", connState{}, read, toReader},
		{"write on a read-only handle: the reader refuses it", connState{readOnly: true}, write, toReader},
		{"read on a read-only handle", connState{readOnly: true}, read, toReader},
		{"TEMP table on a read-only handle", connState{readOnly: true}, sesWr, toOwn},
		{"BEGIN on a read-only handle", connState{readOnly: true}, txctl, toTxControl},
		{"read in memory: one connection", connState{memory: true, queue: true}, read, toWriter},
		{"write in memory", connState{memory: true, queue: true}, write, toWriter},
		{"TEMP table in memory", connState{memory: true, queue: true}, sesWr, toWriter},
		{"read in memory with the queue off", connState{memory: true}, read, toWriter},
		{"BEGIN in memory", connState{memory: true, queue: true}, txctl, toTxControl},
	}
	for _, tt := range tests {
		if got := route(tt.state, tt.flags); got != tt.want {
			t.Errorf("%s: route(%+v, %b) = %d, want %d", tt.name, tt.state, tt.flags, got, tt.want)
		}
	}
}
