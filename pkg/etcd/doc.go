// Package etcd sets up etcd v3 clients and reads keys from etcd into kv
// snapshots.
//
// NewClient connects to the endpoints of a Config, or to those that
// DiscoverEndpoints finds in DNS SRV records, with TLS, client
// certificates and user name and password as configured, and fails early
// and clearly when no endpoint can be reached. ReadPrefixes reads every key
// under a set of prefixes at one revision, with range streams (or pages
// from an etcd without them), into a kv.Snapshot; on a client's own
// connection it decodes etcd's answers itself, straight into the
// snapshot.
//
// etcd knows nothing of templates or files. It may import the standard
// library, pkg/kv, the etcd client modules (go.etcd.io/etcd/client/v3,
// go.etcd.io/etcd/api/v3, go.etcd.io/etcd/client/pkg/v3) with zap to
// silence the client, gRPC and protobuf's wire format (which the client
// is built on), and logrus.
package etcd
