package localkv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/etcdconfd/confd/pkg/kv"
	"go.yaml.in/yaml/v3"
)

// maxValues bounds the keys one file may expand to, so that a file whose
// aliases nest exponentially fails instead of exhausting memory.
const maxValues = 1 << 22

// FromFiles reads YAML and JSON files and returns a snapshot of the keys
// under prefixes, on key boundaries: prefix /app holds /app and /app/x
// but not /appx. A prefix of "/" holds every key.
//
// A path that is a directory is searched recursively, in lexical order,
// for the files whose name matches the glob filter (filepath.Match, as the
// original's -filter): with "*" or "", the default, for files ending in
// .yml, .yaml or .json (in any case), and other files there are skipped. A
// path that is a file is read whatever its name. A file is read as JSON
// when it ends in .json, as YAML otherwise. Later files override the keys
// of earlier ones.
//
// Each file is flattened as by the original confd's file backend: nested
// mappings become paths ("/a/b"), list items become index paths ("/a/0"),
// strings are kept as written, integers and floats are printed in decimal
// without exponent or trailing zeros (1.50 is "1.5", 1e3 is "1000"), booleans
// are "true" or "false", and null values are left out. Timestamps keep their
// text, as they did with the original's YAML library. Mapping keys are
// joined with path.Join, so a key containing "/" nests further.
//
// Where this differs from the original: YAML 1.1 booleans such as yes and on
// are strings ("yes"), as in abtreece/confd; every document of a
// multi-document file is read, later ones overriding earlier ones, where the
// original read only the first; a key defined twice in one mapping is an
// error, where the original kept one of them; JSON is read with a JSON
// parser (as abtreece/confd does), since YAML parsers reject some valid JSON
// such as the escapes "\/" and "\ud83d\ude00".
//
// Errors name the file and, for YAML errors, the line. The snapshot has
// revision 0.
func FromFiles(paths []string, filter string, prefixes []string) (*kv.Snapshot, error) {
	return fromFiles(paths, filter, prefixes, maxValues)
}

func fromFiles(paths []string, filter string, prefixes []string, limit int) (*kv.Snapshot, error) {
	match, err := fileMatcher(filter)
	if err != nil {
		return nil, err
	}
	roots := make([]string, 0, len(prefixes))
	for _, p := range prefixes {
		roots = append(roots, path.Clean("/"+p))
	}
	b := kv.NewBuilder()
	emit := func(key, value string) {
		if underAny(key, roots) {
			b.Put(key, value)
		}
	}
	for _, p := range paths {
		files, err := expandPath(p, match)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if err := readFile(f, limit, emit); err != nil {
				return nil, err
			}
		}
	}
	return b.Build(0), nil
}

func underAny(key string, roots []string) bool {
	for _, r := range roots {
		if r == "/" || key == r || strings.HasPrefix(key, r+"/") {
			return true
		}
	}
	return false
}

// fileMatcher returns what selects the files of a directory by name:
// the glob filter, or for "*" and "" the YAML and JSON extensions.
func fileMatcher(filter string) (func(name string) bool, error) {
	if filter == "" || filter == "*" {
		return func(name string) bool {
			switch strings.ToLower(filepath.Ext(name)) {
			case ".yml", ".yaml", ".json":
				return true
			}
			return false
		}, nil
	}
	if _, err := filepath.Match(filter, ""); err != nil {
		return nil, fmt.Errorf("file filter %q: %w", filter, err)
	}
	return func(name string) bool {
		ok, _ := filepath.Match(filter, name)
		return ok
	}, nil
}

// expandPath returns p itself when it is a file, and the files below it
// whose name match accepts when it is a directory.
func expandPath(p string, match func(name string) bool) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("read data file: %w", err)
	}
	if !fi.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(f string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !match(d.Name()) {
			return nil
		}
		// WalkDir does not follow links: one to a directory (as the
		// ..data of a Kubernetes ConfigMap volume) is no file to read.
		if d.Type()&fs.ModeSymlink != 0 {
			if fi, err := os.Stat(f); err == nil && fi.IsDir() {
				return nil
			}
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", p, err)
	}
	return files, nil
}

// readFile flattens the file name into emit: as JSON when its name ends in
// .json, as YAML (every document) otherwise.
func readFile(name string, limit int, emit func(key, value string)) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("read data file: %w", err)
	}
	if strings.EqualFold(filepath.Ext(name), ".json") {
		if err := readJSON(data, emit); err != nil {
			return fmt.Errorf("parse %s: %w", name, err)
		}
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("parse %s: %w", name, err)
		}
		w := walker{emit: emit, active: map[*yaml.Node]bool{}, limit: limit}
		if err := w.document(&doc); err != nil {
			return fmt.Errorf("parse %s: %w", name, err)
		}
	}
}

