package filesync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// reusing returns a Syncer with opts and a destination that does not
// exist yet, alone in a directory of its own. The Syncer fsyncs the
// directory 1 ms after a rename and keeps spares for a minute, longer than
// any test.
func reusing(t *testing.T, opts Options) (dest string, s *Syncer) {
	t.Helper()
	dir := t.TempDir()
	if !reusableFS(dir) {
		t.Skipf("replaced files are not reused on the file system of %s", dir)
	}
	dest = filepath.Join(dir, "app.conf")
	s = newSyncer(t, testLogger(t), opts)
	s.settle, s.spareIdle = time.Millisecond, time.Minute
	return dest, s
}

// installDurably syncs content to t.Dest, waits up to 10 s for the
// directory's fsync to cover the rename, and returns the inode of the
// destination.
func installDurably(t *testing.T, s *Syncer, tg Target, content string) uint64 {
	t.Helper()
	if _, err := s.Sync(context.Background(), tg, []byte(content)); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(tg.Dest)
	durable := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		w := s.dirs[dir]
		return w == nil || w.durable == w.renames
	}
	deadline := time.Now().Add(10 * time.Second)
	for !durable() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !durable() {
		t.Fatal("the directory was not fsynced after the install within 10 s")
	}
	if got := readFile(t, tg.Dest); got != content {
		t.Fatalf("dest = %q, want %q", got, content)
	}
	return inode(t, tg.Dest)
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestReuseWritesOverReplacedFile checks that, in a run of installs, each
// writes into the file the one before it replaced: contents that grow and
// shrink come out exact, the stage file has mode 0600 and a name of its
// own while check_cmd runs and the destination gets its own mode, one
// spare is kept beside the destination, and Wait removes it.
func TestReuseWritesOverReplacedFile(t *testing.T) {
	t.Parallel()
	dest, s := reusing(t, Options{})
	seen := filepath.Join(t.TempDir(), "seen")
	tg := Target{Dest: dest, Mode: 0o640, ModeSet: true, CheckCmd: "stat -c '%a %n' {{.src}} >> " + seen}
	contents := []string{
		strings.Repeat("first version\n", 300),
		"second\n",
		"third, shorter than the first\n",
		strings.Repeat("fourth, longer than the second\n", 50),
		"",
		"sixth\n",
	}
	var inodes []uint64
	for i, c := range contents {
		inodes = append(inodes, installDurably(t, s, tg, c))
		fi, err := os.Stat(dest)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != 0o640 {
			t.Errorf("install %d: dest mode %v, want 0640", i+1, fi.Mode())
		}
		if i >= 1 {
			if left := stageFiles(t, dest); len(left) != 1 || !strings.HasSuffix(left[0], ".old") {
				t.Errorf("install %d: files beside dest %q, want one spare", i+1, left)
			}
		}
	}
	for i := 2; i < len(inodes); i++ {
		if inodes[i] != inodes[i-2] {
			t.Errorf("install %d went to inode %d, want %d, the one install %d replaced", i+1, inodes[i], inodes[i-2], i)
		}
	}
	if inodes[0] == inodes[1] {
		t.Error("the second install wrote over the destination it replaced")
	}
	// Mode 0600 while check_cmd runs, and a name never used before: a
	// reload_cmd still running in the background may hold an earlier one.
	lines := strings.Split(strings.TrimSpace(readFile(t, seen)), "\n")
	names := map[string]bool{}
	for _, l := range lines {
		mode, name, _ := strings.Cut(l, " ")
		if mode != "600" {
			t.Errorf("check_cmd saw %s with mode %s, want 600", name, mode)
		}
		names[name] = true
	}
	if len(lines) != len(contents) || len(names) != len(contents) {
		t.Errorf("check_cmd saw stage files %q, want %d distinct names", lines, len(contents))
	}
	waitNothingLeft(t, s, dest)
}

