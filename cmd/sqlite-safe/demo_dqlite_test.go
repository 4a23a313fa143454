package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDqliteFlag(t *testing.T) {
	for _, tc := range []struct {
		args, rest []string
		on         bool
	}{
		{nil, nil, false},
		{[]string{"-goroutines", "4"}, []string{"-goroutines", "4"}, false},
		{[]string{"--dqlite"}, nil, true},
		{[]string{"-dqlite", "-duration", "2s"}, []string{"-duration", "2s"}, true},
		{[]string{"-duration", "2s", "--dqlite=true"}, []string{"-duration", "2s"}, true},
		{[]string{"-dqlite=false", "-keep"}, []string{"-dqlite=false", "-keep"}, false},
		{[]string{"-dqlite=maybe"}, []string{"-dqlite=maybe"}, false}, // the flag package reports it
		{[]string{"--", "-dqlite"}, []string{"--", "-dqlite"}, false},
		{[]string{"-dqlitex"}, []string{"-dqlitex"}, false},
	} {
		rest, on := dqliteFlag(tc.args)
		if on != tc.on || !slices.Equal(rest, tc.rest) {
			t.Errorf("dqliteFlag(%q) = %q, %v; want %q, %v", tc.args, rest, on, tc.rest, tc.on)
		}
	}
}

// TestFindDqliteModule: from this directory (cmd/sqlite-safe in the repository) the walk finds the
// repository's dqlite/; from a directory with a dqlite/go.mod of another module, or none, it
// finds nothing.
func TestFindDqliteModule(t *testing.T) {
	got, err := findDqliteModule(".")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Abs(filepath.Join("..", "..", "dqlite"))
	if got != want {
		t.Errorf("found %s, want %s", got, want)
	}
	if _, err := findDqliteModule(filepath.Join("..", "..", "dqlite", "internal")); err != nil {
		t.Errorf("from inside dqlite/: %v", err)
	}

	other := t.TempDir()
	if err := os.MkdirAll(filepath.Join(other, "dqlite", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "dqlite", "go.mod"), []byte("module example.com/dqlite\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if dir, err := findDqliteModule(filepath.Join(other, "dqlite", "sub")); err == nil {
		t.Errorf("found %s, a dqlite/ of another module", dir)
	}
}

// TestDemoDqliteWithoutSource: outside the repository, demo --dqlite prints the command to run
// in a clone, with the flags given, and fails.
func TestDemoDqliteWithoutSource(t *testing.T) {
	t.Chdir(t.TempDir())
	var stdout, stderr bytes.Buffer
	if code := run([]string{"demo", "--dqlite", "-duration", "2s"}, &stdout, &stderr); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	for _, want := range []string{"cd sqlitesafe/dqlite && go run -tags nosqlite3 ./cmd/demo -duration 2s",
		"apt-get install -y go-dqlite"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not contain %q:\n%s", want, stderr.String())
		}
	}
}

// TestDemoDqliteBuilds: in the repository, demo --dqlite builds the dqlite demo and runs it with
// the flags given (here -h, which needs no cluster), passing its output and status on.
func TestDemoDqliteBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the dqlite module's demo")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"demo", "--dqlite", "-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "usage: sqlite-safe demo --dqlite [flags]") {
		t.Errorf("no usage of the dqlite demo in:\n%s", stderr.String())
	}
	var out bytes.Buffer
	if code := run([]string{"demo", "--dqlite", "-runs", "nosuch"}, &out, &out); code != 2 {
		t.Errorf("-runs nosuch: exit status %d, want the dqlite demo's 2; output:\n%s", code, out.String())
	}
}
