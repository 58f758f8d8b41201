package config

import (
	"fmt"
	"strings"
)

// envSetting is one CONFD_* variable that names an option.
type envSetting struct {
	opt   *option
	name  string // the variable, e.g. CONFD_NODE
	value string
}

// envLayer holds the CONFD_* settings in the order of the options table.
type envLayer []envSetting

// readEnviron picks the CONFD_* variables that name options out of environ.
// A variable set to the empty string counts as unset. Other CONFD_*
// variables are left alone: images often use such names for their own ends.
func readEnviron(environ []string) envLayer {
	values := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, envPrefix) {
			continue
		}
		values[k] = v // a later entry wins
	}
	var layer envLayer
	for i := range options {
		o := &options[i]
		if o.where&inEnv == 0 {
			continue
		}
		name := o.envName()
		v, ok := values[name]
		if !ok || v == "" {
			// Fall back to the original's spelling, if there is one.
			for alias, target := range envAliases {
				if target == o.name && values[alias] != "" {
					name, v, ok = alias, values[alias], true
				}
			}
		}
		if ok && v != "" {
			layer = append(layer, envSetting{opt: o, name: name, value: v})
		}
	}
	return layer
}

func (l envLayer) lookup(option string) (string, bool) {
	for _, s := range l {
		if s.opt.name == option {
			return s.value, true
		}
	}
	return "", false
}

// apply sets the options in f. A list variable holds comma-separated values.
func (l envLayer) apply(f *flags) error {
	for _, s := range l {
		values := []string{s.value}
		if s.opt.kind == kindList {
			values = strings.Split(s.value, ",")
		}
		for _, v := range values {
			if err := f.fs.Set(s.opt.name, v); err != nil {
				return &usageError{fmt.Errorf("environment variable %s: invalid value %q: %w", s.name, s.value, err)}
			}
		}
	}
	return nil
}
