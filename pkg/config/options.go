package config

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// kind is the type of value an option takes; the config file checks the TOML
// type of a key against it.
type kind int

const (
	kindString kind = iota
	kindBool
	kindInt
	kindDuration
	kindList
)

// where says in which layers an option may be given besides the command line.
type where int

const (
	inFile where = 1 << iota
	inEnv
)

// option is one setting: a command-line flag, usually also a confd.toml key
// (the flag name with '-' or '_') and a CONFD_* environment variable.
type option struct {
	name  string
	kind  kind
	where where
	usage string
	// deprecated, when set, is the replacement to suggest; the option still
	// works.
	deprecated string
	// ignored, when set, is why the option has no effect.
	ignored string
	bind    func(c *Config) flag.Value
}

func (o *option) hidden() bool { return o.deprecated != "" || o.ignored != "" }

// envName is the environment variable for the option: CONFD_ followed by the
// flag name upper-cased, with '-' replaced by '_'.
func (o *option) envName() string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(o.name, "-", "_"))
}

const (
	everywhere = inFile | inEnv

	otherBackends = "it is only used by backends this confd does not support"
)

// options lists every setting in the order of the help text. It is never
// modified.
var options = []option{
	{name: "backend", kind: kindString, where: everywhere,
		usage: "`name` of the backend: etcdv3 (also etcd), env or file",
		bind:  func(c *Config) flag.Value { return (*stringValue)(&c.Backend) }},
	{name: "node", kind: kindList, where: everywhere,
		usage: "etcd `endpoint`, e.g. 10.0.0.1:2379 or https://etcd:2379; repeatable or comma-separated (default " + DefaultNode + ")",
		bind:  func(c *Config) flag.Value { return &listValue{p: &c.Nodes, split: true} }},
	{name: "srv-domain", kind: kindString, where: everywhere,
		usage: "`domain` whose DNS SRV records list the etcd nodes",
		bind:  func(c *Config) flag.Value { return (*stringValue)(&c.SRVDomain) }},
	{name: "srv-record", kind: kindString, where: everywhere,
		usage: "SRV `record` listing the etcd nodes, e.g. _etcd-client._tcp.example.com",
		bind:  func(c *Config) flag.Value { return (*stringValue)(&c.SRVRecord) }},
	{name: "scheme", kind: kindString, where: everywhere,
		usage: "`scheme` for nodes given without one and for SRV nodes: http or https (default http, https when TLS is configured)",
		bind:  func(c *Config) flag.Value { return (*stringValue)(&c.Scheme) }},
	{name: "client-cert", kind: kindString, where: everywhere,
		usage: "client certificate `file` for etcd",
		bind:  func(c *Config) flag.Value { return (*stringValue)(&c.ClientCert) }},
	{name: "client-key", kind: kindString, where: everywhere,
		usage: "client key `file` for etcd",
		bind:  func(c *Config) flag.Value { return (*stringValue)(&c.ClientKey) }},
	{name: "client-ca-keys", kind: kindString, where: everywhere,
		usage: "CA certificate `file` to verify etcd with",
		bind:  func(c *Config) flag.Value { return (*stringValue)(&c.ClientCAKeys) }},
	{name: "client-insecure", kind: kindBool, where: everywhere,
		usage: "do not verify the etcd server certificate",
		bind:  func(c *Config) flag.Value { return (*boolValue)(&c.ClientInsecure) }},
	{name: "basic-auth", kind: kindBool, where: everywhere,
		usage: "authenticate to etcd with -username and -password",
		bind:  func(c *Config) flag.Value { return (*boolValue)(&c.BasicAuth) }},
	{name: "username", kind: kindString, where: everywhere,
		usage: "etcd user `name` (with -basic-auth)",
		bind:  func(c *Config) flag.Value { return (*stringValue)(&c.Username) }},
	{name: "password", kind: kindString, where: everywhere,
		usage: "etcd `password` (with -basic-auth)",
		bind:  func(c *Config) flag.Value { return (*stringValue)(&c.Password) }},
	{name: "password-file", kind: kindString, where: everywhere,
		usage: "read the etcd password from this `file` (its first line), so that it is not on the command line",
		bind:  func(c *Config) flag.Value { return (*stringValue)(&c.PasswordFile) }},
	{name: "confdir", kind: kindString, where: everywhere,
		usage: "`directory` holding conf.d and templates",
		bind:  func(c *Config) flag.Value { return (*stringValue)(&c.ConfDir) }},
	{name: "config-file", kind: kindString, where: inEnv,
		usage: "confd config `file` (default <confdir>/confd.toml)",
		bind:  func(c *Config) flag.Value { return (*stringValue)(&c.ConfigFile) }},
	{name: "prefix", kind: kindString, where: everywhere,
		usage: "key `prefix` of every template resource; replaces the prefix a resource sets",
		bind:  func(c *Config) flag.Value { return (*stringValue)(&c.Prefix) }},
	{name: "onetime", kind: kindBool, where: everywhere,
		usage: "render the templates once and exit",
		bind:  func(c *Config) flag.Value { return (*boolValue)(&c.Onetime) }},
	{name: "watch", kind: kindBool, where: everywhere,
		usage: "watch etcd for changes instead of polling every -interval",
		bind:  func(c *Config) flag.Value { return (*boolValue)(&c.Watch) }},
	{name: "interval", kind: kindInt, where: everywhere,
		usage: "polling interval in `seconds`",
		bind:  func(c *Config) flag.Value { return (*intValue)(&c.Interval) }},
	{name: "wait", kind: kindString, where: everywhere,
		usage: "with -watch, wait for changes to settle: `min[:max]` durations, e.g. 2s:10s",
		bind:  func(c *Config) flag.Value { return (*stringValue)(&c.Wait) }},
	{name: "noop", kind: kindBool, where: everywhere,
		usage: "only show pending changes, do not write files",
		bind:  func(c *Config) flag.Value { return (*boolValue)(&c.Noop) }},
	{name: "check-config", kind: kindBool,
		usage: "check confd.toml, every template resource and template, report every problem and exit; needs no etcd",
		bind:  func(c *Config) flag.Value { return (*boolValue)(&c.CheckConfig) }},
	{name: "check", kind: kindBool,
		usage: "render every resource once to a stage file, run its check_cmd and remove it; never writes a dest or reloads",
		bind:  func(c *Config) flag.Value { return (*boolValue)(&c.Check) }},
	{name: "resource", kind: kindList,
		usage: "only the template resource with this `name` (file name in conf.d, with or without .toml); repeatable",
		bind:  func(c *Config) flag.Value { return &listValue{p: &c.Resources, split: true} }},
	{name: "sync-only", kind: kindBool, where: everywhere,
		usage: "write files without running check_cmd and reload_cmd",
		bind:  func(c *Config) flag.Value { return (*boolValue)(&c.SyncOnly) }},
	{name: "keep-stage-file", kind: kindBool, where: everywhere,
		usage: "keep staged files",
		bind:  func(c *Config) flag.Value { return (*boolValue)(&c.KeepStageFile) }},
	{name: "log-level", kind: kindString, where: everywhere,
		usage: "log `level`: panic, fatal, error, warn, info, debug or trace",
		bind:  func(c *Config) flag.Value { return (*stringValue)(&c.LogLevel) }},
	{name: "log-format", kind: kindString, where: everywhere,
		usage: "log `format`: text or json",
		bind:  func(c *Config) flag.Value { return (*stringValue)(&c.LogFormat) }},
	{name: "file", kind: kindList, where: everywhere,
		usage: "YAML or JSON `file` (or directory) for -backend file; repeatable",
		bind:  func(c *Config) flag.Value { return &listValue{p: &c.Files} }},
	{name: "filter", kind: kindString, where: everywhere,
		usage: "`glob` selecting the files read from -file directories",
		bind:  func(c *Config) flag.Value { return (*stringValue)(&c.Filter) }},
	{name: "command-timeout", kind: kindDuration, where: everywhere,
		usage: "time limit for check_cmd and reload_cmd, a `duration` or seconds",
		bind:  func(c *Config) flag.Value { return (*durationValue)(&c.CommandTimeout) }},
	{name: "dial-timeout", kind: kindDuration, where: everywhere,
		usage: "time limit for connecting to etcd, a `duration` or seconds",
		bind:  func(c *Config) flag.Value { return (*durationValue)(&c.DialTimeout) }},
	{name: "request-timeout", kind: kindDuration, where: everywhere,
		usage: "time limit for one etcd request, a `duration` or seconds",
		bind:  func(c *Config) flag.Value { return (*durationValue)(&c.RequestTimeout) }},
	{name: "watch-timeout", kind: kindDuration, where: everywhere,
		usage: "how long an etcd watch may stay silent, progress requests unanswered, before it is set up again, a `duration` or seconds",
		bind:  func(c *Config) flag.Value { return (*durationValue)(&c.WatchTimeout) }},
	{name: "metrics-addr", kind: kindString, where: everywhere,
		usage: "in the daemon modes, serve Prometheus metrics, /healthz and /readyz on this `host:port`, e.g. 127.0.0.1:9100",
		bind:  func(c *Config) flag.Value { return (*stringValue)(&c.MetricsAddr) }},
	{name: "version", kind: kindBool,
		usage: "print the version and exit",
		bind:  func(c *Config) flag.Value { return (*boolValue)(&c.Version) }},

	// Log level switches of confd before -log-level existed.
	{name: "debug", kind: kindBool, where: inFile, deprecated: "log-level debug",
		bind: func(c *Config) flag.Value { return &levelSwitch{p: &c.LogLevel, level: "debug"} }},
	{name: "verbose", kind: kindBool, where: inFile, deprecated: "log-level info",
		bind: func(c *Config) flag.Value { return &levelSwitch{p: &c.LogLevel, level: "info"} }},
	{name: "quiet", kind: kindBool, where: inFile, deprecated: "log-level error",
		bind: func(c *Config) flag.Value { return &levelSwitch{p: &c.LogLevel, level: "error"} }},

	// Settings of the original's other backends and of its crypt functions.
	ignoredOption("auth-token", kindString, otherBackends),
	ignoredOption("auth-type", kindString, otherBackends),
	ignoredOption("app-id", kindString, otherBackends),
	ignoredOption("user-id", kindString, otherBackends),
	ignoredOption("role-id", kindString, otherBackends),
	ignoredOption("secret-id", kindString, otherBackends),
	ignoredOption("path", kindString, otherBackends),
	ignoredOption("table", kindString, otherBackends),
	ignoredOption("separator", kindString, otherBackends),
	ignoredOption("secret-keyring", kindString, "the crypt template functions are not supported"),
}

