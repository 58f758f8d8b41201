package resource

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Resource is one validated template resource.
type Resource struct {
	// Name is the path of the resource file relative to <confdir>/conf.d,
	// with forward slashes: "haproxy.toml", "sub/x.toml".
	Name string
	// File is the path of the resource file: <confdir>/conf.d/<Name>.
	File string
	// Src is the template path, <confdir>/templates/<SrcName>. The template
	// existed when the resource was parsed.
	Src string
	// SrcName is src as written in the resource.
	SrcName string
	// Dest is the absolute path of the file to write, cleaned.
	Dest string
	// Keys are the key roots the template reads, relative to Prefix: each
	// with one leading slash, no trailing slash and cleaned ("/" is every
	// key under the prefix). Duplicates are removed, order is kept.
	Keys []string
	// Prefix is prepended to every key; "" when there is none. Normalised
	// like Keys.
	Prefix string
	// Owner and Group name the owner of Dest; resolving them to ids is left
	// to whoever writes the file. UID and GID win over them when set.
	Owner, Group string
	// UID and GID are -1 when not set.
	UID, GID int
	// Mode is the permission of Dest when ModeSet; otherwise it is 0 and the
	// writer keeps the mode of an existing Dest, or uses 0644.
	Mode    os.FileMode
	ModeSet bool
	// CheckCmd and ReloadCmd are run by the shell; "" when not set.
	CheckCmd, ReloadCmd string
	// Wait is the quiescence setting as written, "min" or "min:max"; "" when
	// not set. WaitMin and WaitMax are its parsed values.
	Wait             string
	WaitMin, WaitMax time.Duration
}

