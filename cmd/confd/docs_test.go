package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/etcdconfd/confd/pkg/config"
)

// configurationDoc is the reference of every flag, relative to this package.
var configurationDoc = filepath.Join("..", "..", "docs", "configuration.md")

// helpFlag is one flag as config.Usage lists it.
type helpFlag struct {
	name string
	def  string // the "(default ...)" text, "" when none is shown
}

var (
	// helpFlagLine is the first line of a flag in flag.PrintDefaults
	// output: "  -name" or "  -name value".
	helpFlagLine = regexp.MustCompile(`^  -([a-z0-9][a-z0-9-]*)(?: |$)`)
	// helpDefault is the default at the end of a flag's usage line.
	helpDefault = regexp.MustCompile(`\(default ([^()]*)\)$`)
	// docFlagRow is a table row that documents a flag: "| `-name` |".
	docFlagRow = regexp.MustCompile("^\\| `-([a-z0-9][a-z0-9-]*)`")
)

// helpFlags returns the flags that config.Usage lists, in its order.
func helpFlags(t *testing.T) []helpFlag {
	t.Helper()
	var b bytes.Buffer
	config.Usage(&b)
	var flags []helpFlag
	for _, line := range strings.Split(b.String(), "\n") {
		if m := helpFlagLine.FindStringSubmatch(line); m != nil {
			flags = append(flags, helpFlag{name: m[1]})
			continue
		}
		if len(flags) > 0 && strings.HasPrefix(line, "    \t") {
			if m := helpDefault.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				flags[len(flags)-1].def = m[1]
			}
		}
	}
	if len(flags) < 10 {
		t.Fatalf("config.Usage lists %d flags; the help format changed?\n%s", len(flags), b.String())
	}
	return flags
}

// docFlagRows returns the table rows of docs/configuration.md that
// document a flag, by flag name, split into cells.
func docFlagRows(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(configurationDoc)
	if err != nil {
		t.Fatalf("read flag reference: %v", err)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		m := docFlagRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if _, dup := rows[m[1]]; dup {
			t.Errorf("%s: flag -%s has two rows", configurationDoc, m[1])
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		rows[m[1]] = cells
	}
	return rows
}

// TestDocsListEveryFlag fails when a flag that confd -h shows is missing
// from docs/configuration.md, or documented with another default or
// another environment variable than it has.
func TestDocsListEveryFlag(t *testing.T) {
	rows := docFlagRows(t)
	for _, f := range helpFlags(t) {
		row, ok := rows[f.name]
		if !ok {
			t.Errorf("%s has no table row for flag -%s", configurationDoc, f.name)
			continue
		}
		if len(row) < 5 {
			t.Errorf("%s: row of -%s has %d cells, want 5: %q", configurationDoc, f.name, len(row), row)
			continue
		}
		wantEnv := "`CONFD_" + strings.ToUpper(strings.ReplaceAll(f.name, "-", "_")) + "`"
		if env := row[1]; env != "—" && !strings.HasPrefix(env, wantEnv) {
			t.Errorf("%s: variable of -%s is %s, want %s or —", configurationDoc, f.name, env, wantEnv)
		}
		// Defaults with spaces are explanations, not values; compare the
		// others literally.
		if f.def != "" && !strings.Contains(f.def, " ") {
			if want := "`" + f.def + "`"; !strings.Contains(row[3], want) {
				t.Errorf("%s: default of -%s is %s, want %s (as confd -h shows it)", configurationDoc, f.name, row[3], want)
			}
		}
	}
}

// TestDocsFlagsExist fails when docs/configuration.md documents a flag,
// deprecated and ignored ones included, that confd does not accept.
func TestDocsFlagsExist(t *testing.T) {
	rows := docFlagRows(t)
	if len(rows) == 0 {
		t.Fatalf("%s documents no flags", configurationDoc)
	}
	for name := range rows {
		if name == "h" || name == "help" {
			continue // handled by the flag package, not by config
		}
		// -version makes Load stop after the command line, so no config
		// file or environment is read; "=1" is a valid value of every kind.
		args := []string{"-" + name + "=1", "-version"}
		if _, _, err := config.Load(args, nil); err != nil {
			t.Errorf("%s documents -%s, but config.Load(%q): %v", configurationDoc, name, args, err)
		}
	}
}
