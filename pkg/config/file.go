package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// legacyTable is the table that held all settings before confd 0.5.
const legacyTable = "confd"

// readFile applies the config file at path to f. A missing file is fine
// unless the user named it. Keys are matched ignoring case and the difference
// between '-' and '_', so both "sync-only" (the original's spelling) and
// "sync_only" work.
func readFile(path string, explicit bool, f *flags) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read config file: %w", err)
	}
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		return nil, fileError(path, err)
	}
	d := &fileDecoder{path: path, md: &md, f: f, seen: map[string]string{}}
	for _, name := range childKeys(md, nil) {
		if strings.EqualFold(name, legacyTable) && md.Type(name) == "Hash" {
			if err := d.legacy(name, top[name]); err != nil {
				return d.warnings, err
			}
			continue
		}
		if err := d.key(name, name, top[name]); err != nil {
			return d.warnings, err
		}
	}
	return d.warnings, nil
}

type fileDecoder struct {
	path     string
	md       *toml.MetaData
	f        *flags
	seen     map[string]string // option name -> key that set it
	warnings []string
}

func (d *fileDecoder) warn(format string, args ...any) {
	d.warnings = append(d.warnings, fmt.Sprintf("config file %s: ", d.path)+fmt.Sprintf(format, args...))
}

// legacy applies the keys of the pre-0.5 [confd] table.
func (d *fileDecoder) legacy(table string, p toml.Primitive) error {
	d.warn("the [%s] table is deprecated; move its keys to the top level", table)
	var keys map[string]toml.Primitive
	if err := d.md.PrimitiveDecode(p, &keys); err != nil {
		return fileError(d.path, err)
	}
	for _, name := range childKeys(*d.md, toml.Key{table}) {
		if err := d.key(toml.Key{table, name}.String(), name, keys[name]); err != nil {
			return err
		}
	}
	return nil
}

// childKeys returns the names of the keys directly below parent (nil for the
// top level) in the order they appear in the file. Dotted keys such as
// a.b = 1 and headers such as [a.b] define a without listing it on its own.
func childKeys(md toml.MetaData, parent toml.Key) []string {
	var names []string
	seen := map[string]bool{}
	for _, key := range md.Keys() {
		if len(key) <= len(parent) || key[:len(parent)].String() != parent.String() {
			continue
		}
		if name := key[len(parent)]; !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	return names
}

// key applies one key; full is its name for messages ("confd.nodes").
func (d *fileDecoder) key(full, name string, p toml.Primitive) error {
	norm0 := strings.ReplaceAll(strings.ToLower(name), "_", "-")
	norm := norm0
	if alias, ok := fileAliases[norm]; ok {
		norm = alias
	}
	o := lookupOption(norm)
	if o == nil {
		d.warn("unknown key %q is ignored", full)
		return d.decode(p, discard{})
	}
	if o.where&inFile == 0 {
		d.warn("key %q is ignored: it has no effect in the config file", full)
		return d.decode(p, discard{})
	}
	switch {
	case o.hidden():
		d.warnings = appendNote(d.warnings, o, fmt.Sprintf("config file %s: key %q", d.path, full))
	case deprecatedKeys[norm0] != "":
		d.warn("key %q is deprecated; use %q", full, deprecatedKeys[norm0])
	}
	return d.decode(p, &fileSetter{d: d, key: full, opt: o})
}

func (d *fileDecoder) decode(p toml.Primitive, v toml.Unmarshaler) error {
	if err := d.md.PrimitiveDecode(p, v); err != nil {
		return fileError(d.path, err)
	}
	return nil
}

// fileSetter sets an option from the TOML value of a key. Errors returned
// here reach the caller as toml.ParseError with the key's line.
type fileSetter struct {
	d   *fileDecoder
	key string
	opt *option
}

func (s *fileSetter) UnmarshalTOML(data any) error {
	if prev, ok := s.d.seen[s.opt.name]; ok && !s.opt.hidden() {
		return fmt.Errorf("key %q: already set by key %q", s.key, prev)
	}
	s.d.seen[s.opt.name] = s.key
	values, err := tomlValues(s.opt.kind, data)
	if err != nil {
		return fmt.Errorf("key %q: %w", s.key, err)
	}
	for _, v := range values {
		if err := s.d.f.fs.Set(s.opt.name, v); err != nil {
			return fmt.Errorf("key %q: %w", s.key, err)
		}
	}
	return nil
}

// tomlValues checks that data has the TOML type of kind k and turns it into
// the strings the option's flag.Value parses.
func tomlValues(k kind, data any) ([]string, error) {
	switch v := data.(type) {
	case string:
		switch k {
		case kindString, kindDuration, kindList:
			return []string{v}, nil
		}
	case bool:
		if k == kindBool {
			return []string{strconv.FormatBool(v)}, nil
		}
	case int64:
		switch k {
		case kindInt:
			return []string{strconv.FormatInt(v, 10)}, nil
		case kindDuration: // seconds
			return []string{strconv.FormatInt(v, 10)}, nil
		}
	case []any:
		if k == kindList {
			out := make([]string, 0, len(v))
			for _, e := range v {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("want an array of strings, found %s in it", tomlType(e))
				}
				out = append(out, s)
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("want %s, got %s", kindName(k), tomlType(data))
}

func kindName(k kind) string {
	switch k {
	case kindBool:
		return "true or false"
	case kindInt:
		return "an integer"
	case kindDuration:
		return `a duration ("30s") or an integer number of seconds`
	case kindList:
		return "a string or an array of strings"
	}
	return "a string"
}

func tomlType(data any) string {
	switch data.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case time.Time:
		return "a date-time"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	}
	return fmt.Sprintf("%T", data)
}

// fileError turns a TOML error into a FileError with the line, if known.
func fileError(path string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &FileError{Path: path, Line: pe.Position.Line, Msg: pe.Message}
	}
	return &FileError{Path: path, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
}

// discard takes any TOML value and keeps nothing.
type discard struct{}

func (discard) UnmarshalTOML(any) error { return nil }
