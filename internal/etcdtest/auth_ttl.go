package etcdtest

// WithAuthTokenTTL makes the member's simple authentication tokens expire
// after seconds without use, instead of etcd's 300 s (what etcd's
// --auth-token-ttl sets), so that tests can see clients outlive their
// tokens. Zero keeps etcd's default.
func WithAuthTokenTTL(seconds uint) Option {
	return func(o *options) { o.authTokenTTL = seconds }
}