// TestReuseSparesOpenFile checks that a replaced file that is still open
// is not written over: a reader of it reads the content it opened to the
// end.
func TestReuseSparesOpenFile(t *testing.T) {
	t.Parallel()
	dest, s := reusing(t, Options{})
	tg := Target{Dest: dest}
	first := strings.Repeat("the file a reader has open\n", 200)
	a := installDurably(t, s, tg, first)
	reader, err := os.Open(dest)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	installDurably(t, s, tg, "second\n")
	if got := installDurably(t, s, tg, "third\n"); got == a {
		t.Error("the third install wrote over the file a reader has open")
	}
	b, err := io.ReadAll(reader)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != first {
		t.Errorf("the reader read %q, want what it opened", b)
	}
	waitNothingLeft(t, s, dest)
}

// TestReuseWaitsForDirectorySync checks that a replaced file is not
// written over before the directory's fsync has made the rename that
// replaced it durable: until then, a crash could bring it back as the
// destination.
func TestReuseWaitsForDirectorySync(t *testing.T) {
	t.Parallel()
	dest, s := reusing(t, Options{})
	s.settle, s.settleFiles = time.Minute, 100
	tg := Target{Dest: dest}
	var inodes []uint64
	for _, c := range []string{"v1\n", "v2\n", "v3\n", "v4\n"} {
		if _, err := s.Sync(context.Background(), tg, []byte(c)); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, dest); got != c {
			t.Fatalf("dest = %q, want %q", got, c)
		}
		inodes = append(inodes, inode(t, dest))
	}
	if slices.Sort(inodes); len(slices.Compact(inodes)) != 4 {
		t.Errorf("installs before any directory fsync shared files: inodes %v", inodes)
	}
	waitNothingLeft(t, s, dest)
}

// TestReuseSkipsForeignFile checks that the file at the destination
// before the first install, which the Syncer did not install, is removed
// rather than kept for reuse.
func TestReuseSkipsForeignFile(t *testing.T) {
	t.Parallel()
	dest, s := reusing(t, Options{})
	writeExisting(t, dest, existing{"before confd\n", 0o644})
	installDurably(t, s, Target{Dest: dest}, "v1\n")
	waitSecondNamesGone(t, dest)
}

