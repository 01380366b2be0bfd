#!/usr/bin/env bash
# contrib/bench.sh - letters/s acknowledged by sealpostd over HTTP and SMTP.
#
# Builds the normal tree, starts sealpostd on a temporary directory and
# loopback ports (synchronous=FULL as always), and drives it with
# contrib/bench/sp-loadgen: CONNS concurrent clients submitting LETTERS
# letters of SIZE bytes, RUNS times per channel.  Reports each run, the
# median letters/s per channel and the daemon's peak RSS (VmHWM).
# Not part of the test suite: machines are noisy; compare medians.
# Each run line also gives cpu_ms_per_letter: CPU time (user + system,
# reaped children included) the server spent per acknowledged letter, read
# from /proc; the load generator and smtp-sink are not counted.  It moves
# much less than letters/s when other work shares the machine.
#
# Then, in the same run and on the same machine, the same generator drives
# a private Postfix (tests/rig/postfix.sh: loopback only, everything under
# a temporary directory, removed at exit) over SMTP without AUTH (Postfix
# relays for 127.0.0.0/8), with the same CONNS, LETTERS and SIZE, RUNS
# times, in two modes:
#   hold   Postfix's intake alone: smtpd -> cleanup writes the queue file,
#          fsyncs it, answers 250, and the message goes to the hold queue.
#          Nothing is scheduled or delivered.  This is what sealpost does
#          today (accept, commit durably, acknowledge; no relay yet), so
#          the ratio sealpost/postfix-hold is the like-for-like one.
#   relay  Postfix as shipped, relaying to an smtp-sink on loopback: the
#          yardstick of reference/performance.md (~700 msg/s on 2 cores).
#          Acknowledgements are throttled to the delivery rate (in_flow
#          control, shared CPU); the run also waits for the queue to drain
#          and reports delivered_per_s.  sealpost's goal is >= 3x this once
#          it relays too.
# Postfix needs root and the Debian package "postfix" (contrib/deps.sh
# bench).  Without them the bench says so and reports sealpost alone.
#
# usage: contrib/bench.sh [-c CONNS] [-n LETTERS] [-s SIZE] [-r RUNS]
#            [-p both|hold|relay|none] [-b BUILDDIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
conns=20 letters=20000 size=4096 runs=3 pmodes=both b=$top/build
usage() {
	echo "usage: $0 [-c CONNS] [-n LETTERS] [-s SIZE] [-r RUNS] [-p both|hold|relay|none] [-b BUILDDIR]" >&2
	exit 2
}
while getopts c:n:s:r:p:b: opt; do
	case $opt in
	c) conns=$OPTARG ;; n) letters=$OPTARG ;; s) size=$OPTARG ;;
	r) runs=$OPTARG ;; p) pmodes=$OPTARG ;; b) b=$OPTARG ;; *) usage ;;
	esac
