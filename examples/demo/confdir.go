package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// rewritten describes one template resource as the demo prepared it.
type rewritten struct {
	name         string // file name in conf.d
	origDest     string // dest as the example has it
	dest         string // dest in the demo's output directory
	checkProgram string // program check_cmd runs, empty without check_cmd
	checkKept    bool   // whether check_cmd was kept
}

// prepareConfdir builds confdir from the conf.d/ and templates/ below src:
// templates are copied as they are, and every conf.d/*.toml is rewritten
// with rewriteResource so that confd writes into outDir and reloads nothing.
func prepareConfdir(src, confdir, outDir string, installed func(program string) bool) ([]rewritten, error) {
	files, err := filepath.Glob(filepath.Join(src, "conf.d", "*.toml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no template resources in %s", filepath.Join(src, "conf.d"))
	}
	templates := filepath.Join(src, "templates")
	if err := os.CopyFS(filepath.Join(confdir, "templates"), os.DirFS(templates)); err != nil {
		return nil, fmt.Errorf("copy %s: %w", templates, err)
	}
	confd := filepath.Join(confdir, "conf.d")
	if err := os.MkdirAll(confd, 0o755); err != nil {
		return nil, err
	}
	var out []rewritten
	writers := make(map[string]string) // dest -> resource writing it
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		b, r, err := rewriteResource(data, outDir, installed)
		if err != nil {
			return nil, fmt.Errorf("rewrite %s: %w", f, err)
		}
		r.name = filepath.Base(f)
		if other, ok := writers[r.dest]; ok {
			return nil, fmt.Errorf("rewrite %s: %s writes %s too", f, other, r.dest)
		}
		writers[r.dest] = r.name
		if err := os.WriteFile(filepath.Join(confd, r.name), b, 0o644); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// rewriteResource changes a template resource for the demo: dest moves into
// outDir under its own base name, reload_cmd is dropped, and check_cmd is
// kept only when the program it runs is installed. Every other setting
// stays as it is.
func rewriteResource(data []byte, outDir string, installed func(program string) bool) ([]byte, rewritten, error) {
	var r rewritten
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return nil, r, err
	}
	tmpl, ok := doc["template"].(map[string]any)
	if !ok {
		return nil, r, errors.New("no [template] table")
	}
	r.origDest, _ = tmpl["dest"].(string)
	if r.origDest == "" {
		return nil, r, errors.New("no dest in [template]")
	}
	r.dest = filepath.Join(outDir, filepath.Base(r.origDest))
	tmpl["dest"] = r.dest
	delete(tmpl, "reload_cmd")
	if check, ok := tmpl["check_cmd"].(string); ok {
		if fields := strings.Fields(check); len(fields) > 0 {
			r.checkProgram = fields[0]
			r.checkKept = installed(r.checkProgram)
		}
		if !r.checkKept {
			delete(tmpl, "check_cmd")
		}
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(doc); err != nil {
		return nil, r, err
	}
	return buf.Bytes(), r, nil
}
