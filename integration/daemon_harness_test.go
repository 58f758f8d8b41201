package integration

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcdconfd/confd/internal/syncio"
)

// daemon is a confd process running in the background.
type daemon struct {
	cmd    *exec.Cmd
	out    *syncio.Buffer
	done   chan struct{}
	err    error
	waited bool
}

// startDaemon starts confd with args; when the test ends it is stopped with
// SIGTERM and must exit 0.
func startDaemon(t *testing.T, env []string, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(confdBin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	d := &daemon{cmd: cmd, out: &syncio.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start confd: %v", err)
	}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		if !d.waited {
			// An in-flight sync, a reload included, may finish first.
			if code := d.stop(t, 60*time.Second); code != 0 {
				t.Errorf("confd exited %d on SIGTERM", code)
			}
		}
		t.Logf("confd %s output:\n%s", strings.Join(args, " "), d.out)
	})
	return d
}

// stop sends SIGTERM and waits at most timeout for the exit code.
func (d *daemon) stop(t *testing.T, timeout time.Duration) int {
	t.Helper()
	d.waited = true
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(timeout):
		_ = d.cmd.Process.Kill()
		<-d.done
		t.Errorf("confd did not exit within %s of SIGTERM", timeout)
		return -1
	}
	if d.err == nil {
		return 0
	}
	if ee, ok := d.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

func (d *daemon) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal confd: %v", err)
	}
}

// waitLog waits until the output contains s.
func (d *daemon) waitLog(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "confd to log "+s, func() bool { return strings.Contains(d.out.String(), s) })
}

// eventually polls cond every 10 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFile waits until path holds want.
func waitFile(t *testing.T, path, want string, timeout time.Duration) {
	t.Helper()
	var got string
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(path)
		got = string(b)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s to hold:\n%s\nit holds:\n%s", timeout, path, want, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fileWatcher reads a file again and again and checks every version it sees.
type fileWatcher struct {
	cancel context.CancelFunc
	done   chan struct{}
	reads  int
	bad    []string
}

// watchFile starts reading path every millisecond (for at most two minutes)
// and records every content for which valid returns false. A missing file
// is fine.
func watchFile(path string, valid func(string) bool) *fileWatcher {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	w := &fileWatcher{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			if b, err := os.ReadFile(path); err == nil {
				w.reads++
				if !valid(string(b)) && len(w.bad) < 5 {
					w.bad = append(w.bad, string(b))
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return w
}

// check stops the watcher and fails the test if it saw an invalid file.
func (w *fileWatcher) check(t *testing.T) {
	t.Helper()
	w.cancel()
	<-w.done
	if len(w.bad) > 0 {
		t.Errorf("a reader saw %d invalid versions of the file, e.g.:\n%q", len(w.bad), w.bad[0])
	}
	if w.reads == 0 {
		t.Error("the reader never saw the file")
	}
}
