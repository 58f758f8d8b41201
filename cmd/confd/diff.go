package main

import (
	"io"
	"os"
	"strings"
)

// ANSI colours of a unified diff in a terminal.
const (
	colorRemoved = "\x1b[31m"
	colorAdded   = "\x1b[32m"
	colorHunk    = "\x1b[36m"
	colorFile    = "\x1b[1m"
	colorReset   = "\x1b[0m"
)

// diffWriter returns where noop diffs go: out itself, or when out is a
// terminal, a writer that colours them.
func diffWriter(out io.Writer) io.Writer {
	if f, ok := out.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return colorDiff{out}
		}
	}
	return out
}

// colorDiff colours each line of the unified diffs written to it: one
// Write is one whole diff.
type colorDiff struct {
	w io.Writer
}

func (c colorDiff) Write(p []byte) (int, error) {
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(p), "\n") {
		color := ""
		switch {
		case strings.HasPrefix(line, "---"), strings.HasPrefix(line, "+++"):
			color = colorFile
		case strings.HasPrefix(line, "@@"):
			color = colorHunk
		case strings.HasPrefix(line, "-"):
			color = colorRemoved
		case strings.HasPrefix(line, "+"):
			color = colorAdded
		}
		if color == "" || line == "" {
			b.WriteString(line)
			continue
		}
		body, nl := strings.CutSuffix(line, "\n")
		b.WriteString(color + body + colorReset)
		if nl {
			b.WriteByte('\n')
		}
	}
	if _, err := io.WriteString(c.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}
