package resource

import (
	"strings"
)

// keyLines maps each table header and key of a TOML document to the line
// (starting at 1) where it is first defined. Names are dotted and lower-cased
// ("template", "template.dest"), because keys match resource fields without
// regard to case.
//
// The TOML library does not export key positions, so this is a line scanner
// good enough to point at the offending key in an error message: it follows
// table headers, dotted and quoted keys, and skips multi-line strings. Keys of
// inline tables are not recorded; the caller falls back to the line of the
// enclosing key, which for an inline table is the same line.
func keyLines(src []byte) map[string]int {
	lines := map[string]int{}
	record := func(name string, line int) {
		if _, ok := lines[name]; !ok {
			lines[name] = line
		}
	}
	table := ""
	closing := "" // delimiter of the multi-line string being skipped
	for i, line := range strings.Split(string(src), "\n") {
		n := i + 1
		if closing != "" {
			if strings.Contains(line, closing) {
				closing = ""
			}
			continue
		}
		s := strings.TrimSpace(line)
		if s == "" || s[0] == '#' {
			continue
		}
		if s[0] == '[' {
			inner := strings.TrimLeft(s, "[")
			parts, rest, ok := scanKey(inner)
			if ok && strings.HasPrefix(strings.TrimSpace(rest), "]") {
				table = strings.Join(parts, ".")
				for j := range parts {
					record(strings.Join(parts[:j+1], "."), n)
				}
			}
			continue
		}
		parts, rest, ok := scanKey(s)
		rest = strings.TrimSpace(rest)
		if !ok || !strings.HasPrefix(rest, "=") {
			continue
		}
		for j := range parts {
			name := strings.Join(parts[:j+1], ".")
			if table != "" {
				name = table + "." + name
			}
			record(name, n)
		}
		closing = openMultiline(strings.TrimSpace(rest[1:]))
	}
	return lines
}

// scanKey reads a possibly dotted, possibly quoted TOML key from the start of
// s and returns its lower-cased parts and the text after it.
func scanKey(s string) (parts []string, rest string, ok bool) {
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, "", false
		}
		var part string
		switch s[0] {
		case '"', '\'':
			end := closingQuote(s)
			if end < 0 {
				return nil, "", false
			}
			part, s = s[1:end], s[end+1:]
		default:
			end := 0
			for end < len(s) && isBareKeyChar(s[end]) {
				end++
			}
			if end == 0 {
				return nil, "", false
			}
			part, s = s[:end], s[end:]
		}
		parts = append(parts, strings.ToLower(part))
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return parts, s, true
		}
		s = s[1:]
	}
}

// closingQuote returns the index of the quote that closes the string at the
// start of s, or -1.
func closingQuote(s string) int {
	q := s[0]
	for i := 1; i < len(s); i++ {
		switch {
		case q == '"' && s[i] == '\\':
			i++
		case s[i] == q:
			return i
		}
	}
	return -1
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// openMultiline returns the delimiter of a multi-line string that value
// opens and does not close on the same line, or "".
func openMultiline(value string) string {
	for _, d := range []string{`"""`, `'''`} {
		if strings.HasPrefix(value, d) && !strings.Contains(value[len(d):], d) {
			return d
		}
	}
	return ""
}