func ignoredOption(name string, k kind, why string) option {
	return option{name: name, kind: k, where: inFile, ignored: why,
		bind: func(*Config) flag.Value { return ignoredValue{} }}
}

// fileAliases maps other spellings of confd.toml keys, after normalisation
// (lower case, '_' as '-'), to option names. The last two are from the
// [confd] table of confd before 0.5.
var fileAliases = map[string]string{
	"nodes":         "node",
	"client-cakeys": "client-ca-keys",
	"etcd-nodes":    "node",
	"etcd-scheme":   "scheme",
}

// deprecatedKeys maps old confd.toml keys (normalised) to the keys to use.
var deprecatedKeys = map[string]string{
	"etcd-nodes":  "nodes",
	"etcd-scheme": "scheme",
}

// envAliases maps environment variables of the original to option names.
var envAliases = map[string]string{
	"CONFD_CLIENT_CAKEYS": "client-ca-keys",
}

func lookupOption(name string) *option {
	for i := range options {
		if options[i].name == name {
			return &options[i]
		}
	}
	return nil
}

// flags is a FlagSet bound to one Config.
type flags struct {
	fs    *flag.FlagSet
	lists []*listValue
}

// newFlags binds the options to c; with all false, only those shown in the
// help are bound. The defaults shown in the help are c's current values.
func newFlags(c *Config, all bool) *flags {
	f := &flags{fs: flag.NewFlagSet("confd", flag.ContinueOnError)}
	for i := range options {
		o := &options[i]
		if o.hidden() && !all {
			continue
		}
		v := o.bind(c)
		if l, ok := v.(*listValue); ok {
			f.lists = append(f.lists, l)
		}
		f.fs.Var(v, o.name, o.usage)
	}
	return f
}

