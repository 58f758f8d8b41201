#!/bin/sh
# nginx-check-include.sh STAGED DEST [MAIN_CONF [PREFIX]]
#
# Checks the whole nginx configuration as it will be once the file STAGED
# replaces DEST, a file that the main configuration includes, without
# touching the live configuration. For confd's check_cmd:
#
#   check_cmd = "nginx-check-include.sh {{.src}} {{.dest}} /etc/nginx/nginx.conf"
#
# MAIN_CONF (default /etc/nginx/nginx.conf) is the file nginx is started
# with; DEST must be inside the directory that holds it (the config tree).
# PREFIX, when given, is passed to nginx as -p: give it when nginx runs
# with -p. The nginx binary is $NGINX_BIN, or nginx from PATH. (Not $NGINX:
# nginx itself reads that variable.)
#
# How: the config tree is copied, following symbolic links, into a new
# temporary directory; STAGED is put in place of DEST there (and of every
# link in the tree that points to DEST); absolute references to the tree
# in the copied files are pointed at the copy; then
# `nginx -t -c <copy>/<main>` checks it. Relative includes resolve against
# the directory of the main file, so they reach the copy as well, globs
# (include conf.d/*.conf) included. Paths in nginx's messages are shown as
# the live ones. The copy is removed on exit.
#
# Exit status: 0 the configuration is good; 1 nginx rejected it; 2 the
# script was called wrongly or could not build the copy.
set -eu

me=nginx-check-include.sh

die() {
	echo "$me: $*" >&2
	exit 2
}

[ $# -ge 2 ] && [ $# -le 4 ] || die "usage: $me staged-file dest [main-conf [prefix]]"
staged=$1
dest=$2
main=${3:-/etc/nginx/nginx.conf}
prefix=${4:-}
nginx=${NGINX_BIN:-nginx}

command -v "$nginx" >/dev/null 2>&1 || die "$nginx: command not found"

[ -f "$staged" ] || die "staged file $staged: not a regular file"
[ -f "$main" ] || die "main config $main: not a regular file"
[ -d "$(dirname -- "$dest")" ] || die "dest $dest: its directory does not exist"

# Absolute paths, keeping symbolic links in them as written (pwd -L), since
# the configuration names files the way the administrator wrote them.
confdir=$(cd -- "$(dirname -- "$main")" && pwd -L)
mainname=$(basename -- "$main")
destdir=$(cd -- "$(dirname -- "$dest")" && pwd -L)
destabs=$destdir/$(basename -- "$dest")

# DEST relative to the config tree, as written or with links resolved.
case $destabs in
"$confdir"/*) rel=${destabs#"$confdir"/} ;;
*)
	pconf=$(cd -- "$confdir" && pwd -P)
	pdest=$(cd -- "$destdir" && pwd -P)/$(basename -- "$dest")
	case $pdest in
	"$pconf"/*) rel=${pdest#"$pconf"/} ;;
	*) die "dest $dest is not inside $confdir, the directory of $main" ;;
	esac
	;;
esac
realdest=$(readlink -f -- "$destabs" 2>/dev/null || printf '%s' "$destabs")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nginx-check.XXXXXX") || die "cannot create a temporary directory"
trap 'rm -rf -- "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
copy=$tmp/conf

# Copy the tree. Files that cannot be copied (a dangling link nothing
# includes, a key only root may read) are reported but not fatal: nginx
# fails below if it needs them.
mkdir -- "$copy"
if ! cp -RL -- "$confdir/." "$copy/" 2>"$tmp/cp.err"; then
	sed "s#^#$me: warning: #" "$tmp/cp.err" >&2
fi

# Put the new content in place of DEST, and of every name in the tree
# that leads to the same file.
put_staged() {
	mkdir -p -- "$(dirname -- "$1")" && rm -f -- "$1" && cp -- "$staged" "$1" ||
		die "cannot copy $staged to $1"
}
put_staged "$copy/$rel"
(cd -- "$confdir" && find -L . \( -type f -o -type l \) -print) >"$tmp/files" 2>/dev/null || true
while IFS= read -r f; do
	f=${f#./}
	[ "$f" = "$rel" ] && continue
	if [ "$(readlink -f -- "$confdir/$f" 2>/dev/null || true)" = "$realdest" ]; then
		put_staged "$copy/$f"
	fi
done <"$tmp/files"

# Escape a string for use as an extended regular expression and as the
# replacement of an s### command.
ere() { printf '%s' "$1" | sed 's/[][\\.*^$+?(){}|#]/\\&/g'; }
repl() { printf '%s' "$1" | sed 's/[\\&#]/\\&/g'; }

# Point absolute references to the tree at the copy: every "<tree>/" at
# the start of a line or after a blank or a quote.
from=$(ere "$confdir/")
to=$(repl "$copy/")
grep -rlF -- "$confdir/" "$copy" 2>/dev/null >"$tmp/refs" || true
while IFS= read -r f; do
	sed -E "s#(^|[[:space:]\"'])$from#\\1$to#g" "$f" >"$tmp/rewrite" &&
		cat "$tmp/rewrite" >"$f" || die "cannot rewrite $f"
done <"$tmp/refs"

set -- -t -c "$copy/$mainname"
[ -n "$prefix" ] && set -- "$@" -p "$prefix"
status=0
"$nginx" "$@" >"$tmp/out" 2>&1 || status=$?

# Show nginx's messages with the live paths.
sed "s#$(ere "$copy/")#$(repl "$confdir/")#g" "$tmp/out" >&2
if [ "$status" -ne 0 ]; then
	echo "$me: rejected: $dest as rendered in $staged" >&2
	exit 1
fi
