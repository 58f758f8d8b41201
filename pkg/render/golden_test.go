package render

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// TestGolden renders every testdata/golden/*.tmpl and compares it with the
// .golden file beside it. Templates named seed_* see only the keys of the
// HAProxy walk-through; the others see testKeys.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden templates found")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".tmpl")
		t.Run(name, func(t *testing.T) {
			keys := testKeys()
			if strings.HasPrefix(name, "seed_") {
				keys = seedKeys()
			}
			tmpl, err := ParseFile(file, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			got, err := tmpl.Execute(context.Background(), storeOf(keys))
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(file, ".tmpl") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s:\ngot:\n%s\nwant:\n%s", file, golden, got, want)
			}
		})
	}
}
