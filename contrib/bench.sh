#!/usr/bin/env bash
# contrib/bench.sh - letters/s of sealpostd against Postfix on one machine.
#
# Two modes (-m):
#
# ack (the default): letters/s acknowledged by sealpostd over HTTP and SMTP.
# Builds the normal tree, starts sealpostd on a temporary directory and
# loopback ports (synchronous=FULL as always), and drives it with
# contrib/bench/sp-loadgen: CONNS concurrent clients submitting LETTERS
# letters of SIZE bytes, RUNS times per channel.  Reports each run, the
# median letters/s per channel and the daemon's peak RSS (VmHWM).
# Not part of the test suite: machines are noisy; compare medians.
# Each run line also gives cpu_ms_per_letter: CPU time (user + system,
# reaped children included) the server spent per acknowledged letter, read
# from /proc; the load generator and smtp-sink are not counted.  It moves
# much less than letters/s when other work shares the machine.  This
# sealpostd has no [relay] host: its queue still claims each letter and
# defers it ("no smarthost configured"), and that work is in the figures.
#
# Then, in the same run and on the same machine, the same generator drives
# a private Postfix (tests/rig/postfix.sh: loopback only, everything under
# a temporary directory, removed at exit) over SMTP without AUTH (Postfix
# relays for 127.0.0.0/8), with the same CONNS, LETTERS and SIZE, RUNS
# times, in two modes (-p):
#   hold   Postfix's intake alone: smtpd -> cleanup writes the queue file,
#          fsyncs it, answers 250, and the message goes to the hold queue.
#          Nothing is scheduled or delivered: the like-for-like yardstick
#          for sealpost's acknowledgement (accept, seal, commit durably).
#   relay  Postfix as shipped, relaying to an smtp-sink on loopback: the
#          yardstick of reference/performance.md (~700 msg/s on 2 cores).
#          Acknowledgements are throttled to the delivery rate (in_flow
#          control, shared CPU); the run also waits for the queue to drain
#          and reports delivered_per_s.
#
# e2e: end to end, letters delivered at the sink.  One smtp-sink on
# loopback is the mailbox of every contender; per run, the clock runs from
# the first submission until the sink has counted all the acknowledged
# letters (smtp-sink's own counter, read every 50 ms).  Contenders (-v for
# the sealpost ones, -p relay|none for Postfix):
#   sp-direct     sp-loadgen -> sealpostd SMTP submission (AUTH PLAIN) ->
#                 seal, group commit -> queue -> relay (tls = none,
#                 allow_plaintext: loopback only) -> smtp-sink
#   sp-smarthost  the same, but relayed with STARTTLS (a verified
#                 self-signed certificate, tls_name localhost) to a private
#                 Postfix smarthost (TLS required) that relays to the sink:
#                 the shape of a real deployment.  Its ceiling is that
#                 Postfix's own relay rate, since the smarthost does all
#                 the work "postfix" does plus TLS, on the same 2 cores.
#   postfix       sp-loadgen -> Postfix (no AUTH, relays for 127.0.0.0/8)
#                 -> smtp-sink: Postfix alone relaying the same load.
# All contenders run for the whole bench and the runs are interleaved (run
# 1 of each, then run 2 of each...), so a noisy neighbour hurts them
# alike.  After each run, untimed, every contender must have drained (no
# sealpost delivery left that is not "sent"; Postfix's queue empty) before
# the next one starts.  Reported per contender: acknowledged/s (the
# generator's figure), delivered/s (end to end), CPU ms per delivered
# letter (sealpostd with its children; for sp-smarthost the smarthost
# Postfix separately; for postfix every process of the instance), the
# sealpostd peak RSS, medians of RUNS and the ratios sealpost/postfix.
# The generator is sp-loadgen for both sides: Postfix's smtp-source cannot
# AUTH, and sealpost's submission requires AUTH (and RCPT
# patient-<id>@practice-domain), so one generator speaks to both alike
# (to Postfix without AUTH).  One practice, client, clinician and one
# patient with a verified, consenting address; the sink accepts anything.
# sealpostd settings for the bench (printed at the start; -o overrides,
# e.g. -o relay.pool_size=16): relay.pool_size = 16, queue.max_active =
# 1000, smtp.max_sessions = 1024, the rest at their defaults.
#
# Postfix needs root and the Debian package "postfix" (contrib/deps.sh
# bench).  Without them, ack mode says so and reports sealpost alone;
# e2e mode stops (smtp-sink comes with Postfix).
#
# usage: contrib/bench.sh [-m ack|e2e] [-c CONNS] [-n LETTERS] [-s SIZE]
#            [-r RUNS] [-p both|hold|relay|none] [-v both|direct|smarthost]
#            [-o SECTION.KEY=VALUE]... [-b BUILDDIR]
# The issue's figures: contrib/bench.sh -m e2e -n 20000 -s 4096 and
#                      contrib/bench.sh -m e2e -n 5000 -s 102400
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mode=ack conns=20 letters=20000 size=4096 runs=3 pmodes=both b=$top/build
svars=both
overrides=()
usage() {
	echo "usage: $0 [-m ack|e2e] [-c CONNS] [-n LETTERS] [-s SIZE] [-r RUNS]" \
	    "[-p both|hold|relay|none] [-v both|direct|smarthost]" \
	    "[-o SECTION.KEY=VALUE]... [-b BUILDDIR]" >&2
	exit 2
}
while getopts m:c:n:s:r:p:v:o:b: opt; do
	case $opt in
	m) mode=$OPTARG ;;
	c) conns=$OPTARG ;; n) letters=$OPTARG ;; s) size=$OPTARG ;;
	r) runs=$OPTARG ;; p) pmodes=$OPTARG ;; v) svars=$OPTARG ;;
	o) [[ $OPTARG == ?*.?*=* ]] || usage; overrides+=("$OPTARG") ;;
	b) b=$OPTARG ;; *) usage ;;
	esac
