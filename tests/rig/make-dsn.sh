#!/usr/bin/env bash
# tests/rig/make-dsn.sh - make the Postfix bounces of tests/data/dsn/.
#
#   tests/rig/make-dsn.sh [OUTDIR]     (default: tests/data/dsn)
#
# The postfix-*.eml fixtures are real delivery status notifications written
# by Postfix 3.7 (Debian 12), generated once with this script and committed;
# the unit tests (tests/test_dsn.c) only read them.  Rerun it to refresh
# them (dates, queue ids and boundaries change; the expected values in
# test_dsn.c that name those must follow).  Needs root and the Debian
# package postfix, installed as tests/rig/postfix.sh explains (contrib/
# deps.sh test does it).  Everything runs on 127.0.0.1 under a temporary
# directory; the system's Postfix is neither read nor started.
#
# The rig, all built with tests/rig/postfix.sh:
#
#   python smtplib --> A "smarthost.rig.test" (the smarthost sealpost relays
#                      through), transport_maps by recipient domain:
#       reject.test, soft.test --> R "mx.reject.test", a second Postfix
#                      whose access map answers RCPT with
#                      "550 5.1.1 ... User unknown" (reject.test) or
#                      "452 4.2.2 ... Mailbox full" (soft.test)
#       accept.test  --> an smtp-sink that takes everything and announces
#                      no DSN, so A itself reports "relayed" when asked
#       example.test --> an smtp-sink with -d: each bounce A sends to the
#                      VERP sender bounce+<token>@example.test lands in a
#                      file, from which the sink's own header lines are cut
#
# and a second smarthost B, like A but with maximal_queue_lifetime = 0 (one
# delivery attempt): a 4xx becomes a bounce at once, the way a smarthost
# gives up on a letter after days of retrying (Action: failed, a 4.x.x
# status).
#
# Each scenario has its own token (the bounce+<token> local part) and
# Message-ID, so its bounce is found by its envelope recipient:
#
#   postfix-hard-hdrs.eml     RET=HDRS, one recipient rejected 550:
#                             text/rfc822-headers
#   postfix-hard-full.eml     RET=FULL: the whole message/rfc822 returned
#   postfix-multi.eml         three recipients, two rejected, one relayed
#                             (NOTIFY=FAILURE): two recipient blocks,
#                             one with ORCPT (Original-Recipient)
#   postfix-relayed.eml       NOTIFY=SUCCESS to a next hop without DSN:
#                             Action: relayed, 2.0.0
#   postfix-delayed.eml       a 452 with delay_warning_time = 1s:
#                             Action: delayed, 4.2.2, Will-Retry-Until
#   postfix-expired.eml       from B: the 452, no retry: Action: failed,
#                             4.2.2
#   postfix-hard-hdrs-crlf.eml  postfix-hard-hdrs.eml with CRLF line ends,
#                             as it crossed the wire (smtp-sink stores LF)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)
rig=$here/postfix.sh
out=${1:-$srcdir/tests/data/dsn}
mkdir -p "$out"
out=$(cd "$out" && pwd)

[ "$(id -u)" -eq 0 ] || { echo "make-dsn.sh: run as root" >&2; exit 1; }
PATH=$PATH:/usr/sbin
work=$(mktemp -d /tmp/sp-make-dsn.XXXXXX)
chmod 0755 "$work"

