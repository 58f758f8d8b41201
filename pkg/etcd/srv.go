package etcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// SRVRecordName is the DNS name DiscoverEndpoints looks up: SRVRecord as
// given, or "_<Backend>._tcp.<SRVDomain>." as the original confd builds it,
// or "" when neither is set.
func SRVRecordName(cfg Config) string {
	if cfg.SRVRecord != "" {
		return cfg.SRVRecord
	}
	if cfg.SRVDomain == "" {
		return ""
	}
	service := cfg.Backend
	if service == "" {
		service = "etcd"
	}
	return "_" + service + "._tcp." + strings.TrimSuffix(cfg.SRVDomain, ".") + "."
}

// DiscoverEndpoints looks up the SRV record of cfg and returns one endpoint
// URL "<scheme>://<target>:<port>" per answer, in the order of priority and
// weight that the resolver gives.
func DiscoverEndpoints(ctx context.Context, cfg Config) ([]string, error) {
	name := SRVRecordName(cfg)
	if name == "" {
		return nil, errors.New("discover etcd endpoints: no srv record or srv domain configured")
	}
	scheme := cfg.Scheme
	if scheme == "" {
		scheme = "http"
		if cfg.hasTLSFiles() {
			scheme = "https"
		}
	}
	if scheme != "http" && scheme != "https" {
		return nil, fmt.Errorf("discover etcd endpoints from %s: scheme %q is not http or https", name, scheme)
	}
	r := cfg.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	_, records, err := r.LookupSRV(ctx, "", "", name)
	if err != nil {
		return nil, fmt.Errorf("discover etcd endpoints from %s: %w", name, err)
	}
	if len(records) == 0 {
		return nil, fmt.Errorf("discover etcd endpoints from %s: no srv records", name)
	}
	endpoints := make([]string, 0, len(records))
	for _, rec := range records {
		host := strings.TrimRight(rec.Target, ".")
		endpoints = append(endpoints, scheme+"://"+net.JoinHostPort(host, strconv.Itoa(int(rec.Port))))
	}
	return endpoints, nil
}