done
[ $OPTIND -gt $# ] || usage
case $mode in
ack)
	case $pmodes in both) pmodes="hold relay" ;; hold|relay) ;; none) pmodes="" ;; *) usage ;; esac
	;;
e2e)
	case $pmodes in both|relay) pmodes=relay ;; none) pmodes="" ;; *) usage ;; esac
	case $svars in both) svars="direct smarthost" ;; direct|smarthost) ;; *) usage ;; esac
	;;
*) usage ;;
esac
"$top/contrib/deps.sh" build
"$top/contrib/build.sh" "$b"
rig=$top/tests/rig/postfix.sh
dir=$(mktemp -d /tmp/sealpost-bench.XXXXXX)
chmod 0755 "$dir"	# the smarthost (user postfix) reads the certificate
pdir=""
declare -A pids=()	# sealpostd by name
cleanup() {
	local n d
	for n in "${!pids[@]}"; do
		kill "${pids[$n]}" 2>/dev/null && wait "${pids[$n]}" 2>/dev/null
	done
	if [ -n "$pdir" ]; then
		for d in "$pdir"/*/; do
			[ -d "$d" ] || continue
			"$rig" stop "$d" >/dev/null 2>&1
			"$rig" sink-stop "$d" >/dev/null 2>&1
		done
		rm -rf "$pdir"
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
# CPU ticks (utime + stime + cutime + cstime) of the given processes.
cpu_ticks() {
	local t=0 p
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] &&
		    t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13 + $14 + $15}')))
	done
	echo $t
}
# Milliseconds of CPU per letter from a tick difference and a count.
cpu_per() {
	awk -v t="$1" -v n="${2:-0}" -v hz="$(getconf CLK_TCK)" \
	    'BEGIN { printf "%.2f", (n > 0 ? t * 1000 / hz / n : 0) }'
}
# "cpu_ms_per_letter=X" from a tick difference and the loadgen line.
cpu_field() {
	echo "cpu_ms_per_letter=$(cpu_per "$1" "$(field acked "$2")")"
}
# The value of NAME=value in a line.
field() { sed -n "s/\(^\|.* \)$1=\([0-9.]*\).*/\2/p" <<<"$2"; }
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# The Postfix instance in DIR: every process of its master's group.
pf_procs() { pgrep -g "$(ps -o pgid= -p "$(awk '{print $1; exit}' "$1/queue/pid/master.pid")" | tr -d ' ')" || true; }
need_postfix() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "postfix: not run (needs root)"
		return 1
	fi
	PATH=$PATH:/usr/sbin
	if ! command -v postfix >/dev/null 2>&1 || ! command -v smtp-sink >/dev/null 2>&1; then
		echo "postfix: not installed (contrib/deps.sh bench)"
		return 1
	fi
	[ -n "$pdir" ] || pdir=$(mktemp -d /tmp/sealpost-bench-postfix.XXXXXX)
	chmod 0755 "$pdir"	# the Postfix daemons run as user postfix
}

