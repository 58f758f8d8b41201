package filesync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/aymanbagabas/go-udiff"
	"github.com/sirupsen/logrus"
)

// Target describes one destination file and the commands that guard it.
type Target struct {
	// Resource names the template resource in errors and log fields.
	Resource string
	// Dest is the absolute path of the file to keep in sync. Its directory
	// must exist; it is not created. A symbolic link at Dest is compared by
	// its target and replaced by a regular file, as confd does.
	Dest string
	// Mode is applied when ModeSet is true: permission bits plus
	// os.ModeSetuid, os.ModeSetgid and os.ModeSticky (the raw Unix bits
	// 04000, 02000 and 01000 are accepted as well). When ModeSet is false an
	// existing destination keeps its mode and a new one gets 0644.
	Mode    os.FileMode
	ModeSet bool
	// Owner and Group are a user and a group name (a numeric string is taken
	// as an id when no such name exists). UID and GID are numeric ids, nil
	// when not set; they take precedence over Owner and Group. Ids that are
	// not set leave an existing destination's owner and group as they are;
	// a new destination belongs to the process's user and group. (Pointers,
	// so that a zero Target never means root.)
	Owner, Group string
	UID, GID     *int
	// CheckCmd and ReloadCmd are text/template strings run by /bin/sh -c.
	// {{.src}} is the stage file and {{.dest}} is Dest. An empty command is
	// not run.
	CheckCmd, ReloadCmd string
}

// Options apply to every Sync of a Syncer.
type Options struct {
	// Noop computes the diff and changes nothing.
	Noop bool
	// SyncOnly installs files without running check or reload commands.
	SyncOnly bool
	// KeepStageFile leaves the stage file on disk for inspection; see Sync.
	KeepStageFile bool
	// CheckOnly stages the content and runs check_cmd on it, whether the
	// destination differs or not, then removes the stage file: the
	// destination is never written and reload_cmd never runs.
	CheckOnly bool
	// CommandTimeout bounds each check and reload command; 0 means no bound
	// other than the context.
	CommandTimeout time.Duration
}

// Result reports what Sync found and did. It is meaningful also when Sync
// returns an error.
type Result struct {
	// Changed is true when the destination's content, mode or owner
	// differed from what is wanted.
	Changed bool
	// Written is true when the destination was replaced. Installed is
	// the moment just before it was: whoever saw the new file saw it
	// after Installed, however late Sync returns.
	Written   bool
	Installed time.Time
	// Reloaded is true when the reload command ran and succeeded.
	Reloaded bool
	// Checked is true when, in check-only mode, the content was staged
	// and check_cmd (if any) passed.
	Checked bool
	// Diff is the unified diff from the current destination (empty when it
	// does not exist) to the new content; set in noop mode only, and empty
	// when only the mode or owner differ.
	Diff string
	// CheckRan and ReloadRan say whether each command ran (whatever its
	// result), and CheckDuration and ReloadDuration how long it took.
	CheckRan, ReloadRan           bool
	CheckDuration, ReloadDuration time.Duration
	// CheckOutput and ReloadOutput hold the combined output of the commands
	// that ran, at most the last 64 KiB of each.
	CheckOutput, ReloadOutput string
	// StageFile is the path of the stage file left on disk with
	// KeepStageFile.
	StageFile string
}

// Syncer installs files following one durable recipe. One Syncer may
// serve many goroutines, as long as no two of them sync the same
// destination at once. Call Wait before the process exits.
type Syncer struct {
	log  *logrus.Logger
	opts Options
	// dirs are the directories with work left after a rename into them,
	// done in the background by one goroutine each (see afterInstall);
	// pending tracks those goroutines for Wait.
	mu      sync.Mutex
	dirs    map[string]*dirWork
	pending sync.WaitGroup
	// swept are the destinations sweep has looked at.
	swept map[string]bool
	// installed is, for each destination, the file this Syncer last
	// renamed there; reuse says, for each directory installed into,
	// whether the files replaced there may be reused (see reusable).
	installed map[string]fileID
	reuse     map[string]bool
	// settle is how long the work after a rename waits for more renames
	// into the same directory, and settleFiles how many of them make it
	// start at once; spareIdle is how long a replaced file is kept for
	// reuse (see afterInstall).
	settle      time.Duration
	settleFiles int
	spareIdle   time.Duration
	// rename replaces the destination and link gives the old one a
	// second name; fields so that tests can make them fail the way a
	// bind-mounted destination or a file system without hard links does,
	// syncDir so that they can count directory fsyncs, and unshared so
	// that they can make leases fail.
	rename   func(oldpath, newpath string) error
	link     func(oldname, newname string) error
	syncDir  func(dir string) error
	unshared func(*os.File) error
}

