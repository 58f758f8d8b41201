package filesync

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"
)

// dirWork is what is left to do in a directory after renames into it:
// fsync it, remove the second names of the files they replaced, and keep
// some of those files for reuse meanwhile.
type dirWork struct {
	remove []string
	// spares are the replaced files kept for reuse, oldest first, by
	// destination (see afterInstall).
	spares map[string][]spare
	// renames counts the renames into the directory; taken is what it was
	// when the work last started, and durable what it was when the last
	// directory fsync that succeeded started.
	renames, taken, durable uint64
	// waiting counts the renames and removals since the work last
	// started.
	waiting int
	// final is set by Wait: the work removes every spare.
	final bool
	// kick has a value when the work is to start without settling: enough
	// renames wait, or Wait was called. wake has one when a rename or
	// removal came: while only spares are kept, the work sleeps until the
	// first of them is due, and a wake makes it settle instead.
	kick, wake chan struct{}
}

// spare is a file replaced at a destination and kept, under its second
// name, for the next install there to write into (see reuse).
type spare struct {
	path string
	// id is the file this Syncer installed at the destination; reuse
	// checks that path still names it.
	id fileID
	// renames is dirWork.renames just after the rename that replaced it:
	// once durable reaches it, no crash can bring the file back as the
	// destination.
	renames uint64
	at      time.Time
}

// start makes w's work start without settling. Call it with s.mu held.
func (w *dirWork) start() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Wait starts the work left after every install at once, without letting
// the renames settle, and returns once it has finished: the files
// replaced are gone, spares included, and the fsync of every directory a
// file was renamed into is done, which makes every installed file
// durable. Call it when no sync runs and none will start before it
// returns, as before the process exits.
func (s *Syncer) Wait() {
	s.mu.Lock()
	for _, w := range s.dirs {
		w.final = true
		w.start()
	}
	s.mu.Unlock()
	s.pending.Wait()
}

// afterInstall records the rename of a file over dest, where old ("" when
// none) names the file it replaced; id is the renamed file, nil when it is
// not to be reused. The rest is left to the background work of dest's
// directory, which runs once the renames into the directory have settled:
// settle after the first, at once when settleFiles of them wait, or when
// Wait is called. It fsyncs the directory and removes the replaced files
// not kept, and runs again after settling while renames come. Failures are
// logged: the file is installed and whole either way.
//
// The replaced file is kept as a spare when this Syncer installed it on a
// file system where it can be reused: the next install at dest writes
// over it rather than into a new file (see reuse), once the directory's
// fsync has made the rename that replaced it durable. A spare not reused
// within spareIdle is removed. Removing a file frees its blocks, and on a
// disk mounted with discard the file system also tells the disk that they
// are free: on the machine of docs/performance.md that took about 2 ms for
// a file of 30 KB, in the removal itself (its ext4 has no journal; with
// one, the next commit of the journal waits for it instead), and the
// fsyncs of other processes on the disk, etcd's included, waited for it. A
// run of changes that writes over spares frees and allocates nothing.
//
// The renamed file is whole without the directory's fsync: its content
// was fsynced before the rename. Until that fsync, a crash may bring back
// the file it replaced, which confd's next render replaces again.
func (s *Syncer) afterInstall(dest, old string, id *fileID) {
	dir := filepath.Dir(dest)
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.work(dir)
	w.renames++
	prev, ours := s.installed[dest]
	if id != nil {
		s.installed[dest] = *id
	} else {
		delete(s.installed, dest)
	}
	switch {
	case old == "":
	case ours && s.spareIdle > 0 && s.reuse[dir]:
		w.spares[dest] = append(w.spares[dest], spare{path: old, id: prev, renames: w.renames, at: time.Now()})
	default:
		w.remove = append(w.remove, old)
	}
	w.wait(s.settleFiles)
}

// wait counts one more rename or removal for w's work, wakes it, and
// starts it when enough of them wait. Call it with s.mu held.
func (w *dirWork) wait(enough int) {
	select {
	case w.wake <- struct{}{}:
	default:
	}
	if w.waiting++; w.waiting >= enough {
		w.start()
	}
}

