#!/usr/bin/env bash
# contrib/soak-relay.sh - backlog fairness and memory at soak scale
# (TESTPLAN T8): tests/integration/t_backlog.py with 100,000 letters.
#
# What it does (see the test's header for the details): sealpostd relays to
# a loopback port where nothing listens; LETTERS routine letters are posted
# over HTTP (contrib/bench/sp-loadgen), tried once, refused and deferred.
# A private Postfix smarthost (tests/rig/postfix.sh: STARTTLS required, a
# verified self-signed certificate, relaying to an smtp-sink; loopback
# only, everything under a temporary directory) then starts on that port,
# "sealpostctl queue retry" makes the backlog due at once, and 20 urgent
# letters are posted while it drains.  Pass: each urgent letter is sent
# within URGENT_BOUND seconds of its 202 and before the backlog is done;
# sealpostd's VmRSS stays below RSS_MB during the drain; every letter is
# sent and the sink counts exactly LETTERS + 20 messages.
#
# Reported (as TAP comments): submission rate, deferral time, drain time
# and rate (first and last quarter), urgent latencies, VmRSS idle / with
# the backlog / peak during the drain.
#
# Not part of the test suite: it takes about LETTERS / 150 seconds to drain
# with the default relay.pool_size of 4 on 2 cores (about 15 minutes for
# 100,000), plus the posting.  Needs root and the Debian package "postfix"
# (contrib/deps.sh test), and a build with contrib/bench/sp-loadgen (make).
#
# usage: contrib/soak-relay.sh [-n LETTERS] [-b BUILDDIR] [-p POOL]
#            [-u URGENT_BOUND] [-m RSS_MB]
#   -n  backlog size (default 100000)
#   -b  build directory holding src/sealpostd (default ./build)
#   -p  relay.pool_size (default: the daemon's, 4)
#   -u  seconds an urgent letter may take from 202 to sent (default 8)
#   -m  VmRSS bound in MB (default 64: the same as the suite's, since the
#       active set, not the backlog, should decide the memory)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
letters=100000 b=$top/build pool="" ubound=8 rss=64
usage() {
	echo "usage: $0 [-n LETTERS] [-b BUILDDIR] [-p POOL] [-u URGENT_BOUND] [-m RSS_MB]" >&2
	exit 2
}
while getopts n:b:p:u:m: opt; do
	case $opt in
	n) letters=$OPTARG ;; b) b=$OPTARG ;; p) pool=$OPTARG ;;
	u) ubound=$OPTARG ;; m) rss=$OPTARG ;; *) usage ;;
	esac
done
[ $OPTIND -gt $# ] || usage
[ -x "$b/src/sealpostd" ] || { echo "$0: no $b/src/sealpostd: build first (-b)" >&2; exit 1; }
[ -x "$b/contrib/bench/sp-loadgen" ] ||
    echo "$0: no $b/contrib/bench/sp-loadgen: posting falls back to Python (slow)" >&2

# Each long wait (deferral, drain) may take up to 1 s per 40 letters.
timeout=$(( letters / 40 > 90 ? letters / 40 : 90 ))
export SEALPOST_SRCDIR=$top SEALPOST_BUILDDIR=$b
export SEALPOST_BACKLOG=$letters SEALPOST_BACKLOG_URGENT_BOUND=$ubound
export SEALPOST_BACKLOG_RSS_MB=$rss SEALPOST_BACKLOG_TIMEOUT=$timeout
[ -n "$pool" ] && export SEALPOST_BACKLOG_POOL=$pool
start=$SECONDS
rc=0
python3 "$top/tests/integration/t_backlog.py" || rc=$?
echo "# soak-relay: $letters letters, exit $rc, $((SECONDS - start)) s in all"
exit $rc