// The work after the renames into a directory waits this long for more of
// them, and starts at once when this many wait; a replaced file is kept
// this long for the next install at its destination to reuse.
const (
	settleDelay = 50 * time.Millisecond
	settleFiles = 16
	spareIdle   = time.Second
)

// New returns a Syncer that logs to log (nothing when log is nil).
func New(log *logrus.Logger, opts Options) *Syncer {
	if log == nil {
		log = logrus.New()
		log.SetOutput(io.Discard)
	}
	return &Syncer{
		log: log, opts: opts,
		settle: settleDelay, settleFiles: settleFiles, spareIdle: spareIdle,
		rename: os.Rename, link: os.Link, syncDir: syncDir, unshared: unshared,
		dirs: map[string]*dirWork{}, swept: map[string]bool{},
		installed: map[string]fileID{}, reuse: map[string]bool{},
	}
}

// Content is the new content of a file in pieces, written one after
// another, so that a renderer's output need not be joined into one slice.
type Content [][]byte

// Len returns the length of c in bytes.
func (c Content) Len() int {
	n := 0
	for _, p := range c {
		n += len(p)
	}
	return n
}

// writeTo writes c to w.
func (c Content) writeTo(w io.Writer) error {
	for _, p := range c {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// Sync is SyncContent with the content in one piece.
func (s *Syncer) Sync(ctx context.Context, t Target, content []byte) (Result, error) {
	return s.SyncContent(ctx, t, Content{content})
}

// SyncContent makes t.Dest hold content with the wanted mode and owner.
//
// When the destination already matches, Sync does nothing. Otherwise, in
// noop mode it only fills Result.Diff. Else it writes a stage file next to
// the destination (mode 0600 while check_cmd runs), runs check_cmd on it,
// sets owner and mode, fsyncs it, renames it over the destination and runs
// reload_cmd; the directory is fsynced in the background (see
// afterInstall). A failed check returns a *CommandError and leaves the
// destination untouched; a failed reload returns a *CommandError with
// Result.Written true.
//
// A destination that cannot be replaced because it is a mount point (EBUSY,
// a file bind-mounted into a container) is overwritten in place instead,
// after the check passed; that write is not atomic.
//
// With KeepStageFile the stage file that check_cmd saw stays on disk under
// its own name, also after a failure, and {{.src}} of reload_cmd still
// names it; the destination is then installed from a second copy. Without
// it, the stage file is renamed into place or removed, so {{.src}} of
// reload_cmd names a path that no longer exists (as in confd).
func (s *Syncer) SyncContent(ctx context.Context, t Target, content Content) (res Result, err error) {
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("sync %s: %w", t.Dest, err)
	}
	log := s.log.WithFields(logrus.Fields{"resource": t.Resource, "dest": t.Dest})
	if !s.opts.Noop && !s.opts.CheckOnly {
		s.sweep(t.Dest, log)
	}

	cur, err := statDest(t.Dest)
	if err != nil {
		return res, err
	}
	want, err := wantAttrs(t, cur)
	if err != nil {
		return res, fmt.Errorf("sync %s: %w", t.Dest, err)
	}
	same, err := sameContent(t.Dest, cur, content)
	if err != nil {
		return res, err
	}
	res.Changed = !same || !want.matches(cur)
	if !res.Changed && !s.opts.CheckOnly {
		return s.pendingReload(ctx, log, t, res)
	}

	if s.opts.Noop {
		res.Diff, err = unifiedDiff(t.Dest, cur.exists, content)
		return res, err
	}

	// A stage file that is to be renamed over the destination may be a
	// spare written over (see stageFor); one that is only checked, or kept
	// for inspection, is a new file.
	var st *stage
	if s.opts.KeepStageFile || s.opts.CheckOnly {
		st, err = newStage(t.Dest, content)
	} else {
		st, err = s.stageFor(t.Dest, content, log)
	}
	if err != nil {
		return res, err
	}
	if s.opts.KeepStageFile {
		st.keep = true
		res.StageFile = st.path
	}
	defer func() { err = joinErr(err, st.release()) }()

	if !s.opts.SyncOnly && t.CheckCmd != "" {
		start := time.Now()
		res.CheckOutput, err = s.run(ctx, log, t, KindCheck, t.CheckCmd, st.path)
		res.CheckRan, res.CheckDuration = true, time.Since(start)
		if err != nil {
			return res, err
		}
	}
	if s.opts.CheckOnly {
		res.Checked = true
		return res, nil
	}
	// Past this point the destination changes; stop here rather than
	// install a file whose reload is bound to fail.
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("sync %s: %w", t.Dest, err)
	}

	inst := st
	if s.opts.KeepStageFile {
		inst, err = s.stageFor(t.Dest, content, log)
		if err != nil {
			return res, err
		}
		defer func() { err = joinErr(err, inst.release()) }()
	}
	if err := setAttrs(inst.f, inst.path, want, log); err != nil {
		return res, fmt.Errorf("stage %s: %w", t.Dest, err)
	}
	installed, err := s.install(inst, t.Dest, content, want, log)
	if err != nil {
		return res, err
	}
	res.Written, res.Installed = true, installed

	switch {
	case t.ReloadCmd == "":
		s.notePending(log, t.Dest, false)
	case !s.opts.SyncOnly:
		err = s.reload(ctx, log, t, st.path, &res)
	}
	return res, err
}

