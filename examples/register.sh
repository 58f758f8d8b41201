#!/bin/sh
# register.sh: register a backend server in etcd, or remove it, the way the
# containers of the HAProxy and nginx examples announce themselves.
#
# usage: register.sh add <name> <host:port>
#        register.sh rm <name>
#
# "add" puts <prefix>/<name> = <host:port>; "rm" deletes <prefix>/<name>.
# It runs etcdctl with the v3 API, so the equivalent commands are
#   etcdctl put /app/servers/<name> <host:port>
#   etcdctl del /app/servers/<name>
#
# Environment:
#   ETCDCTL_ENDPOINTS  etcd endpoints, read by etcdctl itself
#                      (e.g. http://10.0.0.5:2379; default 127.0.0.1:2379)
#   REGISTER_PREFIX    key prefix, default /app/servers
#   ETCDCTL            the etcdctl program, default etcdctl
#
# Exit status: 0 done, 1 etcdctl failed or "rm" found no such server,
# 2 usage error.

set -eu

prefix=${REGISTER_PREFIX:-/app/servers}
prefix=${prefix%/}
etcdctl=${ETCDCTL:-etcdctl}
ETCDCTL_API=3
export ETCDCTL_API

usage() {
	echo "usage: $0 add <name> <host:port>" >&2
	echo "       $0 rm <name>" >&2
	exit 2
}

# check_name refuses names that are not one key segment.
check_name() {
	case $1 in
	'' | */* | *[[:space:]]*)
		echo "$0: invalid server name \"$1\": one key segment, without / or spaces" >&2
		exit 2
		;;
	esac
}

# check_addr refuses values HAProxy and nginx would not take as host:port.
check_addr() {
	host=${1%:*}
	port=${1##*:}
	case $1 in *:*) ;; *) host= ;; esac
	case $port in '' | *[!0-9]*) port=0 ;; esac
	if [ -z "$host" ] || [ "${#port}" -gt 5 ] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
		echo "$0: invalid address \"$1\": want host:port with a port from 1 to 65535" >&2
		exit 2
	fi
}

[ $# -ge 1 ] || usage
case $1 in
add)
	[ $# -eq 3 ] || usage
	check_name "$2"
	check_addr "$3"
	if ! "$etcdctl" put "$prefix/$2" "$3" >/dev/null; then
		echo "$0: etcdctl put $prefix/$2 failed" >&2
		exit 1
	fi
	echo "registered $prefix/$2 = $3"
	;;
rm)
	[ $# -eq 2 ] || usage
	check_name "$2"
	if ! deleted=$("$etcdctl" del "$prefix/$2"); then
		echo "$0: etcdctl del $prefix/$2 failed" >&2
		exit 1
	fi
	if [ "$deleted" = 0 ]; then
		echo "$0: no server registered as $prefix/$2" >&2
		exit 1
	fi
	echo "removed $prefix/$2"
	;;
*)
	usage
	;;
esac
