package etcdtest

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Run starts a single-member etcd cluster on 127.0.0.1 with its data in
// dataDir and waits until it serves clients, for programs that are not
// tests, such as the demo. It gives up when ctx ends. dataDir should be
// empty or absent; it is created when needed. The caller stops the member
// with Stop and removes dataDir.
func Run(ctx context.Context, dataDir string, opts ...Option) (*Server, error) {
	if dataDir == "" {
		return nil, errors.New("run etcd: no data directory")
	}
	// etcd binds its ports before it writes to the data directory, so a
	// start that lost a port to another process may reuse the directory.
	members, err := launchMembers(ctx, 1, func() string { return dataDir }, opts)
	if err != nil {
		return nil, fmt.Errorf("run etcd in %s: %w", dataDir, err)
	}
	return members[0], nil
}

// Dial returns a client connected to the member. The caller closes it.
func (s *Server) Dial() (*clientv3.Client, error) {
	return dial(s.Endpoints(), s.tls)
}
