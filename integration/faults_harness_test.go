package integration

// Helpers for the fault tests in faults_test.go:
//
//   - faultLength: the length of an outage, longer with CONFD_LONG_FAULTS=1;
//   - readUsage: CPU time, open files and threads of a process, from /proc;
//   - watchDest: a reader that polls a destination through a fault;
//   - startWriter: a client that changes the servers again and again;
//   - etcdServers: the servers in etcd now, as renderServers wants them.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdconfd/confd/internal/etcdtest"
)

const (
	// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat:
	// 100 on every architecture Go runs confd on.
	clockTicks = 100
	// idleCPUPer30s is the CPU time confd may use per 30 s of waiting for
	// etcd: a few hundred attempts cost far less.
	idleCPUPer30s = 500 * time.Millisecond
	// minCPUBudget is the least CPU time a short outage is allowed, ten
	// clock ticks, so that one tick of rounding cannot fail it.
	minCPUBudget = 100 * time.Millisecond
	// fdSlack is how many more open files confd may have after a fault
	// than before it (connections being replaced).
	fdSlack = 3
)

// faultLength is short, or long when CONFD_LONG_FAULTS=1 (make test-faults).
func faultLength(short, long time.Duration) time.Duration {
	if os.Getenv("CONFD_LONG_FAULTS") == "1" {
		return long
	}
	return short
}

// procUsage is what a process has used so far.
type procUsage struct {
	cpu     time.Duration // user + system
	fds     int           // open file descriptors
	threads int
}

// readUsage reads the usage of process pid from /proc. There is no way to
// count a Go program's goroutines from outside; a leaked goroutine almost
// always holds a connection, pipe or file, so the open files stand in.
func readUsage(t *testing.T, pid int) procUsage {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("read usage of confd: %v", err)
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after it. utime and stime are fields 14 and 15 of stat(5).
	rest := b[bytes.LastIndexByte(b, ')')+1:]
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		t.Fatalf("short /proc/%d/stat: %q", pid, b)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("parse /proc/%d/stat: %v", pid, err)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("list open files of confd: %v", err)
	}
	u := procUsage{cpu: time.Duration(utime+stime) * time.Second / clockTicks, fds: len(fds)}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status of confd: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			u.threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return u
}

// checkIdleCPU fails the test when confd used more than its budget of CPU
// time while it waited out an outage of length outage.
func checkIdleCPU(t *testing.T, before, after procUsage, outage time.Duration) {
	t.Helper()
	used := after.cpu - before.cpu
	budget := max(time.Duration(float64(idleCPUPer30s)*outage.Seconds()/30), minCPUBudget)
	t.Logf("cpu: confd used %s of CPU during the %s outage (budget %s); threads %d -> %d",
		used, outage.Round(time.Second), budget, before.threads, after.threads)
	if used > budget {
		t.Errorf("confd used %s of CPU while it waited %s for etcd, want at most %s", used, outage.Round(time.Second), budget)
	}
}

// checkFDs waits at most 15 s for confd to have at most fdSlack more open
// files than before, and fails the test otherwise. Fewer is fine: a
// connection to a member that came back may be opened only when needed.
func checkFDs(t *testing.T, pid int, before procUsage) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		now := readUsage(t, pid)
		if now.fds-before.fds <= fdSlack {
			t.Logf("fds: confd had %d open files before the fault, %d after", before.fds, now.fds)
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("confd has %d open files after the fault, had %d before: %s", now.fds, before.fds, openFiles(pid))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// openFiles lists what the open files of pid point to.
func openFiles(pid int) string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	var b strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join(dir, e.Name()))
		fmt.Fprintf(&b, "\n  %s -> %s", e.Name(), target)
	}
	return b.String()
}

// destWatcher reads a destination again and again through a fault.
type destWatcher struct {
	cancel   context.CancelFunc
	done     chan struct{}
	reads    int
	versions int
	bad      []string
}

