#!/usr/bin/env bash
# contrib/bench.sh - letters/s acknowledged by sealpostd over HTTP and SMTP.
#
# Builds the normal tree, starts sealpostd on a temporary directory and
# loopback ports (synchronous=FULL as always), and drives it with
# contrib/bench/sp-loadgen: CONNS concurrent clients submitting LETTERS
# letters of SIZE bytes, RUNS times per channel.  Reports each run, the
# median letters/s per channel and the daemon's peak RSS (VmHWM).
# Not part of the test suite: machines are noisy; compare medians.
#
# usage: contrib/bench.sh [-c CONNS] [-n LETTERS] [-s SIZE] [-r RUNS]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
conns=20 letters=20000 size=4096 runs=3
while getopts c:n:s:r: opt; do
	case $opt in
	c) conns=$OPTARG ;; n) letters=$OPTARG ;; s) size=$OPTARG ;;
	r) runs=$OPTARG ;; *) echo "usage: $0 [-c CONNS] [-n LETTERS] [-s SIZE] [-r RUNS]" >&2; exit 2 ;;
	esac
done
"$top/contrib/deps.sh" build
"$top/contrib/build.sh" "$top/build"
b=$top/build
dir=$(mktemp -d /tmp/sealpost-bench.XXXXXX)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hport=$(freeport) sport=$(freeport)
cat >"$dir/sealpost.conf" <<CONF
[daemon]
database = $dir/sealpost.db
master_key_file = $dir/master.key
control_socket = $dir/control.sock
log = stderr
[http]
listen = 127.0.0.1:$hport
max_connections = 1024
[smtp]
listen = 127.0.0.1:$sport
max_sessions = 1024
CONF
ctl="$b/src/sealpostctl -f $dir/sealpost.conf"
$ctl keys init >/dev/null
pr=$($ctl practice add --name Bench --domain riverside.example)
cl=$($ctl clinician add --practice "$pr" --name Bench --email dr.patel@riverside.example)
pa=$($ctl patient add --practice "$pr" --name Bench --email jo@patient.example --verified --consent)
tok=$($ctl client add --practice "$pr" --name bench --author "$cl" 2>/dev/null)

"$b/src/sealpostd" -f "$dir/sealpost.conf" 2>"$dir/daemon.log" &
pid=$!
for _ in $(seq 100); do $ctl status >/dev/null 2>&1 && break; sleep 0.1; done

echo "sealpost bench: $(nproc) cores, conns=$conns letters=$letters size=$size runs=$runs"
declare -A rates
for mode in http smtp; do
	port=$hport; [ $mode = smtp ] && port=$sport
	for r in $(seq "$runs"); do
		line=$("$b/contrib/bench/sp-loadgen" -m $mode -p "$port" -t "$tok" \
		    -P "$pa" -A "$cl" -c "$conns" -n "$letters" -s "$size")
		echo "  run $r: $line"
		rates[$mode]+="$(sed -n 's/.*letters_per_s=\([0-9]*\).*/\1/p' <<<"$line") "
	done
done
rss=$(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status)
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median letters/s acknowledged: http=$(median <<<"${rates[http]}") smtp=$(median <<<"${rates[smtp]}")"
echo "sealpostd peak RSS: $rss"
echo "letters in the database: $(sqlite3 "$dir/sealpost.db" 'select count(*) from letters')"
