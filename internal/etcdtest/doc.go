// Package etcdtest runs real etcd servers inside a test process, for tests
// of code that talks to etcd. Servers listen on 127.0.0.1 with ephemeral
// ports, keep their data in the test's temporary directory, log nothing and
// are stopped by t.Cleanup.
//
// Start runs one member, StartCluster runs several members that form one
// cluster. A member can be stopped and restarted on the same data directory
// and the same client address, so that a running client reconnects to it.
// NewCertificates writes a throw-away certificate authority and the server
// and client certificates it signed, for tests of TLS and client
// certificate authentication.
//
// Run is the same single member for programs that are not tests, such as
// the demo: the caller names the data directory and stops the member.
//
// etcdtest may import the standard library and the etcd server, client and
// their support modules. Only tests and examples import it.
package etcdtest