// reload runs t's reload command with {{.src}} src and notes it in res. The
// reload is owed (see pendingPath) from before it starts until it
// succeeds, so that a confd killed meanwhile runs it at its next start.
func (s *Syncer) reload(ctx context.Context, log *logrus.Entry, t Target, src string, res *Result) error {
	s.notePending(log, t.Dest, true)
	start := time.Now()
	var err error
	res.ReloadOutput, err = s.run(ctx, log, t, KindReload, t.ReloadCmd, src)
	res.ReloadRan, res.ReloadDuration = true, time.Since(start)
	if err != nil {
		return err
	}
	s.notePending(log, t.Dest, false)
	res.Reloaded = true
	return nil
}

// pendingPath names the file that records, next to dest, that dest was
// installed and its reload command has not succeeded since. It outlives
// the process, so that the next run of confd, a second -onetime in a
// script for instance, runs the reload again although dest is current.
func pendingPath(dest string) string {
	return filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+".reload-pending")
}

// notePending records (pending true) or clears that dest owes a reload.
// The record is created exclusively, so that whatever has its name, a
// link planted in a directory others may write to included, is neither
// followed nor truncated; it is removed by name. A failure is logged: it
// loses only the retry of a reload.
func (s *Syncer) notePending(log *logrus.Entry, dest string, pending bool) {
	path := pendingPath(dest)
	var err error
	if pending {
		var f *os.File
		if f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
			err = f.Close()
		} else if errors.Is(err, fs.ErrExist) {
			err = nil
		}
	} else if err = os.Remove(path); errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	if err != nil {
		log.WithError(err).Warn("record pending reload")
	}
}

// pendingReload runs t's reload command for a destination found current
// when an earlier install's reload failed (see pendingPath), and clears
// the record once it succeeds; {{.src}} and {{.dest}} are both the
// destination. Without a reload command the record goes.
func (s *Syncer) pendingReload(ctx context.Context, log *logrus.Entry, t Target, res Result) (Result, error) {
	if s.opts.Noop || s.opts.SyncOnly {
		return res, nil
	}
	if _, err := os.Lstat(pendingPath(t.Dest)); err != nil {
		return res, nil
	}
	if t.ReloadCmd == "" {
		s.notePending(log, t.Dest, false)
		return res, nil
	}
	log.Debug("running the reload that failed after the last install")
	err := s.reload(ctx, log, t, t.Dest, &res)
	return res, err
}

// joinErr adds a cleanup error to err, keeping err itself when cleanup
// succeeded so that callers can still assert its type.
func joinErr(err, cleanupErr error) error {
	if cleanupErr == nil {
		return err
	}
	return errors.Join(err, cleanupErr)
}

// install makes the prepared stage file durable and moves it over dest. It
// returns the moment just before dest changed (see Result.Installed).
//
// Once the stage file is durable, a crash at any point leaves either the
// old file or the new one, both whole; the directory's fsync only decides
// which, so it need not hold up reload_cmd or the next change, and runs
// in the background. So does the removal of the old file: a rename that
// takes away the last name of a file frees its blocks there and then,
// which takes milliseconds on some disks even for a small file; the old
// file gets a second name first, next to the stage file, and is kept for
// the next install to reuse or removed in the background (see
// afterInstall). Without hard links, the rename frees the old file.
func (s *Syncer) install(st *stage, dest string, content Content, want attrs, log *logrus.Entry) (time.Time, error) {
	// Content, owner and mode in one fsync, just before the rename.
	if err := st.f.Sync(); err != nil {
		return time.Time{}, fmt.Errorf("stage %s: %w", dest, err)
	}
	// Who the file is, for the install that replaces it to know it as a
	// spare (see afterInstall).
	var id *fileID
	if v, err := idOf(st.f); err == nil && s.reusable(filepath.Dir(dest)) {
		id = &v
	}
	if err := st.close(); err != nil {
		return time.Time{}, fmt.Errorf("stage %s: %w", dest, err)
	}
	old := st.path + ".old"
	if err := s.link(dest, old); err != nil {
		old = ""
	}
	at := time.Now()
	err := s.rename(st.path, dest)
	if err != nil && old != "" {
		if rerr := os.Remove(old); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			log.WithError(rerr).Warn("remove the second name of the destination")
		}
		old = ""
	}
	if errors.Is(err, syscall.EBUSY) {
		log.WithField("stage", st.path).Debug("destination busy, overwriting in place")
		return at, overwrite(dest, content, want, log)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("install %s: %w", dest, err)
	}
	st.installed = true
	s.afterInstall(dest, old, id)
	return at, nil
}

