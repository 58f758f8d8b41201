package filesync

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestSweepRemovesLeftSecondNames checks that the first sync of a
// destination removes the second names an earlier process left next to
// it, whether or not the sync changes the file, and nothing else: not the
// stage files, not the second names of other destinations, not names that
// only look alike; and that noop and check modes remove nothing.
func TestSweepRemovesLeftSecondNames(t *testing.T) {
	t.Parallel()
	left := []string{".app.conf.123.old", ".app.conf.4294967295.old"}
	kept := []string{
		"app.conf",
		".app.conf.123",            // a stage file
		".app.conf.77.old.tmp",     // not ours
		".app.conf..old",           // no digits
		".app.conf.12a.old",        // not digits
		".app.conf.0123.old",       // not a number os.CreateTemp writes
		".app.conf.4294967296.old", // nor this, beyond uint32
		".other.conf.5.old",        // another destination's
	}
	tests := []struct {
		name    string
		opts    Options
		content string
		removed bool
	}{
		{"sync that changes the file", Options{}, "new\n", true},
		{"sync that finds the file current", Options{}, "old\n", true},
		{"noop", Options{Noop: true}, "new\n", false},
		{"check only", Options{CheckOnly: true}, "new\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			dest := filepath.Join(dir, "app.conf")
			writeExisting(t, dest, existing{"old\n", 0o644})
			for _, name := range append(slices.Clone(left), kept[1:]...) {
				if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			// A directory or a symbolic link with the name of a second
			// name is not a file install left.
			if err := os.Mkdir(filepath.Join(dir, ".app.conf.9.old"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("app.conf", filepath.Join(dir, ".app.conf.8.old")); err != nil {
				t.Fatal(err)
			}
			s := newSyncer(t, testLogger(t), tt.opts)
			if _, err := s.Sync(context.Background(), Target{Dest: dest}, []byte(tt.content)); err != nil {
				t.Fatal(err)
			}
			s.Wait()
			want := append(slices.Clone(kept), ".app.conf.9.old", ".app.conf.8.old")
			if !tt.removed {
				want = append(want, left...)
			}
			slices.Sort(want)
			if got := dirNames(t, dir); !slices.Equal(got, want) {
				t.Errorf("directory holds\n%q\nwant\n%q", got, want)
			}
		})
	}
}
