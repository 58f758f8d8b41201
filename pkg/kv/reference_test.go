package kv

import (
	"path"
	"sort"
	"strings"
)

// reference answers every lookup by scanning all pairs. It states the
// semantics the indexed View must have.
type reference struct {
	pairs    map[string]string // template-visible name -> value
	children []string          // the names in pairs
}

func newReference(all map[string]string, prefix string, keys []string) reference {
	p := NormalizeKey(prefix)
	if p == "/" {
		p = ""
	}
	r := reference{pairs: map[string]string{}}
	for full, v := range all {
		visible := false
		for _, k := range keys {
			root := p + NormalizeKey(k)
			if root != "/" {
				root = strings.TrimSuffix(root, "/")
			}
			if root == "/" || full == root || strings.HasPrefix(full, root+"/") {
				visible = true
			}
		}
		if !visible || !strings.HasPrefix(full, p) || (p != "" && full == p) {
			continue
		}
		name := full[len(p):]
		if p != "" && !strings.HasPrefix(name, "/") {
			continue
		}
		r.children = append(r.children, name)
		r.pairs[name] = v
	}
	return r
}

func (r reference) getAll(pattern string) []KVPair {
	out := []KVPair{}
	for k, v := range r.pairs {
		if m, _ := path.Match(pattern, k); m {
			out = append(out, KVPair{Key: k, Value: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (r reference) list(dir string, dirsOnly bool) []string {
	set := map[string]bool{}
	if _, ok := r.pairs[dir]; ok && !dirsOnly {
		set[path.Base(dir)] = true
	}
	d := strings.TrimRight(dir, "/")
	if d != "" || strings.HasPrefix(dir, "/") {
		for _, k := range r.children {
			rest, ok := strings.CutPrefix(k, d+"/")
			if !ok {
				continue
			}
			seg, _, isDir := strings.Cut(rest, "/")
			switch {
			case !isDir && !dirsOnly:
				set[rest] = true
			case isDir && (!dirsOnly || seg != ""):
				set[seg] = true
			}
		}
	}
	out := []string{}
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
