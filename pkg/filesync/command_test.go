package filesync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readPID waits for a command to write a process id into path.
func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, "pid file "+path, 5*time.Second, func() bool {
		b, err := os.ReadFile(path)
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// processGone reports whether pid has exited. A zombie that no one has
// reaped yet counts as gone.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// killOnCleanup kills a process a test's command left running, should a
// test fail before it is gone.
func killOnCleanup(t *testing.T, pid int) {
	t.Cleanup(func() {
		if !processGone(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// grandchildCmd starts a sleep in the background, records its pid and
// waits for it, so that the command holds its output pipe open.
func grandchildCmd(pidFile string) string {
	return "sleep 30 & echo $! > " + pidFile + "; wait"
}

func TestCommandTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dest := filepath.Join(dir, "app.conf")
	writeExisting(t, dest, existing{"old\n", 0o644})
	pidFile := filepath.Join(dir, "pid")

	s := newSyncer(t, testLogger(t), Options{CommandTimeout: 300 * time.Millisecond})
	start := time.Now()
	res, err := s.Sync(context.Background(), Target{Resource: "web", Dest: dest,
		CheckCmd: grandchildCmd(pidFile), ReloadCmd: "touch " + filepath.Join(dir, "reloaded")}, []byte("new\n"))
	elapsed := time.Since(start)

	pid := readPID(t, pidFile)
	killOnCleanup(t, pid)
	if elapsed >= waitDelay {
		t.Errorf("Sync took %s, want less than %s", elapsed, waitDelay)
	}
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Kind != KindCheck || ce.ExitCode != -1 {
		t.Fatalf("Sync error = %#v, want a check *CommandError with exit code -1", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Errorf("error %q, want it to wrap context.DeadlineExceeded and say it timed out", err)
	}
	waitFor(t, "grandchild "+strconv.Itoa(pid)+" to be gone", 5*time.Second, func() bool { return processGone(pid) })
	if res.Written || exists(t, filepath.Join(dir, "reloaded")) {
		t.Error("dest written or reload run after a timed-out check")
	}
	if got := readFile(t, dest); got != "old\n" {
		t.Errorf("dest = %q, want it untouched", got)
	}
	if s := stageFiles(t, dest); len(s) != 0 {
		t.Errorf("stage files left = %q", s)
	}
}

func TestCommandContextCancelKillsProcessGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dest := filepath.Join(dir, "app.conf")
	writeExisting(t, dest, existing{"old\n", 0o644})
	pidFile := filepath.Join(dir, "pid")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		res Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := newSyncer(t, testLogger(t), Options{}).Sync(ctx, Target{Dest: dest, CheckCmd: grandchildCmd(pidFile)}, []byte("new\n"))
		done <- result{res, err}
	}()

	pid := readPID(t, pidFile)
	killOnCleanup(t, pid)
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(waitDelay):
		t.Fatalf("Sync did not return within %s of cancellation", waitDelay)
	}
	var ce *CommandError
	if !errors.As(r.err, &ce) || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Sync error = %v, want a *CommandError wrapping context.Canceled", r.err)
	}
	waitFor(t, "grandchild "+strconv.Itoa(pid)+" to be gone", 5*time.Second, func() bool { return processGone(pid) })
	if r.res.Written {
		t.Error("dest written after cancellation")
	}
	if got := readFile(t, dest); got != "old\n" {
		t.Errorf("dest = %q, want it untouched", got)
	}
	if s := stageFiles(t, dest); len(s) != 0 {
		t.Errorf("stage files left = %q", s)
	}
}

func TestCommandBackgroundChildDoesNotHang(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dest := filepath.Join(dir, "app.conf")
	pidFile := filepath.Join(dir, "pid")

	start := time.Now()
	res, err := newSyncer(t, testLogger(t), Options{}).Sync(context.Background(), Target{Dest: dest,
		ReloadCmd: "echo started; sleep 30 & echo $! > " + pidFile}, []byte("new\n"))
	elapsed := time.Since(start)
	pid := readPID(t, pidFile)
	killOnCleanup(t, pid)

	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if !res.Reloaded || !strings.Contains(res.ReloadOutput, "started") {
		t.Errorf("reloaded = %t, output %q, want true and the output", res.Reloaded, res.ReloadOutput)
	}
	if limit := waitDelay + 3*time.Second; elapsed > limit {
		t.Errorf("Sync took %s, want at most %s", elapsed, limit)
	}
	if processGone(pid) {
		t.Error("the reload command's background child was killed, want it left running")
	}
}

func TestCommandError(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 3*maxErrorOutput) + "the verdict"
	tests := []struct {
		name     string
		err      *CommandError
		want     []string
		wantNot  []string
		maxBytes int
	}{
		{
			name: "exit status and output",
			err: &CommandError{Resource: "web", Kind: KindCheck, Command: "nginx -t -c /etc/.x secret=hunter2",
				ExitCode: 1, Output: "  nginx: [emerg] unknown directive\n", Err: errors.New("exit status 1")},
			want:    []string{"resource web: check_cmd failed: exit status 1: output: nginx: [emerg] unknown directive"},
			wantNot: []string{"hunter2", "\n"},
		},
		{
			name: "no output",
			err:  &CommandError{Resource: "web", Kind: KindReload, ExitCode: 2, Err: errors.New("exit status 2")},
			want: []string{"resource web: reload_cmd failed: exit status 2"},
		},
		{
			name:     "long output keeps its end",
			err:      &CommandError{Kind: KindCheck, ExitCode: 1, Output: long, Err: errors.New("exit status 1")},
			want:     []string{"check_cmd failed: exit status 1: output: ...", "the verdict"},
			maxBytes: maxErrorOutput + 100,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.err.Error()
			for _, s := range tt.want {
				if !strings.Contains(got, s) {
					t.Errorf("Error() = %q, want it to contain %q", got, s)
				}
			}
			for _, s := range tt.wantNot {
				if strings.Contains(got, s) {
					t.Errorf("Error() = %q, want it not to contain %q", got, s)
				}
			}
			if tt.maxBytes > 0 && len(got) > tt.maxBytes {
				t.Errorf("len(Error()) = %d, want at most %d", len(got), tt.maxBytes)
			}
		})
	}
}