done
case $pmodes in both) pmodes="hold relay" ;; hold|relay) ;; none) pmodes="" ;; *) usage ;; esac
"$top/contrib/deps.sh" build
"$top/contrib/build.sh" "$b"
rig=$top/tests/rig/postfix.sh
dir=$(mktemp -d /tmp/sealpost-bench.XXXXXX)
pdir="" pid=""
cleanup() {
	[ -n "$pid" ] && { kill $pid 2>/dev/null; wait $pid 2>/dev/null; }
	if [ -n "$pdir" ]; then
		for m in hold relay; do
			[ -d "$pdir/$m" ] || continue
			"$rig" stop "$pdir/$m" >/dev/null 2>&1
			"$rig" sink-stop "$pdir/$m" >/dev/null 2>&1
		done
		rm -rf "$pdir"
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
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
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
# CPU ticks (utime + stime + cutime + cstime) of the given processes.
cpu_ticks() {
	local t=0 p
	for p in "$@"; do
		[ -r /proc/$p/stat ] &&
		    t=$((t + $(sed 's/.*) //' /proc/$p/stat | awk '{print $12 + $13 + $14 + $15}')))
	done
	echo $t
}
# "cpu_ms_per_letter=X" from a tick difference and the loadgen line.
cpu_field() {
	local acked
	acked=$(sed -n 's/.*acked=\([0-9]*\).*/\1/p' <<<"$2")
	awk -v t="$1" -v n="${acked:-0}" -v hz="$(getconf CLK_TCK)" \
	    'BEGIN { printf "cpu_ms_per_letter=%.2f", (n > 0 ? t * 1000 / hz / n : 0) }'
}
declare -A rates cpu
for mode in http smtp; do
	port=$hport; [ $mode = smtp ] && port=$sport
	for r in $(seq "$runs"); do
		c0=$(cpu_ticks $pid)
		line=$("$b/contrib/bench/sp-loadgen" -m $mode -p "$port" -t "$tok" \
		    -P "$pa" -A "$cl" -c "$conns" -n "$letters" -s "$size")
		line="$line $(cpu_field $(( $(cpu_ticks $pid) - c0 )) "$line")"
		echo "  run $r: $line"
		rates[$mode]+="$(sed -n 's/.*letters_per_s=\([0-9]*\).*/\1/p' <<<"$line") "
		cpu[$mode]+="$(sed -n 's/.*cpu_ms_per_letter=\([0-9.]*\).*/\1/p' <<<"$line") "
	done
done
rss=$(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status)
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
med_http=$(median <<<"${rates[http]}") med_smtp=$(median <<<"${rates[smtp]}")
echo "median letters/s acknowledged: http=$med_http smtp=$med_smtp"
cpu_http=$(median <<<"${cpu[http]}") cpu_smtp=$(median <<<"${cpu[smtp]}")
echo "median CPU ms per letter: http=$cpu_http smtp=$cpu_smtp"
echo "sealpostd peak RSS: $rss"
echo "letters in the database: $(sqlite3 "$dir/sealpost.db" 'select count(*) from letters')"
# Leave the cores to Postfix.
kill $pid; wait $pid 2>/dev/null || true; pid=""

# Postfix, same generator, same machine, same run.
if [ -z "$pmodes" ]; then
	exit 0
elif [ "$(id -u)" -ne 0 ]; then
	echo "postfix: not run (needs root); sealpost figures only"
	exit 0
fi
PATH=$PATH:/usr/sbin
if ! command -v postfix >/dev/null 2>&1; then
	echo "postfix: not installed (contrib/deps.sh bench); sealpost figures only"
	exit 0
fi
pdir=$(mktemp -d /tmp/sealpost-bench-postfix.XXXXXX)
chmod 0755 "$pdir"	# the Postfix daemons run as user postfix
now() { date +%s.%N; }
for m in $pmodes; do
	d=$pdir/$m
	if [ $m = relay ]; then
		"$rig" sink-start "$d" "$(freeport)"
		pport=$("$rig" start "$d" --relay "127.0.0.1:$(cat "$d/sink.port")")
	else
		pport=$("$rig" start "$d" --hold)
	fi
	echo "postfix $m ($(postconf -c "$d" -h mail_version)) on 127.0.0.1:$pport:"
	for r in $(seq "$runs"); do
		base=0
		[ $m = relay ] && base=$("$rig" sink-count "$d")
		pg=$(ps -o pgid= -p "$(awk '{print $1; exit}' "$d/queue/pid/master.pid")" | tr -d ' ')
		c0=$(cpu_ticks $(pgrep -g "$pg"))
		t0=$(now)
		line=$("$b/contrib/bench/sp-loadgen" -m smtp -N -p "$pport" \
		    -P 1 -d bench.example -c "$conns" -n "$letters" -s "$size") || true
		extra=""
		if [ $m = relay ]; then
			# Delivered: the sink has them all and the queue is empty.
			acked=$(sed -n 's/.*acked=\([0-9]*\).*/\1/p' <<<"$line")
			for _ in $(seq $((letters / 10 + 600))); do
				[ $(( $("$rig" sink-count "$d") - base )) -ge "$acked" ] &&
				    [ "$("$rig" queue "$d")" -eq 0 ] && break
				sleep 0.1
			done
			n=$(( $("$rig" sink-count "$d") - base ))
			extra=" delivered=$n delivered_per_s=$(awk -v n=$n -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.0f", n / (b - a)}')"
		fi
		# Postfix's CPU: every process of the instance (the master's
		# process group; exited children are in the master's cutime).
		line="$line $(cpu_field $(( $(cpu_ticks $(pgrep -g "$pg")) - c0 )) "$line")"
		if [ $m = hold ]; then
			# Keep the hold queue from growing run to run (not timed).
			postsuper -c "$d" -d ALL hold 2>/dev/null || true
		fi
		echo "  run $r: $line$extra"
		rates[pf_$m]+="$(sed -n 's/.*letters_per_s=\([0-9]*\).*/\1/p' <<<"$line") "
		cpu[pf_$m]+="$(sed -n 's/.*cpu_ms_per_letter=\([0-9.]*\).*/\1/p' <<<"$line") "
		[ $m = relay ] && rates[pf_relay_dl]+="$(sed -n 's/.*delivered_per_s=\([0-9]*\).*/\1/p' <<<"$extra") "
	done
	"$rig" stop "$d"
	[ $m = relay ] && "$rig" sink-stop "$d"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
for m in $pmodes; do
	pm=$(median <<<"${rates[pf_$m]}")
	extra=""
	[ $m = relay ] && extra=" delivered=$(median <<<"${rates[pf_relay_dl]}")"
	pc=$(median <<<"${cpu[pf_$m]}")
	echo "postfix $m median letters/s acknowledged: smtp=$pm$extra"
	echo "postfix $m median CPU ms per letter: smtp=$pc"
	echo "ratio sealpost/postfix-$m letters/s: http=$(ratio "$med_http" "$pm") smtp=$(ratio "$med_smtp" "$pm")"
	echo "ratio postfix-$m/sealpost CPU per letter: http=$(ratio "$pc" "$cpu_http") smtp=$(ratio "$pc" "$cpu_smtp")"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
