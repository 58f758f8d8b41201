package filesync

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testLogger(t *testing.T) *logrus.Logger {
	t.Helper()
	log := logrus.New()
	log.SetOutput(t.Output())
	log.SetLevel(logrus.DebugLevel)
	return log
}

// newSyncer is New for a test: the work a Syncer leaves in the background
// is done before the test ends, so that it neither logs after the test
// nor finds the test's directories gone.
func newSyncer(t *testing.T, log *logrus.Logger, opts Options) *Syncer {
	t.Helper()
	s := New(log, opts)
	t.Cleanup(s.Wait)
	return s
}

// dirNames lists the names in dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// existing describes a destination present before Sync.
type existing struct {
	content string
	mode    os.FileMode
}

// oldTime is the mtime given to existing destinations, so that a rewrite
// is visible.
var oldTime = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

func writeExisting(t *testing.T, dest string, e existing) {
	t.Helper()
	if err := os.WriteFile(dest, []byte(e.content), e.mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dest, e.mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(dest, oldTime, oldTime); err != nil {
		t.Fatal(err)
	}
}

// stageFiles lists the stage files for dest in its directory.
func stageFiles(t *testing.T, dest string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+".*"))
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(m, func(name string) bool { return name == pendingPath(dest) })
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func TestSync(t *testing.T) {
	t.Parallel()
	// In commands, DIR is replaced by the test's directory.
	tests := []struct {
		name     string
		existing *existing
		target   Target // Dest is filled in; commands may use DIR
		opts     Options
		content  string

		wantChanged, wantWritten, wantReloaded bool
		wantContent                            string // of dest afterwards
		wantMode                               os.FileMode
		wantMtimeKept                          bool
		wantErrKind                            string // CommandError.Kind; "-" for another error
		wantExit                               int
		wantErrText                            []string
		wantFiles                              map[string]string // DIR-relative file -> content
		wantNoFiles                            []string
		wantKeptStage                          bool
		wantPending                            bool // a reload is recorded as owed
	}{
		{
			name:     "unchanged does nothing",
			existing: &existing{"same\n", 0o640},
			target: Target{
				CheckCmd:  "touch DIR/checked",
				ReloadCmd: "touch DIR/reloaded",
			},
			content:       "same\n",
			wantContent:   "same\n",
			wantMode:      0o640,
			wantMtimeKept: true,
			wantNoFiles:   []string{"checked", "reloaded"},
		},
		{
			name:     "unchanged with matching configured mode",
			existing: &existing{"same\n", 0o600},
			target: Target{
				Mode: 0o600, ModeSet: true,
				CheckCmd: "touch DIR/checked",
			},
			content:       "same\n",
			wantContent:   "same\n",
			wantMode:      0o600,
			wantMtimeKept: true,
			wantNoFiles:   []string{"checked"},
		},
		{
			name:        "new file gets 0644",
			content:     "new\n",
			wantChanged: true, wantWritten: true,
			wantContent: "new\n",
			wantMode:    0o644,
		},
		{
			name:        "new file gets configured mode",
			target:      Target{Mode: 0o600, ModeSet: true},
			content:     "new\n",
			wantChanged: true, wantWritten: true,
			wantContent: "new\n",
			wantMode:    0o600,
		},
		{
			name:        "raw setuid bits are applied",
			target:      Target{Mode: 0o4750, ModeSet: true},
			content:     "new\n",
			wantChanged: true, wantWritten: true,
			wantContent: "new\n",
			wantMode:    os.ModeSetuid | 0o750,
		},
		{
			name:        "existing mode kept",
			existing:    &existing{"old\n", 0o640},
			content:     "new\n",
			wantChanged: true, wantWritten: true,
			wantContent: "new\n",
			wantMode:    0o640,
		},
		{
			name:     "mode change alone goes through check and reload",
			existing: &existing{"same\n", 0o644},
			target: Target{
				Mode: 0o600, ModeSet: true,
				CheckCmd:  "touch DIR/checked",
				ReloadCmd: "touch DIR/reloaded",
			},
			content:     "same\n",
			wantChanged: true, wantWritten: true, wantReloaded: true,
			wantContent: "same\n",
			wantMode:    0o600,
			wantFiles:   map[string]string{"checked": "", "reloaded": ""},
		},
		{
			name:     "check sees stage file, mode 0600, dest still old",
			existing: &existing{"old\n", 0o644},
			target: Target{
				CheckCmd: "cp {{.src}} DIR/seen && stat -c %a {{.src}} > DIR/seenmode && " +
					"cp {{.dest}} DIR/destatcheck && test {{.src}} != {{.dest}}",
			},
			content:     "new\n",
			wantChanged: true, wantWritten: true,
			wantContent: "new\n",
			wantMode:    0o644,
			wantFiles:   map[string]string{"seen": "new\n", "seenmode": "600\n", "destatcheck": "old\n"},
		},
		{
			name:     "check failure leaves dest untouched",
			existing: &existing{"old\n", 0o644},
			target: Target{
				Resource:  "web",
				CheckCmd:  "echo 'bad config line 3' >&2; exit 3",
				ReloadCmd: "touch DIR/reloaded",
			},
			content:       "new\n",
			wantChanged:   true,
			wantContent:   "old\n",
			wantMode:      0o644,
			wantMtimeKept: true,
			wantErrKind:   KindCheck,
			wantExit:      3,
			wantErrText:   []string{"resource web", "check_cmd", "exit status 3", "bad config line 3"},
			wantNoFiles:   []string{"reloaded"},
		},
		{
			name:     "reload runs after rename",
			existing: &existing{"old\n", 0o644},
			target: Target{
				CheckCmd:  "true",
				ReloadCmd: "cp {{.dest}} DIR/reloadsaw; echo reloading",
			},
			content:     "new\n",
			wantChanged: true, wantWritten: true, wantReloaded: true,
			wantContent: "new\n",
			wantMode:    0o644,
			wantFiles:   map[string]string{"reloadsaw": "new\n"},
		},
		{
			name:     "reload failure after dest is written",
			existing: &existing{"old\n", 0o644},
			target: Target{
				Resource:  "web",
				ReloadCmd: "echo 'service down'; exit 7",
			},
			content:     "new\n",
			wantChanged: true, wantWritten: true,
			wantContent: "new\n",
			wantMode:    0o644,
			wantErrKind: KindReload,
			wantExit:    7,
			wantErrText: []string{"resource web", "reload_cmd", "exit status 7", "service down"},
			wantPending: true,
		},
		{
			name:     "sync-only runs no commands",
			existing: &existing{"old\n", 0o644},
			target: Target{
				CheckCmd:  "touch DIR/checked; exit 1",
				ReloadCmd: "touch DIR/reloaded; exit 1",
			},
			opts:        Options{SyncOnly: true},
			content:     "new\n",
			wantChanged: true, wantWritten: true,
			wantContent: "new\n",
			wantMode:    0o644,
			wantNoFiles: []string{"checked", "reloaded"},
		},
		{
			name:     "noop writes and runs nothing",
			existing: &existing{"old\n", 0o644},
			target: Target{
				CheckCmd:  "touch DIR/checked",
				ReloadCmd: "touch DIR/reloaded",
			},
			opts:          Options{Noop: true},
			content:       "new\n",
			wantChanged:   true,
			wantContent:   "old\n",
			wantMode:      0o644,
			wantMtimeKept: true,
			wantNoFiles:   []string{"checked", "reloaded"},
		},
		{
			name:     "keep stage file after success",
			existing: &existing{"old\n", 0o644},
			target: Target{
				ReloadCmd: "cp {{.src}} DIR/reloadsrc",
			},
			opts:        Options{KeepStageFile: true},
			content:     "new\n",
			wantChanged: true, wantWritten: true, wantReloaded: true,
			wantContent:   "new\n",
			wantMode:      0o644,
			wantFiles:     map[string]string{"reloadsrc": "new\n"},
			wantKeptStage: true,
		},
		{
			name:     "keep stage file after failed check",
			existing: &existing{"old\n", 0o644},
			target: Target{
				CheckCmd: "exit 1",
			},
			opts:          Options{KeepStageFile: true},
			content:       "new\n",
			wantChanged:   true,
			wantContent:   "old\n",
			wantMode:      0o644,
			wantMtimeKept: true,
			wantErrKind:   KindCheck,
			wantExit:      1,
			wantKeptStage: true,
		},
		{
			name:     "bad command template",
			existing: &existing{"old\n", 0o644},
			target: Target{
				CheckCmd: "check {{.source}}",
			},
			content:       "new\n",
			wantChanged:   true,
			wantContent:   "old\n",
			wantMode:      0o644,
			wantMtimeKept: true,
			wantErrKind:   KindCheck,
			wantExit:      -1,
			wantErrText:   []string{"render", "source"},
		},
		{
			name:        "unknown owner",
			target:      Target{Owner: "no-such-user-for-filesync"},
			content:     "new\n",
			wantErrKind: "-",
			wantErrText: []string{"owner", "no-such-user-for-filesync"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			dest := filepath.Join(dir, "app.conf")
			if tt.existing != nil {
				writeExisting(t, dest, *tt.existing)
			}
			target := tt.target
			target.Dest = dest
			target.CheckCmd = strings.ReplaceAll(target.CheckCmd, "DIR", dir)
			target.ReloadCmd = strings.ReplaceAll(target.ReloadCmd, "DIR", dir)

			syncer := newSyncer(t, testLogger(t), tt.opts)
			res, err := syncer.Sync(context.Background(), target, []byte(tt.content))
			syncer.Wait()

			switch tt.wantErrKind {
			case "":
				if err != nil {
					t.Fatalf("Sync: %v", err)
				}
			case "-":
				var ce *CommandError
				if err == nil || errors.As(err, &ce) {
					t.Fatalf("Sync error = %v, want a non-command error", err)
				}
			default:
				ce, ok := err.(*CommandError)
				if !ok {
					t.Fatalf("Sync error = %T %v, want *CommandError itself", err, err)
				}
				if ce.Kind != tt.wantErrKind || ce.ExitCode != tt.wantExit {
					t.Errorf("kind, exit = %q, %d, want %q, %d", ce.Kind, ce.ExitCode, tt.wantErrKind, tt.wantExit)
				}
			}
			for _, s := range tt.wantErrText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}

			if res.Changed != tt.wantChanged || res.Written != tt.wantWritten || res.Reloaded != tt.wantReloaded {
				t.Errorf("changed, written, reloaded = %t, %t, %t, want %t, %t, %t",
					res.Changed, res.Written, res.Reloaded, tt.wantChanged, tt.wantWritten, tt.wantReloaded)
			}

			if tt.wantErrKind != "-" {
				if got := readFile(t, dest); got != tt.wantContent {
					t.Errorf("dest content = %q, want %q", got, tt.wantContent)
				}
				fi, err := os.Stat(dest)
				if err != nil {
					t.Fatal(err)
				}
				if got := fi.Mode() & modeMask; got != tt.wantMode {
					t.Errorf("dest mode = %v, want %v", got, tt.wantMode)
				}
				if kept := fi.ModTime().Equal(oldTime); kept != tt.wantMtimeKept {
					t.Errorf("mtime kept = %t (mtime %v), want %t", kept, fi.ModTime(), tt.wantMtimeKept)
				}
			}

			for name, want := range tt.wantFiles {
				if got := readFile(t, filepath.Join(dir, name)); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			for _, name := range tt.wantNoFiles {
				if exists(t, filepath.Join(dir, name)) {
					t.Errorf("%s exists, want the command not run", name)
				}
			}

			if pending := exists(t, pendingPath(dest)); pending != tt.wantPending {
				t.Errorf("reload recorded as pending = %t, want %t", pending, tt.wantPending)
			}
			stages := stageFiles(t, dest)
			if !tt.wantKeptStage {
				if len(stages) != 0 || res.StageFile != "" {
					t.Errorf("stage files left = %q, Result.StageFile = %q, want none", stages, res.StageFile)
				}
				return
			}
			if len(stages) != 1 || stages[0] != res.StageFile {
				t.Fatalf("stage files = %q, Result.StageFile = %q, want exactly that one", stages, res.StageFile)
			}
			if got := readFile(t, res.StageFile); got != tt.content {
				t.Errorf("kept stage content = %q, want %q", got, tt.content)
			}
			fi, err := os.Stat(res.StageFile)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o600 {
				t.Errorf("kept stage mode = %v, want 0600", got)
			}
		})
	}
}