// removeLater has the background work of dir remove path. The file it
// names is to be freed, which may take milliseconds (see afterInstall).
func (s *Syncer) removeLater(dir, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.work(dir)
	w.remove = append(w.remove, path)
	w.wait(s.settleFiles)
}

// takeSpare returns the oldest spare of dest whose replacement is durable,
// and forgets it; ok is false when there is none.
func (s *Syncer) takeSpare(dest string) (sp spare, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.dirs[filepath.Dir(dest)]
	if w == nil {
		return spare{}, false
	}
	list := w.spares[dest]
	if len(list) == 0 || list[0].renames > w.durable {
		return spare{}, false
	}
	if len(list) == 1 {
		delete(w.spares, dest)
	} else {
		w.spares[dest] = list[1:]
	}
	return list[0], true
}

// work returns the work of dir, starting its goroutine when there is none.
// Call it with s.mu held.
func (s *Syncer) work(dir string) *dirWork {
	if w, ok := s.dirs[dir]; ok {
		return w
	}
	w := &dirWork{
		spares: map[string][]spare{},
		kick:   make(chan struct{}, 1),
		wake:   make(chan struct{}, 1),
	}
	s.dirs[dir] = w
	log := s.log.WithField("dir", dir)
	s.pending.Go(func() { s.runWork(dir, w, log) })
	return w
}

// runWork does the work of dir until none is left.
func (s *Syncer) runWork(dir string, w *dirWork, log *logrus.Entry) {
	timer := time.NewTimer(s.settle)
	defer timer.Stop()
	var wake chan struct{} // w.wake while only spares are kept
	for {
		select {
		case <-timer.C:
		case <-w.kick:
		case <-wake:
			timer.Reset(s.settle)
			wake = nil
			continue
		}
		s.mu.Lock()
		remove, renames, durable := w.take(time.Now().Add(-s.spareIdle))
		s.mu.Unlock()
		for _, p := range remove {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				log.WithError(err).WithField("file", p).Warn("remove the file replaced by an install")
			}
		}
		// Removals need no fsync: a name a crash brings back is swept.
		var syncErr error
		if renames > durable {
			if syncErr = s.syncDir(dir); syncErr != nil {
				log.WithError(syncErr).Warn("fsync directory after install")
			}
		}
		s.mu.Lock()
		switch {
		case renames == durable:
		case syncErr == nil:
			w.durable = renames
		default:
			// A later fsync that succeeds need not have written what
			// this one failed to (after an I/O error, Linux reports it
			// once), so no rename before it may count as durable.
			s.stopReuse(dir)
		}
		next := s.settle
		switch {
		case len(w.remove) > 0 || w.taken != w.renames:
			wake = nil
		case len(w.spares) > 0:
			next = s.spareIdle
			for _, list := range w.spares {
				next = min(next, time.Until(list[0].at.Add(s.spareIdle)))
			}
			next = max(next, s.settle)
			wake = w.wake
			select { // a wake for what was taken now
			case <-w.wake:
			default:
			}
		default:
			delete(s.dirs, dir)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		timer.Reset(next)
	}
}

// take starts a run of w's work: it returns the files to remove (the
// spares replaced before stale among them, every spare after Wait), the
// renames so far and the renames the last directory fsync covered. Call
// it with s.mu held.
func (w *dirWork) take(stale time.Time) (remove []string, renames, durable uint64) {
	remove = w.dropSpares(w.remove, func(sp spare) bool { return w.final || sp.at.Before(stale) })
	w.remove = nil
	w.taken, w.waiting = w.renames, 0
	select { // a kick for the work taken now
	case <-w.kick:
	default:
	}
	return remove, w.renames, w.durable
}

// dropSpares forgets the spares that drop accepts and returns their paths
// appended to paths. Call it with s.mu held.
func (w *dirWork) dropSpares(paths []string, drop func(spare) bool) []string {
	for dest, list := range w.spares {
		keep := list[:0]
		for _, sp := range list {
			if drop(sp) {
				paths = append(paths, sp.path)
			} else {
				keep = append(keep, sp)
			}
		}
		if len(keep) == 0 {
			delete(w.spares, dest)
		} else {
			w.spares[dest] = keep
		}
	}
	return paths
}
