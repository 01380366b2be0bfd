#!/usr/bin/env bash
# contrib/bench-replies.sh - patients' replies/s ingested by sealpostd from
# Dovecot, end to end, against Dovecot storing the same mail, on one
# machine in one run.  The driver is contrib/bench/replies.py.
#
# Setup (untimed): a private Dovecot (tests/rig/dovecot.sh: loopback,
# implicit TLS with the rig's test CA, everything under a temporary
# directory removed at exit) holds the practice's reply mailbox.  A
# sealpostd on a temporary directory gets one practice, clinician, patient
# (verified, consenting) and client through sealpostctl, as
# tests/integration/sealpost_test.py's Daemon.setup_practice does, and one
# letter through the HTTP API.  Its [imap] is configured as in
# tests/integration/t_replies.py (implicit TLS verified against the rig's
# CA, password_file, idle = yes, practice set), [lmtp] listens on
# loopback, there is no [relay] host (nothing is sent) and [replies]
# forward = none (no forward is queued per reply; the one acknowledgement
# per thread of the default ack_window = 1d is still queued, and deferred).
# The reply address is made with tests/token_tool (reply token for the
# letter and the patient, expiring in 30 days).  A reply is a webmail
# client's answer of about SIZE bytes: Received and DKIM-Signature lines,
# multipart/alternative (text/plain and text/html), a line of new text on
# top and the letter quoted below; every one has its own Message-ID.  Each
# is filed (From is the patient's address, the token is good).
#
# Contenders, runs interleaved (run 1 of each, then run 2 of each...):
#   sp-imap       N replies are put into the INBOX with IMAP APPEND while
#                 sealpostd is stopped (untimed; the APPEND rate is shown).
#                 Then sealpostd starts.  The clock starts at the time
#                 stamp of its log line "fetch N: ... connected" (TLS,
#                 LOGIN, folders and SELECT done: daemon start and IMAP
#                 login are excluded) and stops when the driver, polling
#                 every 10 ms, sees the INBOX empty on disk and N more
#                 filed replies in the database.  In between, per
#                 message: UID FETCH, header trust scan, MIME parse in the
#                 sandbox child, new-text extraction, age sealing, SQLite
#                 commit (synchronous = FULL), IMAP MOVE to the processed
#                 folder.  CPU: sealpostd and its children (the parse
#                 sandbox), from /proc, sampled when the driver sees the
#                 "connected" line and at the end; the Dovecot
#                 instance's CPU over the same span is shown alongside.
#   sp-lmtp       the same number of replies (new Message-IDs) into
#                 sealpostd's own LMTP listener from a Python LMTP client,
#                 one session, one message after the other; the clock
#                 runs from connect to the last 250 (each given after the
#                 commit).  Per message: parse in the sandbox, extract,
#                 seal, commit.  No IMAP fetch or move.
#   dovecot-lmtp  the same messages delivered by the same Python client
#                 to a second private Dovecot's LMTP, into its user's
#                 INBOX (maildir; Dovecot's default mail_fsync =
#                 optimized).  The yardstick: the mailbox server storing
#                 the same mail.
#   imap-floor    then those messages taken out of that INBOX by a Python
#                 imaplib client the way sealpostd's worker does (UID
#                 SEARCH, UID FETCH of the sizes, per message UID FETCH
#                 BODY.PEEK[] and UID MOVE) with nothing done in between:
#                 the ceiling of any IMAP intake against this Dovecot.
# Reported per run and as medians of RUNS: replies/s (messages/s for
# Dovecot), CPU ms per reply (Dovecot's: every process of the instance),
# for sealpostd also runq_ms_per_reply (time its threads were runnable but
# waited for a CPU, from /proc/PID/task/TID/schedstat: how much the
# machine's other work held it back), sealpostd's peak RSS (VmHWM of the
# daemon; of its parse child, which is replaced every 1000 messages,
# sampled during the IMAP runs), the ratios of the medians.  Between runs,
# untimed, the processed folder and the second Dovecot's folders are
# emptied.  The figures are for a backlog of REPLIES messages at once; the
# size of a maildir folder can change Dovecot's cost per message, so
# compare runs of the same -n.
# Then (-l LAT, 0 = off): latency: with sealpostd waiting in IDLE, one
# reply APPENDed; the time from sending the APPEND to the reply's row in
# the database (polled every 2 ms), median of LAT samples, and to the
# message leaving the INBOX; beside it, the time until a second client
# idling on the same INBOX reads Dovecot's EXISTS (Dovecot's own share:
# it batches mailbox change notifications for about half a second).
# Not part of the test suite: machines are noisy; compare medians.  The
# Python client is the generator for both LMTP contenders; its own CPU is
# counted for neither.
#
# Needs root and the Debian packages dovecot-imapd and dovecot-lmtpd
# (contrib/deps.sh bench).
#
# usage: contrib/bench-replies.sh [-n REPLIES] [-s SIZE] [-r RUNS] [-l LAT]
#            [-p both|dovecot|lmtp|none] [-o SECTION.KEY=VALUE]... [-b BUILDDIR]
# The issue's figure: contrib/bench-replies.sh -n 2000 -s 2048 -r 3
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
n=2000 size=2048 runs=3 lat=20 refs=both b=$top/build
args=()
usage() {
	echo "usage: $0 [-n REPLIES] [-s SIZE] [-r RUNS] [-l LAT]" \
	    "[-p both|dovecot|lmtp|none] [-o SECTION.KEY=VALUE]... [-b BUILDDIR]" >&2
	exit 2
}
while getopts n:s:r:l:p:o:b: opt; do
	case $opt in
	n) n=$OPTARG ;; s) size=$OPTARG ;; r) runs=$OPTARG ;; l) lat=$OPTARG ;;
	p) refs=$OPTARG ;;
	o) [[ $OPTARG == ?*.?*=* ]] || usage; args+=(-o "$OPTARG") ;;
	b) b=$OPTARG ;; *) usage ;;
	esac
done
[ $OPTIND -gt $# ] || usage
case $refs in both|dovecot|lmtp|none) ;; *) usage ;; esac
for v in "$n" "$size" "$runs" "$lat"; do [[ $v =~ ^[0-9]+$ ]] || usage; done
if [ "$n" -eq 0 ] || [ "$runs" -eq 0 ]; then usage; fi
if [ "$(id -u)" -ne 0 ] || [ ! -x /usr/sbin/dovecot ] ||
    [ ! -e /usr/lib/dovecot/imap ] || [ ! -e /usr/lib/dovecot/lmtp ]; then
	echo "bench-replies: needs root and dovecot-imapd + dovecot-lmtpd" \
	    "(contrib/deps.sh bench)" >&2
	exit 1
fi
"$top/contrib/deps.sh" build
"$top/contrib/build.sh" "$b"
export SEALPOST_BUILDDIR=$b SEALPOST_SRCDIR=$top
exec python3 "$top/contrib/bench/replies.py" -n "$n" -s "$size" -r "$runs" \
    -l "$lat" -p "$refs" ${args[@]+"${args[@]}"}
