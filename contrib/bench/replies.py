#!/usr/bin/env python3
"""contrib/bench/replies.py - the driver of contrib/bench-replies.sh:
patients' replies/s ingested by sealpostd from Dovecot, against Dovecot
storing the same mail.  Run it through contrib/bench-replies.sh (which
builds the tree and documents what is measured); Python 3 standard
library only, with tests/integration/sealpost_test.py for the daemon and
the Dovecot rig.
"""

import argparse
import imaplib
import os
import re
import smtplib
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import calendar

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
import sealpost_test as st  # noqa: E402

DOMAIN = "riverside.example"
JO = "jo@patient.example"
HZ = os.sysconf("SC_CLK_TCK")

# The letter the patient answers, quoted below the new text (as phone and
# webmail clients do), repeated until the message has the size asked for.
LETTER = [
    "Dear Jo,",
    "",
    "Thank you for coming to see us last week. Your blood tests have come",
    "back and the results are within the normal range: full blood count,",
    "kidney function, liver function and thyroid function are all as we",
    "would expect. Your cholesterol is slightly raised at 5.6 mmol/L; the",
    "nurse will talk you through diet and exercise at your next review.",
    "",
    "Please book a routine appointment in three months so that we can",
    "repeat the cholesterol test. You do not need to fast beforehand.",
    "",
    "If your symptoms change or you are worried, please contact the",
    "surgery on 01234 567890.",
    "",
    "Kind regards,",
    "Dr Patel",
    "Riverside Surgery",
]
NEW = [
    "Thank you doctor, that is a relief. I will book the appointment for "
    "March.",
    "Thanks for letting me know. Could the nurse call me on Tuesday "
    "afternoon instead of the morning?",
    "Many thanks. Should I keep taking the vitamin D tablets until then?",
    "Thank you. I have booked the review online for the 14th.",
]