cleanup() {
	"$rig" stop "$work/a" >/dev/null 2>&1 || true
	"$rig" stop "$work/b" >/dev/null 2>&1 || true
	"$rig" stop "$work/r" >/dev/null 2>&1 || true
	"$rig" sink-stop "$work/acc" >/dev/null 2>&1 || true
	"$rig" sink-stop "$work/cap" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The rejecting MX: a Postfix whose access map answers RCPT.
mkdir -p "$work/r"
cat >"$work/r/rcpt" <<'EOF'
reject.test	550 5.1.1 User unknown in virtual mailbox table
soft.test	452 4.2.2 Mailbox full
EOF
port_r=$("$rig" start "$work/r" --hostname mx.reject.test --hold \
    -o "smtpd_recipient_restrictions = check_recipient_access texthash:$work/r/rcpt, permit_mynetworks, reject")

# The accepting next hop (no DSN announced) and the capture sink.
port_acc=$(freeport)
"$rig" sink-start "$work/acc" "$port_acc" -N -h mx.accept.test
port_cap=$(freeport)
mkdir -p "$work/cap/files"
chown postfix "$work/cap/files"
"$rig" sink-start "$work/cap" "$port_cap" -h mx.example.test \
    -d "$work/cap/files/%Y%m%d%H%M%S."

cat >"$work/transport" <<EOF
reject.test	smtp:[127.0.0.1]:$port_r
soft.test	smtp:[127.0.0.1]:$port_r
accept.test	smtp:[127.0.0.1]:$port_acc
example.test	smtp:[127.0.0.1]:$port_cap
EOF
common=(-o "transport_maps = texthash:$work/transport"
    -o "queue_run_delay = 1s" -o "minimal_backoff_time = 1s"
    -o "maximal_backoff_time = 1s" -o "bounce_queue_lifetime = 0")
port_a=$("$rig" start "$work/a" --hostname smarthost.rig.test \
    --relay "127.0.0.1:$port_acc" "${common[@]}" \
    -o "delay_warning_time = 1s")
port_b=$("$rig" start "$work/b" --hostname smarthost2.rig.test \
    --relay "127.0.0.1:$port_acc" "${common[@]}" \
    -o "maximal_queue_lifetime = 0")

# send PORT TOKEN MSGID RET "RCPT[|NOTIFY[|ORCPT]]"...
send() {
	python3 - "$@" <<'EOF'
import smtplib, sys
port, token, msgid, ret = sys.argv[1:5]
rcpts = sys.argv[5:]
msg = ("From: Example Surgery <surgery@sealpost.test>\r\n"
       "To: Patient <patient@example.org>\r\n"
       "Subject: A letter from the surgery\r\n"
       "Date: Mon, 02 Mar 2026 09:00:00 +0000\r\n"
       "Message-ID: " + msgid + "\r\n"
       "MIME-Version: 1.0\r\n"
       "Content-Type: text/plain; charset=utf-8\r\n"
       "\r\n"
       "A letter is waiting for you.\r\n")
s = smtplib.SMTP("127.0.0.1", int(port), local_hostname="relay.sealpost.test")
s.ehlo("relay.sealpost.test")
s.mail("bounce+" + token + "@example.test",
       ["RET=" + ret, "ENVID=" + token])
for r in rcpts:
    addr, _, rest = r.partition("|")
    notify, _, orcpt = rest.partition("|")
    opts = ["NOTIFY=" + (notify or "FAILURE")]
    if orcpt:
        opts.append("ORCPT=rfc822;" + orcpt)
    code, text = s.rcpt(addr, opts)
    if code != 250:
        sys.exit("RCPT %s: %d %s" % (addr, code, text))
s.data(msg.encode())
s.quit()
EOF
}

# The bounce sent to bounce+TOKEN, sink header lines cut: wait up to 30 s.
fetch() {
	local token=$1 dest=$2 f
	for _ in $(seq 300); do
		f=$(grep -l -E "^X-Rcpt-Args: .*<bounce\+$token@example\.test>" \
		    "$work"/cap/files/* 2>/dev/null | head -1 || true)
		if [ -n "$f" ]; then
			sleep 1		# the sink may still be writing it
			python3 - "$f" "$dest" <<'EOF'
import sys
lines = open(sys.argv[1], "rb").read().split(b"\n")
i = 0
# X-Client-Addr ... X-Rcpt-Args, then the sink's three-line Received.
while not lines[i].startswith(b"Received: "):
    i += 1
i += 1
while lines[i][:1] in (b" ", b"\t"):
    i += 1
body = b"\n".join(lines[i:])
# The dump ends with an empty line after the message.
assert body.endswith(b"\n\n")
open(sys.argv[2], "wb").write(body[:-1])
EOF
			echo "make-dsn.sh: $(basename "$dest")" >&2
			return 0
		fi
		sleep 0.1
	done
	echo "make-dsn.sh: no bounce for $token; A's log:" >&2
	tail -30 "$work/a/maillog" >&2
	return 1
}

send "$port_a" hardhdrs7k2mq4zr5xw3 "<hard-hdrs.1@sealpost.test>" HDRS \
    "nosuchuser@reject.test"
fetch hardhdrs7k2mq4zr5xw3 "$out/postfix-hard-hdrs.eml"

send "$port_a" hardfull3p6tqm2nd4ya "<hard-full.1@sealpost.test>" FULL \
    "nosuchuser@reject.test"
fetch hardfull3p6tqm2nd4ya "$out/postfix-hard-full.eml"

send "$port_a" multi5vq2hd7rx3nae4k "<multi.1@sealpost.test>" HDRS \
    "alice@reject.test" "bob@reject.test|FAILURE|robert@sealpost.test" \
    "carol@accept.test"
fetch multi5vq2hd7rx3nae4k "$out/postfix-multi.eml"

send "$port_a" relayed2ws6mf4ak7qpz "<relayed.1@sealpost.test>" HDRS \
    "dave@accept.test|SUCCESS,FAILURE"
fetch relayed2ws6mf4ak7qpz "$out/postfix-relayed.eml"

send "$port_a" delayed6hn3rz5qc2tvm "<delayed.1@sealpost.test>" HDRS \
    "erin@soft.test|DELAY,FAILURE"
fetch delayed6hn3rz5qc2tvm "$out/postfix-delayed.eml"

send "$port_b" expired4ra7xk2nw5hdq "<expired.1@sealpost.test>" HDRS \
    "frank@soft.test"
fetch expired4ra7xk2nw5hdq "$out/postfix-expired.eml"

sed 's/$/\r/' "$out/postfix-hard-hdrs.eml" >"$out/postfix-hard-hdrs-crlf.eml"
echo "make-dsn.sh: done: $out" >&2