// overwrite writes content into the existing file dest, for destinations
// that cannot be replaced by a rename.
func overwrite(dest string, content Content, want attrs, log *logrus.Entry) error {
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("overwrite %s: %w", dest, err)
	}
	err = content.writeTo(f)
	if err == nil {
		err = setAttrs(f, dest, want, log)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("overwrite %s: %w", dest, err)
	}
	return nil
}

// destState is the destination as found before syncing.
type destState struct {
	exists   bool
	mode     os.FileMode
	uid, gid int
	size     int64
}

func statDest(dest string) (destState, error) {
	fi, err := os.Stat(dest)
	if errors.Is(err, fs.ErrNotExist) {
		return destState{}, nil
	}
	if err != nil {
		return destState{}, fmt.Errorf("stat %s: %w", dest, err)
	}
	if !fi.Mode().IsRegular() {
		return destState{}, fmt.Errorf("stat %s: not a regular file", dest)
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return destState{}, fmt.Errorf("stat %s: no owner information", dest)
	}
	return destState{
		exists: true,
		mode:   fi.Mode() & modeMask,
		uid:    int(sys.Uid),
		gid:    int(sys.Gid),
		size:   fi.Size(),
	}, nil
}

// compareBlock is how much of the destination sameContent reads at once.
const compareBlock = 64 << 10

// sameContent reports whether the existing destination holds content,
// comparing sizes before reading it, and reading it block by block rather
// than whole: a destination of 4 MB costs 64 KB of memory, not 4 MB.
func sameContent(dest string, cur destState, content Content) (same bool, err error) {
	if !cur.exists || cur.size != int64(content.Len()) {
		return false, nil
	}
	f, err := os.Open(dest)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", dest, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			same, err = false, fmt.Errorf("read %s: %w", dest, cerr)
		}
	}()
	buf := make([]byte, min(compareBlock, content.Len()+1))
	for _, p := range content {
		for len(p) > 0 {
			b := buf[:min(len(buf), len(p))]
			if _, err := io.ReadFull(f, b); err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					return false, nil // shorter than its size said
				}
				return false, fmt.Errorf("read %s: %w", dest, err)
			}
			if !bytes.Equal(b, p[:len(b)]) {
				return false, nil
			}
			p = p[len(b):]
		}
	}
	// Nothing may follow: the file may have grown since its stat.
	switch n, err := f.Read(buf[:1]); {
	case n > 0:
		return false, nil
	case err == nil, errors.Is(err, io.EOF):
		return true, nil
	default:
		return false, fmt.Errorf("read %s: %w", dest, err)
	}
}

func unifiedDiff(dest string, exists bool, content Content) (string, error) {
	var old []byte
	if exists {
		var err error
		if old, err = os.ReadFile(dest); err != nil {
			return "", fmt.Errorf("read %s: %w", dest, err)
		}
	}
	text := string(bytes.Join(content, nil))
	edits := udiff.Lines(string(old), text)
	d, err := udiff.ToUnified(dest, dest, string(old), edits, udiff.DefaultContextLines)
	if err != nil {
		return "", fmt.Errorf("diff %s: %w", dest, err)
	}
	return d, nil
}

// stage is a file next to the destination holding the new content.
type stage struct {
	f         *os.File
	path      string
	keep      bool // leave it on disk
	installed bool // renamed over the destination
}

// newStage writes content to a new file named ".<base>.<random>" in dest's
// directory, mode 0600. On failure nothing is left behind. It is fsynced
// by install, once its owner and mode are set too.
func newStage(dest string, content Content) (*stage, error) {
	f, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".*")
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", dest, err)
	}
	st := &stage{f: f, path: f.Name()}
	if err := content.writeTo(f); err != nil {
		return nil, errors.Join(fmt.Errorf("stage %s: %w", dest, err), st.release())
	}
	return st, nil
}

// close closes the open file, once.
func (st *stage) close() error {
	if st.f == nil {
		return nil
	}
	err := st.f.Close()
	st.f = nil
	return err
}

// release closes the stage file and removes it unless it was installed or
// is to be kept.
func (st *stage) release() error {
	err := st.close()
	if st.installed || st.keep {
		if err != nil {
			return fmt.Errorf("close stage file %s: %w", st.path, err)
		}
		return nil
	}
	if rerr := os.Remove(st.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		return fmt.Errorf("remove stage file %s: %w", st.path, rerr)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