// watchDest starts reading path, which must exist, every millisecond for at
// most ten minutes. Every version must be whole, must hold servers a and b
// at the same value (they are written in one transaction) and must not be
// older than a version read before; the file must never be missing.
func watchDest(path string) *destWatcher {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	w := &destWatcher{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		prev, newest := "", -1
		for ctx.Err() == nil {
			b, err := os.ReadFile(path)
			w.reads++
			s := string(b)
			switch {
			case err != nil:
				w.record(fmt.Sprintf("read failed: %v", err))
			case !wholeAndConsistent(s):
				w.record(s)
			case pairNumber(s) < newest:
				w.record(fmt.Sprintf("went back from v%d to v%d:\n%s", newest, pairNumber(s), s))
			default:
				newest = pairNumber(s)
			}
			if err == nil && s != prev {
				w.versions++
				prev = s
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return w
}

func (w *destWatcher) record(s string) {
	if len(w.bad) < 5 {
		w.bad = append(w.bad, s)
	}
}

// check stops the reader and fails the test if it saw a bad version.
func (w *destWatcher) check(t *testing.T) {
	t.Helper()
	w.cancel()
	<-w.done
	t.Logf("reader: %d reads, %d versions of the file", w.reads, w.versions)
	if len(w.bad) > 0 {
		t.Errorf("a reader saw %d bad versions of the file, e.g.:\n%s", len(w.bad), w.bad[0])
	}
}

// pairNumber is N of the value vN of server a in a rendered file, or -1.
func pairNumber(s string) int {
	for _, m := range serverLine.FindAllStringSubmatch(s, -1) {
		if m[1] == "a" {
			if n, err := strconv.Atoi(strings.TrimPrefix(m[2], "v")); err == nil {
				return n
			}
		}
	}
	return -1
}

// change is transaction n of a writer: servers a and b get vN and a new
// server kN gets N, so that every change leaves its own line.
func change(ctx context.Context, cli *clientv3.Client, n int) error {
	v := "v" + strconv.Itoa(n)
	_, err := cli.Txn(ctx).Then(
		clientv3.OpPut("/app/servers/a", v),
		clientv3.OpPut("/app/servers/b", v),
		clientv3.OpPut(fmt.Sprintf("/app/servers/k%04d", n), strconv.Itoa(n)),
	).Commit()
	return err
}

// writer changes the servers again and again in the background.
type writer struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	acked  []int       // changes etcd confirmed
	ackAt  []time.Time // when
	failed int
	last   int // the last change tried
}

// startWriter makes changes first, first+1, ... through cli, one every
// pause, for at most ten minutes. A change that fails is not tried again:
// its number is used up, so values only grow.
func startWriter(cli *clientv3.Client, first int, pause time.Duration) *writer {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	w := &writer{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for n := first; ctx.Err() == nil; n++ {
			cctx, ccancel := context.WithTimeout(ctx, time.Second)
			err := change(cctx, cli, n)
			ccancel()
			w.mu.Lock()
			w.last = n
			if err == nil {
				w.acked = append(w.acked, n)
				w.ackAt = append(w.ackAt, time.Now())
			} else {
				w.failed++
			}
			w.mu.Unlock()
			sleep := pause
			if err != nil {
				sleep = 4 * pause
			}
			select {
			case <-ctx.Done():
			case <-time.After(sleep):
			}
		}
	}()
	return w
}

// acksSince counts the changes etcd confirmed after since.
func (w *writer) acksSince(since time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, at := range w.ackAt {
		if at.After(since) {
			n++
		}
	}
	return n
}

// next is the number of the first change the writer has not tried.
func (w *writer) next() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last + 1
}

// stop stops the writer and returns the confirmed changes.
func (w *writer) stop(t *testing.T) []int {
	t.Helper()
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("writer: %d changes confirmed, %d failed", len(w.acked), w.failed)
	return append([]int(nil), w.acked...)
}

// finish stops the writer, makes three more changes through cli, a client
// connected after the fault was healed (so that its own reconnection delay
// does not count), trying for at most 60 s, and returns the servers in
// etcd, after checking that every confirmed change is there.
func (w *writer) finish(t *testing.T, cli *clientv3.Client, healed time.Time) map[string]string {
	t.Helper()
	acked := w.stop(t)
	next := w.next()
	deadline := time.Now().Add(60 * time.Second)
	for done := 0; done < 3; next++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := change(ctx, cli, next)
		cancel()
		switch {
		case err == nil:
			if done == 0 {
				t.Logf("converge: etcd took changes again %s after healing", time.Since(healed).Round(time.Millisecond))
			}
			acked = append(acked, next)
			done++
		case time.Now().After(deadline):
			t.Fatalf("etcd takes no changes 60 s after healing: %v", err)
		default:
			time.Sleep(100 * time.Millisecond)
		}
	}
	state := etcdServers(t, cli)
	for _, n := range acked {
		if state[fmt.Sprintf("k%04d", n)] != strconv.Itoa(n) {
			t.Errorf("confirmed change %d is not in etcd", n)
		}
	}
	if want := "v" + strconv.Itoa(acked[len(acked)-1]); state["a"] != want {
		t.Errorf("server a = %q in etcd, want %q, the last change", state["a"], want)
	}
	return state
}

// etcdServers returns the servers in etcd now, name -> address.
func etcdServers(t *testing.T, cli *clientv3.Client) map[string]string {
	t.Helper()
	resp, err := cli.Get(ctx10(t), "/app/servers/", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("read servers: %v", err)
	}
	state := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		state[path.Base(string(kv.Key))] = string(kv.Value)
	}
	return state
}

// restartAll starts the stopped members again, together: members of a
// cluster with no quorum become ready only once enough of them run.
func restartAll(t *testing.T, members []*etcdtest.Server) {
	t.Helper()
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Restart(t)
		}()
	}
	wg.Wait()
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory and returns
// it; it is unmounted when the test ends. Mounting needs root (or
// CAP_SYS_ADMIN): without it the test is skipped, but fails when CI is set
// and it runs as root, so that CI cannot pass without running it.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size))
	if err != nil {
		if os.Getenv("CI") != "" && os.Geteuid() == 0 {
			t.Fatalf("mount a tmpfs as root with CI set: %v", err)
		}
		t.Skipf("this test mounts a small tmpfs to fill it up and make it read-only, which needs root: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// remount makes the tmpfs at dir read-only or writable again.
func remount(t *testing.T, dir string, readOnly bool) {
	t.Helper()
	flags := uintptr(syscall.MS_REMOUNT)
	if readOnly {
		flags |= syscall.MS_RDONLY
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, ""); err != nil {
		t.Fatalf("remount %s (read-only %t): %v", dir, readOnly, err)
	}
}

// fillUp writes a file into dir until the file system is full and returns
// its path. It writes until the file system has stayed full for 100 ms, so
// that room freed a moment later (a replaced file whose second name confd
// removes once its renames settle, or a reader closing it) is taken too.
func fillUp(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for round := 0; round < 100; round++ {
		written := 0
		for written < 1<<16 {
			if _, err := f.Write(chunk); err != nil {
				if errors.Is(err, syscall.ENOSPC) {
					break
				}
				t.Fatalf("fill %s: %v", dir, err)
			}
			written++
		}
		if written == 1<<16 {
			t.Fatalf("%s is not full after 256 MiB", dir)
		}
		if round > 0 && written == 0 {
			return p
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not stay full", dir)
	return ""
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	rest := b[bytes.LastIndexByte(b, ')')+1:]
	f := strings.Fields(string(rest))
	return len(f) > 0 && f[0] != "Z"
}