func TestCommandErrorUnwrapsExitError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := newSyncer(t, testLogger(t), Options{}).Sync(context.Background(),
		Target{Dest: filepath.Join(dir, "f"), CheckCmd: "exit 4"}, []byte("x"))
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 {
		t.Fatalf("Sync error = %v, want one wrapping *exec.ExitError with code 4", err)
	}
}

func TestCommandOutputCapped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// 200 KiB of output followed by a last line.
	cmd := "head -c 204800 /dev/zero | tr '\\0' y; echo; echo last line; exit 1"
	_, err := newSyncer(t, testLogger(t), Options{}).Sync(context.Background(),
		Target{Dest: filepath.Join(dir, "f"), CheckCmd: cmd}, []byte("x"))
	var ce *CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("Sync error = %v, want *CommandError", err)
	}
	if len(ce.Output) > maxOutput+100 {
		t.Errorf("len(Output) = %d, want at most about %d", len(ce.Output), maxOutput)
	}
	if !strings.HasPrefix(ce.Output, "[output truncated]\n") || !strings.HasSuffix(ce.Output, "last line\n") {
		t.Errorf("Output starts %q and ends %q, want the truncation mark and the last line",
			ce.Output[:min(len(ce.Output), 30)], ce.Output[max(0, len(ce.Output)-30):])
	}
}

