package etcdtest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// RootPassword is the password EnableAuth gives the root user.
const RootPassword = "root-secret-8d1f"

// EnableAuth turns on authentication through cli: a root user with
// RootPassword, and user with password holding a role that may only read the
// keys below readPrefix (what "etcdctl role grant-permission --prefix"
// grants). cli must be connected without authentication; afterwards it can
// no longer read or write.
func EnableAuth(t testing.TB, cli *clientv3.Client, user, password, readPrefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	role := user + "-reader"
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", RootPassword); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, role); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, role, readPrefix, clientv3.GetPrefixRangeEnd(readPrefix),
				clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, user, password); return err },
		func() error { _, err := cli.UserGrantRole(ctx, user, role); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("etcdtest: enable auth, step %d: %v", i, err)
		}
	}
}
