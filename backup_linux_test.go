package sqlitesafe

import (
	"os"
	"path/filepath"
	"testing"
)

// A running backup's temporary file survives another backup's sweep (an
// OFD lock of another open file description stands for another process);
// once the backup is done with it, the sweep removes it and its -journal.
func TestSweepSparesRunningBackup(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "copy.db")
	name, done, err := createPartial(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name+"-journal", []byte("j"), 0o600); err != nil {
		t.Fatal(err)
	}
	removeIfDead(name)
	for _, f := range []string{name, name + "-journal"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("the sweep removed a running backup's %s: %v", filepath.Base(f), err)
		}
	}
	removeStalePartials(dst) // this process's own: not even opened
	if _, err := os.Stat(name); err != nil {
		t.Fatalf("the sweep removed this process's running backup: %v", err)
	}
	done()
	removeStalePartials(dst)
	for _, f := range []string{name, name + "-journal"} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s of a finished backup is still there: %v", filepath.Base(f), err)
		}
	}
}