func TestSyncMissingDirectory(t *testing.T) {
	t.Parallel()
	dest := filepath.Join(t.TempDir(), "missing", "app.conf")
	_, err := newSyncer(t, testLogger(t), Options{}).Sync(context.Background(), Target{Dest: dest}, []byte("x"))
	if err == nil {
		t.Fatal("Sync succeeded, want an error")
	}
	for _, s := range []string{"stage " + dest, "no such file or directory"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false, want true", err)
	}
}

func TestSyncDestIsDirectory(t *testing.T) {
	t.Parallel()
	dest := t.TempDir()
	_, err := newSyncer(t, testLogger(t), Options{}).Sync(context.Background(), Target{Dest: dest}, []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Sync error = %v, want one saying not a regular file", err)
	}
}

func TestSyncCancelledBeforeStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dest := filepath.Join(dir, "app.conf")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := newSyncer(t, testLogger(t), Options{}).Sync(ctx, Target{Dest: dest}, []byte("x"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Sync error = %v, want context.Canceled", err)
	}
	if res.Written || exists(t, dest) {
		t.Errorf("written = %t, dest exists = %t, want neither", res.Written, exists(t, dest))
	}
}

func TestNoopDiff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		existing *existing
		content  string
	}{
		{
			name:     "changed",
			existing: &existing{"global\n  maxconn 100\n\nbackend web\n  server a 10.0.0.1:80\n  server b 10.0.0.2:80\n", 0o644},
			content:  "global\n  maxconn 100\n\nbackend web\n  server a 10.0.0.1:80\n  server c 10.0.0.3:80\n  server d 10.0.0.4:80\n",
		},
		{
			name:    "new",
			content: "line one\nline two\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			dest := filepath.Join(dir, "app.conf")
			if tt.existing != nil {
				writeExisting(t, dest, *tt.existing)
			}
			res, err := newSyncer(t, testLogger(t), Options{Noop: true}).Sync(context.Background(),
				Target{Dest: dest}, []byte(tt.content))
			if err != nil {
				t.Fatalf("Sync: %v", err)
			}
			if !res.Changed || res.Written {
				t.Errorf("changed, written = %t, %t, want true, false", res.Changed, res.Written)
			}
			got := strings.ReplaceAll(res.Diff, dir, "DIR")
			golden := filepath.Join("testdata", "noop_"+tt.name+".diff")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := readFile(t, golden); got != want {
				t.Errorf("diff:\n%s\nwant:\n%s", got, want)
			}
			if tt.existing == nil && exists(t, dest) {
				t.Error("noop created dest")
			}
			if s := stageFiles(t, dest); len(s) != 0 {
				t.Errorf("stage files left = %q", s)
			}
		})
	}
}

