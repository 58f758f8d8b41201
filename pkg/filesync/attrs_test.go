package filesync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func ptr(n int) *int { return &n }

func owner(t *testing.T, path string) (uid, gid int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

func TestSyncOwnership(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	const nobody = 65534
	userName, groupName := "", ""
	if u, err := user.LookupId(fmt.Sprint(nobody)); err == nil {
		userName = u.Username
	}
	if g, err := user.LookupGroupId(fmt.Sprint(nobody)); err == nil {
		groupName = g.Name
	}

	tests := []struct {
		name       string
		existing   *existing
		existingID int // owner and group of the existing dest
		target     Target
		content    string
		needNames  bool

		wantChanged bool
		wantUID     int
		wantGID     int
		wantMode    os.FileMode
	}{
		{
			name:        "new file with configured ids",
			target:      Target{UID: ptr(nobody), GID: ptr(nobody)},
			content:     "new\n",
			wantChanged: true, wantUID: nobody, wantGID: nobody, wantMode: 0o644,
		},
		{
			name:        "new file with owner and group names",
			target:      Target{Owner: userName, Group: groupName},
			needNames:   true,
			content:     "new\n",
			wantChanged: true, wantUID: nobody, wantGID: nobody, wantMode: 0o644,
		},
		{
			name:        "numeric owner string",
			target:      Target{Owner: "65534", Group: "65534"},
			content:     "new\n",
			wantChanged: true, wantUID: nobody, wantGID: nobody, wantMode: 0o644,
		},
		{
			name:        "new file without ids belongs to the process",
			content:     "new\n",
			wantChanged: true, wantUID: 0, wantGID: 0, wantMode: 0o644,
		},
		{
			name:     "existing owner kept on content change",
			existing: &existing{"old\n", 0o640}, existingID: nobody,
			content:     "new\n",
			wantChanged: true, wantUID: nobody, wantGID: nobody, wantMode: 0o640,
		},
		{
			name:     "owner change alone is a change",
			existing: &existing{"same\n", 0o640}, existingID: nobody,
			target:      Target{UID: ptr(0)},
			content:     "same\n",
			wantChanged: true, wantUID: 0, wantGID: nobody, wantMode: 0o640,
		},
		{
			name:     "matching configured owner is no change",
			existing: &existing{"same\n", 0o640}, existingID: nobody,
			target:  Target{UID: ptr(nobody), GID: ptr(nobody)},
			content: "same\n",
			wantUID: nobody, wantGID: nobody, wantMode: 0o640,
		},
		{
			name:        "setuid survives chown",
			target:      Target{UID: ptr(nobody), GID: ptr(nobody), Mode: os.ModeSetuid | os.ModeSetgid | 0o755, ModeSet: true},
			content:     "new\n",
			wantChanged: true, wantUID: nobody, wantGID: nobody, wantMode: os.ModeSetuid | os.ModeSetgid | 0o755,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.needNames && (userName == "" || groupName == "") {
				t.Skipf("no user and group named for id %d on this system", nobody)
			}
			dir := t.TempDir()
			dest := filepath.Join(dir, "app.conf")
			if tt.existing != nil {
				writeExisting(t, dest, *tt.existing)
				if err := os.Chown(dest, tt.existingID, tt.existingID); err != nil {
					t.Fatal(err)
				}
			}
			target := tt.target
			target.Dest = dest
			target.CheckCmd = "touch " + filepath.Join(dir, "checked")
			res, err := newSyncer(t, testLogger(t), Options{}).Sync(context.Background(), target, []byte(tt.content))
			if err != nil {
				t.Fatalf("Sync: %v", err)
			}
			if res.Changed != tt.wantChanged || res.Written != tt.wantChanged {
				t.Errorf("changed, written = %t, %t, want %t", res.Changed, res.Written, tt.wantChanged)
			}
			if ran := exists(t, filepath.Join(dir, "checked")); ran != tt.wantChanged {
				t.Errorf("check ran = %t, want %t", ran, tt.wantChanged)
			}
			if uid, gid := owner(t, dest); uid != tt.wantUID || gid != tt.wantGID {
				t.Errorf("owner = %d:%d, want %d:%d", uid, gid, tt.wantUID, tt.wantGID)
			}
			fi, err := os.Stat(dest)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode() & modeMask; got != tt.wantMode {
				t.Errorf("mode = %v, want %v", got, tt.wantMode)
			}
			if got := readFile(t, dest); got != tt.content {
				t.Errorf("content = %q, want %q", got, tt.content)
			}
		})
	}
}

func TestNormalizeMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want os.FileMode
	}{
		{0o644, 0o644},
		{0o4755, os.ModeSetuid | 0o755},
		{0o2750, os.ModeSetgid | 0o750},
		{0o1777, os.ModeSticky | 0o777},
		{os.ModeSetuid | 0o700, os.ModeSetuid | 0o700},
		{os.ModeDir | 0o755, 0o755},
	}
	for _, tt := range tests {
		if got := normalizeMode(tt.in); got != tt.want {
			t.Errorf("normalizeMode(%o) = %v, want %v", uint32(tt.in), got, tt.want)
		}
	}
}

// writeFailureEnv tells the test binary to act as the helper process of
// TestSyncWriteFailure.
const writeFailureEnv = "FILESYNC_WRITE_FAILURE_DEST"

// TestSyncWriteFailure makes writing the stage file fail with EFBIG (as a
// full disk would fail it) by running Sync in a child process whose file
// size limit is 4 KiB.
func TestSyncWriteFailure(t *testing.T) {
	if dest := os.Getenv(writeFailureEnv); dest != "" {
		writeFailureHelper(dest)
		return
	}
	t.Parallel()
	dir := t.TempDir()
	dest := filepath.Join(dir, "app.conf")
	writeExisting(t, dest, existing{"old\n", 0o644})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSyncWriteFailure$", "-test.count=1")
	cmd.Env = append(os.Environ(), writeFailureEnv+"="+dest)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("sync error: stage "+dest)) || !bytes.Contains(out, []byte("file too large")) {
		t.Errorf("helper output %q, want a stage error saying file too large", out)
	}
	if got := readFile(t, dest); got != "old\n" {
		t.Errorf("dest = %q, want it untouched", got)
	}
	if s := stageFiles(t, dest); len(s) != 0 {
		t.Errorf("stage files left = %q", s)
	}
	if exists(t, filepath.Join(dir, "checked")) {
		t.Error("check ran after a failed write")
	}
}

func writeFailureHelper(dest string) {
	lim := syscall.Rlimit{Cur: 4096, Max: 4096}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(2)
	}
	target := Target{Dest: dest, CheckCmd: "touch " + filepath.Join(filepath.Dir(dest), "checked")}
	_, err := New(nil, Options{}).Sync(context.Background(), target, []byte(strings.Repeat("x", 64<<10)))
	fmt.Printf("sync error: %v\n", err)
	if !errors.Is(err, syscall.EFBIG) {
		os.Exit(1)
	}
	os.Exit(0)
}
