package filesync

import (
	"errors"
	"os"
	"strings"
	"syscall"
)

// unshared returns nil when the open file f is open nowhere else, and
// syscall.EAGAIN when it is. It takes a write lease on f and gives it
// back: Linux grants one only to the sole open of a file. Other errors
// say that leases cannot be had (a process that neither owns the file nor
// has CAP_LEASE, or leases turned off).
func unshared(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	err = rc.Control(func(fd uintptr) {
		if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETLEASE, syscall.F_WRLCK); e != 0 {
			lerr = e
			return
		}
		if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETLEASE, syscall.F_UNLCK); e != 0 {
			lerr = e
		}
	})
	if err != nil {
		return err
	}
	return lerr
}

// Local file systems whose directory fsync is real and whose leases see
// every open of a file (f_type of statfs(2)).
const (
	ext4Magic  = 0xEF53 // ext2, ext3 and ext4
	xfsMagic   = 0x58465342
	btrfsMagic = 0x9123683E
	tmpfsMagic = 0x01021994
)

// reusableFS reports whether replaced files in dir may be reused: dir is
// on a local file system that Linux leases and fsync fully serve. On a
// network or FUSE file system a lease does not see readers elsewhere, and
// a directory's fsync may do nothing.
func reusableFS(dir string) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	switch uint32(st.Type) { // a 32-bit magic number, in a field of varying type
	case ext4Magic, xfsMagic, btrfsMagic, tmpfsMagic:
		return true
	}
	return false
}

// onlyLabels reports whether the extended attributes of path are security
// labels alone (SELinux's, say), which a new file gets too.
func onlyLabels(path string) bool {
	buf := make([]byte, 1024)
	n, err := syscall.Listxattr(path, buf)
	switch {
	case errors.Is(err, syscall.ENOTSUP):
		return true
	case err != nil:
		return false
	}
	for name := range strings.SplitSeq(string(buf[:n]), "\x00") {
		if name != "" && !strings.HasPrefix(name, "security.") {
			return false
		}
	}
	return true
}