# sealpostd settings: SECTION.KEY=VALUE, later ones win, -o last.
declare -A conf=()
conf_keys=()
conf_set() {
	[[ -v conf[$1] ]] || conf_keys+=("$1")
	conf[$1]=$2
}
# Write the configuration of sealpostd NAME (its directory $dir/NAME).
conf_write() {
	local sec k secs=" "
	for k in "${conf_keys[@]}"; do
		sec=${k%%.*}
		[[ $secs == *" $sec "* ]] || secs+="$sec "
	done
	for sec in $secs; do
		echo "[$sec]"
		for k in "${conf_keys[@]}"; do
			if [ "${k%%.*}" = "$sec" ]; then
				echo "${k#*.} = ${conf[$k]}"
			fi
		done
	done
}
# Start sealpostd NAME with the settings in conf; sets sp_* for NAME.
declare -A sp_smtp=() sp_http=() sp_tok=() sp_pa=() sp_cl=()
sp_start() {
	local name=$1 d=$dir/$1 ctl o
	mkdir -p "$d"
	conf_set daemon.database "$d/sealpost.db"
	conf_set daemon.master_key_file "$d/master.key"
	conf_set daemon.control_socket "$d/control.sock"
	conf_set daemon.log stderr
	sp_http[$name]=$(freeport) sp_smtp[$name]=$(freeport)
	conf_set http.listen "127.0.0.1:${sp_http[$name]}"
	conf_set smtp.listen "127.0.0.1:${sp_smtp[$name]}"
	conf_set smtp.max_sessions 1024
	for o in "${overrides[@]}"; do conf_set "${o%%=*}" "${o#*=}"; done
	conf_write >"$d/sealpost.conf"
	ctl="$b/src/sealpostctl -f $d/sealpost.conf"
	$ctl keys init >/dev/null
	local pr
	pr=$($ctl practice add --name Bench --domain riverside.example)
	sp_cl[$name]=$($ctl clinician add --practice "$pr" --name Bench --email dr.patel@riverside.example)
	sp_pa[$name]=$($ctl patient add --practice "$pr" --name Bench --email jo@patient.example --verified --consent)
	sp_tok[$name]=$($ctl client add --practice "$pr" --name bench --author "${sp_cl[$name]}" 2>/dev/null)
	"$b/src/sealpostd" -f "$d/sealpost.conf" 2>"$d/daemon.log" &
	pids[$name]=$!
	for _ in $(seq 100); do $ctl status >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "sealpostd $name did not start:" >&2
	tail -20 "$d/daemon.log" >&2
	exit 1
}
sp_stop() {
	kill "${pids[$1]}"
	wait "${pids[$1]}" 2>/dev/null || true
	unset "pids[$1]"
}
sp_rss() { awk '/VmHWM/ {print $2 $3}' "/proc/${pids[$1]}/status"; }

echo "sealpost bench ($mode): $(nproc) cores, conns=$conns letters=$letters size=$size runs=$runs"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A rates=() cpu=()

