package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	udiff "github.com/aymanbagabas/go-udiff"
)

const (
	// renderTimeout bounds each wait for the daemon to write a file.
	renderTimeout = 10 * time.Second
	// stopTimeout bounds the wait for the daemon to exit after SIGTERM.
	stopTimeout = 15 * time.Second
	// pollEvery is how often the demo looks at the files it waits for.
	pollEvery = 20 * time.Millisecond
)

// While the daemon runs, newServer registers and leaving deregisters;
// staying is registered throughout, so a file that names it lists the
// servers.
var (
	newServer = server{"sleepy_turing", "192.168.1.22:49160"}
	leaving   = servers[0]
	staying   = servers[1]
)

// daemon is a confd started with -watch, running in the background.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited and err is set
	err  error         // what cmd.Wait returned
}

// exited reports whether the daemon has exited, without waiting.
func (p *daemon) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// watch is the walk-through of the daemon, after onetime's steps: confd
// -watch follows etcd while servers come and go, then stops on SIGTERM.
func (d *demo) watch() []step {
	return []step{
		{"start the daemon", d.startDaemon},
		{"wait for the first render", d.waitFirstRender},
		{"register a server", d.registerOne},
		{"deregister a server", d.deregisterOne},
		{"stop the daemon", d.stopDaemon},
	}
}

func (d *demo) startDaemon(_ context.Context) error {
	for _, o := range d.outputs {
		if err := os.Remove(o.dest); err != nil {
			return fmt.Errorf("remove %s: %w", o.dest, err)
		}
	}
	args := d.confdArgs("-watch")
	d.say("==> running confd as a daemon that watches etcd (its log follows on stderr):")
	d.say("    $ %s %s", d.confd, strings.Join(args, " "))
	d.say("    the files of the run above were removed first, so that you can see the daemon write them")
	cmd := exec.Command(d.confd, args...)
	cmd.Stdout, cmd.Stderr = d.out, d.errOut
	p, err := spawn(cmd)
	if err != nil {
		return err
	}
	d.daemon = p
	return nil
}

// spawn starts cmd and a goroutine that waits for it; stop ends both.
func spawn(cmd *exec.Cmd) (*daemon, error) {
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(cmd.Path), err)
	}
	p := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (d *demo) waitFirstRender(ctx context.Context) error {
	start := time.Now()
	d.rendered = make(map[string]string, len(d.outputs))
	for _, o := range d.outputs {
		content, err := d.waitContent(ctx, o.dest, "confd to write "+o.dest, func(string) bool { return true })
		if err != nil {
			return err
		}
		d.rendered[o.dest] = content
	}
	d.say("==> confd rendered %s after %s", d.destNames(), since(start))
	return nil
}

func (d *demo) registerOne(ctx context.Context) error {
	key := serversPrefix + newServer.name
	d.say("==> registering one more server: put %s = %s", key, newServer.addr)
	if err := d.put(ctx, key, newServer.addr); err != nil {
		return err
	}
	return d.showChange(ctx, "list "+newServer.name, func(s string) bool { return strings.Contains(s, newServer.name) })
}

func (d *demo) deregisterOne(ctx context.Context) error {
	key := serversPrefix + leaving.name
	d.say("==> deregistering a server, as its container would on exit: delete %s", key)
	dctx, cancel := context.WithTimeout(ctx, etcdTimeout)
	defer cancel()
	if _, err := d.client.Delete(dctx, key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return d.showChange(ctx, "drop "+leaving.name, func(s string) bool { return !strings.Contains(s, leaving.name) })
}

// showChange waits until every file that lists the servers satisfies ok,
// then prints how each changed.
func (d *demo) showChange(ctx context.Context, what string, ok func(string) bool) error {
	start := time.Now()
	changed := 0
	for _, o := range d.outputs {
		before := d.rendered[o.dest]
		if !strings.Contains(before, staying.name) {
			continue // this file does not list the servers
		}
		after, err := d.waitContent(ctx, o.dest, fmt.Sprintf("%s to %s", o.dest, what), ok)
		if err != nil {
			return err
		}
		d.say("==> confd updated %s after %s:", o.dest, since(start))
		name := filepath.Base(o.dest)
		if _, err := d.out.Write([]byte(udiff.Unified(name+" (before)", name+" (after)", before, after))); err != nil {
			return err
		}
		d.rendered[o.dest] = after
		changed++
	}
	if changed == 0 {
		return fmt.Errorf("no rendered file lists the servers (%s)", d.destNames())
	}
	return nil
}

// waitContent polls path until its content satisfies ok and returns it. It
// gives up after renderTimeout, when ctx ends or when the daemon exits.
func (d *demo) waitContent(ctx context.Context, path, what string, ok func(string) bool) (string, error) {
	var content string
	err := waitFor(ctx, renderTimeout, d.daemon.done, what, func() (bool, error) {
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		content = string(b)
		return ok(content), nil
	})
	return content, err
}

// waitFor calls check every pollEvery until it reports true or fails. It
// gives up after timeout, when ctx ends or when exited is closed.
func waitFor(ctx context.Context, timeout time.Duration, exited <-chan struct{}, what string, check func() (bool, error)) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		done, err := check()
		switch {
		case err != nil:
			return fmt.Errorf("wait for %s: %w", what, err)
		case done:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", what, ctx.Err())
		case <-exited:
			return fmt.Errorf("wait for %s: confd exited", what)
		case <-deadline.C:
			return fmt.Errorf("wait for %s: nothing after %s", what, timeout)
		case <-tick.C:
		}
	}
}

func (d *demo) stopDaemon(_ context.Context) error {
	d.say("==> stopping confd with SIGTERM, as systemctl stop would")
	code, err := d.daemon.stop(stopTimeout)
	if err != nil {
		return err
	}
	d.say("    confd exited with status %d", code)
	if code != 0 {
		return fmt.Errorf("confd exited with status %d, want 0", code)
	}
	return nil
}

// stop sends SIGTERM and waits up to timeout for the daemon to exit, then
// kills it. It returns the exit status.
func (p *daemon) stop(timeout time.Duration) (int, error) {
	if !p.exited() {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return 0, fmt.Errorf("signal confd: %w", err)
		}
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return 0, fmt.Errorf("kill confd: %w", err)
		}
		<-p.done
		return 0, fmt.Errorf("confd did not exit within %s of SIGTERM; killed it", timeout)
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		return 0, fmt.Errorf("confd: %w", p.err)
	}
	return p.cmd.ProcessState.ExitCode(), nil
}

// destNames lists the destinations of the outputs.
func (d *demo) destNames() string {
	names := make([]string, len(d.outputs))
	for i, o := range d.outputs {
		names[i] = o.dest
	}
	return strings.Join(names, ", ")
}

// since is the time since start, rounded for reading.
func since(start time.Time) string {
	return time.Since(start).Round(time.Millisecond).String()
}