// TestInstalledIsBeforeTheFileChanged checks that Result.Installed is no
// later than the moment the new file could first be seen. A daemon tells a
// change made by a writer that waited for the file (which it renders at
// once) from a burst by comparing the change's arrival with Installed; a
// stamp taken after the rename would count a writer as quick as the host
// allows as a burst.
func TestInstalledIsBeforeTheFileChanged(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		busy   bool // the rename fails with EBUSY: overwritten in place
		reload bool
	}{
		{name: "renamed"},
		{name: "renamed and reloaded", reload: true},
		{name: "overwritten in place", busy: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			dest := filepath.Join(dir, "app.conf")
			writeExisting(t, dest, existing{"old\n", 0o644})
			s := newSyncer(t, testLogger(t), Options{})
			var visible time.Time // when the rename had made the new file visible, or failed
			s.rename = func(oldpath, newpath string) error {
				if tc.busy {
					visible = time.Now()
					return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EBUSY}
				}
				err := os.Rename(oldpath, newpath)
				visible = time.Now()
				return err
			}
			target := Target{Dest: dest}
			if tc.reload {
				target.ReloadCmd = "true"
			}
			res, err := s.Sync(context.Background(), target, []byte("new\n"))
			if err != nil {
				t.Fatalf("Sync: %v", err)
			}
			if !res.Written || visible.IsZero() {
				t.Fatalf("written = %t, renamed = %t, want both", res.Written, !visible.IsZero())
			}
			if res.Installed.IsZero() || res.Installed.After(visible) {
				t.Errorf("Installed is %v after the file could be seen, want at or before", res.Installed.Sub(visible))
			}
		})
	}
}

