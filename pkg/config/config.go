package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Backend names. BackendEtcd is the canonical name; "etcd" is accepted and
// normalised to it.
const (
	BackendEtcd = "etcdv3"
	BackendEnv  = "env"
	BackendFile = "file"
)

// Defaults.
const (
	DefaultConfDir        = "/etc/confd"
	DefaultNode           = "127.0.0.1:2379" // the scheme is added as for any node
	DefaultInterval       = 600              // seconds
	DefaultLogLevel       = "info"
	DefaultLogFormat      = "text"
	DefaultFilter         = "*"
	DefaultCommandTimeout = 60 * time.Second
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 10 * time.Second
	DefaultWatchTimeout   = 30 * time.Second

	configFileName = "confd.toml"
	envPrefix      = "CONFD_"
)

// Config is the run configuration of confd.
type Config struct {
	// Backend is BackendEtcd, BackendEnv or BackendFile.
	Backend string
	// Nodes are the etcd endpoints as URLs, e.g. http://127.0.0.1:2379. When
	// SRVRecord is set, Nodes is empty and the endpoints come from the SRV
	// record, with Scheme. Other backends leave Nodes as given.
	Nodes     []string
	SRVDomain string
	// SRVRecord is the record to look up; when only SRVDomain is given it is
	// derived as the original did: _<backend>._tcp.<domain>.
	SRVRecord string
	// Scheme is "http" or "https"; it was added to nodes given without one.
	Scheme string

	ClientCert     string
	ClientKey      string
	ClientCAKeys   string
	ClientInsecure bool

	// BasicAuth enables authentication with Username and Password; as in the
	// original, credentials are not used without it.
	BasicAuth bool
	Username  string
	Password  string
	// PasswordFile names a file whose first line is the password; Load
	// reads it into Password.
	PasswordFile string

	ConfDir    string
	ConfigFile string // the config file that was looked for
	Prefix     string

	// Onetime renders once and exits. It takes precedence over Watch, as in
	// the original, where -onetime returns before watching starts.
	Onetime bool
	Watch   bool
	// Interval is the polling interval in seconds when not watching.
	Interval int
	// Wait is the quiescence period in watch mode, "min" or "min:max";
	// see ParseWait. Empty means none.
	Wait string

	// CheckConfig checks the configuration, resources and templates and
	// exits; Check renders and runs every check_cmd without installing.
	CheckConfig bool
	Check       bool
	// Resources, when not empty, limits the run to the resources named.
	Resources []string

	Noop          bool
	SyncOnly      bool
	KeepStageFile bool

	LogLevel  string // panic, fatal, error, warn, warning, info, debug or trace
	LogFormat string // text or json

	// Files and Filter configure the file backend.
	Files  []string
	Filter string

	CommandTimeout time.Duration // limit for check_cmd and reload_cmd
	DialTimeout    time.Duration // limit for connecting to etcd
	RequestTimeout time.Duration // limit for one etcd request
	WatchTimeout   time.Duration // silence after which a watch is set up again

	// MetricsAddr, when set, is the host:port on which the daemon modes
	// serve /metrics, /healthz and /readyz.
	MetricsAddr string

	// Version asks for the version to be printed; Load returns without
	// reading the config file or the environment when it is set.
	Version bool
}

// readPasswordFile sets Password from the first line of PasswordFile. A
// password on the command line is visible to every user of the machine in
// the process list; a file readable by confd alone is not.
func (c *Config) readPasswordFile() error {
	if c.PasswordFile == "" {
		return nil
	}
	if c.Password != "" {
		return &usageError{errors.New("password and password-file are both set; use one")}
	}
	b, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return fmt.Errorf("read password file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	c.Password = strings.TrimSuffix(line, "\r")
	if c.Password == "" {
		return fmt.Errorf("read password file %s: the first line is empty", c.PasswordFile)
	}
	return nil
}

// ResourceDir is the directory of template resources, <confdir>/conf.d.
func (c *Config) ResourceDir() string { return filepath.Join(c.ConfDir, "conf.d") }

// TemplateDir is the directory of templates, <confdir>/templates.
func (c *Config) TemplateDir() string { return filepath.Join(c.ConfDir, "templates") }

// ErrUsage is matched (errors.Is) by errors about how confd was invoked or
// configured: bad flags, bad CONFD_* values, an unsupported backend and every
// error from Validate. Callers exit with status 2 for these. Load returns
// flag.ErrHelp unchanged for -h and -help.
var ErrUsage = errors.New("usage error")

// usageError is an error that also matches ErrUsage.
type usageError struct{ err error }

func (e *usageError) Error() string   { return e.err.Error() }
func (e *usageError) Unwrap() []error { return []error{ErrUsage, e.err} }

// FieldError is a setting with a bad value.
type FieldError struct {
	Field string // the flag name, e.g. "interval"
	Msg   string
}

func (e *FieldError) Error() string        { return e.Field + ": " + e.Msg }
func (e *FieldError) Is(target error) bool { return target == ErrUsage }

// FileError is a config file that cannot be parsed or holds a bad value.
type FileError struct {
	Path string
	Line int // 0 when unknown
	Msg  string
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("config file %s: line %d: %s", e.Path, e.Line, e.Msg)
	}
	return fmt.Sprintf("config file %s: %s", e.Path, e.Msg)
}

