package render

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"

	"github.com/etcdconfd/confd/pkg/kv"
)

// errDivideByZero is returned by div and mod for a zero divisor.
var errDivideByZero = errors.New("integer divide by zero")

// funcMap returns every template function that does not read the store or
// the network: sprig's first, then confd's over them. sprig's env,
// expandenv and now are rebound to opts so that they read the same
// environment and clock as getenv and datetime.
func funcMap(opts Options) template.FuncMap {
	m := sprig.TxtFuncMap()
	lookup := func(key string) string {
		v, _ := opts.Getenv(key)
		return v
	}
	m["env"] = lookup
	m["expandenv"] = func(s string) string { return os.Expand(s, lookup) }
	m["now"] = opts.Now
	for name, fn := range confdFuncs(opts) {
		m[name] = fn
	}
	return m
}

// confdFuncs returns the functions of the original confd other than the
// store and DNS functions.
func confdFuncs(opts Options) template.FuncMap {
	return template.FuncMap{
		"base":           path.Base,
		"dir":            path.Dir,
		"split":          strings.Split,
		"join":           strings.Join,
		"toUpper":        strings.ToUpper,
		"toLower":        strings.ToLower,
		"contains":       strings.Contains,
		"replace":        strings.Replace,
		"trimSuffix":     strings.TrimSuffix,
		"json":           decodeJSONObject,
		"jsonArray":      decodeJSONArray,
		"map":            makeMap,
		"getenv":         getenv(opts.Getenv),
		"datetime":       opts.Now,
		"fileExists":     fileExists(opts.Stat),
		"base64Encode":   base64Encode,
		"base64Decode":   base64Decode,
		"parseBool":      strconv.ParseBool,
		"atoi":           strconv.Atoi,
		"reverse":        reverse,
		"sortByLength":   sortByLength,
		"sortKVByLength": sortKVByLength,
		"add":            func(a, b int) int { return a + b },
		"sub":            func(a, b int) int { return a - b },
		"mul":            func(a, b int) int { return a * b },
		"div":            div,
		"mod":            mod,
		"seq":            seq,
	}
}

// getenv returns the value of an environment variable, or the first
// default (or "") when it is unset or empty, as the original does.
func getenv(lookup func(string) (string, bool)) func(string, ...string) string {
	return func(key string, defaults ...string) string {
		if v, _ := lookup(key); v != "" {
			return v
		}
		if len(defaults) > 0 {
			return defaults[0]
		}
		return ""
	}
}

func decodeJSONObject(data string) (map[string]any, error) {
	var v map[string]any
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		return nil, fmt.Errorf("decode json object: %w", err)
	}
	return v, nil
}

func decodeJSONArray(data string) ([]any, error) {
	var v []any
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		return nil, fmt.Errorf("decode json array: %w", err)
	}
	return v, nil
}

// makeMap builds a map from alternating string keys and values.
func makeMap(pairs ...any) (map[string]any, error) {
	if len(pairs)%2 != 0 {
		return nil, fmt.Errorf("map: odd number of arguments (%d); want key value pairs", len(pairs))
	}
	m := make(map[string]any, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		k, ok := pairs[i].(string)
		if !ok {
			return nil, fmt.Errorf("map: key %d is %T, want string", i/2+1, pairs[i])
		}
		m[k] = pairs[i+1]
	}
	return m, nil
}

// fileExists reports whether name exists. An error other than "does not
// exist" (permission denied, for one) is returned rather than guessed at.
func fileExists(stat func(string) (fs.FileInfo, error)) func(string) (bool, error) {
	return func(name string) (bool, error) {
		_, err := stat(name)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, fs.ErrNotExist):
			return false, nil
		default:
			return false, fmt.Errorf("stat %s: %w", name, err)
		}
	}
}

func base64Encode(s string) string {
	return base64.StdEncoding.EncodeToString([]byte(s))
}

func base64Decode(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("decode base64: %w", err)
	}
	return string(b), nil
}

// reverse returns a reversed copy of a slice or array; its argument is
// never changed. Any other value is returned as it is, as in the original.
func reverse(v any) any {
	switch s := v.(type) {
	case []kv.KVPair:
		c := slices.Clone(s)
		slices.Reverse(c)
		return c
	case []string:
		c := slices.Clone(s)
		slices.Reverse(c)
		return c
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return v
	}
	if rv.Kind() == reflect.Slice && rv.IsNil() {
		return v
	}
	n := rv.Len()
	out := reflect.MakeSlice(reflect.SliceOf(rv.Type().Elem()), n, n)
	for i := range n {
		out.Index(i).Set(rv.Index(n - 1 - i))
	}
	return out.Interface()
}

// sortByLength returns a copy of values sorted by length, shortest first;
// values of equal length keep their order.
func sortByLength(values []string) []string {
	c := slices.Clone(values)
	slices.SortStableFunc(c, func(a, b string) int { return cmp.Compare(len(a), len(b)) })
	return c
}

// sortKVByLength returns a copy of pairs sorted by key length, shortest
// first; pairs with keys of equal length keep their order.
func sortKVByLength(pairs []kv.KVPair) []kv.KVPair {
	c := slices.Clone(pairs)
	slices.SortStableFunc(c, func(a, b kv.KVPair) int { return cmp.Compare(len(a.Key), len(b.Key)) })
	return c
}

func div(a, b int) (int, error) {
	if b == 0 {
		return 0, errDivideByZero
	}
	return a / b, nil
}

func mod(a, b int) (int, error) {
	if b == 0 {
		return 0, errDivideByZero
	}
	return a % b, nil
}

// maxSeq is the longest list seq makes; a longer one is far more likely a
// mistake than a configuration, and would exhaust memory.
const maxSeq = 1 << 20

// seq returns the integers from first to last inclusive, or an empty list
// when last < first.
func seq(first, last int) ([]int, error) {
	if last < first {
		return []int{}, nil
	}
	if n := uint(last) - uint(first); n >= maxSeq {
		return nil, fmt.Errorf("seq %d %d: more than %d numbers", first, last, maxSeq)
	}
	out := make([]int, 0, last-first+1)
	for i := first; ; i++ {
		out = append(out, i)
		if i == last {
			return out, nil
		}
	}
}
