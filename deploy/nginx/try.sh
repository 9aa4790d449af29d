#!/bin/sh
# Run a shipped nginx config on this machine, without root. A copy of the config goes to
# nginx-local/NAME/ (under the current folder), with every path that needs root moved into
# it (pid in /run, logs in /var/log/nginx, cache in /var/cache/nginx, nginx's temp folders),
# listening on 127.0.0.1 only; then the nginx on PATH starts on it, in the background.
#
#   deploy/nginx/try.sh edge-proxy.conf [--listen PORT] [--edge HOST:PORT]...
#   deploy/nginx/try.sh auth-request.conf --root FOLDER [--listen PORT] [--edge HOST:PORT]...
#   deploy/nginx/try.sh stop NAME.conf
#
# --listen: nginx's port (default 8000, the config's); --edge: an edge to send requests to
# (default: the config's own, 127.0.0.1:8080 and, for the proxy, 127.0.0.1:8081); --root:
# the folder auth-request.conf serves files from (EDGE_STORAGE's, holding public/ and
# private/). docs/deployment.md ("Trying a config without root") runs both with edges.
set -eu

usage() {
    sed -n '7,9p' "$0" | sed 's/^# */usage: /' >&2
    exit 2
}

[ $# -ge 1 ] || usage
action=start
if [ "$1" = stop ]; then
    action=stop
    shift
    [ $# -eq 1 ] || usage
fi
name=$(basename "$1" .conf)
shift
source=$(dirname "$0")/$name.conf
if [ ! -f "$source" ]; then
    echo "try.sh: there is no deploy/nginx/$name.conf" >&2
    exit 2
fi
nginx=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$nginx" ]; then
    echo "try.sh: nginx is not installed (Debian: apt-get install nginx-light)" >&2
    exit 2
fi
dir=$PWD/nginx-local/$name

if [ "$action" = stop ]; then
    exec "$nginx" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/logs/error.log" -s stop
fi

listen=8000
edges=
root=
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage
    case $1 in
        --listen) listen=$2 ;;
        --edge) edges="$edges $2" ;;
        --root) root=$(cd "$2" && pwd) ;;
        *) usage ;;
    esac
    shift 2
done
if grep -q 'root /srv/images;' "$source" && [ -z "$root" ]; then
    echo "try.sh: $name.conf serves files: give --root FOLDER (the folder EDGE_STORAGE names)" >&2
    exit 2
fi

mkdir -p "$dir/run" "$dir/logs" "$dir/cache" "$dir/temp"
# nginx's temp folders default to /var/lib/nginx: each one the config does not set goes here.
temps=
for kind in client_body proxy fastcgi uwsgi scgi; do
    grep -q "^ *${kind}_temp_path " "$source" || temps="$temps ${kind}_temp_path $dir/temp/$kind;"
done
# As root, nginx would run its workers as nobody, who may not read the folders given here.
user=
[ "$(id -u)" -ne 0 ] || user='user root;'

awk -v dir="$dir" -v listen="$listen" -v edges="$edges" -v root="$root" \
    -v temps="$temps" -v user="$user" '
# Literal replacement: paths may hold characters that are special in a regular expression.
function swap(text, old, new,    at, out) {
    out = ""
    while ((at = index(text, old)) > 0) {
        out = out substr(text, 1, at - 1) new
        text = substr(text, at + length(old))
    }
    return out text
}
NR == 1 && user != "" { print user }
{
    $0 = swap($0, " /run/", " " dir "/run/")
    $0 = swap($0, " /var/log/nginx/", " " dir "/logs/")
    $0 = swap($0, " /var/cache/nginx/", " " dir "/cache/")
    if (root != "") $0 = swap($0, "root /srv/images;", "root " root ";")
}
/^ *listen [0-9]+;/ { sub(/listen [0-9]+;/, "listen 127.0.0.1:" listen ";") }
/^ *server 127\.0\.0\.1:[0-9]+/ && edges != "" {
    if (replaced) next  # the first server line stands for the list
    replaced = 1
    match($0, /^ *server 127\.0\.0\.1:[0-9]+/)
    options = substr($0, RLENGTH + 1)
    match($0, /^ */)
    indent = substr($0, 1, RLENGTH)
    count = split(edges, list, " ")
    for (i = 1; i <= count; i++) print indent "server " list[i] options
    next
}
{ print }
/^http \{/ && temps != "" {
    count = split(temps, list, ";")
    for (i = 1; i < count; i++) print "   " list[i] ";"
}
' "$source" >"$dir/nginx.conf"

"$nginx" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
echo "nginx runs deploy/nginx/$name.conf on http://127.0.0.1:$listen" \
    "(its config, logs and cache in nginx-local/$name);" \
    "stop it with: deploy/nginx/try.sh stop $name.conf"