// Error is a problem with one resource file. Line is 0 when unknown and Field
// is "" when the problem is not about one field.
type Error struct {
	File  string
	Line  int
	Field string
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrTemplateNotFound is matched (with errors.Is) by the error of a resource
// whose src names a template that does not exist.
var ErrTemplateNotFound = errors.New("template not found")

// SyntaxError is the Err of an *Error for a file that is not valid TOML.
type SyntaxError struct {
	Parse toml.ParseError
}

func (e *SyntaxError) Error() string { return "toml syntax: " + e.Parse.Message }

func (e *SyntaxError) Unwrap() error { return e.Parse }

// Field names as written in the resource file, in the order they are checked.
const (
	fieldSrc       = "src"
	fieldDest      = "dest"
	fieldKeys      = "keys"
	fieldPrefix    = "prefix"
	fieldOwner     = "owner"
	fieldGroup     = "group"
	fieldUID       = "uid"
	fieldGID       = "gid"
	fieldMode      = "mode"
	fieldCheckCmd  = "check_cmd"
	fieldReloadCmd = "reload_cmd"
	fieldWait      = "wait"
)

var knownFields = map[string]bool{
	fieldSrc: true, fieldDest: true, fieldKeys: true, fieldPrefix: true,
	fieldOwner: true, fieldGroup: true, fieldUID: true, fieldGID: true,
	fieldMode: true, fieldCheckCmd: true, fieldReloadCmd: true, fieldWait: true,
}

const tableTemplate = "template"

// maxID is the largest valid uid or gid; (uid_t)-1 means "unchanged" to
// chown.
const maxID = math.MaxUint32 - 1

// Parse parses and validates the resource file name (relative to
// <confDir>/conf.d) with contents data. A non-empty globalPrefix replaces the
// resource's own prefix, as in the original confd. Parse checks that the
// template exists under <confDir>/templates.
//
// The returned warnings are complete messages naming the file and line. The
// error is an *Error, or an errors.Join of several *Error when the file has
// more than one problem.
func Parse(name string, data []byte, confDir, globalPrefix string) (Resource, []string, error) {
	p := &parser{
		file:    filepath.Join(confDir, "conf.d", filepath.FromSlash(name)),
		confDir: confDir,
	}
	r, err := p.parse(data, globalPrefix)
	if err != nil {
		return Resource{}, p.warnings, err
	}
	r.Name = filepath.ToSlash(name)
	r.File = p.file
	return r, p.warnings, nil
}

type parser struct {
	file     string
	confDir  string
	lines    map[string]int
	warnings []string
	errs     []*Error
}

func (p *parser) parse(data []byte, globalPrefix string) (Resource, error) {
	var doc map[string]any
	md, err := toml.Decode(string(data), &doc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Resource{}, &Error{File: p.file, Line: pe.Position.Line, Err: &SyntaxError{Parse: pe}}
		}
		return Resource{}, &Error{File: p.file, Err: err}
	}
	p.lines = keyLines(data)

	tableKey, raw, ok := lookupFold(doc, tableTemplate)
	p.warnUnknown(md.Keys(), tableKey)
	if !ok {
		return Resource{}, &Error{File: p.file, Err: errors.New("missing [template] table")}
	}
	table, ok := raw.(map[string]any)
	if !ok {
		return Resource{}, &Error{File: p.file, Line: p.line(tableTemplate), Field: tableTemplate,
			Err: fmt.Errorf("must be a table, got %s", typeName(raw))}
	}
	fields := p.fields(table)

	r := Resource{UID: -1, GID: -1}
	r.SrcName, r.Src = p.src(fields)
	r.Dest = p.dest(fields)
	r.Keys = p.keys(fields)
	r.Prefix = normalizeKey(p.str(fields, fieldPrefix))
	if globalPrefix != "" {
		// As in the original confd, a global prefix replaces the
		// resource's prefix instead of being joined with it.
		r.Prefix = normalizeKey(globalPrefix)
	}
	if r.Prefix == "/" {
		r.Prefix = ""
	}
	r.Owner = p.str(fields, fieldOwner)
	r.Group = p.str(fields, fieldGroup)
	r.UID = p.id(fields, fieldUID)
	r.GID = p.id(fields, fieldGID)
	if r.Owner != "" && r.UID >= 0 {
		p.warn(fieldOwner, "ignored because uid is set")
	}
	if r.Group != "" && r.GID >= 0 {
		p.warn(fieldGroup, "ignored because gid is set")
	}
	r.Mode, r.ModeSet = p.mode(fields)
	r.CheckCmd = p.str(fields, fieldCheckCmd)
	r.ReloadCmd = p.str(fields, fieldReloadCmd)
	r.Wait, r.WaitMin, r.WaitMax = p.wait(fields)

	switch len(p.errs) {
	case 0:
		return r, nil
	case 1:
		return Resource{}, p.errs[0]
	}
	sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Line < p.errs[j].Line })
	errs := make([]error, len(p.errs))
	for i, e := range p.errs {
		errs[i] = e
	}
	return Resource{}, errors.Join(errs...)
}

// lookupFold finds key in m, preferring an exact match and otherwise
// ignoring case, the way the TOML library matches struct fields.
// When several keys differ from key only in case, the one that sorts first
// is taken, so that the result never depends on map order.
func lookupFold(m map[string]any, key string) (string, any, bool) {
	if v, ok := m[key]; ok {
		return key, v, true
	}
	found := ""
	for k := range m {
		if strings.EqualFold(k, key) && (found == "" || k < found) {
			found = k
		}
	}
	if found == "" {
		return "", nil, false
	}
	return found, m[found], true
}

// warnUnknown warns about every top-level key other than the template table
// and every key in the template table that is not a resource field, in the
// order they appear in the file.
func (p *parser) warnUnknown(keys []toml.Key, tableKey string) {
	for _, k := range keys {
		switch {
		case len(k) == 1 && (tableKey == "" || k[0] != tableKey):
			p.warningAt(p.line(k[0]), k[0], "unknown key, ignored")
		case len(k) == 2 && k[0] == tableKey && !knownFields[strings.ToLower(k[1])]:
			name := tableTemplate + "." + k[1]
			p.warningAt(p.line(name), name, "unknown key, ignored")
		}
	}
}

