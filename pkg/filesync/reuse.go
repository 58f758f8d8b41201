package filesync

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/sirupsen/logrus"
)

// fileID tells files apart: a device and an inode on it.
type fileID struct{ dev, ino uint64 }

// idOf returns the identity of the open file f.
func idOf(f *os.File) (fileID, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileID{}, err
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, errors.New("no inode information")
	}
	return statID(sys), nil
}

func statID(sys *syscall.Stat_t) fileID {
	return fileID{dev: uint64(sys.Dev), ino: sys.Ino} // Dev is not a uint64 everywhere
}

var (
	// errNotSpare says that a spare's name no longer names the file
	// installed there, alone and without metadata of its own.
	errNotSpare = errors.New("no longer the replaced file alone")
	// errInUse says that another open of a spare exists.
	errInUse = errors.New("open elsewhere")
)

// leaseError says that a lease could not be had at all.
type leaseError struct{ err error }

func (e *leaseError) Error() string { return "take a lease: " + e.err.Error() }
func (e *leaseError) Unwrap() error { return e.err }

// reusable reports whether replaced files in dir may be kept for reuse.
func (s *Syncer) reusable(dir string) bool {
	s.mu.Lock()
	ok, known := s.reuse[dir]
	s.mu.Unlock()
	if known {
		return ok
	}
	ok = reusableFS(dir)
	s.mu.Lock()
	if _, known := s.reuse[dir]; !known {
		s.reuse[dir] = ok
	}
	s.mu.Unlock()
	return ok
}

// stopReuse keeps replaced files in dir from being reused from now on,
// and has the spares kept there removed. Call it with s.mu held.
func (s *Syncer) stopReuse(dir string) {
	s.reuse[dir] = false
	if w := s.dirs[dir]; w != nil {
		w.remove = w.dropSpares(w.remove, func(spare) bool { return true })
	}
}

// stageFor returns a stage file for dest holding content: a spare of dest
// written over when there is one that can be (see reuse), else a new
// file.
func (s *Syncer) stageFor(dest string, content Content, log *logrus.Entry) (*stage, error) {
	if sp, ok := s.takeSpare(dest); ok {
		st, left, err := reuse(dest, sp, content, s.unshared)
		if err == nil {
			return st, nil
		}
		dir := filepath.Dir(dest)
		lg := log.WithError(err).WithField("file", filepath.Base(sp.path))
		if le := (*leaseError)(nil); errors.As(err, &le) {
			// Whatever keeps a lease from this file keeps it from the
			// next.
			s.mu.Lock()
			s.stopReuse(dir)
			s.mu.Unlock()
			lg.Info("replaced files not reused in this directory")
		} else {
			lg.Debug("replaced file not reused")
		}
		if left != "" {
			s.removeLater(dir, left)
		}
	}
	return newStage(dest, content)
}

// reuse makes the spare sp a stage file holding content, as newStage
// does with a new file, but writing over the spare's blocks: that frees
// and allocates none. On failure it returns the path that still names the
// spare, if any.
//
// The spare first gets a new stage name, then the owner, group and mode a
// new stage file would have. A reader that still has the replaced file
// open must go on reading what it opened, so the spare is written over
// only when nothing else has it open: the probe is a write lease, which
// Linux grants only to the one open of a file (and withdraws at the next,
// which waits for it), and reuse gives it back at once. Nothing but confd opens a stage file
// between the probe and the rename over the destination; check_cmd does,
// after the content is written. A spare that another name links to (a
// hard link made by hand), or that has extended attributes other than
// security labels (an access control list set by hand on the destination,
// say), is not written over either.
func reuse(dest string, sp spare, content Content, unshared func(*os.File) error) (st *stage, left string, err error) {
	path, err := linkStage(dest, sp.path)
	if err != nil {
		return nil, sp.path, err
	}
	if err := syscall.Unlink(sp.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		_ = syscall.Unlink(path)
		return nil, sp.path, err
	}
	// Not blocking: whatever has the name, a FIFO put there included, the
	// open returns.
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, path, err
	}
	st = &stage{f: f, path: path}
	if err := prepareSpare(f, path, sp.id, unshared); err != nil {
		_ = st.close()
		return nil, path, err
	}
	err = content.writeTo(f)
	if err == nil {
		err = f.Truncate(int64(content.Len()))
	}
	if err != nil {
		_ = st.close()
		return nil, path, fmt.Errorf("stage %s: %w", path, err)
	}
	return st, "", nil
}

// prepareSpare checks that f (named path) is the file id, alone under
// its name and with no extended attributes but security labels; gives it
// the owner, group and mode of a new stage file; and checks that it is
// open nowhere else.
func prepareSpare(f *os.File, path string, id fileID, unshared func(*os.File) error) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.Mode().IsRegular() || sys.Nlink != 1 || statID(sys) != id || !onlyLabels(path) {
		return errNotSpare
	}
	uid, gid := os.Geteuid(), os.Getegid()
	if d, err := os.Stat(filepath.Dir(path)); err == nil && d.Mode()&os.ModeSetgid != 0 {
		if dsys, ok := d.Sys().(*syscall.Stat_t); ok {
			gid = int(dsys.Gid)
		}
	}
	if int(sys.Uid) != uid || int(sys.Gid) != gid {
		if err := f.Chown(uid, gid); err != nil {
			return err
		}
	}
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if err := unshared(f); err != nil {
		if errors.Is(err, syscall.EAGAIN) {
			return errInUse
		}
		return &leaseError{err}
	}
	return nil
}

// linkStage gives the file named old a new stage file name for dest, of
// the form os.CreateTemp gives one, and returns it. A name is never taken
// twice: one that exists is passed over.
func linkStage(dest, old string) (string, error) {
	dir, prefix := filepath.Dir(dest), "."+filepath.Base(dest)+"."
	for range 100 {
		path := filepath.Join(dir, prefix+strconv.FormatUint(uint64(rand.Uint32()), 10))
		err := os.Link(old, path)
		if !errors.Is(err, fs.ErrExist) {
			return path, err
		}
	}
	return "", fmt.Errorf("link %s: no free stage name", old)
}