type walker struct {
	emit   func(key, value string)
	active map[*yaml.Node]bool // aliased nodes being walked, to stop cycles
	count  int
	limit  int
}

func (w *walker) document(doc *yaml.Node) error {
	if len(doc.Content) == 0 {
		return nil
	}
	top := deref(doc.Content[0])
	switch {
	case top.Kind == yaml.MappingNode:
		return w.walk(top, "/")
	case top.Kind == yaml.ScalarNode && top.ShortTag() == "!!null":
		return nil
	}
	return fmt.Errorf("line %d: the top level must be a mapping, got %s", top.Line, kindName(top))
}

func (w *walker) walk(n *yaml.Node, key string) error {
	w.count++
	if w.count > w.limit {
		return fmt.Errorf("line %d: more than %d values, aliases nested too deep", n.Line, w.limit)
	}
	switch n.Kind {
	case yaml.AliasNode:
		if w.active[n.Alias] {
			return fmt.Errorf("line %d: alias *%s refers to a node that contains it", n.Line, n.Value)
		}
		w.active[n.Alias] = true
		err := w.walk(n.Alias, key)
		delete(w.active, n.Alias)
		return err
	case yaml.MappingNode:
		entries, err := w.mappingEntries(n)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := w.walk(e.value, path.Join(key, e.name)); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := w.walk(c, path.Join(key, strconv.Itoa(i))); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		if v, ok, err := scalarText(n); err != nil {
			return err
		} else if ok {
			w.emit(key, v)
		}
	}
	return nil
}

type entry struct {
	name  string
	value *yaml.Node
}

// mappingEntries returns the entries of a mapping with merge keys ("<<")
// resolved: explicit entries win over merged ones, and of several merged
// mappings the one listed first wins. The merge is shallow, as YAML defines
// it.
func (w *walker) mappingEntries(n *yaml.Node) ([]entry, error) {
	w.count += len(n.Content) / 2
	if w.count > w.limit {
		return nil, fmt.Errorf("line %d: more than %d values, aliases nested too deep", n.Line, w.limit)
	}
	var out []entry
	index := map[string]int{}
	set := func(name string, v *yaml.Node) {
		if i, ok := index[name]; ok {
			out[i].value = v
			return
		}
		index[name] = len(out)
		out = append(out, entry{name: name, value: v})
	}

	var sources []*yaml.Node // merged mappings, highest priority first
	var explicit []entry
	lines := map[string]int{} // explicit key -> line, to report duplicates
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			if v.Kind == yaml.SequenceNode {
				sources = append(sources, v.Content...)
			} else {
				sources = append(sources, v)
			}
			continue
		}
		name, err := keyName(k)
		if err != nil {
			return nil, err
		}
		if line, dup := lines[name]; dup {
			return nil, fmt.Errorf("line %d: mapping key %q already defined at line %d", k.Line, name, line)
		}
		lines[name] = k.Line
		explicit = append(explicit, entry{name: name, value: v})
	}

	for i := len(sources) - 1; i >= 0; i-- {
		src := deref(sources[i])
		if src.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("line %d: a merge key needs a mapping or a list of mappings, got %s", src.Line, kindName(src))
		}
		if w.active[src] {
			return nil, fmt.Errorf("line %d: merged mapping contains the merge", sources[i].Line)
		}
		w.active[src] = true
		merged, err := w.mappingEntries(src)
		delete(w.active, src)
		if err != nil {
			return nil, err
		}
		for _, e := range merged {
			set(e.name, e.value)
		}
	}
	for _, e := range explicit {
		set(e.name, e.value)
	}
	return out, nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func keyName(k *yaml.Node) (string, error) {
	k = deref(k)
	if k.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("line %d: mapping keys must be scalars, got %s", k.Line, kindName(k))
	}
	return k.Value, nil
}

// scalarText formats a scalar as the original file backend does; ok is
// false for null, which has no key.
func scalarText(n *yaml.Node) (string, bool, error) {
	switch n.ShortTag() {
	case "!!null":
		return "", false, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return "", false, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return strconv.FormatBool(b), true, nil
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return strconv.FormatInt(i, 10), true, nil
		}
		var u uint64
		if err := n.Decode(&u); err == nil {
			return strconv.FormatUint(u, 10), true, nil
		}
		return n.Value, true, nil
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return "", false, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return strconv.FormatFloat(f, 'f', -1, 64), true, nil
	case "!!binary":
		var s string
		if err := n.Decode(&s); err != nil {
			return "", false, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return s, true, nil
	}
	// !!str, !!timestamp and custom tags keep their text.
	return n.Value, true, nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.ScalarNode:
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}
