package resource

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// LoadDir parses every file ending in .toml under <confDir>/conf.d, in
// sub-directories too, in order of their path. Other files are ignored.
//
// It returns the resources that are valid, warnings, and one error per file
// that is not (an *Error or an errors.Join of them), so that one broken
// resource does not stop the others. A missing conf.d directory is an error;
// an empty one is a warning. Two resources that write the same dest are a
// warning: each would overwrite the other's file.
func LoadDir(confDir, globalPrefix string) (res []Resource, warnings []string, errs []error) {
	dir := filepath.Join(confDir, "conf.d")
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, nil, []error{fmt.Errorf("load template resources: %w", err)}
	}
	if !fi.IsDir() {
		return nil, nil, []error{fmt.Errorf("load template resources: %s is not a directory", dir)}
	}

	var names []string
	walkErr := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			errs = append(errs, fmt.Errorf("load template resources: %w", err))
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".toml") {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		names = append(names, filepath.ToSlash(rel))
		return nil
	})
	if walkErr != nil {
		return nil, nil, append(errs, fmt.Errorf("load template resources: %w", walkErr))
	}
	sort.Strings(names)

	for _, name := range names {
		file := filepath.Join(dir, filepath.FromSlash(name))
		data, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, &Error{File: file, Err: readErr(err)})
			continue
		}
		r, w, err := Parse(name, data, confDir, globalPrefix)
		warnings = append(warnings, w...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res = append(res, r)
	}

	if len(names) == 0 && len(errs) == 0 {
		warnings = append(warnings, fmt.Sprintf("%s: no template resources (*.toml)", dir))
	}
	warnings = append(warnings, sharedDests(res)...)
	return res, warnings, errs
}

// readErr describes a read error without repeating the path that the
// *Error already names.
func readErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("read: %w", pe.Err)
	}
	return fmt.Errorf("read: %w", err)
}

// sharedDests warns about resources that write the same file.
func sharedDests(res []Resource) []string {
	var out []string
	first := map[string]string{}
	for _, r := range res {
		if prev, ok := first[r.Dest]; ok {
			out = append(out, fmt.Sprintf("%s: template.dest: %s is also written by %s", r.File, r.Dest, prev))
			continue
		}
		first[r.Dest] = r.File
	}
	return out
}
