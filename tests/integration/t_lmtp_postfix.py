#!/usr/bin/env python3
"""t_lmtp_postfix - Postfix's LMTP client against the LMTP listener.

The listener (src/lmtpd.c) runs in tests/lmtp_listen with the test
processor of tests/lmtp_proc.h in place of the intake (250, 451 or 550 by
recipient local part).  A private Postfix on loopback (tests/rig/
postfix.sh) is the practice's MX: its transport map sends reply.example
and sender.example to lmtp:inet:127.0.0.1:PORT.  One message to three
recipients must reach the listener as one LMTP transaction, and Postfix
must read one reply per recipient, in its RCPT order: ok1 sent (250),
tmp2 deferred (451), no3 bounced (550), whose bounce then comes back to
the sender over LMTP as a second message (MAIL FROM:<>).
"""

import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sealpost_test as st  # noqa: E402

tap = st.Tap()


def maillog_status(pf, rcpt):
    """The last status= line of Postfix's log for rcpt, or None."""
    try:
        with open(os.path.join(pf, "maillog")) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if "to=<%s>" % rcpt in line and "status=" in line:
            return line
    return None


def main():
    if os.geteuid() != 0 or not st.have("postfix"):
        tap.skip("needs root and Postfix (tests/rig/postfix.sh)")
        tap.done()
    listen = os.path.join(st.builddir(), "tests", "lmtp_listen")
    if not os.path.exists(listen):
        tap.skip("tests/lmtp_listen not built (make check-programs)")
        tap.done()

    tmp = tempfile.mkdtemp(prefix="sealpost-lmtp-")
    os.chmod(tmp, 0o755)           # the Postfix daemons run as postfix
    pf = os.path.join(tmp, "postfix")
    port = st.free_port()
    drv = subprocess.Popen([listen, str(port)], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    jobs = []
    try:
        tap.is_eq(drv.stdout.readline().strip(), "ready",
                  "lmtp_listen on 127.0.0.1:%d" % port)

        def reader():
            for line in drv.stdout:
                jobs.append(line.strip())
        threading.Thread(target=reader, daemon=True).start()

        transport = os.path.join(tmp, "transport")
        with open(transport, "w") as f:
            for domain in ("reply.example", "sender.example"):
                f.write("%s lmtp:inet:127.0.0.1:%d\n" % (domain, port))
        os.chmod(transport, 0o644)
        try:
            mx = int(st.rig(
                "start", pf, "--relay", "127.0.0.1:9",
                "-o", "transport_maps = texthash:%s" % transport,
                "-o", "bounce_queue_lifetime = 0"))
        except RuntimeError as e:
            tap.ok(False, "Postfix started")
            tap.diag(str(e))
            tap.done()
        tap.ok(mx > 0, "Postfix MX on port %d" % mx)

        rcpts = ["ok1@reply.example", "tmp2@reply.example",
                 "no3@reply.example"]
        with smtplib.SMTP("127.0.0.1", mx, local_hostname="client.test",
                          timeout=30) as s:
            refused = s.sendmail(
                "ok-sender@sender.example", rcpts,
                "From: ok-sender@sender.example\r\nTo: ok1@reply.example\r\n"
                "Subject: re: your letter\r\n\r\nThanks, see you Tuesday.\r\n"
                ".leading dot\r\n")
        tap.is_eq(refused, {}, "Postfix accepted the message for 3 "
                  "recipients")

        got = st.wait_for(lambda: all(maillog_status(pf, r) for r in rcpts),
                          timeout=30)
        tap.ok(got, "Postfix logged a status for every recipient")
        ok1 = maillog_status(pf, "ok1@reply.example") or ""
        tmp2 = maillog_status(pf, "tmp2@reply.example") or ""
        no3 = maillog_status(pf, "no3@reply.example") or ""
        relay = "relay=127.0.0.1[127.0.0.1]:%d" % port
        tap.ok(relay in ok1 and "status=sent (250 2.0.0 reply filed)" in ok1,
               "ok1: sent over LMTP with our 250")
        tap.ok(relay in tmp2 and "status=deferred" in tmp2 and
               "said: 451 4.3.0 try again later" in tmp2,
               "tmp2: deferred with our 451")
        tap.ok(relay in no3 and "status=bounced" in no3 and
               "said: 550 5.1.1 not a reply address" in no3,
               "no3: bounced with our 550")
        for line in (ok1, tmp2, no3):
            if relay not in line:
                tap.diag(line)

        # Postfix picks its own RCPT order (it sorts): the codes it logged
        # above match ours only if our replies came in that order
        want = {"ok1@reply.example=250", "tmp2@reply.example=451",
                "no3@reply.example=550"}
        tap.ok(st.wait_for(lambda: any(set(j.split()[1:]) == want
                                       for j in jobs), timeout=10),
               "one LMTP transaction with the 3 recipients")
        tap.ok(st.wait_for(lambda: "job ok-sender@sender.example=250"
                           in jobs, timeout=30),
               "the bounce for no3 came back over LMTP")
        tap.diag("jobs: %r" % jobs)
    finally:
        if os.path.exists(os.path.join(pf, "main.cf")):
            st.rig("stop", pf, check=False)
        drv.terminate()
        try:
            drv.wait(timeout=10)
        except subprocess.TimeoutExpired:
            drv.kill()
        if not os.environ.get("SEALPOST_TEST_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
    tap.is_eq(drv.returncode, 0, "lmtp_listen stopped cleanly")
    tap.done()


main()