if [ "$mode" = ack ]; then
	sp_start ack
	pid=${pids[ack]}
	for m in http smtp; do
		port=${sp_http[ack]}; [ "$m" = smtp ] && port=${sp_smtp[ack]}
		for r in $(seq "$runs"); do
			c0=$(cpu_ticks "$pid")
			line=$("$b/contrib/bench/sp-loadgen" -m $m -p "$port" -t "${sp_tok[ack]}" \
			    -P "${sp_pa[ack]}" -A "${sp_cl[ack]}" -c "$conns" -n "$letters" -s "$size")
			line="$line $(cpu_field $(( $(cpu_ticks "$pid") - c0 )) "$line")"
			echo "  run $r: $line"
			rates[$m]+="$(field letters_per_s "$line") "
			cpu[$m]+="$(field cpu_ms_per_letter "$line") "
		done
	done
	rss=$(awk '/VmHWM/ {print $2, $3}' "/proc/$pid/status")
	med_http=$(median <<<"${rates[http]}") med_smtp=$(median <<<"${rates[smtp]}")
	echo "median letters/s acknowledged: http=$med_http smtp=$med_smtp"
	cpu_http=$(median <<<"${cpu[http]}") cpu_smtp=$(median <<<"${cpu[smtp]}")
	echo "median CPU ms per letter: http=$cpu_http smtp=$cpu_smtp"
	echo "sealpostd peak RSS: $rss"
	echo "letters in the database: $(sqlite3 "$dir/ack/sealpost.db" 'select count(*) from letters')"
	# Leave the cores to Postfix.
	sp_stop ack

	# Postfix, same generator, same machine, same run.
	[ -n "$pmodes" ] || exit 0
	need_postfix || { echo "postfix: sealpost figures only"; exit 0; }
	for m in $pmodes; do
		d=$pdir/$m
		if [ "$m" = relay ]; then
			"$rig" sink-start "$d" "$(freeport)"
			pport=$("$rig" start "$d" --relay "127.0.0.1:$(cat "$d/sink.port")")
		else
			pport=$("$rig" start "$d" --hold)
		fi
		echo "postfix $m ($(postconf -c "$d" -h mail_version)) on 127.0.0.1:$pport:"
		for r in $(seq "$runs"); do
			base=0
			[ "$m" = relay ] && base=$("$rig" sink-count "$d")
			mapfile -t procs < <(pf_procs "$d")
			c0=$(cpu_ticks "${procs[@]}")
			t0=$(now)
			line=$("$b/contrib/bench/sp-loadgen" -m smtp -N -p "$pport" \
			    -P 1 -d bench.example -c "$conns" -n "$letters" -s "$size") || true
			extra=""
			if [ "$m" = relay ]; then
				# Delivered: the sink has them all and the queue is empty.
				acked=$(field acked "$line")
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
			mapfile -t procs < <(pf_procs "$d")
			line="$line $(cpu_field $(( $(cpu_ticks "${procs[@]}") - c0 )) "$line")"
			if [ "$m" = hold ]; then
				# Keep the hold queue from growing run to run (not timed).
				postsuper -c "$d" -d ALL hold 2>/dev/null || true
			fi
			echo "  run $r: $line$extra"
			rates[pf_$m]+="$(field letters_per_s "$line") "
			cpu[pf_$m]+="$(field cpu_ms_per_letter "$line") "
			[ "$m" = relay ] && rates[pf_relay_dl]+="$(field delivered_per_s "$extra") "
		done
		"$rig" stop "$d"
		[ "$m" = relay ] && "$rig" sink-stop "$d"
	done
	for m in $pmodes; do
		pm=$(median <<<"${rates[pf_$m]}")
		extra=""
		[ "$m" = relay ] && extra=" delivered=$(median <<<"${rates[pf_relay_dl]}")"
		pc=$(median <<<"${cpu[pf_$m]}")
		echo "postfix $m median letters/s acknowledged: smtp=$pm$extra"
		echo "postfix $m median CPU ms per letter: smtp=$pc"
		echo "ratio sealpost/postfix-$m letters/s: http=$(ratio "$med_http" "$pm") smtp=$(ratio "$med_smtp" "$pm")"
		echo "ratio postfix-$m/sealpost CPU per letter: http=$(ratio "$pc" "$cpu_http") smtp=$(ratio "$pc" "$cpu_smtp")"
	done
	echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
	exit 0
