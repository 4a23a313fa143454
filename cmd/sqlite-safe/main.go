// Command sqlite-safe is the companion tool of the sqlite-safe driver.
//
// Usage:
//
//	sqlite-safe <command> [flags]
//
// The commands are:
//
//	demo        run one concurrent workload on modernc.org/sqlite (defaults
//	            and tuned) and on sqlite-safe, and compare errors, lost writes
//	            and latency side by side
//	            (demo --dqlite: the same on a three-node dqlite cluster,
//	            the leader killed halfway; built from the repository's
//	            dqlite/ module)
//	doctor      run the "database is locked" checklist on a SQLite database
//	            file, read-only: journal mode, -wal/-shm/-journal,
//	            permissions, file system, free space, processes and locks,
//	            quick_check
//	backup      write a consistent copy of a database while it is in use
//	checkpoint  copy a WAL database's -wal into the database file now
//	help        print this help, or a command's flags with "help <command>"
//
// "sqlite-safe demo" needs no setup: it works in a temporary directory that
// it removes at the end (unless -keep is given). "sqlite-safe doctor FILE"
// never changes the database or its files; its exit status is 1 if it found
// a problem.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// command is one subcommand. run gets the arguments after the command name
// and returns the exit status; it must not call os.Exit.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

// commands lists the subcommands in the order usage shows them. It is
// filled in init because help refers to it.
var commands []command

func init() {
	commands = []command{
		{"demo", "compare modernc.org/sqlite and sqlite-safe under a concurrent workload", runDemo},
		{"doctor", "diagnose a SQLite database file, read-only (\"database is locked\" checklist)", runDoctor},
		{"backup", "write a consistent copy of a database while it is in use", runBackup},
		{"checkpoint", "copy a WAL database's -wal into the database file now", runCheckpoint},
		{"help", "print this help, or a command's flags with \"help <command>\"", runHelp},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches args (without the program name) to a subcommand and returns
// the exit status: 2 for a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	if name == "-h" || name == "-help" || name == "--help" {
		name = "help"
	}
	if c, ok := lookup(name); ok {
		return c.run(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "sqlite-safe: unknown command %q\n\n", name)
	usage(stderr)
	return 2
}

// lookup finds the subcommand called name.
func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// usage writes the list of subcommands to w.
func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("usage: sqlite-safe <command> [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-10s  %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun \"sqlite-safe help <command>\" for a command's flags.\n")
	io.WriteString(w, b.String())
}

// runHelp prints the usage on stdout, or with one argument the flags of that
// command (by running it with -h).
func runHelp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (len(args) == 1 && args[0] == "help") {
		usage(stdout)
		return 0
	}
	if len(args) == 1 {
		if c, ok := lookup(args[0]); ok {
			return c.run([]string{"-h"}, stdout, stdout)
		}
		fmt.Fprintf(stderr, "sqlite-safe: unknown command %q\n\n", args[0])
	}
	usage(stderr)
	return 2
}
