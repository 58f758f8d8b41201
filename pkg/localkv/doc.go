// Package localkv builds key snapshots from local sources instead of etcd:
// the process environment (-backend env) and YAML or JSON files
// (-backend file). It maps names and values the way the original confd's env
// and file backends do, so templates written for them render the same.
//
// Snapshots from local sources have revision 0.
//
// localkv may import only the standard library, pkg/kv and
// go.yaml.in/yaml/v3.
package localkv
