package localkv

import (
	"path"
	"strings"

	"github.com/etcdconfd/confd/pkg/kv"
)

// FromEnv returns a snapshot of the variables in environ ("NAME=value"
// entries, as from os.Environ) that belong to keys under prefixes.
//
// Names map to keys as in the original confd's env backend. A prefix is
// upper-cased and its slashes become underscores: "/app/servers" looks for
// APP_SERVERS. A variable's key is its name lower-cased with underscores
// turned into slashes and a leading slash: APP_SERVERS_A is
// "/app/servers/a". Only variables whose name starts with the upper-cased
// prefix are seen, so lower-case variable names never match a non-root
// prefix.
//
// Unlike the original, prefixes match on key boundaries: /app sees APP and
// APP_X but not APPX. The original also returned APPX (as /appx), which no
// template reading /app could see anyway. A prefix of "/" sees every
// variable. When a name occurs twice the first entry wins, as with
// os.Getenv.
func FromEnv(environ []string, prefixes []string) *kv.Snapshot {
	names := make([]string, 0, len(prefixes))
	for _, p := range prefixes {
		names = append(names, envName(p))
	}
	b := kv.NewBuilder()
	seen := map[string]bool{}
	for _, e := range environ {
		name, value, ok := strings.Cut(e, "=")
		if !ok || name == "" || seen[name] {
			continue
		}
		seen[name] = true
		for _, n := range names {
			if n == "" || name == n || strings.HasPrefix(name, n+"_") {
				b.Put(envKey(name), value)
				break
			}
		}
	}
	return b.Build(0)
}

// envName is the variable name for key: "/app/servers" is APP_SERVERS and
// "/" is "".
func envName(key string) string {
	k := strings.TrimPrefix(path.Clean("/"+key), "/")
	return strings.ToUpper(strings.ReplaceAll(k, "/", "_"))
}

// envKey is the key for a variable name, exactly as the original maps it:
// APP_SERVERS_A is /app/servers/a. Doubled or trailing underscores give
// empty path segments, as they did there.
func envKey(name string) string {
	return "/" + strings.ReplaceAll(strings.ToLower(name), "_", "/")
}
