package filesync

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"github.com/sirupsen/logrus"
)

// modeMask selects the parts of a mode that Sync compares and sets.
const modeMask = os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky

// defaultMode is the mode of a new destination when none is configured.
const defaultMode os.FileMode = 0o644

// attrs are the mode and ids the destination should end up with.
type attrs struct {
	mode os.FileMode
	// uid and gid are the wanted ids, -1 to leave the process's own.
	uid, gid int
	// setUID and setGID tell configured ids (which must be applied) from
	// ids kept from an existing destination (applied when permitted).
	setUID, setGID bool
}

func wantAttrs(t Target, cur destState) (attrs, error) {
	a := attrs{mode: defaultMode, uid: -1, gid: -1}
	switch {
	case t.ModeSet:
		a.mode = normalizeMode(t.Mode)
	case cur.exists:
		a.mode = cur.mode
	}
	uid, err := lookupID(t.UID, t.Owner, "owner", func(name string) (string, error) {
		u, err := user.Lookup(name)
		if err != nil {
			return "", err
		}
		return u.Uid, nil
	})
	if err != nil {
		return a, err
	}
	gid, err := lookupID(t.GID, t.Group, "group", func(name string) (string, error) {
		g, err := user.LookupGroup(name)
		if err != nil {
			return "", err
		}
		return g.Gid, nil
	})
	if err != nil {
		return a, err
	}
	if uid >= 0 {
		a.uid, a.setUID = uid, true
	} else if cur.exists {
		a.uid = cur.uid
	}
	if gid >= 0 {
		a.gid, a.setGID = gid, true
	} else if cur.exists {
		a.gid = cur.gid
	}
	return a, nil
}

// lookupID returns id when set, else the id of name, else -1.
func lookupID(id *int, name, what string, lookup func(string) (string, error)) (int, error) {
	if id != nil {
		if *id < 0 {
			return -1, fmt.Errorf("%s id %d: negative", what, *id)
		}
		return *id, nil
	}
	if name == "" {
		return -1, nil
	}
	s, err := lookup(name)
	if err != nil {
		if n, nerr := strconv.Atoi(name); nerr == nil && n >= 0 {
			return n, nil
		}
		return -1, fmt.Errorf("look up %s %q: %w", what, name, err)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1, fmt.Errorf("look up %s %q: %w", what, name, err)
	}
	return n, nil
}

// matches reports whether an existing destination already has the wanted
// mode and ids.
func (a attrs) matches(cur destState) bool {
	return cur.exists && cur.mode == a.mode &&
		(a.uid < 0 || cur.uid == a.uid) &&
		(a.gid < 0 || cur.gid == a.gid)
}

// normalizeMode maps the raw Unix setuid, setgid and sticky bits to their
// os.FileMode flags, so that a mode parsed from "04755" works like one built
// from os.ModeSetuid|0o755.
func normalizeMode(m os.FileMode) os.FileMode {
	out := m & modeMask
	if m&0o4000 != 0 {
		out |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}

// setAttrs gives the open file f (named path) the wanted ids and mode. The
// ids go first because chown clears the setuid and setgid bits. Configured
// ids that cannot be applied are an error; keeping the ids of an existing
// destination is skipped when the process may not (it is not root), which
// leaves the file with the process's ids, as confd does.
func setAttrs(f *os.File, path string, a attrs, log *logrus.Entry) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("stat %s: no owner information", path)
	}
	differs := func(want int, have uint32) bool { return want >= 0 && want != int(have) }

	cu, cg := -1, -1
	if a.setUID && differs(a.uid, sys.Uid) {
		cu = a.uid
	}
	if a.setGID && differs(a.gid, sys.Gid) {
		cg = a.gid
	}
	if cu >= 0 || cg >= 0 {
		if err := f.Chown(cu, cg); err != nil {
			return err
		}
	}

	ku, kg := -1, -1
	if !a.setUID && differs(a.uid, sys.Uid) {
		ku = a.uid
	}
	if !a.setGID && differs(a.gid, sys.Gid) {
		kg = a.gid
	}
	if ku >= 0 || kg >= 0 {
		err := f.Chown(ku, kg)
		if errors.Is(err, fs.ErrPermission) {
			log.WithFields(logrus.Fields{"uid": ku, "gid": kg}).Debug("cannot keep owner, using own")
		} else if err != nil {
			return err
		}
	}

	return f.Chmod(a.mode)
}
