//go:build !linux

package filesync

import (
	"errors"
	"os"
)

// unshared cannot tell whether f is open elsewhere without Linux's
// leases.
func unshared(*os.File) error {
	return errors.ErrUnsupported
}

// reusableFS reports false: without leases, replaced files are never
// reused.
func reusableFS(string) bool {
	return false
}

// onlyLabels is not called where replaced files are never reused.
func onlyLabels(string) bool {
	return false
}