func defaults() *Config {
	return &Config{
		Backend:        "etcd", // named as in the original; see resolve
		ConfDir:        DefaultConfDir,
		Interval:       DefaultInterval,
		LogLevel:       DefaultLogLevel,
		LogFormat:      DefaultLogFormat,
		Filter:         DefaultFilter,
		CommandTimeout: DefaultCommandTimeout,
		DialTimeout:    DefaultDialTimeout,
		RequestTimeout: DefaultRequestTimeout,
		WatchTimeout:   DefaultWatchTimeout,
	}
}

// Load builds the configuration from args (without the program name),
// environ ("KEY=value" entries, as os.Environ returns) and the config file,
// then validates it. Warnings about ignored or deprecated settings are
// returned separately; they are not errors.
func Load(args []string, environ []string) (*Config, []string, error) {
	var warnings []string

	// First the command line alone: it names the config file and says which
	// flags the user set.
	cl := defaults()
	clFlags := newFlags(cl, true)
	if err := parseArgs(clFlags.fs, args); err != nil {
		return nil, nil, err
	}
	onCommandLine := map[string]bool{}
	clFlags.fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	for i := range options {
		if o := &options[i]; onCommandLine[o.name] {
			warnings = appendNote(warnings, o, "flag -"+o.name)
		}
	}
	if cl.Version {
		return cl, warnings, nil
	}

	env := readEnviron(environ)

	// The config file lives in the confdir given by a flag, a variable or
	// the default; a confdir set in the file itself cannot move it.
	confDir := DefaultConfDir
	if v, ok := env.lookup("confdir"); ok {
		confDir = v
	}
	if onCommandLine["confdir"] {
		confDir = cl.ConfDir
	}
	path, explicit := filepath.Join(confDir, configFileName), false
	if v, ok := env.lookup("config-file"); ok {
		path, explicit = v, true
	}
	if onCommandLine["config-file"] {
		path, explicit = cl.ConfigFile, true
	}

	// Then the layers in order, onto one Config.
	c := defaults()
	f := newFlags(c, true)
	f.newLayer()
	fileWarnings, err := readFile(path, explicit, f)
	warnings = append(warnings, fileWarnings...)
	if err != nil {
		return nil, warnings, err
	}
	f.newLayer()
	if err := env.apply(f); err != nil {
		return nil, warnings, err
	}
	f.newLayer()
	if err := parseArgs(f.fs, args); err != nil {
		return nil, warnings, err // cannot happen: the same args parsed above
	}
	c.ConfigFile = path

	warnings = append(warnings, c.resolve(environ)...)
	if err := c.readPasswordFile(); err != nil {
		return nil, warnings, err
	}
	if err := c.Validate(); err != nil {
		return nil, warnings, err
	}
	return c, warnings, nil
}

// parseArgs parses the command line into fs. It prints nothing.
func parseArgs(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return &usageError{err}
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Errorf("unexpected argument %q: confd takes only flags", fs.Arg(0))}
	}
	return nil
}

// appendNote adds the warning for a deprecated or ignored option, if any;
// source says where it was given, e.g. `flag -verbose`.
func appendNote(warnings []string, o *option, source string) []string {
	switch {
	case o.deprecated != "":
		return append(warnings, fmt.Sprintf("%s is deprecated; use %s", source, o.deprecated))
	case o.ignored != "":
		return append(warnings, fmt.Sprintf("%s is ignored: %s", source, o.ignored))
	}
	return warnings
}

// Usage writes the help text: a synopsis and the flags with their defaults.
// Deprecated and ignored flags are accepted but not listed.
func Usage(w io.Writer) {
	f := newFlags(defaults(), false)
	f.fs.SetOutput(w)
	fmt.Fprintf(w, "Usage: confd [flags]\n\n"+
		"Each setting is taken from the first of: these flags, a %s* environment\n"+
		"variable (%sNODE for -node), <confdir>/%s, the default.\n\nFlags:\n",
		envPrefix, envPrefix, configFileName)
	f.fs.PrintDefaults()
}