// fields maps the lower-cased field names of the template table to their
// values. Two spellings of one field are an error.
func (p *parser) fields(table map[string]any) map[string]any {
	names := make([]string, 0, len(table))
	for k := range table {
		names = append(names, k)
	}
	sort.Strings(names)
	out := map[string]any{}
	seen := map[string]string{}
	for _, k := range names {
		f := strings.ToLower(k)
		if !knownFields[f] {
			continue
		}
		if prev, ok := seen[f]; ok {
			p.fail(f, fmt.Errorf("set twice, as %q and %q", prev, k))
			continue
		}
		seen[f] = k
		out[f] = table[k]
	}
	return out
}

// line returns the line of the dotted key name, of the template table when
// the key is not found, or 0.
func (p *parser) line(name string) int {
	if n, ok := p.lines[strings.ToLower(name)]; ok {
		return n
	}
	return p.lines[tableTemplate]
}

func (p *parser) fail(field string, err error) {
	name := tableTemplate + "." + field
	p.errs = append(p.errs, &Error{File: p.file, Line: p.line(name), Field: name, Err: err})
}

func (p *parser) warn(field, msg string) {
	name := tableTemplate + "." + field
	p.warningAt(p.line(name), name, msg)
}

func (p *parser) warningAt(line int, field, msg string) {
	e := &Error{File: p.file, Line: line, Field: field, Err: errors.New(msg)}
	p.warnings = append(p.warnings, e.Error())
}

// str returns the string field f, "" when it is not set.
func (p *parser) str(fields map[string]any, f string) string {
	v, ok := fields[f]
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		p.fail(f, fmt.Errorf("must be a string, got %s", typeName(v)))
		return ""
	}
	return s
}

// required returns the string field f and reports it missing or empty,
// with what it is for.
func (p *parser) required(fields map[string]any, f, what string) string {
	v, set := fields[f]
	if s, isString := v.(string); !set || (isString && s == "") {
		p.fail(f, errors.New("is required: "+what))
		return ""
	}
	return p.str(fields, f)
}

func (p *parser) src(fields map[string]any) (name, full string) {
	name = p.required(fields, fieldSrc, "the template file, relative to the templates directory")
	if name == "" {
		return "", ""
	}
	full = filepath.Join(p.confDir, "templates", name)
	fi, err := os.Stat(full)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.fail(fieldSrc, fmt.Errorf("%w: %s", ErrTemplateNotFound, full))
	case err != nil:
		p.fail(fieldSrc, fmt.Errorf("check template: %w", err))
	case fi.IsDir():
		p.fail(fieldSrc, fmt.Errorf("template %s is a directory", full))
	}
	return name, full
}

func (p *parser) dest(fields map[string]any) string {
	d := p.required(fields, fieldDest, "the absolute path of the file to write")
	if d == "" {
		return ""
	}
	// A relative dest would be resolved against confd's working directory,
	// which is rarely what anyone means.
	if !filepath.IsAbs(d) {
		p.fail(fieldDest, fmt.Errorf("must be an absolute path, got %q", d))
		return ""
	}
	if base := filepath.Base(d); strings.HasSuffix(d, "/") || base == "." || base == ".." || filepath.Clean(d) == "/" {
		p.fail(fieldDest, fmt.Errorf("must name a file, not a directory, got %q", d))
		return ""
	}
	return filepath.Clean(d)
}

// keys returns the normalised, de-duplicated keys. Keys are looked up
// relative to the prefix: prefix "/prod" and key "/app" read "/prod/app".
func (p *parser) keys(fields map[string]any) []string {
	v, ok := fields[fieldKeys]
	if !ok {
		p.warn(fieldKeys, "not set; the template sees no keys")
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		p.fail(fieldKeys, fmt.Errorf("must be an array of strings, got %s", typeName(v)))
		return nil
	}
	if len(list) == 0 {
		p.warn(fieldKeys, "empty; the template sees no keys")
		return nil
	}
	out := make([]string, 0, len(list))
	seen := map[string]bool{}
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			p.fail(fieldKeys, fmt.Errorf("element %d must be a string, got %s", i+1, typeName(e)))
			continue
		}
		if strings.TrimSpace(s) == "" {
			// As in the original, an empty key reads the whole prefix.
			p.warn(fieldKeys, fmt.Sprintf("element %d is empty and reads every key under the prefix", i+1))
		}
		k := normalizeKey(s)
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// normalizeKey returns key with one leading slash, no trailing slash and no
// empty or dot segments; "" and "/" become "/".
func normalizeKey(key string) string {
	return path.Clean("/" + key)
}