fi

# --- e2e ----------------------------------------------------------------------
need_postfix || { echo "e2e: needs Postfix's smtp-sink; nothing measured"; exit 1; }
# The sink: smtp-sink -c redraws "sess=N quit=N mesg=N" after \r for each
# event; the tail of its output is enough (cheap to read every 50 ms).
sink=$pdir/sink
"$rig" sink-start "$sink" "$(freeport)"
sinkport=$(cat "$sink/sink.port")
sink_count() {
	tail -c 256 "$sink/sink.out" | tr '\r' '\n' |
	    sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1 | awk '{n = $1} END {print n + 0}'
}
# The bench's sealpostd settings (conf_set calls before sp_start).
bench_conf() {
	conf=() conf_keys=()
	conf_set relay.host 127.0.0.1
	conf_set relay.pool_size 16
	conf_set queue.max_active 1000
}
contenders=()
for v in $svars; do
	bench_conf
	if [ "$v" = direct ]; then
		conf_set relay.port "$sinkport"
		conf_set relay.tls none
		conf_set relay.allow_plaintext yes
	else
		# The smarthost's certificate, verified by sealpostd.
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		    -nodes -keyout "$dir/tls.key" -out "$dir/tls.crt" -days 2 \
		    -subj /CN=localhost \
		    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		    >/dev/null 2>&1
		chmod 0600 "$dir/tls.key"
		chmod 0644 "$dir/tls.crt"
		hport=$("$rig" start "$pdir/smarthost" --relay "127.0.0.1:$sinkport" \
		    --tls "$dir/tls.crt" "$dir/tls.key" \
		    -o 'smtpd_tls_security_level = encrypt')
		conf_set relay.port "$hport"
		conf_set relay.tls starttls
		conf_set relay.ca_file "$dir/tls.crt"
		conf_set relay.tls_name localhost
	fi
	sp_start "sp-$v"
	s=""
	for k in "${conf_keys[@]}"; do
		case $k in daemon.*|*.listen) ;; *) s+=" $k=${conf[$k]}" ;; esac
	done
	echo "sealpostd sp-$v:$s"
	contenders+=("sp-$v")
done
if [ -n "$pmodes" ]; then
	pport=$("$rig" start "$pdir/relay" --relay "127.0.0.1:$sinkport")
	contenders+=(postfix)
fi
echo "postfix $(postconf -d -h mail_version) (smarthost and postfix: tests/rig/postfix.sh defaults), smtp-sink on 127.0.0.1:$sinkport"