// newLayer makes the next setting of a list replace its values instead of
// adding to them, so that a higher layer overrides a lower one.
func (f *flags) newLayer() {
	for _, l := range f.lists {
		l.fresh = true
	}
}

type stringValue string

func (s *stringValue) Set(v string) error { *s = stringValue(v); return nil }
func (s *stringValue) String() string     { return string(*s) }

type boolValue bool

func (b *boolValue) Set(v string) error {
	x, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("want true or false")
	}
	*b = boolValue(x)
	return nil
}
func (b *boolValue) String() string   { return strconv.FormatBool(bool(*b)) }
func (b *boolValue) IsBoolFlag() bool { return true }

type intValue int

func (n *intValue) Set(v string) error {
	x, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return errors.New("want a whole number")
	}
	*n = intValue(x)
	return nil
}
func (n *intValue) String() string { return strconv.Itoa(int(*n)) }

type durationValue time.Duration

func (d *durationValue) Set(v string) error {
	x, err := parseDuration(v)
	if err != nil {
		return err
	}
	*d = durationValue(x)
	return nil
}
func (d *durationValue) String() string { return time.Duration(*d).String() }

const maxSeconds = int64(math.MaxInt64 / int64(time.Second))

// parseDuration accepts a Go duration ("90s", "1m30s") or a whole number of
// seconds, the unit confd uses for -interval.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > maxSeconds || n < -maxSeconds {
			return 0, fmt.Errorf("%d seconds is out of range", n)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as 30s or 1m, got %q", s)
	}
	return d, nil
}

// listValue is a repeatable option. With split set, each value may also hold
// several comma-separated entries; empty entries are dropped.
type listValue struct {
	p     *[]string
	split bool
	fresh bool
}

func (l *listValue) Set(v string) error {
	if l.fresh {
		*l.p = nil
		l.fresh = false
	}
	parts := []string{v}
	if l.split {
		parts = strings.Split(v, ",")
	}
	for _, s := range parts {
		if s = strings.TrimSpace(s); s != "" {
			*l.p = append(*l.p, s)
		}
	}
	return nil
}

func (l *listValue) String() string {
	if l == nil || l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

// levelSwitch is a deprecated boolean that sets the log level when true.
type levelSwitch struct {
	p     *string
	level string
}

func (s *levelSwitch) Set(v string) error {
	on, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("want true or false")
	}
	if on {
		*s.p = s.level
	}
	return nil
}
func (s *levelSwitch) String() string   { return "false" }
func (s *levelSwitch) IsBoolFlag() bool { return true }

// ignoredValue accepts any value and keeps none.
type ignoredValue struct{}

func (ignoredValue) Set(string) error { return nil }
func (ignoredValue) String() string   { return "" }