def message(i, tag, to, size):
    """A reply of about `size' bytes as a webmail client writes it:
    Received and DKIM lines, multipart/alternative with a plain and an
    HTML part, new text on top and the letter quoted below."""
    msgid = "<%s-%d-%s@mail.patient.example>" % (tag, i,
                                                 os.urandom(6).hex())
    new = NEW[i % len(NEW)]
    head = [
        "Received: from mail-wr1-f41.patient.example (mail-wr1-f41."
        "patient.example [203.0.113.41])",
        "\tby mx.riverside.example (Postfix) with ESMTPS id 4Vb%05dQz"
        % (i % 100000),
        "\tfor <%s>; Wed, 25 Nov 2026 10:%02d:%02d +0000 (GMT)" % (
            to, (i // 60) % 60, i % 60),
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; "
        "d=patient.example; s=20230601; t=1795600000; x=1796204800; "
        "h=to:subject:message-id:date:from:in-reply-to:references:"
        "mime-version:from:to:cc:subject:date:message-id:reply-to; "
        "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; "
        "b=" + "Qm9keSBvZiB0aGUgc2lnbmF0dXJl" * 12,
        "MIME-Version: 1.0",
        "References: <letter-1@riverside.example>",
        "In-Reply-To: <letter-1@riverside.example>",
        "From: Jo Patient <%s>" % JO,
        "Date: Wed, 25 Nov 2026 10:%02d:%02d +0000" % ((i // 60) % 60,
                                                      i % 60),
        "Message-ID: " + msgid,
        "Subject: Re: Your results from Riverside Surgery",
        "To: Riverside Surgery <%s>" % to,
        'Content-Type: multipart/alternative; boundary="000000000000b%d"'
        % i,
    ]
    quoted, html = [], []
    base = len("\r\n".join(head)) + 600
    k = 0
    while base + 2 * len("\r\n".join(quoted)) < size or not quoted:
        line = LETTER[k % len(LETTER)]
        quoted.append("> " + line if line else ">")
        html.append(line + "<br>")
        k += 1
    plain = [new, "", "Jo", "",
             "On Tue, 24 Nov 2026 at 09:00, Riverside Surgery <%s> wrote:"
             % to] + quoted
    htmlp = ['<div dir="ltr">%s<div><br></div><div>Jo</div></div><br>' % new,
             '<div class="gmail_quote"><div dir="ltr" class='
             '"gmail_attr">On Tue, 24 Nov 2026 at 09:00, Riverside Surgery '
             '&lt;%s&gt; wrote:<br></div><blockquote class="gmail_quote" '
             'style="margin:0px 0px 0px 0.8ex;border-left:1px solid '
             'rgb(204,204,204);padding-left:1ex">' % to] + html + \
        ["</blockquote></div>"]
    b = "000000000000b%d" % i
    body = ["--" + b, 'Content-Type: text/plain; charset="UTF-8"', ""] + \
        plain + ["", "--" + b, 'Content-Type: text/html; charset="UTF-8"',
                 ""] + htmlp + ["", "--%s--" % b, ""]
    return ("\r\n".join(head) + "\r\n\r\n" + "\r\n".join(body)).encode()


# -- processes --------------------------------------------------------------

def proc_tree(root):
    """root and every descendant pid."""
    kids = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(p))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_ticks(root):
    """utime + stime + cutime + cstime of root and its descendants."""
    t = 0
    for p in proc_tree(root):
        try:
            with open("/proc/%d/stat" % p) as f:
                v = f.read().rsplit(")", 1)[1].split()
            t += int(v[11]) + int(v[12]) + int(v[13]) + int(v[14])
        except (OSError, IndexError, ValueError):
            pass
    return t


def runq_ms(root):
    """Milliseconds the threads of root and its descendants spent
    runnable but waiting for a CPU (/proc/PID/task/TID/schedstat): how
    much the machine's other work held them back."""
    ns = 0
    for p in proc_tree(root):
        try:
            tids = os.listdir("/proc/%d/task" % p)
        except OSError:
            continue
        for t in tids:
            try:
                with open("/proc/%d/task/%s/schedstat" % (p, t)) as f:
                    ns += int(f.read().split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return ns / 1e6


def hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_hwm(root):
    """(root's VmHWM, the largest VmHWM of its descendants) in KiB."""
    kids = [hwm_kb(p) for p in proc_tree(root) if p != root]
    return hwm_kb(root), max(kids or [0])


def log_ts(stamp):
    """Seconds since the epoch of a log stamp 2026-11-25T23:51:41.123Z."""
    t = time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(t) + int(stamp[20:23]) / 1000.0


# -- the mailboxes ----------------------------------------------------------

def imap_login(dv):
    ctx = ssl.create_default_context(cafile=dv.ca)
    m = imaplib.IMAP4_SSL("127.0.0.1", dv.imaps, ssl_context=ctx)
    m.login(dv.user, dv.password)
    return m


def imap_empty(dv, folder):
    """Expunge every message of folder (untimed housekeeping)."""
    m = imap_login(dv)
    try:
        typ, _ = m.select('"%s"' % folder)
        if typ == "OK":
            m.store("1:*", "+FLAGS.SILENT", "(\\Deleted)")
            m.expunge()
    except imaplib.IMAP4.error:
        pass
    finally:
        m.logout()


def lmtp_deliver(port, rcpt, msgs):
    """Deliver msgs one after the other on one LMTP session; returns
    (seconds from connect to the last answer, refused count)."""
    t0 = time.time()
    c = smtplib.LMTP("127.0.0.1", port, timeout=120)
    c.ehlo_or_helo_if_needed()
    bad = 0
    for raw in msgs:
        try:
            if c.sendmail(JO, [rcpt], raw):
                bad += 1
        except smtplib.SMTPException:
            bad += 1
    t1 = time.time()
    c.quit()
    return t1 - t0, bad


class IdleWatch:
    """An IMAP client idling on the INBOX: arm() before an APPEND, wait()
    returns when (time.time()) it read the untagged EXISTS."""

    def __init__(self, dv):
        import socket
        ctx = ssl.create_default_context(cafile=dv.ca)
        self.s = ctx.wrap_socket(socket.create_connection(
            ("127.0.0.1", dv.imaps), 30), server_hostname="localhost")
        self.f = self.s.makefile("rb")
        self.f.readline()
        self.cmd(b"a LOGIN %s %s" % (dv.user.encode(),
                                      dv.password.encode()), b"a ")
        self.cmd(b"b SELECT INBOX", b"b ")
        self.th = None

    def cmd(self, line, until):
        self.s.sendall(line + b"\r\n")
        while True:
            r = self.f.readline()
            if not r:
                raise RuntimeError("IDLE client: connection closed")
            if r.startswith(until):
                return r

    def arm(self):
        import threading
        self.cmd(b"c IDLE", b"+")
        self.seen = None

        def read():
            while True:
                r = self.f.readline()
                if not r or r.rstrip().endswith(b"EXISTS"):
                    self.seen = time.time()
                    return
        self.th = threading.Thread(target=read)
        self.th.start()

    def wait(self):
        self.th.join(30)
        self.cmd(b"DONE", b"c ")
        return self.seen or time.time()

    def close(self):
        try:
            self.cmd(b"z LOGOUT", b"z ")
        except (OSError, RuntimeError):
            pass
        self.s.close()


def imap_floor(dv):
    """UID FETCH BODY.PEEK[] and UID MOVE of every INBOX message, one
    after the other, as sealpostd's worker does but with nothing done in
    between; (seconds from after SELECT to the last MOVE, moved)."""
    m = imap_login(dv)
    m.create("processed")
    m.select("INBOX")
    t0 = time.time()
    typ, data = m.uid("SEARCH", None, "UNDELETED")
    uids = data[0].split()
    m.uid("FETCH", b",".join(uids), "(UID RFC822.SIZE)")
    moved = 0
    for u in uids:
        typ, data = m.uid("FETCH", u, "(BODY.PEEK[])")
        if typ != "OK" or not data or not isinstance(data[0], tuple):
            continue
        typ, _ = m.uid("MOVE", u, "processed")
        if typ == "OK":
            moved += 1
    t1 = time.time()
    m.logout()
    return t1 - t0, moved


# -- sealpostd --------------------------------------------------------------

class Bench:
    def __init__(self, a):
        self.a = a
        self.tmp = tempfile.mkdtemp(prefix="sealpost-bench-replies-")
        os.chmod(self.tmp, 0o755)
        self.dvs = []

    def dovecot(self):
        ctx = st.dovecot()
        dv = ctx.__enter__()
        self.dvs.append(ctx)
        with open(os.path.join(dv.directory, "run", "master.pid")) as f:
            dv.master = int(f.read().split()[0])
        return dv

    def daemon(self, dv):
        pw = os.path.join(self.tmp, "imap.password")
        with open(pw, "w") as f:
            f.write(dv.password + "\n")
        os.chmod(pw, 0o400)
        self.lmtp_port = st.free_port()
        conf = {
            "imap": {"host": "127.0.0.1", "port": str(dv.imaps),
                     "tls": "implicit", "tls_name": "localhost",
                     "ca_file": dv.ca, "username": dv.user,
                     "password_file": pw, "idle": "yes",
                     "poll_interval": "2s", "practice": DOMAIN},
            "lmtp": {"listen": "127.0.0.1:%d" % self.lmtp_port},
            "replies": {"forward": "none"},
        }
        for o in self.a.o:
            k, v = o.split("=", 1)
            sect, key = k.split(".", 1)
            conf.setdefault(sect, {})[key] = v
        os.makedirs(os.path.join(self.tmp, "d"))
        d = st.Daemon(conf, debug=False, tmpdir=os.path.join(self.tmp, "d"))
        self.d = d
        return d

    def start(self):
        """Start sealpostd without waiting; returns the log offset."""
        d = self.d
        off = len(d.log_text())
        log = open(d.logpath, "ab")
        d.proc = subprocess.Popen([st.prog("sealpostd"), "-f", d.conf],
                                  stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=log)
        log.close()
        return off

    def wait_log(self, off, pattern, timeout=30, step=0.002):
        """The first match of pattern in the log after off."""
        rx = re.compile(pattern)
        end = time.time() + timeout
        while time.time() < end:
            m = rx.search(self.d.log_text()[off:])
            if m:
                return m
            if self.d.proc.poll() is not None:
                break
            time.sleep(step)
        raise RuntimeError("sealpostd: no /%s/ in its log:\n%s" % (
            pattern, self.d.log_tail()))

    def db(self, sql, args=()):
        con = sqlite3.connect("file:%s?mode=ro" %
                              self.d.config["daemon"]["database"],
                              uri=True, timeout=10)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def counts(self):
        return dict(self.db("SELECT state, count(*) FROM replies "
                            "GROUP BY state"))

    def idling(self, timeout=20):
        import json
        end = time.time() + timeout
        while time.time() < end:
            r = self.d.ctl_run("status")
            if r.returncode == 0:
                j = json.loads(r.stdout)
                imap = (j.get("replies") or {}).get("imap") or {}
                if imap.get("idling"):
                    return True
            time.sleep(0.05)
        return False


def med(xs):
    return statistics.median(xs) if xs else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("-s", type=int, default=2048)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("-l", type=int, default=20)
    ap.add_argument("-p", default="both",
                    choices=("both", "dovecot", "lmtp", "none"))
    ap.add_argument("-o", action="append", default=[])
    a = ap.parse_args()
    refs = {"both": ["dovecot", "lmtp"], "dovecot": ["dovecot"],
            "lmtp": ["lmtp"], "none": []}[a.p]
    B = Bench(a)
    try:
        run(B, a, refs)
    finally:
        if getattr(B, "d", None) is not None:
            B.d.stop()
        for ctx in B.dvs:
            ctx.__exit__(None, None, None)
        subprocess.run(["rm", "-rf", B.tmp])


def run(B, a, refs):
    n = a.n
    print("sealpost replies bench: %d cores, n=%d size=%d runs=%d" %
          (os.cpu_count(), n, a.s, a.r))
    print("load average at start: %s" % " ".join(
        open("/proc/loadavg").read().split()[:3]), flush=True)
    dv = B.dovecot()
    d = B.daemon(dv)
    p = d.setup_practice(domain=DOMAIN, name="Riverside Surgery",
                         patient_email=JO)
    d.start()
    s, lid = st.api_post_letter(d, p["token"], {
        "patient": p["patient"], "author": p["clinician"],
        "subject": "Your results", "text": "\n".join(LETTER) + "\n"})
    if s != 202:
        raise RuntimeError("letter not accepted: %r" % s)
    d.stop()
    tok = subprocess.run([os.path.join(st.builddir(), "tests", "token_tool"),
                          d.config["daemon"]["master_key_file"], "reply",
                          str(lid), str(p["patient"]),
                          str(int(time.time()) + 86400 * 30)],
                         stdout=subprocess.PIPE, text=True,
                         check=True).stdout.strip()
    to = "%s@%s" % (tok, DOMAIN)
    sample = message(0, "x", to, a.s)
    print("reply: %d bytes (multipart/alternative, quoted history), "
          "to %s" % (len(sample), re.sub(r"\+.*@", "+TOKEN@", to)))
    print("sealpostd: %s" % "; ".join(
        "%s.%s=%s" % (sect, k, v) for sect in ("imap", "replies", "lmtp")
        for k, v in d.config.get(sect, {}).items()
        if k not in ("password_file", "ca_file")))
    dv2 = B.dovecot() if "dovecot" in refs else None
    res = {k: [] for k in ("imap", "imap_cpu", "imap_dcpu", "append",
                           "lmtp", "lmtp_cpu", "dovecot", "dovecot_cpu",
                           "floor", "floor_cpu", "imap_runq",
                           "lmtp_runq")}
    hwm = [0, 0]
    for r in range(1, a.r + 1):
        # 1. IMAP: N replies appended while sealpostd is stopped.
        msgs = [message(i, "i%d" % r, to, a.s) for i in range(n)]
        before = B.counts().get("filed", 0)
        m = imap_login(dv)
        t0 = time.time()
        for raw in msgs:
            m.append("INBOX", None, None, raw)
        tapp = time.time() - t0
        m.logout()
        if dv.folder_count("INBOX") != n:
            raise RuntimeError("INBOX holds %d, not %d" %
                               (dv.folder_count("INBOX"), n))
        dv0 = cpu_ticks(dv.master)
        off = B.start()
        mt = B.wait_log(off, r"(\S+Z) \S+ info: fetch \d+: .*connected")
        c0 = cpu_ticks(d.proc.pid)
        q0 = runq_ms(d.proc.pid)
        tc = log_ts(mt.group(1))
        deadline = time.time() + 60 + n / 20
        k = 0
        while time.time() < deadline:
            if dv.folder_count("INBOX") == 0 and \
                    B.counts().get("filed", 0) - before >= n:
                break
            k += 1
            if k % 50 == 0:
                # The parse child is replaced every SANDBOX_MAX_REQUESTS
                # messages: sample its peak while it works.
                h = tree_hwm(d.proc.pid)
                hwm = [max(hwm[0], h[0]), max(hwm[1], h[1])]
            time.sleep(0.01)
        t1 = time.time()
        c1 = cpu_ticks(d.proc.pid)
        q1 = runq_ms(d.proc.pid)
        dv1 = cpu_ticks(dv.master)
        filed = B.counts().get("filed", 0) - before
        secs = t1 - tc
        line = ("  run %d sp-imap: filed=%d seconds=%.2f replies_per_s=%.0f"
                " cpu_ms_per_reply=%.2f runq_ms_per_reply=%.2f"
                " dovecot_cpu_ms_per_reply=%.2f"
                " (append beforehand, untimed: %.0f/s)" % (
                    r, filed, secs, filed / secs,
                    (c1 - c0) * 1000.0 / HZ / max(filed, 1),
                    (q1 - q0) / max(filed, 1),
                    (dv1 - dv0) * 1000.0 / HZ / max(filed, 1), n / tapp))
        if filed != n or dv.folder_count("INBOX") != 0:
            line += " INCOMPLETE"
        print(line, flush=True)
        res["imap"].append(filed / secs)
        res["imap_cpu"].append((c1 - c0) * 1000.0 / HZ / max(filed, 1))
        res["imap_dcpu"].append((dv1 - dv0) * 1000.0 / HZ / max(filed, 1))
        res["imap_runq"].append((q1 - q0) / max(filed, 1))
        res["append"].append(n / tapp)
        h = tree_hwm(d.proc.pid)
        hwm = [max(hwm[0], h[0]), max(hwm[1], h[1])]

        # 2. sealpostd's LMTP listener, the same messages (new ids).
        if "lmtp" in refs:
            msgs = [message(i, "l%d" % r, to, a.s) for i in range(n)]
            before = B.counts().get("filed", 0)
            c0 = cpu_ticks(d.proc.pid)
            q0 = runq_ms(d.proc.pid)
            secs, bad = lmtp_deliver(B.lmtp_port, to, msgs)
            c1 = cpu_ticks(d.proc.pid)
            q1 = runq_ms(d.proc.pid)
            filed = B.counts().get("filed", 0) - before
            line = ("  run %d sp-lmtp: filed=%d seconds=%.2f "
                    "replies_per_s=%.0f cpu_ms_per_reply=%.2f "
                    "runq_ms_per_reply=%.2f" % (
                        r, filed, secs, filed / secs,
                        (c1 - c0) * 1000.0 / HZ / max(filed, 1),
                        (q1 - q0) / max(filed, 1)))
            if filed != n or bad:
                line += " INCOMPLETE refused=%d" % bad
            print(line, flush=True)
            res["lmtp"].append(filed / secs)
            res["lmtp_cpu"].append((c1 - c0) * 1000.0 / HZ / max(filed, 1))
            res["lmtp_runq"].append((q1 - q0) / max(filed, 1))
            h = tree_hwm(d.proc.pid)
            hwm = [max(hwm[0], h[0]), max(hwm[1], h[1])]
        d.stop()
        imap_empty(dv, "sealpost-processed")

        # 3. Dovecot's own LMTP into a second instance's INBOX.
        if dv2 is not None:
            msgs = [message(i, "d%d" % r, "gp@localhost", a.s)
                    for i in range(n)]
            c0 = cpu_ticks(dv2.master)
            secs, bad = lmtp_deliver(dv2.lmtp, dv2.user, msgs)
            c1 = cpu_ticks(dv2.master)
            got = dv2.folder_count("INBOX")
            line = ("  run %d dovecot-lmtp: stored=%d seconds=%.2f "
                    "msgs_per_s=%.0f cpu_ms_per_msg=%.2f" % (
                        r, got, secs, got / secs,
                        (c1 - c0) * 1000.0 / HZ / max(got, 1)))
            if got != n or bad:
                line += " INCOMPLETE refused=%d" % bad
            print(line, flush=True)
            res["dovecot"].append(got / secs)
            res["dovecot_cpu"].append((c1 - c0) * 1000.0 / HZ / max(got, 1))
            # 4. The same messages taken out of that INBOX as sealpostd
            # does, without the parse, seal and commit: the IMAP floor.
            c0 = cpu_ticks(dv2.master)
            secs, moved = imap_floor(dv2)
            c1 = cpu_ticks(dv2.master)
            left = dv2.folder_count("INBOX")
            line = ("  run %d imap-floor: moved=%d seconds=%.2f "
                    "msgs_per_s=%.0f dovecot_cpu_ms_per_msg=%.2f" % (
                        r, moved, secs, moved / secs,
                        (c1 - c0) * 1000.0 / HZ / max(moved, 1)))
            if moved != n or left:
                line += " INCOMPLETE left=%d" % left
            print(line, flush=True)
            res["floor"].append(moved / secs)
            res["floor_cpu"].append((c1 - c0) * 1000.0 / HZ / max(moved, 1))
            imap_empty(dv2, "INBOX")
            imap_empty(dv2, "processed")

    print("medians of %d runs, %d replies of %d bytes:" % (a.r, n,
                                                           len(sample)))
    print("  sp-imap: replies_per_s=%.0f cpu_ms_per_reply=%.2f "
          "runq_ms_per_reply=%.2f dovecot_cpu_ms_per_reply=%.2f "
          "(append %.0f/s)" % (
              med(res["imap"]), med(res["imap_cpu"]), med(res["imap_runq"]),
              med(res["imap_dcpu"]), med(res["append"])))
    if res["lmtp"]:
        print("  sp-lmtp: replies_per_s=%.0f cpu_ms_per_reply=%.2f "
              "runq_ms_per_reply=%.2f" % (
                  med(res["lmtp"]), med(res["lmtp_cpu"]),
                  med(res["lmtp_runq"])))
    if res["dovecot"]:
        print("  dovecot-lmtp: msgs_per_s=%.0f cpu_ms_per_msg=%.2f" % (
            med(res["dovecot"]), med(res["dovecot_cpu"])))
    if res["floor"]:
        print("  imap-floor: msgs_per_s=%.0f dovecot_cpu_ms_per_msg=%.2f" % (
            med(res["floor"]), med(res["floor_cpu"])))
    print("  sealpostd peak RSS: %d kB (parse sandbox child, sampled "
          "during the IMAP runs: %d kB)" % tuple(hwm))
    c = B.counts()
    print("  replies in the store: %s" % ", ".join(
        "%s=%d" % kv for kv in sorted(c.items())))
    if res["dovecot"]:
        print("ratio sp-imap/dovecot-lmtp: %.2f" % (
            med(res["imap"]) / med(res["dovecot"])))
        if res["lmtp"]:
            print("ratio sp-lmtp/dovecot-lmtp: %.2f" % (
                med(res["lmtp"]) / med(res["dovecot"])))
    if res["floor"]:
        print("ratio sp-imap/imap-floor: %.2f" % (
            med(res["imap"]) / med(res["floor"])))
    if res["lmtp"]:
        print("ratio sp-imap/sp-lmtp: %.2f" % (
            med(res["imap"]) / med(res["lmtp"])))

    # 4. Latency: one APPEND while sealpostd waits in IDLE -> committed.
    # A second client idling on the same INBOX gives Dovecot's own part:
    # the time until the server tells an IDLE client of the new message.
    if a.l > 0:
        B.start()
        B.wait_log(0, r"info: fetch \d+: .*connected")
        lat, mv, ex = [], [], []
        m = imap_login(dv)
        watch = IdleWatch(dv)
        con = sqlite3.connect("file:%s?mode=ro" %
                              d.config["daemon"]["database"], uri=True,
                              timeout=10)
        for i in range(a.l):
            if not B.idling():
                raise RuntimeError("the IMAP worker is not idling")
            time.sleep(0.2)
            top = con.execute("SELECT coalesce(max(id), 0) FROM "
                              "replies").fetchone()[0]
            raw = message(i, "t", to, a.s)
            watch.arm()
            t0 = time.time()
            m.append("INBOX", None, None, raw)
            tc = None
            while time.time() - t0 < 30:
                if tc is None and con.execute(
                        "SELECT count(*) FROM replies WHERE id > ?",
                        (top,)).fetchone()[0]:
                    tc = time.time()
                if tc is not None and dv.folder_count("INBOX") == 0:
                    break
                time.sleep(0.002)
            if tc is None:
                raise RuntimeError("reply %d not committed in 30 s" % i)
            lat.append((tc - t0) * 1000)
            mv.append((time.time() - t0) * 1000)
            te = watch.wait()
            ex.append((te - t0) * 1000)
        con.close()
        watch.close()
        m.logout()
        print("latency, %d samples, from sending one APPEND (sealpostd in "
              "IDLE):" % a.l)
        print("  -> reply committed: median %.1f ms (min %.1f, max %.1f);"
              " -> gone from INBOX: median %.1f ms" % (
                  med(lat), min(lat), max(lat), med(mv)))
        print("  -> a second IDLE client told EXISTS by Dovecot: median "
              "%.1f ms (min %.1f, max %.1f)" % (med(ex), min(ex), max(ex)))
    print("load average at end: %s" % " ".join(
        open("/proc/loadavg").read().split()[:3]))


if __name__ == "__main__":
    main()
