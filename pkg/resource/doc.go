// Package resource parses and validates template resources: the
// conf.d/**/*.toml files that name a template, the file it renders to, the
// keys it reads and the commands that check and reload the result.
//
// Parsing is pure apart from reading the resource files and checking that
// each named template exists. Every problem is reported as an *Error that
// names the file, the line and the field, and a broken resource never stops
// the others from loading.
//
// resource may import only the standard library and
// github.com/BurntSushi/toml.
package resource