func (p *parser) id(fields map[string]any, f string) int {
	v, ok := fields[f]
	if !ok {
		return -1
	}
	n, ok := v.(int64)
	if !ok {
		p.fail(f, fmt.Errorf("must be an integer, got %s", typeName(v)))
		return -1
	}
	// -1 is what the original confd uses for "not set", so accept it.
	if n < -1 || n > maxID {
		p.fail(f, fmt.Errorf("must be between 0 and %d, got %d", int64(maxID), n))
		return -1
	}
	return int(n)
}

func (p *parser) mode(fields map[string]any) (os.FileMode, bool) {
	v, ok := fields[fieldMode]
	if !ok {
		return 0, false
	}
	s, ok := v.(string)
	if !ok {
		// The original accepts only a string too. An integer cannot be read
		// reliably: 644 and 0o644 decode to different numbers.
		if n, isInt := v.(int64); isInt {
			p.fail(fieldMode, fmt.Errorf("must be a quoted octal string such as \"0%d\", got integer %d", n, n))
		} else {
			p.fail(fieldMode, fmt.Errorf("must be a quoted octal string such as \"0644\", got %s", typeName(v)))
		}
		return 0, false
	}
	if s == "" {
		return 0, false
	}
	m, err := parseMode(s)
	if err != nil {
		p.fail(fieldMode, err)
		return 0, false
	}
	if s[0] != '0' {
		dec, _ := strconv.ParseUint(s, 10, 32)
		oct, _ := strconv.ParseUint(s, 8, 32)
		if dec != oct {
			p.warn(fieldMode, fmt.Sprintf("%q is read as octal %#o; the original confd read it as decimal %d", s, oct, dec))
		}
	}
	return m, true
}

// parseMode reads a file mode written in octal, with or without a leading
// "0" or "0o": "644", "0644" and "0o644" are all 0644. The original confd
// passed the string to strconv.ParseUint with base 0, so "644" silently became
// decimal 644 (0o1204); here octal is the only reading. Set-user-id,
// set-group-id and sticky bits (04000, 02000, 01000) become the matching
// os.FileMode flags.
func parseMode(s string) (os.FileMode, error) {
	digits := s
	if len(digits) > 2 && digits[0] == '0' && (digits[1] == 'o' || digits[1] == 'O') {
		digits = digits[2:]
	}
	n, err := strconv.ParseUint(digits, 8, 32)
	if err != nil || n > 0o7777 {
		return 0, fmt.Errorf("invalid octal mode %q", s)
	}
	m := os.FileMode(n & 0o777)
	if n&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if n&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if n&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m, nil
}

// wait parses "min" or "min:max". When max is left out it is four times
// min, the convention of consul-template's wait setting.
func (p *parser) wait(fields map[string]any) (string, time.Duration, time.Duration) {
	s := p.str(fields, fieldWait)
	if s == "" {
		return "", 0, 0
	}
	minS, maxS, hasMax := strings.Cut(s, ":")
	bad := func() (string, time.Duration, time.Duration) {
		p.fail(fieldWait, fmt.Errorf("invalid wait %q: want \"min\" or \"min:max\" durations such as \"2s:10s\"", s))
		return "", 0, 0
	}
	lo, err := time.ParseDuration(minS)
	if err != nil || lo < 0 {
		return bad()
	}
	hi := 4 * lo
	if hasMax {
		if hi, err = time.ParseDuration(maxS); err != nil || hi < 0 {
			return bad()
		}
	}
	if hi < lo {
		p.fail(fieldWait, fmt.Errorf("min %s is greater than max %s", lo, hi))
		return "", 0, 0
	}
	return s, lo, hi
}

// typeName names the TOML type of a decoded value for messages.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case time.Time:
		return "datetime"
	case []any, []map[string]any:
		return "array"
	case map[string]any:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}