func TestSyncOverwritesBusyDest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dest := filepath.Join(dir, "app.conf")
	writeExisting(t, dest, existing{"old content\n", 0o640})
	before, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}

	s := newSyncer(t, testLogger(t), Options{})
	var renames int
	s.rename = func(oldpath, newpath string) error {
		renames++
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EBUSY}
	}
	res, err := s.Sync(context.Background(), Target{Dest: dest,
		ReloadCmd: "cp {{.dest}} " + filepath.Join(dir, "reloadsaw")}, []byte("new\n"))
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if renames != 1 || !res.Written || !res.Reloaded {
		t.Errorf("renames, written, reloaded = %d, %t, %t, want 1, true, true", renames, res.Written, res.Reloaded)
	}
	after, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("dest was replaced, want it overwritten in place")
	}
	if got := after.Mode() & modeMask; got != 0o640 {
		t.Errorf("dest mode = %v, want 0640", got)
	}
	if got := readFile(t, dest); got != "new\n" {
		t.Errorf("dest = %q, want %q", got, "new\n")
	}
	if got := readFile(t, filepath.Join(dir, "reloadsaw")); got != "new\n" {
		t.Errorf("reload saw %q, want %q", got, "new\n")
	}
	if s := stageFiles(t, dest); len(s) != 0 {
		t.Errorf("stage files left = %q", s)
	}
}

func TestSyncRenameFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dest := filepath.Join(dir, "app.conf")
	writeExisting(t, dest, existing{"old\n", 0o644})
	s := newSyncer(t, testLogger(t), Options{})
	s.rename = func(oldpath, newpath string) error {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EXDEV}
	}
	res, err := s.Sync(context.Background(), Target{Dest: dest,
		ReloadCmd: "touch " + filepath.Join(dir, "reloaded")}, []byte("new\n"))
	if !errors.Is(err, syscall.EXDEV) || !strings.Contains(err.Error(), "install "+dest) {
		t.Fatalf("Sync error = %v, want install %s: ... EXDEV", err, dest)
	}
	if res.Written || exists(t, filepath.Join(dir, "reloaded")) {
		t.Error("dest reported written or reload ran after a failed rename")
	}
	if got := readFile(t, dest); got != "old\n" {
		t.Errorf("dest = %q, want it untouched", got)
	}
	if s := stageFiles(t, dest); len(s) != 0 {
		t.Errorf("stage files left = %q", s)
	}
}

func TestSyncIsSafeForDistinctDests(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newSyncer(t, testLogger(t), Options{})
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			dest := filepath.Join(dir, "f"+string(rune('a'+i)))
			_, err := s.Sync(context.Background(), Target{Dest: dest, CheckCmd: "test -s {{.src}}"},
				[]byte(strings.Repeat("x", i+1)))
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	got := dirNames(t, dir)
	want := []string{"fa", "fb", "fc", "fd", "fe", "ff", "fg", "fh"}
	if !slices.Equal(got, want) {
		t.Errorf("directory = %q, want %q", got, want)
	}
}

// TestDirectorySyncRunsInBackground installs files into one directory in
// quick succession, from several goroutines: each rename is followed by a
// directory fsync (at most one running per directory, repeated for renames
// that came during it), and Wait returns once none is left.
func TestDirectorySyncRunsInBackground(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newSyncer(t, testLogger(t), Options{})
	const writers, rounds = 4, 25
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			dest := filepath.Join(dir, fmt.Sprintf("f%d", w))
			for r := range rounds {
				if _, err := s.Sync(context.Background(), Target{Dest: dest}, fmt.Appendf(nil, "%d %d\n", w, r)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	s.Wait()
	s.mu.Lock()
	left := len(s.dirs)
	s.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d directory syncs still registered after Wait", left)
	}
	if names := dirNames(t, dir); len(names) != writers {
		t.Errorf("directory holds %q, want the %d destinations alone", names, writers)
	}
	for w := range writers {
		got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("f%d", w)))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%d %d\n", w, rounds-1); string(got) != want {
			t.Errorf("f%d = %q, want %q", w, got, want)
		}
	}
}

