package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dqliteModule is the module that holds the demo on a dqlite cluster (and the dqlite engine); it
// is a nested module, so that this command's module does not require go-dqlite.
const dqliteModule = "github.com/sqlitesafe/sqlitesafe/dqlite"

// dqliteDemoPkg is the demo's package inside dqliteModule's directory.
const dqliteDemoPkg = "./cmd/demo"

// dqliteFlag reports whether args ask for the demo on a dqlite cluster (-dqlite or --dqlite,
// or =true), and returns them without that flag, for the dqlite demo, which has flags of its own.
// It looks at the flags up to "--" or the first argument that is not one.
func dqliteFlag(args []string) (rest []string, on bool) {
	for i, a := range args {
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "dqlite" {
			rest = append(rest, a)
			continue
		}
		b := true
		if hasValue {
			var err error
			if b, err = strconv.ParseBool(value); err != nil {
				rest = append(rest, a) // the flag package reports it
				continue
			}
		}
		if !b {
			rest = append(rest, a)
			continue
		}
		on = true
	}
	return rest, on
}

// findDqliteModule walks up from dir to the directory whose dqlite/go.mod declares dqliteModule
// (the repository's root) and returns that dqlite directory.
func findDqliteModule(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		candidate := filepath.Join(dir, "dqlite")
		if modulePath(filepath.Join(candidate, "go.mod")) == dqliteModule {
			return candidate, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no dqlite/go.mod of module %s in this directory or above", dqliteModule)
		}
		dir = parent
	}
}

// modulePath is the module path a go.mod file declares, or "" if there is none.
func modulePath(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`)
		}
	}
	return ""
}

// shellJoin quotes each of args for a POSIX shell where needed and joins them with spaces.
func shellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	return strings.Join(quoted, " ")
}

// runDemoDqlite is "demo --dqlite": it builds the dqlite demo from the repository's dqlite/
// directory (go build -tags nosqlite3 ./cmd/demo, the same program that go run would build) and
// runs it with args, passing its output and exit status on and Ctrl-C and SIGTERM to it. Without
// the source or without go, it prints the command to run.
func runDemoDqlite(args []string, stdout, stderr io.Writer) int {
	runCmd := "go run -tags nosqlite3 " + dqliteDemoPkg
	if len(args) > 0 {
		runCmd += " " + shellJoin(args)
	}
	wd, err := os.Getwd()
	if err == nil {
		var dir string
		if dir, err = findDqliteModule(wd); err == nil {
			return buildAndRunDqliteDemo(dir, runCmd, args, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "sqlite-safe demo --dqlite: %v\n"+
		"The demo on a dqlite cluster is built from the source of the nested module\n"+
		"%s. In a clone of the repository\n"+
		"(git clone https://github.com/sqlitesafe/sqlitesafe), run\n\n"+
		"\tcd sqlitesafe/dqlite && %s\n\n"+
		"It needs dqlite-demo: apt-get install -y go-dqlite\n",
		err, dqliteModule, runCmd)
	return 1
}

func buildAndRunDqliteDemo(dir, runCmd string, args []string, stdout, stderr io.Writer) int {
	goBin, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintf(stderr, "sqlite-safe demo --dqlite: %v\nInstall Go, then run:\n\n\tcd %s && %s\n",
			err, shellQuote(dir), runCmd)
		return 1
	}
	tmp, err := os.MkdirTemp("", "sqlite-safe-dqlite-build-")
	if err != nil {
		fmt.Fprintf(stderr, "sqlite-safe demo --dqlite: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "sqlite-safe-dqlite-demo")
	fmt.Fprintf(stderr, "building the dqlite demo in %s (go build -tags nosqlite3 %s)\n", dir, dqliteDemoPkg)
	build := exec.Command(goBin, "build", "-tags", "nosqlite3", "-o", bin, dqliteDemoPkg)
	build.Dir = dir
	build.Stdout, build.Stderr = stderr, stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(stderr, "sqlite-safe demo --dqlite: building the dqlite demo: %v\n(to run it by hand: cd %s && %s)\n",
			err, shellQuote(dir), runCmd)
		return 1
	}

	child := exec.Command(bin, args...)
	child.Dir = dir
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, stdout, stderr
	child.SysProcAttr = childSysProcAttr()
	// Ctrl-C reaches the child from the terminal (same process group); this process waits for it
	// to stop its nodes, and passes a SIGTERM or an interrupt sent to this process alone on.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := child.Start(); err != nil {
		fmt.Fprintf(stderr, "sqlite-safe demo --dqlite: %v\n", err)
		return 1
	}
	// A running program's file can go on Linux: if this process is killed, nothing is left behind.
	// Where it cannot, the deferred RemoveAll removes it at the end.
	_ = os.RemoveAll(tmp)
	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = child.Process.Signal(s)
		case err := <-done:
			var exit *exec.ExitError
			switch {
			case err == nil:
				return 0
			case errors.As(err, &exit):
				if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					return 128 + int(ws.Signal())
				}
				return exit.ExitCode()
			default:
				fmt.Fprintf(stderr, "sqlite-safe demo --dqlite: %v\n", err)
				return 1
			}
		}
	}
}