# Untimed: wait until contender C has nothing left in flight.
drain() {
	local c=$1 left
	for _ in $(seq 600); do
		if [ "$c" = postfix ]; then
			left=$("$rig" queue "$pdir/relay")
		else
			left=$(sqlite3 "$dir/$c/sealpost.db" \
			    "select count(*) from deliveries where state <> 'sent'")
			if [ "$c" = sp-smarthost ] && [ "$left" -eq 0 ]; then
				left=$("$rig" queue "$pdir/smarthost")
			fi
		fi
		[ "$left" -eq 0 ] && return 0
		sleep 0.1
	done
	echo "  $c: $left letters still in flight after 60 s" >&2
	return 1
}
# One timed run of contender C; prints its line.
e2e_run() {
	local c=$1 base c0 h0=0 t0 t1 line acked n deadline extra
	local -a gen procs hprocs=()
	if [ "$c" = postfix ]; then
		gen=(-m smtp -N -p "$pport" -P 1 -d bench.example)
		mapfile -t procs < <(pf_procs "$pdir/relay")
	else
		gen=(-m smtp -p "${sp_smtp[$c]}" -t "${sp_tok[$c]}" -P "${sp_pa[$c]}" -A "${sp_cl[$c]}")
		procs=("${pids[$c]}")
		[ "$c" = sp-smarthost ] && mapfile -t hprocs < <(pf_procs "$pdir/smarthost")
	fi
	base=$(sink_count)
	c0=$(cpu_ticks "${procs[@]}")
	[ ${#hprocs[@]} -gt 0 ] && h0=$(cpu_ticks "${hprocs[@]}")
	t0=$(now)
	line=$("$b/contrib/bench/sp-loadgen" "${gen[@]}" -c "$conns" -n "$letters" -s "$size") || true
	acked=$(field acked "$line")
	deadline=$(awk -v t="$t0" -v n="$letters" 'BEGIN { printf "%d", t + 60 + n / 50 }')
	while [ $(( $(sink_count) - base )) -lt "${acked:-0}" ] &&
	    [ "$(date +%s)" -lt "$deadline" ]; do
		sleep 0.05
	done
	t1=$(now)
	n=$(( $(sink_count) - base ))
	[ "$c" = postfix ] && mapfile -t procs < <(pf_procs "$pdir/relay")
	extra=" delivered=$n delivered_per_s=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')"
	extra+=" e2e_seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')"
	extra+=" cpu_ms_per_letter=$(cpu_per $(( $(cpu_ticks "${procs[@]}") - c0 )) "$n")"
	if [ ${#hprocs[@]} -gt 0 ]; then
		mapfile -t hprocs < <(pf_procs "$pdir/smarthost")
		extra+=" smarthost_cpu_ms_per_letter=$(cpu_per $(( $(cpu_ticks "${hprocs[@]}") - h0 )) "$n")"
	fi
	[ "$n" -lt "${acked:-0}" ] && extra+=" INCOMPLETE"
	echo "$line$extra"
}
for r in $(seq "$runs"); do
	for c in "${contenders[@]}"; do
		line=$(e2e_run "$c")
		drain "$c" || true
		echo "  run $r $c: $line"
		rates[$c]+="$(field letters_per_s "$line") "
		rates[${c}_dl]+="$(field delivered_per_s "$line") "
		cpu[$c]+="$(field cpu_ms_per_letter "$line") "
		[ "$c" = sp-smarthost ] && cpu[smarthost]+="$(field smarthost_cpu_ms_per_letter "$line") "
	done
done
echo "e2e medians of $runs runs, $letters x $size bytes, $conns sessions:"
for c in "${contenders[@]}"; do
	s="  $c: acknowledged/s=$(median <<<"${rates[$c]}") delivered/s=$(median <<<"${rates[${c}_dl]}")"
	s+=" cpu_ms_per_letter=$(median <<<"${cpu[$c]}")"
	if [ "$c" = sp-smarthost ]; then
		s+=" smarthost_cpu_ms_per_letter=$(median <<<"${cpu[smarthost]}")"
	fi
	if [ "$c" != postfix ]; then
		s+=" peak_rss=$(sp_rss "$c")"
		s+=" deliveries=$(sqlite3 "$dir/$c/sealpost.db" "select group_concat(state || ':' || n, ',') from (select state, count(*) n from deliveries group by state)")"
	fi
	echo "$s"
done
if [ -n "$pmodes" ]; then
	pd=$(median <<<"${rates[postfix_dl]}") pc=$(median <<<"${cpu[postfix]}")
	for c in "${contenders[@]}"; do
		[ "$c" = postfix ] && continue
		s="ratio $c/postfix: delivered/s=$(ratio "$(median <<<"${rates[${c}_dl]}")" "$pd")"
		s+=" acknowledged/s=$(ratio "$(median <<<"${rates[$c]}")" "$(median <<<"${rates[postfix]}")")"
		s+=" postfix_cpu/sealpostd_cpu=$(ratio "$pc" "$(median <<<"${cpu[$c]}")")"
		echo "$s"
	done
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