// TestReuseSkipsTamperedSpare changes a spare by hand before the install
// that would reuse it, and checks that the install writes a new file
// instead, does not hang, and leaves what the change made alone.
func TestReuseSkipsTamperedSpare(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// tamper changes the spare (named spare, at inode ino in dir) and
		// returns a check of what it made, run after the install.
		tamper func(t *testing.T, dir, spare string, ino uint64) (check func(t *testing.T, destIno uint64))
	}{
		{"linked to by hand", func(t *testing.T, dir, spare string, ino uint64) func(*testing.T, uint64) {
			backup := filepath.Join(dir, "backup")
			if err := os.Link(spare, backup); err != nil {
				t.Fatal(err)
			}
			return func(t *testing.T, destIno uint64) {
				if destIno == ino {
					t.Error("the install wrote over a file linked to by hand")
				}
				if got := readFile(t, backup); got != "v1\n" {
					t.Errorf("backup = %q, want %q", got, "v1\n")
				}
			}
		}},
		{"replaced by hand", func(t *testing.T, dir, spare string, _ uint64) func(*testing.T, uint64) {
			other := filepath.Join(dir, "other")
			if err := os.WriteFile(other, []byte("another file\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			otherIno := inode(t, other)
			if err := os.Rename(other, spare); err != nil {
				t.Fatal(err)
			}
			return func(t *testing.T, destIno uint64) {
				if destIno == otherIno {
					t.Error("the install wrote over a file put in place of the spare")
				}
			}
		}},
		{"symbolic link", func(t *testing.T, dir, spare string, _ uint64) func(*testing.T, uint64) {
			target := filepath.Join(t.TempDir(), "target")
			if err := os.WriteFile(target, []byte("not confd's\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(spare); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, spare); err != nil {
				t.Fatal(err)
			}
			return func(t *testing.T, _ uint64) {
				if got := readFile(t, target); got != "not confd's\n" {
					t.Errorf("the link's target = %q, want it untouched", got)
				}
			}
		}},
		{"FIFO", func(t *testing.T, dir, spare string, _ uint64) func(*testing.T, uint64) {
			if err := os.Remove(spare); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(spare, 0o600); err != nil {
				t.Fatal(err)
			}
			return func(*testing.T, uint64) {}
		}},
		{"extended attribute", func(t *testing.T, dir, spare string, ino uint64) func(*testing.T, uint64) {
			if err := syscall.Setxattr(spare, "user.note", []byte("set by hand"), 0); err != nil {
				t.Skipf("no user extended attributes here: %v", err)
			}
			return func(t *testing.T, destIno uint64) {
				if destIno == ino {
					t.Error("the install wrote over a file with an extended attribute set by hand")
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dest, s := reusing(t, Options{})
			// A file not reused is removed once the work after the
			// install has settled: long after the new stage file is
			// made, so that the two never share an inode number.
			s.settle = 200 * time.Millisecond
			dir := filepath.Dir(dest)
			tg := Target{Dest: dest}
			ino := installDurably(t, s, tg, "v1\n")
			installDurably(t, s, tg, "v2\n")
			spares := stageFiles(t, dest)
			if len(spares) != 1 {
				t.Fatalf("files beside dest %q, want one spare", spares)
			}
			check := tt.tamper(t, dir, spares[0], ino)
			done := make(chan uint64, 1)
			go func() { done <- installDurably(t, s, tg, "v3\n") }()
			select {
			case destIno := <-done:
				check(t, destIno)
			case <-time.After(10 * time.Second):
				t.Fatal("the install did not end within 10 s")
			}
			waitAtOnce(t, s)
			for _, name := range dirNames(t, dir) {
				if name != "app.conf" && name != "backup" {
					t.Errorf("after Wait: %s left beside dest", name)
				}
			}
		})
	}
}

// TestReuseOwnerAndGroup checks that a reused file has the owner and
// group a new stage file would have while check_cmd runs, and that the
// destination gets the owner and group wanted: those configured, else
// those of the destination, else, for a new destination, the process's.
func TestReuseOwnerAndGroup(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	dest, s := reusing(t, Options{})
	seen := filepath.Join(t.TempDir(), "seen")
	uid, gid := 65534, 65534
	tg := Target{Dest: dest, UID: &uid, GID: &gid, CheckCmd: "stat -c %u:%g {{.src}} >> " + seen}
	var inodes []uint64
	for _, c := range []string{"v1\n", "v2\n", "v3\n"} {
		inodes = append(inodes, installDurably(t, s, tg, c))
	}
	if inodes[2] != inodes[0] {
		t.Fatalf("the third install went to inode %d, want %d: no reuse to check", inodes[2], inodes[0])
	}
	self := fmt.Sprintf("%d:%d\n", os.Geteuid(), os.Getegid())
	if got, want := readFile(t, seen), strings.Repeat(self, 3); got != want {
		t.Errorf("stage file owners seen by check_cmd %q, want %q", got, want)
	}
	if u, g := owner(t, dest); u != uid || g != gid {
		t.Errorf("dest owner %d:%d, want %d:%d", u, g, uid, gid)
	}
	// A new destination, with no owner configured, gets the process's
	// owner and group, from a reused file too.
	if err := os.Remove(dest); err != nil {
		t.Fatal(err)
	}
	tg.UID, tg.GID, tg.CheckCmd = nil, nil, ""
	if got := installDurably(t, s, tg, "v4\n"); got != inodes[1] {
		t.Fatalf("the fourth install went to inode %d, want %d: no reuse to check", got, inodes[1])
	}
	if u, g := owner(t, dest); u != os.Geteuid() || g != os.Getegid() {
		t.Errorf("new dest owner %d:%d, want the process's, %s", u, g, self)
	}
}

// TestReuseCheckFails checks that a failed check on a reused file leaves
// the destination as it was, and that the installs after it go on.
func TestReuseCheckFails(t *testing.T) {
	t.Parallel()
	dest, s := reusing(t, Options{})
	tg := Target{Dest: dest}
	installDurably(t, s, tg, "v1\n")
	installDurably(t, s, tg, "v2\n")
	bad := tg
	bad.CheckCmd = "false"
	var cerr *CommandError
	if _, err := s.Sync(context.Background(), bad, []byte("rejected\n")); !errors.As(err, &cerr) {
		t.Fatalf("Sync with a failing check: %v, want a *CommandError", err)
	}
	if got := readFile(t, dest); got != "v2\n" {
		t.Errorf("dest = %q after a failed check, want %q", got, "v2\n")
	}
	installDurably(t, s, tg, "v3\n")
	installDurably(t, s, tg, "v4\n")
	waitNothingLeft(t, s, dest)
}

// TestReuseKeepStageFile checks that with KeepStageFile the stage file
// kept is a new file holding the content, while the file installed may
// be a reused one.
func TestReuseKeepStageFile(t *testing.T) {
	t.Parallel()
	dest, s := reusing(t, Options{KeepStageFile: true})
	tg := Target{Dest: dest}
	var inodes []uint64
	var kept []string
	for _, c := range []string{"v1\n", "v2\n", "v3\n"} {
		res, err := s.Sync(context.Background(), tg, []byte(c))
		if err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, res.StageFile); got != c {
			t.Errorf("kept stage file %s = %q, want %q", res.StageFile, got, c)
		}
		kept = append(kept, res.StageFile)
		inodes = append(inodes, installDurably(t, s, tg, c))
	}
	if inodes[2] != inodes[0] {
		t.Errorf("the third install went to inode %d, want %d", inodes[2], inodes[0])
	}
	waitAtOnce(t, s)
	for i, k := range kept {
		if got, want := readFile(t, k), fmt.Sprintf("v%d\n", i+1); got != want {
			t.Errorf("after Wait: kept stage file %s = %q, want %q", k, got, want)
		}
	}
}

// TestReuseAfterFailedDirectorySync checks that once a directory's fsync
// failed, replaced files there are removed, not kept to be written over:
// a later fsync that succeeds need not have written the renames before
// it.
func TestReuseAfterFailedDirectorySync(t *testing.T) {
	t.Parallel()
	dest, s := reusing(t, Options{})
	var failed atomic.Bool
	s.syncDir = func(dir string) error {
		if failed.CompareAndSwap(false, true) {
			return syscall.EIO
		}
		return syncDir(dir)
	}
	tg := Target{Dest: dest}
	for _, c := range []string{"v1\n", "v2\n", "v3\n", "v4\n"} {
		installDurably(t, s, tg, c)
	}
	// Spares would be kept for a minute.
	waitSecondNamesGone(t, dest)
}

// TestReuseWithoutLeases checks that where leases cannot be had, replaced
// files are removed rather than kept, and the installs go on.
func TestReuseWithoutLeases(t *testing.T) {
	t.Parallel()
	dest, s := reusing(t, Options{})
	probes := 0
	s.unshared = func(*os.File) error {
		probes++
		return syscall.EINVAL
	}
	tg := Target{Dest: dest}
	for _, c := range []string{"v1\n", "v2\n", "v3\n", "v4\n"} {
		installDurably(t, s, tg, c)
	}
	if probes != 1 {
		t.Errorf("leases tried %d times, want once", probes)
	}
	waitSecondNamesGone(t, dest)
}

// TestSparesExpire checks that a spare not reused within spareIdle is
// removed, and that the background work then ends, without Wait.
func TestSparesExpire(t *testing.T) {
	t.Parallel()
	dest, s := reusing(t, Options{})
	s.spareIdle = 20 * time.Millisecond
	tg := Target{Dest: dest}
	installDurably(t, s, tg, "v1\n")
	installDurably(t, s, tg, "v2\n")
	waitSecondNamesGone(t, dest)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		left := len(s.dirs)
		s.mu.Unlock()
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("background work still registered 10 s after its spare went")
		}
		time.Sleep(time.Millisecond)
	}
}
