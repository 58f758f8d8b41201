// Package config builds the run configuration of confd from four layers, each
// overriding the one before it: built-in defaults, the confd.toml file,
// CONFD_* environment variables and command-line flags. A flag or variable
// the user did not set never overrides a lower layer. The merged result is
// normalised (backend name, node URLs, SRV record) and then checked by
// Validate, whose errors name the offending setting.
//
// The flags, confd.toml keys and environment variables are those of the
// original confd, restricted to the backends this confd supports (etcd v3,
// env and file). Settings that only other backends used are accepted and
// reported as ignored, so that existing files and scripts keep working.
//
// Apart from reading the config file, the package is pure: the arguments and
// the environment are passed in, and warnings are returned rather than
// logged. It may import only the standard library and
// github.com/BurntSushi/toml.
package config
