// Package integration holds end-to-end tests: they build the confd binary,
// start a real etcd in-process (internal/etcdtest) and run confd as a user
// would, then check the files it wrote and what it printed.
package integration
