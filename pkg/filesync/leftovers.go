package filesync

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
)

// sweep removes, the first time this Syncer installs into dest, the second
// names of files replaced at dest that an earlier process left behind: a
// process killed or a machine stopped between an install and the work
// after it (see afterInstall) leaves them. Such a name only keeps a
// replaced file's blocks; removing it is safe even while another process
// installs into dest, which at worst finds its own second name gone.
// Stage files are left alone: one may belong to a check running now, or
// be kept for inspection. Failures are logged.
func (s *Syncer) sweep(dest string, log *logrus.Entry) {
	s.mu.Lock()
	done := s.swept[dest]
	s.mu.Unlock()
	if done {
		return
	}
	dir, base := filepath.Dir(dest), filepath.Base(dest)
	entries, err := os.ReadDir(dir)
	if err != nil {
		// A missing directory is the sync's own error to report; others
		// are tried again at the next sync.
		if !errors.Is(err, fs.ErrNotExist) {
			log.WithError(err).Warn("look for files left by an earlier install")
		}
		return
	}
	s.mu.Lock()
	s.swept[dest] = true
	s.mu.Unlock()
	removed := 0
	for _, e := range entries {
		if !e.Type().IsRegular() || !isSecondName(e.Name(), base) {
			continue
		}
		// Unlink, not os.Remove: a directory put there meanwhile stays.
		if err := syscall.Unlink(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.WithError(err).WithField("file", e.Name()).Warn("remove a file left by an earlier install")
			continue
		}
		removed++
	}
	if removed > 0 {
		log.WithField("files", removed).Info("removed files left by an earlier install")
	}
}

// isSecondName reports whether name is the second name install gives a
// replaced file at a destination named base: the name of a stage file
// (".base." and the number os.CreateTemp puts in, a uint32 in decimal)
// and ".old".
func isSecondName(name, base string) bool {
	digits, ok := strings.CutPrefix(name, "."+base+".")
	if !ok {
		return false
	}
	digits, ok = strings.CutSuffix(digits, ".old")
	if !ok {
		return false
	}
	n, err := strconv.ParseUint(digits, 10, 32)
	return err == nil && strconv.FormatUint(n, 10) == digits
}
