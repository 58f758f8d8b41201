package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

const supportedBackends = BackendEtcd + " (or etcd), " + BackendEnv + ", " + BackendFile

// resolve normalises the merged settings: names in lower case, the backend
// in its canonical form, the scheme, the SRV record and the node URLs. It
// returns warnings about settings that have no effect.
func (c *Config) resolve(environ []string) []string {
	var warnings []string
	c.Backend = strings.ToLower(strings.TrimSpace(c.Backend))
	c.LogLevel = strings.ToLower(strings.TrimSpace(c.LogLevel))
	c.LogFormat = strings.ToLower(strings.TrimSpace(c.LogFormat))
	c.Scheme = strings.ToLower(strings.TrimSpace(c.Scheme))
	if c.Scheme == "" {
		c.Scheme = "http"
		if c.tls() {
			c.Scheme = "https"
		}
	}

	// The original derives the SRV record from the backend name as the user
	// wrote it, so "etcd" (its default) looks up _etcd._tcp.<domain>.
	named := c.Backend
	if c.Backend == "etcd" {
		c.Backend = BackendEtcd
	}

	if c.Backend == BackendEtcd {
		if c.SRVDomain != "" && c.SRVRecord == "" {
			c.SRVRecord = "_" + named + "._tcp." + c.SRVDomain + "."
		}
		switch {
		case c.SRVRecord != "" && len(c.Nodes) > 0:
			warnings = append(warnings, fmt.Sprintf("nodes %s are ignored: nodes come from SRV record %s",
				strings.Join(c.Nodes, ","), c.SRVRecord))
			c.Nodes = nil
		case c.SRVRecord == "" && len(c.Nodes) == 0:
			// The original's etcd backend fell back on etcdctl's variable.
			if peers := lookupEnv(environ, "ETCDCTL_PEERS"); peers != "" {
				c.Nodes = splitList(peers)
			}
			if len(c.Nodes) == 0 {
				c.Nodes = []string{DefaultNode}
			}
		}
		c.Nodes = normaliseNodes(c.Nodes, c.Scheme)
	}

	if c.Onetime && c.Watch {
		warnings = append(warnings, "watch is ignored with onetime")
	}
	if !c.BasicAuth && (c.Username != "" || c.Password != "") {
		warnings = append(warnings, "username and password are not used without basic-auth")
	}
	return warnings
}

// tls reports whether any TLS setting is given.
func (c *Config) tls() bool {
	return c.ClientCert != "" || c.ClientKey != "" || c.ClientCAKeys != "" || c.ClientInsecure
}

// normaliseNodes returns the nodes as URLs: entries are split at commas and
// trimmed, empty ones dropped, and scheme:// is added to those without a
// scheme. Nodes with a scheme are kept as given.
func normaliseNodes(nodes []string, scheme string) []string {
	var out []string
	for _, n := range nodes {
		for _, s := range splitList(n) {
			if !strings.Contains(s, "://") {
				s = scheme + "://" + s
			}
			out = append(out, s)
		}
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func lookupEnv(environ []string, name string) string {
	var value string
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			value = v
		}
	}
	return value
}

// Validate checks the configuration. Its errors are FieldErrors, joined,
// each naming the setting by its flag name; all match ErrUsage. An
// unsupported backend is reported alone.
func (c *Config) Validate() error {
	switch c.Backend {
	case BackendEtcd, "etcd", BackendEnv, BackendFile:
	default:
		return &FieldError{Field: "backend", Msg: fmt.Sprintf("%q is not supported; supported backends: %s", c.Backend, supportedBackends)}
	}

	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}

	if c.ConfDir == "" {
		bad("confdir", "must not be empty")
	}
	if c.Interval <= 0 {
		bad("interval", "must be positive, got %d", c.Interval)
	}
	switch c.LogLevel {
	case "panic", "fatal", "error", "warn", "warning", "info", "debug", "trace":
	default:
		bad("log-level", "must be one of panic, fatal, error, warn, info, debug, trace; got %q", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log-format", "must be text or json, got %q", c.LogFormat)
	}
	for _, d := range []struct {
		field string
		value time.Duration
	}{
		{"command-timeout", c.CommandTimeout},
		{"dial-timeout", c.DialTimeout},
		{"request-timeout", c.RequestTimeout},
		{"watch-timeout", c.WatchTimeout},
	} {
		if d.value <= 0 {
			bad(d.field, "must be positive, got %s", d.value)
		}
	}
	if _, _, err := ParseWait(c.Wait); err != nil {
		bad("wait", "%v", err)
	}

	switch c.Backend {
	case BackendEtcd, "etcd":
		errs = append(errs, c.validateEtcd()...)
	case BackendFile:
		if len(c.Files) == 0 {
			bad("file", "the file backend needs at least one -file")
		}
		if _, err := filepath.Match(c.Filter, ""); err != nil {
			bad("filter", "%q: %v", c.Filter, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Config) validateEtcd() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Scheme != "http" && c.Scheme != "https" {
		bad("scheme", "must be http or https, got %q", c.Scheme)
	}
	if len(c.Nodes) == 0 && c.SRVRecord == "" {
		bad("node", "no etcd nodes and no SRV record")
	}
	for _, n := range c.Nodes {
		if err := checkNode(n); err != nil {
			bad("node", "%q: %v", n, err)
		}
	}
	if c.ClientCert != "" && c.ClientKey == "" {
		bad("client-key", "required with client-cert")
	}
	if c.ClientKey != "" && c.ClientCert == "" {
		bad("client-cert", "required with client-key")
	}
	if c.BasicAuth && c.Username == "" {
		bad("username", "required with basic-auth")
	}
	return errs
}

// checkNode accepts the endpoint forms the etcd client understands.
func checkNode(n string) error {
	u, err := url.Parse(n)
	if err != nil {
		return errors.Unwrap(err) // url.Error repeats the node
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return errors.New("no host")
		}
		if u.Path != "" && u.Path != "/" {
			return fmt.Errorf("unexpected path %q", u.Path)
		}
	default:
		return fmt.Errorf("unsupported scheme %q, want http or https", u.Scheme)
	}
	return nil
}

// ParseWait parses a -wait value: "min:max" or a single "min", in which case
// max is four times min. Each part is a duration or a number of seconds. The
// empty string, "0" and "0:0" mean no waiting and return zeros.
func ParseWait(s string) (minWait, maxWait time.Duration, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, 0, nil
	}
	lo, hi, both := strings.Cut(s, ":")
	if minWait, err = parseDuration(lo); err != nil {
		return 0, 0, fmt.Errorf("min: %w", err)
	}
	maxWait = 4 * minWait
	if both {
		if maxWait, err = parseDuration(hi); err != nil {
			return 0, 0, fmt.Errorf("max: %w", err)
		}
	}
	switch {
	case minWait == 0 && maxWait == 0:
		return 0, 0, nil
	case minWait <= 0:
		return 0, 0, fmt.Errorf("min must be positive, got %s", minWait)
	case maxWait < minWait:
		return 0, 0, fmt.Errorf("max %s is less than min %s", maxWait, minWait)
	}
	return minWait, maxWait, nil
}
