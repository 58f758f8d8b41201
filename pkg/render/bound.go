package render

import (
	"cmp"
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"text/template"

	"github.com/etcdconfd/confd/pkg/kv"
)

// binding is what the store and DNS functions of one template clone read:
// the context and store of the execution in progress. A clone runs one
// execution at a time, so its binding is only ever set and read by the
// goroutine running that execution.
type binding struct {
	ctx      context.Context
	store    Store
	resolver *net.Resolver
}

// funcs returns the functions that read the store or ask DNS, reading b
// at call time.
func (b *binding) funcs() template.FuncMap {
	return template.FuncMap{
		"get": func(key string) (kv.KVPair, error) {
			return b.store.Get(key)
		},
		"getv": func(key string, defaults ...string) (string, error) {
			return b.store.GetValue(key, defaults...)
		},
		"exists": func(key string) bool {
			return b.store.Exists(key)
		},
		"gets": func(pattern string) ([]kv.KVPair, error) {
			if err := b.ctx.Err(); err != nil {
				return nil, err
			}
			return b.store.GetAll(pattern)
		},
		"getvs": func(pattern string) ([]string, error) {
			if err := b.ctx.Err(); err != nil {
				return nil, err
			}
			return b.store.GetAllValues(pattern)
		},
		"ls": func(dir string) ([]string, error) {
			if err := b.ctx.Err(); err != nil {
				return nil, err
			}
			return b.store.List(dir), nil
		},
		"lsdir": func(dir string) ([]string, error) {
			if err := b.ctx.Err(); err != nil {
				return nil, err
			}
			return b.store.ListDir(dir), nil
		},
		"lookupIP": func(host string) ([]string, error) {
			return lookupIP(b.ctx, b.resolver, host, func(net.IP) bool { return true })
		},
		"lookupIPV4": func(host string) ([]string, error) {
			return lookupIP(b.ctx, b.resolver, host, func(ip net.IP) bool { return ip.To4() != nil })
		},
		"lookupIPV6": func(host string) ([]string, error) {
			return lookupIP(b.ctx, b.resolver, host, func(ip net.IP) bool { return ip.To4() == nil })
		},
		"lookupSRV": func(service, proto, name string) ([]*net.SRV, error) {
			return lookupSRV(b.ctx, b.resolver, service, proto, name)
		},
	}
}

// notFound reports whether err says the name has no records, which the
// templates see as an empty list. Any other failure is an error, so that
// a DNS outage never renders a configuration without its servers.
func notFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// lookupIP returns the addresses of host that keep accepts, as strings in
// sorted order.
func lookupIP(ctx context.Context, r *net.Resolver, host string, keep func(net.IP) bool) ([]string, error) {
	ips, err := r.LookupIP(ctx, "ip", host)
	if err != nil {
		if notFound(err) {
			return []string{}, nil
		}
		return nil, err // a *net.DNSError, which names the lookup
	}
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		if keep(ip) {
			out = append(out, ip.String())
		}
	}
	slices.Sort(out)
	return out, nil
}

// lookupSRV returns the SRV records of _service._proto.name in the order
// the original gives them: by the text of target, port, priority and
// weight written one after another. Records whose texts are equal (port 1
// priority 23 against port 12 priority 3) are further ordered by each
// field, so the order never depends on the order of the DNS answer.
func lookupSRV(ctx context.Context, r *net.Resolver, service, proto, name string) ([]*net.SRV, error) {
	_, addrs, err := r.LookupSRV(ctx, service, proto, name)
	if err != nil {
		if notFound(err) {
			return []*net.SRV{}, nil
		}
		return nil, err // a *net.DNSError, which names the lookup
	}
	type keyed struct {
		key string
		srv *net.SRV
	}
	ks := make([]keyed, len(addrs))
	for i, a := range addrs {
		k := a.Target + strconv.Itoa(int(a.Port)) + strconv.Itoa(int(a.Priority)) + strconv.Itoa(int(a.Weight))
		ks[i] = keyed{key: k, srv: a}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		return cmp.Or(
			cmp.Compare(a.key, b.key),
			cmp.Compare(a.srv.Target, b.srv.Target),
			cmp.Compare(a.srv.Port, b.srv.Port),
			cmp.Compare(a.srv.Priority, b.srv.Priority),
			cmp.Compare(a.srv.Weight, b.srv.Weight),
		)
	})
	out := make([]*net.SRV, len(ks))
	for i, k := range ks {
		out[i] = k.srv
	}
	return out, nil
}