func TestTailBuffer(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("a", maxOutput-10) + strings.Repeat("b", 20)
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{name: "small", writes: []string{"one ", "two"}, want: "one two"},
		{name: "exactly full", writes: []string{strings.Repeat("c", maxOutput)}, want: strings.Repeat("c", maxOutput)},
		{name: "overflow across writes", writes: []string{"head", big[:maxOutput/2], big[maxOutput/2:]},
			want: "[output truncated]\n" + big[len(big)-maxOutput:]},
		{name: "one huge write", writes: []string{"x" + big + big}, want: "[output truncated]\n" + (big + big)[2*len(big)-maxOutput:]},
		{name: "cut inside a rune", writes: []string{"é" + strings.Repeat("z", maxOutput-1)},
			want: "[output truncated]\n" + strings.Repeat("z", maxOutput-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b tailBuffer
			for _, w := range tt.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v, want %d, nil", n, err, len(w))
				}
			}
			if len(b.buf) > maxOutput {
				t.Errorf("buffer holds %d bytes, want at most %d", len(b.buf), maxOutput)
			}
			if got := b.String(); got != tt.want {
				t.Errorf("String() = %.40q... (%d bytes), want %.40q... (%d bytes)", got, len(got), tt.want, len(tt.want))
			}
		})
	}
}

func TestValidateCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cmd     string
		wantErr bool
	}{
		{cmd: "nginx -t -c {{.src}}"},
		{cmd: "cp {{.src}} {{.dest}}.bak && systemctl reload nginx"},
		{cmd: "echo '{ not a template }'"},
		{cmd: "check {{.source}}", wantErr: true},
		{cmd: "check {{.src", wantErr: true},
	}
	for _, tt := range tests {
		if err := ValidateCommand(tt.cmd); (err != nil) != tt.wantErr {
			t.Errorf("ValidateCommand(%q) = %v, want error %t", tt.cmd, err, tt.wantErr)
		}
	}
}

