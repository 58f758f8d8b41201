#!/bin/sh
# haproxy-reload.sh: reload a master-worker HAProxy through its master CLI and
# return only when the reload has completed.
#
# usage: haproxy-reload.sh [-S master-socket] [-t timeout-seconds] [-l lock-file]
#
#   -S  the master CLI socket HAProxy was started with (haproxy -W -S <path>);
#       default $HAPROXY_MASTER_SOCKET, else /run/haproxy-master.sock, the
#       socket of Debian's haproxy.service
#   -t  seconds to wait in all, default $HAPROXY_RELOAD_TIMEOUT, else 30
#   -l  lock file that makes runs at the same time take turns (with flock,
#       when installed); default <master-socket>.lock
#
# The script
#   1. waits until the master answers "show proc", so that it never asks for
#      a reload while an earlier one is still in progress (HAProxy 2.6 ignores
#      a SIGUSR2 that arrives during a reload);
#   2. sends "reload" on the master CLI;
#   3. polls "show proc" until the master counts one more reload, and checks
#      that the reload did not fail and that a new worker is running and
#      answering on its CLI.
#
# Exit status: 0 when the new worker runs the new configuration; 1 when the
# reload failed (the previous workers keep serving), timed out or the master
# could not be reached; 2 on a usage error. It needs socat.

set -u

socket=${HAPROXY_MASTER_SOCKET:-/run/haproxy-master.sock}
timeout=${HAPROXY_RELOAD_TIMEOUT:-30}
lock=

usage() {
	echo "usage: $0 [-S master-socket] [-t timeout-seconds] [-l lock-file]" >&2
	exit 2
}

while getopts S:t:l: opt; do
	case $opt in
	S) socket=$OPTARG ;;
	t) timeout=$OPTARG ;;
	l) lock=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
[ -n "$lock" ] || lock=$socket.lock
case $timeout in
'' | *[!0-9]*) echo "$0: -t: not a whole number of seconds: $timeout" >&2; exit 2 ;;
esac
command -v socat >/dev/null 2>&1 || { echo "$0: socat is not installed" >&2; exit 1; }

deadline=$(($(date +%s) + timeout))

# cli runs one master CLI command and prints the answer. The master answers
# and closes the connection; -t bounds the wait for that after the command
# has been sent, -T any silence.
cli() {
	printf '%s\n' "$1" | socat -t 5 -T 5 - "UNIX-CONNECT:$socket" 2>/dev/null
}

# state prints "<reloads> <failed> <pid of the newest current worker>" from
# "show proc", whose master line reads
#   <pid> master <reloads> [failed: <n>] <uptime> <version>
# and whose current workers follow "# workers", the newest with 0 reloads.
state() {
	cli "show proc" | awk '
		$2 == "master" { reloads = $3; failed = $5; sub(/\]/, "", failed) }
		/^# workers/ { current = 1; next }
		/^#/ { current = 0 }
		current && $2 == "worker" && $3 == "0" { worker = $1 }
		END { if (reloads == "") exit 1; print reloads, failed, (worker == "" ? "-" : worker) }'
}

expired() {
	[ "$(date +%s)" -ge "$deadline" ]
}

# Reloads asked for by two runs at the same moment could merge into one
# that read the configuration before the second change: take turns.
if command -v flock >/dev/null 2>&1; then
	command exec 9>>"$lock" || { echo "$0: cannot open lock file $lock" >&2; exit 1; }
	flock -w "$timeout" 9 || { echo "$0: another reload held $lock for ${timeout}s" >&2; exit 1; }
fi

# 1. Wait until the master answers, so that no reload is in progress, and
# 2. ask for the reload. The master closes the connection when it starts
# reloading, so the answer is empty. When the connection is refused, a
# reload started by someone else in between: wait for it and ask again.
while :; do
	if before=$(state); then
		set -- $before
		reloads0=$1
		if cli "reload" >/dev/null; then
			break
		fi
	fi
	if expired; then
		echo "haproxy master CLI at $socket does not answer" >&2
		exit 1
	fi
	sleep 0.05
done

# 3. Wait for the reload to complete.
while :; do
	if now=$(state); then
		set -- $now
		if [ "$1" -gt "$reloads0" ]; then
			if [ "$2" != "0" ]; then
				# HAProxy wrote the reason to its own output (the
				# journal under systemd).
				echo "haproxy reload failed: the master reports a failed reload and the previous workers keep running; see HAProxy's log for the cause" >&2
				cli "show proc" >&2
				exit 1
			fi
			if [ "$3" != "-" ] && cli "@!$3 show info" | grep -q '^Stopping: 0'; then
				echo "haproxy reloaded: worker $3 serves, reload $1"
				exit 0
			fi
		fi
	fi
	if expired; then
		echo "haproxy reload did not complete within ${timeout}s; last state: ${now:-no answer from $socket}" >&2
		exit 1
	fi
	sleep 0.05
done
