package main

import (
	"bytes"
	"os"
	"testing"
)

func TestColorDiff(t *testing.T) {
	in := "--- /etc/a\n+++ /etc/a\n@@ -1,2 +1,2 @@\n same\n-old\n+new\n"
	want := "\x1b[1m--- /etc/a\x1b[0m\n\x1b[1m+++ /etc/a\x1b[0m\n\x1b[36m@@ -1,2 +1,2 @@\x1b[0m\n same\n" +
		"\x1b[31m-old\x1b[0m\n\x1b[32m+new\x1b[0m\n"
	var out bytes.Buffer
	n, err := colorDiff{&out}.Write([]byte(in))
	if err != nil || n != len(in) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if out.String() != want {
		t.Errorf("got %q\nwant %q", out.String(), want)
	}
}

func TestDiffWriterPlainWhenNotATerminal(t *testing.T) {
	f, err := os.Create(t.TempDir() + "/out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if w := diffWriter(f); w != f {
		t.Errorf("diffWriter of a regular file = %T, want the file itself", w)
	}
	var buf bytes.Buffer
	if w := diffWriter(&buf); w != &buf {
		t.Errorf("diffWriter of a buffer = %T, want the buffer itself", w)
	}
}