// TestReloadAlone runs an owed reload for a destination that is current:
// {{.src}} and {{.dest}} are both the destination.
func TestReloadAlone(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "out")
	marker := filepath.Join(dir, "reloaded")
	tgt := Target{Resource: "r", Dest: dest, ReloadCmd: "echo {{.src}} {{.dest}} > " + marker}
	owe := func() {
		t.Helper()
		if err := os.WriteFile(pendingPath(dest), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(dest, []byte("current"), 0o644); err != nil {
		t.Fatal(err)
	}
	sync := func(opts Options) error {
		_, err := newSyncer(t, nil, opts).Sync(context.Background(), tgt, []byte("current"))
		return err
	}
	owe()
	if err := sync(Options{}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(marker)
	if err != nil || string(got) != dest+" "+dest+"\n" {
		t.Fatalf("reload wrote %q, %v", got, err)
	}
	os.Remove(marker)
	owe()
	for _, opts := range []Options{{Noop: true}, {SyncOnly: true}} {
		if err := sync(opts); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(marker); !os.IsNotExist(err) {
			t.Errorf("options %+v: reload ran", opts)
		}
	}
	tgt.ReloadCmd = "exit 7"
	err = sync(Options{})
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Kind != KindReload || ce.ExitCode != 7 {
		t.Errorf("failing reload: err = %v", err)
	}
}

// TestPendingReloadOutlivesSyncer checks that a reload that failed after
// its file was installed is run again by the next Syncer, as in the next
// run of confd, although the file is current then, and only until it
// succeeds.
func TestPendingReloadOutlivesSyncer(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "out")
	fail := filepath.Join(dir, "fail")
	reloads := filepath.Join(dir, "reloads")
	tgt := Target{Resource: "r", Dest: dest, ReloadCmd: "test ! -e " + fail + " && echo {{.src}} >> " + reloads}
	if err := os.WriteFile(fail, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sync := func(opts Options, content string) (Result, error) {
		t.Helper()
		return newSyncer(t, nil, opts).Sync(ctx, tgt, []byte(content))
	}
	var ce *CommandError
	if res, err := sync(Options{}, "v1"); !errors.As(err, &ce) || ce.Kind != KindReload || !res.Written {
		t.Fatalf("first install: %+v, %v; want the file written and the reload failed", res, err)
	}
	// Still failing: the file is current, the reload is tried and fails.
	if res, err := sync(Options{}, "v1"); !errors.As(err, &ce) || !res.ReloadRan || res.Written {
		t.Fatalf("second run: %+v, %v; want the reload tried again and failed", res, err)
	}
	// Neither noop nor sync-only runs it, nor forgets it.
	for _, opts := range []Options{{Noop: true}, {SyncOnly: true}} {
		if res, err := sync(opts, "v1"); err != nil || res.ReloadRan {
			t.Fatalf("options %+v: %+v, %v; want nothing run", opts, res, err)
		}
	}
	if err := os.Remove(fail); err != nil {
		t.Fatal(err)
	}
	res, err := sync(Options{}, "v1")
	if err != nil || !res.Reloaded || res.Written || res.Changed {
		t.Fatalf("run after the fix: %+v, %v; want the reload alone", res, err)
	}
	if got := readFile(t, reloads); got != dest+"\n" {
		t.Errorf("reloads = %q, want one of %s", got, dest)
	}
	if exists(t, pendingPath(dest)) {
		t.Errorf("%s left after the reload succeeded", pendingPath(dest))
	}
	// Done: the next run reloads nothing.
	if res, err := sync(Options{}, "v1"); err != nil || res.ReloadRan {
		t.Fatalf("run after the reload: %+v, %v; want nothing run", res, err)
	}
	// A record whose resource has no reload command any more goes.
	if err := os.WriteFile(pendingPath(dest), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tgt.ReloadCmd = ""
	if res, err := sync(Options{}, "v1"); err != nil || res.ReloadRan || exists(t, pendingPath(dest)) {
		t.Fatalf("without a reload command: %+v, %v, record left %t", res, err, exists(t, pendingPath(dest)))
	}
}

// TestPendingReloadRecordedFirst checks that the reload is owed while it
// runs, so that a confd killed meanwhile runs it at its next start, and
// that a link planted where the record goes is neither followed nor
// truncated.
func TestPendingReloadRecordedFirst(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "out")
	tgt := Target{Resource: "r", Dest: dest, ReloadCmd: "test -e " + pendingPath(dest)}
	if _, err := newSyncer(t, nil, Options{}).Sync(context.Background(), tgt, []byte("v1")); err != nil {
		t.Fatalf("the reload did not find the record while it ran: %v", err)
	}
	if exists(t, pendingPath(dest)) {
		t.Errorf("record left after the reload succeeded")
	}

	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, pendingPath(dest)); err != nil {
		t.Fatal(err)
	}
	tgt.ReloadCmd = "exit 1"
	if _, err := newSyncer(t, nil, Options{}).Sync(context.Background(), tgt, []byte("v2")); err == nil {
		t.Fatal("failing reload: no error")
	}
	if got := readFile(t, secret); got != "keep me" {
		t.Errorf("the file a planted link points to became %q", got)
	}
}

func TestCheckOnly(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "out")
	if err := os.WriteFile(dest, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	seen := filepath.Join(dir, "seen")
	tgt := Target{Resource: "r", Dest: dest,
		CheckCmd:  "cat {{.src}} >> " + seen + "; echo >> " + seen,
		ReloadCmd: "touch " + filepath.Join(dir, "reloaded")}
	s := newSyncer(t, nil, Options{CheckOnly: true})
	for _, content := range []string{"new", "old"} {
		res, err := s.Sync(context.Background(), tgt, []byte(content))
		if err != nil || !res.Checked || res.Written || res.Reloaded {
			t.Fatalf("content %q: result %+v, err %v", content, res, err)
		}
		if res.Changed != (content != "old") {
			t.Errorf("content %q: Changed = %v", content, res.Changed)
		}
	}
	if got, _ := os.ReadFile(seen); string(got) != "new\nold\n" {
		t.Errorf("check_cmd saw %q, want both contents, the unchanged one too", got)
	}
	if got, _ := os.ReadFile(dest); string(got) != "old" {
		t.Errorf("dest = %q, want it untouched", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "reloaded")); !os.IsNotExist(err) {
		t.Error("reload_cmd ran in check-only mode")
	}
	if stages, _ := filepath.Glob(filepath.Join(dir, ".out.*")); len(stages) > 0 {
		t.Errorf("stage files left: %q", stages)
	}
	tgt.CheckCmd = "echo bad; exit 2"
	_, err := s.Sync(context.Background(), tgt, []byte("new"))
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Kind != KindCheck || ce.ExitCode != 2 {
		t.Errorf("failing check: err = %v", err)
	}
}
