package localkv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
)

// readJSON flattens a JSON document into emit, as readFile does for YAML.
// JSON is read with encoding/json rather than as YAML because YAML parsers
// reject valid JSON escapes such as "\/" and surrogate pairs.
func readJSON(data []byte, emit func(key, value string)) error {
	j := jsonReader{data: data, dec: json.NewDecoder(bytes.NewReader(data)), emit: emit}
	j.dec.UseNumber()
	tok, err := j.token()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		if err := j.object("/"); err != nil {
			return err
		}
	case nil:
	default:
		return fmt.Errorf("line %d: the top level must be an object, got %s", j.line(), jsonKind(tok))
	}
	if _, err := j.token(); !errors.Is(err, io.EOF) {
		if err == nil {
			return fmt.Errorf("line %d: data after the top-level value", j.line())
		}
		return err
	}
	return nil
}

type jsonReader struct {
	data []byte
	dec  *json.Decoder
	emit func(key, value string)
}

// token reads the next token; syntax errors carry their line.
func (j *jsonReader) token() (json.Token, error) {
	tok, err := j.dec.Token()
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return nil, fmt.Errorf("line %d: %w", j.lineAt(se.Offset), err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, j.truncated()
	}
	return tok, err
}

// inner reads a token inside an object or array, where the end of the
// input is an error.
func (j *jsonReader) inner() (json.Token, error) {
	tok, err := j.token()
	if errors.Is(err, io.EOF) {
		return nil, j.truncated()
	}
	return tok, err
}

func (j *jsonReader) truncated() error {
	return fmt.Errorf("line %d: unexpected end of JSON input", j.lineAt(int64(len(j.data))))
}

func (j *jsonReader) line() int { return j.lineAt(j.dec.InputOffset()) }

func (j *jsonReader) lineAt(off int64) int {
	if off > int64(len(j.data)) {
		off = int64(len(j.data))
	}
	return bytes.Count(j.data[:off], []byte("\n")) + 1
}

// object reads the members of an object whose '{' has been read.
func (j *jsonReader) object(key string) error {
	seen := map[string]int{}
	for j.dec.More() {
		tok, err := j.inner()
		if err != nil {
			return err
		}
		name, ok := tok.(string)
		if !ok {
			return fmt.Errorf("line %d: object key must be a string", j.line())
		}
		line := j.line()
		if prev, dup := seen[name]; dup {
			return fmt.Errorf("line %d: object key %q already defined at line %d", line, name, prev)
		}
		seen[name] = line
		if err := j.value(path.Join(key, name)); err != nil {
			return err
		}
	}
	_, err := j.inner() // '}'
	return err
}

func (j *jsonReader) value(key string) error {
	tok, err := j.inner()
	if err != nil {
		return err
	}
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return j.object(key)
		}
		for i := 0; j.dec.More(); i++ {
			if err := j.value(path.Join(key, strconv.Itoa(i))); err != nil {
				return err
			}
		}
		_, err := j.inner() // ']'
		return err
	case string:
		j.emit(key, v)
	case bool:
		j.emit(key, strconv.FormatBool(v))
	case json.Number:
		j.emit(key, formatNumber(v))
	case nil:
		// null has no key, as in the original.
	}
	return nil
}

// formatNumber prints integers exactly and other numbers like the YAML
// floats: decimal, no exponent, no trailing zeros.
func formatNumber(n json.Number) string {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return strconv.FormatInt(i, 10)
	}
	if u, err := strconv.ParseUint(string(n), 10, 64); err == nil {
		return strconv.FormatUint(u, 10)
	}
	if f, err := strconv.ParseFloat(string(n), 64); err == nil {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return string(n)
}

func jsonKind(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return "an object"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "null"
}