// TestInstallKeepsReplacedFileNamed checks that the file an install
// replaces still has a second name when the rename takes the first, so
// that the rename does not free it, and that the second name is gone after
// Wait; and that without hard links the install goes ahead all the same.
func TestInstallKeepsReplacedFileNamed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		linkErr   error
		wantLinks uint64
	}{
		{"hard links", nil, 2},
		{"no hard links", syscall.EPERM, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest, s := replacing(t)
			if tc.linkErr != nil {
				s.link = func(string, string) error { return tc.linkErr }
			}
			var links uint64
			s.rename = func(oldpath, newpath string) error {
				var st syscall.Stat_t
				if err := syscall.Stat(newpath, &st); err != nil {
					return err
				}
				links = uint64(st.Nlink)
				return os.Rename(oldpath, newpath)
			}
			if _, err := s.Sync(context.Background(), Target{Dest: dest}, []byte("new\n")); err != nil {
				t.Fatal(err)
			}
			if links != tc.wantLinks {
				t.Errorf("the replaced file had %d names at the rename, want %d", links, tc.wantLinks)
			}
			s.Wait()
			if got := readFile(t, dest); got != "new\n" {
				t.Errorf("dest = %q, want %q", got, "new\n")
			}
			if left := stageFiles(t, dest); len(left) != 0 {
				t.Errorf("files left beside dest = %q", left)
			}
		})
	}
}

// replacing returns a Syncer and a destination that exists, alone in a
// directory of its own.
func replacing(t *testing.T) (dest string, s *Syncer) {
	t.Helper()
	dest = filepath.Join(t.TempDir(), "app.conf")
	writeExisting(t, dest, existing{"old\n", 0o644})
	return dest, newSyncer(t, testLogger(t), Options{})
}

// dirSyncs records, at each directory fsync of a Syncer, how many second
// names were left beside dest.
type dirSyncs struct {
	mu   sync.Mutex
	left []int
}

// recordDirSyncs makes s record its directory fsyncs in the result;
// during, when not nil, runs at each, with its number from 1, before the
// fsync.
func recordDirSyncs(t *testing.T, s *Syncer, dest string, during func(nth int)) *dirSyncs {
	d := &dirSyncs{}
	s.syncDir = func(dir string) error {
		d.mu.Lock()
		d.left = append(d.left, len(stageFiles(t, dest)))
		nth := len(d.left)
		d.mu.Unlock()
		if during != nil {
			during(nth)
		}
		return syncDir(dir)
	}
	return d
}

// check reports an error unless the fsyncs left what want says.
func (d *dirSyncs) check(t *testing.T, want []int) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if !slices.Equal(d.left, want) {
		t.Errorf("directory fsyncs, with the second names left at each: %v, want %v", d.left, want)
	}
}

// waitSecondNamesGone waits up to 10 s for the background work to remove
// every second name beside dest, without Wait.
func waitSecondNamesGone(t *testing.T, dest string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(stageFiles(t, dest)) != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if left := stageFiles(t, dest); len(left) != 0 {
		t.Errorf("without Wait: second names still beside dest after 10 s: %q", left)
	}
}

// waitAtOnce calls s.Wait and fails the test unless it returns within
// 10 s, well before anything the test set s to wait for.
func waitAtOnce(t *testing.T, s *Syncer) {
	t.Helper()
	waited := make(chan struct{})
	go func() {
		s.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not start the work left at once")
	}
}

// waitNothingLeft calls waitAtOnce and checks that nothing is left beside
// dest.
func waitNothingLeft(t *testing.T, s *Syncer, dest string) {
	t.Helper()
	waitAtOnce(t, s)
	if left := stageFiles(t, dest); len(left) != 0 {
		t.Errorf("after Wait: files beside dest %q", left)
	}
}

