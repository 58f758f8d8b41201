// Command demo walks through confd's HAProxy example on this machine, with
// nothing installed but Go: it starts an etcd inside its own process,
// registers three servers, prepares a copy of the repository's conf.d/ and
// templates/ that writes into a temporary directory, runs confd once as a
// user would and shows the configuration it rendered. When haproxy is
// installed it also checks that configuration with "haproxy -c".
//
// Then it runs confd as a daemon (-watch) for a few seconds: it registers
// one more server and deregisters another, shows how the file follows each
// change, and stops the daemon with SIGTERM.
//
// Everything lives in one temporary directory that is removed at exit, also
// on Ctrl-C. Run it from the repository root with "make demo".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/etcdconfd/confd/internal/syncio"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses the flags, walks through the demo and returns the exit code.
// The walk-through goes to stdout, what confd and haproxy log to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// The daemon's log is copied to stderr while the demo writes to both.
	stdout, stderr = syncio.NewWriter(stdout), syncio.NewWriter(stderr)
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	confd := fs.String("confd", "bin/confd", "confd `binary` to run")
	src := fs.String("confdir-src", ".", "`directory` holding the example's conf.d/ and templates/")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "demo: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	bin, err := exec.LookPath(*confd)
	if err != nil {
		fmt.Fprintf(stderr, "demo: no confd binary at %s (build it with 'make build' or pass -confd): %v\n", *confd, err)
		return exitFailure
	}

	work, err := os.MkdirTemp("", "confd-demo-")
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return exitFailure
	}
	defer os.RemoveAll(work)

	d := newDemo(bin, *src, work, stdout, stderr)
	defer d.close()
	if err := walk(ctx, append(d.onetime(), d.watch()...)); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "demo: interrupted; cleaning up")
		} else {
			fmt.Fprintf(stderr, "demo: %v\n", err)
		}
		return exitFailure
	}
	fmt.Fprintf(stdout, "==> done; removing %s\n", work)
	return exitOK
}