// TestAfterInstallSettles checks when the work after a run of renames into
// one directory happens: not before the renames have settled, or enough
// replaced files wait, or Wait asks for it; and once for the run.
func TestAfterInstallSettles(t *testing.T) {
	t.Parallel()
	// Longer than any test waits; not so long that a Wait that does not
	// start the work hangs the package until its timeout.
	const forever = time.Minute
	tests := []struct {
		name        string
		settle      time.Duration
		settleFiles int
		installs    int
		// starts is whether the work starts without Wait.
		starts bool
	}{
		{"Wait does it at once", forever, 100, 5, false},
		{"enough replaced files start it", forever, 3, 3, true},
		{"settling starts it", 20 * time.Millisecond, 100, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dest, s := replacing(t)
			s.settle, s.settleFiles = tt.settle, tt.settleFiles
			s.spareIdle = 0 // every replaced file is removed, none kept
			syncs := recordDirSyncs(t, s, dest, nil)
			for i := range tt.installs {
				if _, err := s.Sync(context.Background(), Target{Dest: dest}, fmt.Appendf(nil, "v%d\n", i)); err != nil {
					t.Fatal(err)
				}
			}
			if !tt.starts {
				if left := stageFiles(t, dest); len(left) != tt.installs {
					t.Errorf("before Wait: %d second names beside dest, want one per install (%d): %q", len(left), tt.installs, left)
				}
			} else {
				waitSecondNamesGone(t, dest)
			}
			waitNothingLeft(t, s, dest)
			if got, want := readFile(t, dest), fmt.Sprintf("v%d\n", tt.installs-1); got != want {
				t.Errorf("dest = %q, want %q", got, want)
			}
			syncs.check(t, []int{0}) // one, after all were removed
		})
	}
}

// TestAfterInstallRenameDuringWork installs a file while the work after
// the install before it runs: that work runs once more, after settling
// again, and removes the new second name too.
func TestAfterInstallRenameDuringWork(t *testing.T) {
	t.Parallel()
	dest, s := replacing(t)
	s.settle = 10 * time.Millisecond
	s.spareIdle = 0 // every replaced file is removed, none kept
	inSync, release := make(chan struct{}), make(chan struct{})
	syncs := recordDirSyncs(t, s, dest, func(nth int) {
		if nth == 1 {
			close(inSync)
			<-release
		}
	})
	if _, err := s.Sync(context.Background(), Target{Dest: dest}, []byte("v1\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inSync:
	case <-time.After(10 * time.Second):
		t.Fatal("the work after the first install did not start")
	}
	if _, err := s.Sync(context.Background(), Target{Dest: dest}, []byte("v2\n")); err != nil {
		t.Fatal(err)
	}
	close(release)
	waitSecondNamesGone(t, dest)
	s.Wait()
	syncs.check(t, []int{0, 0}) // two, each after the removals
	if got := readFile(t, dest); got != "v2\n" {
		t.Errorf("dest = %q, want %q", got, "v2\n")
	}
}

// TestSameContent compares files with contents around the block size.
func TestSameContent(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("0123456789abcdef"), 3*compareBlock/16+5)
	changedLast := bytes.Clone(big)
	changedLast[len(changedLast)-1] = 'x'
	tests := []struct {
		name          string
		file, content []byte
		want          bool
	}{
		{"empty", []byte{}, []byte{}, true},
		{"small equal", []byte("abc"), []byte("abc"), true},
		{"small differs", []byte("abc"), []byte("abd"), false},
		{"several blocks equal", big, big, true},
		{"last byte differs", big, changedLast, false},
		{"file longer", append(bytes.Clone(big), 'z'), big, false},
		{"file shorter", big[:len(big)-1], big, false},
		{"exactly one block", big[:compareBlock], big[:compareBlock], true},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := filepath.Join(dir, fmt.Sprint(i))
			if err := os.WriteFile(dest, tt.file, 0o644); err != nil {
				t.Fatal(err)
			}
			// The size check is the caller's; give the content's size so
			// that the blocks are compared.
			// Whole, and in pieces that do not line up with the blocks.
			var pieces Content
			for rest := tt.content; len(rest) > 0; rest = rest[min(len(rest), 1000):] {
				pieces = append(pieces, rest[:min(len(rest), 1000)])
			}
			for _, c := range []Content{{tt.content}, pieces} {
				got, err := sameContent(dest, destState{exists: true, size: int64(len(tt.content))}, c)
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Errorf("sameContent in %d pieces = %v, want %v", len(c), got, tt.want)
				}
			}
		})
	}
}
