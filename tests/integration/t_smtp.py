#!/usr/bin/env python3
"""t_smtp.py - the SMTP submission listener against a real sealpostd.

A daemon on a temp dir and free loopback ports, real clients (swaks and raw
sockets): submissions with AUTH PLAIN become sealed letters (checked with
sealpostctl and in the database file), every protocol rule gets its reply
(530, 535, 550 5.1.1, 552, 452, 503, 500, 554 ...), the SMTP smuggling
variants never make a second letter, pipelining abuse and STARTTLS
injection close the session, TLS 1.2 is the minimum, and the daemon still
takes a good submission after every bad case.  The rules for listeners off
loopback (AUTH only after STARTTLS) run in a private network namespace
(unshare -n, a 10.9.9.9 address on its own lo) when the system allows it,
so nothing ever listens outside loopback.  TAP output.
"""

import base64
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
import warnings

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sealpost_test as st  # noqa: E402

tap = st.Tap()
NETNS_ADDR = "10.9.9.9"


# ---- a raw SMTP client ---------------------------------------------------

class Client:
    """A minimal SMTP client over a socket: send bytes, read replies."""

    def __init__(self, port, host="127.0.0.1", timeout=20):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.code, self.greeting = self.reply()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def readline(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; pending %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def reply(self):
        """One (possibly multi-line) reply: (code, text)."""
        lines = []
        while True:
            line = self.readline()
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                break
        try:
            code = int(lines[-1][:3])
        except ValueError:
            code = 0
        return code, "\n".join(lines)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def ehlo(self, name="client.test"):
        return self.cmd("EHLO " + name)

    def auth(self, token, user="client"):
        raw = b"\0" + user.encode() + b"\0" + token.encode()
        return self.cmd("AUTH PLAIN " + base64.b64encode(raw).decode())

    def starttls(self, ctx=None):
        """STARTTLS and the handshake; returns the 220 reply."""
        r = self.cmd("STARTTLS")
        if r[0] != 220:
            return r
        if ctx is None:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock)
        return r

    def closed(self, timeout=5):
        """Read until EOF; True if the server closed within timeout.
        Replies read on the way are kept in self.trailing."""
        self.sock.settimeout(timeout)
        data = self.buf
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    self.trailing = data.decode("latin-1")
                    return True
                data += chunk
        except (socket.timeout, TimeoutError):
            self.trailing = data.decode("latin-1")
            return False
        except (ConnectionResetError, ssl.SSLError, OSError):
            self.trailing = data.decode("latin-1")
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def message(subject="Results", body="Dear Jo,\r\nyour results are fine.",
            msgid=None, headers=(), sender="dr.patel@riverside.example",
            to="patient@riverside.example"):
    """An RFC 5322 message as bytes (CRLF lines, not dot-stuffed)."""
    msgid = msgid or "<%s@test.sealpost>" % uuid.uuid4().hex
    h = ["From: <%s>" % sender, "To: <%s>" % to, "Subject: " + subject,
         "Message-ID: " + msgid, "Date: Tue, 25 Nov 2025 10:00:00 +0000",
         "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    h += list(headers)
    return ("\r\n".join(h) + "\r\n\r\n" + body + "\r\n").encode()


def dot_stuff(msg):
    out = []
    for line in msg.split(b"\r\n"):
        out.append(b"." + line if line.startswith(b".") else line)
    return b"\r\n".join(out)


def transaction(c, sender, rcpts, msg):
    """MAIL, RCPTs, DATA and the message on an authenticated client;
    returns the list of replies (code, text) in order, stopping at the
    first unexpected one."""
    replies = [c.cmd("MAIL FROM:<%s>" % sender)]
    if replies[-1][0] != 250:
        return replies
    for r in rcpts:
        replies.append(c.cmd("RCPT TO:<%s>" % r))
    replies.append(c.cmd("DATA"))
    if replies[-1][0] != 354:
        return replies
    c.send(dot_stuff(msg) + b".\r\n")
    replies.append(c.reply())
    return replies


def submit(port, token, sender, rcpts, msg, host="127.0.0.1"):
    """A whole session: EHLO, AUTH, transaction, QUIT.  Returns the final
    reply (code, text)."""
    c = Client(port, host)
    try:
        c.ehlo()
        r = c.auth(token)
        if r[0] != 235:
            return r
        r = transaction(c, sender, rcpts, msg)[-1]
        c.cmd("QUIT")
        return r
    finally:
        c.close()


def queued_ids(text):
    m = re.search(r"queued as ([0-9,]+)", text)
    return [int(x) for x in m.group(1).split(",")] if m else []


def letters(d):
    """Letters in the database: sealpostctl status (the daemon's answer,
    or its read of the database when the daemon does not answer)."""
    r = d.ctl_run("status")
    try:
        return json.loads(r.stdout)["counts"]["letters"]
    except (ValueError, KeyError) as e:
        raise RuntimeError("sealpostctl status: exit %d: %r %s" % (
            r.returncode, e, r.stderr.strip()))


def letter_show(d, lid):
    """sealpostctl letter show as a dict of "key: value" lines."""
    out = d.ctl("letter", "show", lid)
    info = {}
    for line in out.splitlines():
        k, _, v = line.partition(":")
        info.setdefault(k.strip(), v.strip())
    return info


def swaks(port, token, sender, rcpt, extra=(), server="127.0.0.1"):
    """Run swaks; returns (exit status, output)."""
    cmd = ["swaks", "--server", "%s:%d" % (server, port), "--auth", "PLAIN",
           "--auth-user", "client", "--auth-password", token,
           "--from", sender, "--to", rcpt, "--timeout", "30"] + list(extra)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=90)
    return r.returncode, r.stdout


def code_is(r, code, esc, name):
    """ok() on a reply's code and enhanced status code."""
    good = r[0] == code and (esc is None or (" %s " % esc) in r[1] + " ")
    if not tap.ok(good, name):
        tap.diag("  reply: %r (want %d %s)" % (r[1], code, esc or ""))
    return good


# ---- the tests on a plain loopback listener ------------------------------

def setup(d):
    """Two practices, patients, clients; returns a dict of what was made."""
    a = d.setup_practice("riverside.example", "Riverside")
    a["patient2"] = int(d.ctl("patient", "add", "--practice", a["practice"],
                              "--name", "Sam", "--email",
                              "sam@patient.example", "--verified",
                              "--consent"))
    a["patient3"] = int(d.ctl("patient", "add", "--practice", a["practice"],
                              "--name", "Alex", "--email",
                              "alex@patient.example", "--verified",
                              "--consent"))
    a["token_noauthor"] = d.ctl("client", "add", "--practice",
                                a["practice"], "--name", "no-author")
    b = d.setup_practice("hillside.example", "Hillside",
                         patient_email="kim@patient.example")
    return a, b


def good_submission(d, a, name):
    """A plain good submission still works; returns its letter ids."""
    r = submit(d.smtp_port, a["token"], a["clinician_email"],
               ["patient-%d@%s" % (a["patient"], a["domain"])],
               message(subject="still alive"))
    code_is(r, 250, "2.0.0", "good submission after %s" % name)
    return queued_ids(r[1])


def test_basics(d, a):
    port = d.smtp_port
    rcpt = "patient-%d@%s" % (a["patient"], a["domain"])

    c = Client(port)
    tap.ok(c.code == 220 and "sealpost.test ESMTP sealpost" in c.greeting,
           "greeting is 220 <hostname> ESMTP sealpost")
    code, text = c.ehlo()
    ext = [line[4:] for line in text.splitlines()]
    tap.ok(code == 250 and "SIZE 102400" in ext and "8BITMIME" in ext and
           "PIPELINING" in ext and "ENHANCEDSTATUSCODES" in ext,
           "EHLO advertises SIZE, 8BITMIME, PIPELINING, ENHANCEDSTATUSCODES")
    tap.ok("AUTH PLAIN" in ext, "EHLO advertises AUTH PLAIN on loopback")
    tap.ok("STARTTLS" not in ext and "CHUNKING" not in ext,
           "no STARTTLS without a certificate, no CHUNKING")
    code_is(c.cmd("STARTTLS"), 454, "4.7.0", "STARTTLS without TLS is 454")
    code_is(c.cmd("QUIT"), 221, "2.0.0", "QUIT is 221")
    tap.ok(c.closed(), "QUIT closes the connection")
    c.close()

    # swaks, the real client
    canary = "canary-" + uuid.uuid4().hex
    rc, out = swaks(port, a["token"], a["clinician_email"], rcpt,
                    ["--header", "Subject: Blood test %s" % canary,
                     "--body", "Dear Jo, %s all normal." % canary])
    ids = queued_ids(out)
    if not tap.ok(rc == 0 and len(ids) == 1,
                  "swaks AUTH PLAIN submission gets 250 with a letter id"):
        tap.diag(out)
        return
    info = letter_show(d, ids[0])
    tap.ok(info.get("channel") == "smtp" and
           info.get("patient") == str(a["patient"]) and
           info.get("author") == str(a["clinician"]) and
           info.get("practice") == str(a["practice"]),
           "the letter is in the database: channel smtp, patient, author")
    dbdir = d.dir
    blob = b""
    for f in os.listdir(dbdir):
        if f.startswith("sealpost.db"):
            with open(os.path.join(dbdir, f), "rb") as fh:
                blob += fh.read()
    tap.ok(blob and canary.encode() not in blob,
           "no clear content in the database files (sealed)")
    log = d.log_text()
    tap.ok(canary not in log and a["token"] not in log,
           "no content and no token in the daemon log")
    smtp_lines = [l for l in log.splitlines() if "smtp session=" in l]
    tap.ok(smtp_lines and all("@" not in l for l in smtp_lines),
           "smtp log lines carry no addresses (%d lines)" % len(smtp_lines))
    tap.ok(any("event=queued client=" in l and
               "patients=%d letters=%d" % (a["patient"], ids[0]) in l
               for l in smtp_lines),
           "one record line names the patient id and the letter id")

    # idempotency: the same message twice is one letter
    msg = message(msgid="<idem-%s@test>" % uuid.uuid4().hex)
    before = letters(d)
    r1 = submit(port, a["token"], a["clinician_email"], [rcpt], msg)
    r2 = submit(port, a["token"], a["clinician_email"], [rcpt], msg)
    tap.ok(r1[0] == 250 and r2[0] == 250 and
           queued_ids(r1[1]) == queued_ids(r2[1]) and
           letters(d) == before + 1,
           "the same message twice is one letter, same id both times")

    # a Message-ID too long for the idempotency key: the hash stands in
    for n in (190, 245, 300):
        long_id = "<%s@test>" % ("x" * n)
        msg = message(msgid=long_id)
        before = letters(d)
        r1 = submit(port, a["token"], a["clinician_email"], [rcpt], msg)
        r2 = submit(port, a["token"], a["clinician_email"], [rcpt], msg)
        tap.ok(r1[0] == 250 and r2[0] == 250 and
               queued_ids(r1[1]) == queued_ids(r2[1]) and
               letters(d) == before + 1,
               "a %d-octet Message-ID: accepted once, the repeat is the "
               "same letter" % len(long_id))

    # two recipients: two letters
    r = submit(port, a["token"], a["clinician_email"],
               [rcpt, "patient-%d@%s" % (a["patient2"], a["domain"])],
               message())
    ids2 = queued_ids(r[1])
    tap.ok(r[0] == 250 and len(ids2) == 2 and len(set(ids2)) == 2,
           "two recipients: 250 with two letter ids")
    if len(ids2) == 2:
        tap.ok(letter_show(d, ids2[1]).get("patient") ==
               str(a["patient2"]), "the second letter is the second "
               "patient's")
    else:
        tap.skip("no second letter")

    # priority from the header
    r = submit(port, a["token"], a["clinician_email"], [rcpt],
               message(headers=["Importance: high"]))
    ids3 = queued_ids(r[1])
    tap.ok(r[0] == 250 and ids3 and
           letter_show(d, ids3[0]).get("priority") == "urgent",
           "Importance: high makes an urgent letter")
    r = submit(port, a["token"], a["clinician_email"], [rcpt], message())
    ids4 = queued_ids(r[1])
    tap.ok(r[0] == 250 and ids4 and
           letter_show(d, ids4[0]).get("priority") == "routine",
           "a plain message is routine")


def test_auth(d, a):
    port = d.smtp_port
    c = Client(port)
    c.ehlo()
    code_is(c.cmd("MAIL FROM:<%s>" % a["clinician_email"]), 530, "5.7.0",
            "MAIL before AUTH is 530 5.7.0")
    code_is(c.auth("spt_not-a-real-token"), 535, "5.7.8",
            "a wrong token is 535 5.7.8")
    code_is(c.cmd("AUTH PLAIN !!notbase64!!"), 501, "5.5.2",
            "undecodable AUTH PLAIN is 501")
    code_is(c.cmd("AUTH LOGIN"), 504, "5.5.4", "AUTH LOGIN is 504")
    r = c.auth("spt_another-wrong-token")
    code_is(r, 535, "5.7.8", "third bad AUTH is 535 ...")
    r2 = c.reply() if r[0] == 535 else r
    code_is(r2, 421, "4.7.0", "... followed by 421 4.7.0")
    tap.ok(c.closed(), "and the session is closed")
    c.close()

    # the SASL exchange without an initial response, and cancelling it
    c = Client(port)
    c.ehlo()
    r = c.cmd("AUTH PLAIN")
    tap.ok(r[0] == 334, "AUTH PLAIN without a response gets 334")
    code_is(c.cmd("*"), 501, None, "'*' cancels the exchange with 501")
    c.cmd("AUTH PLAIN")
    raw = b"\0client\0" + a["token"].encode()
    code_is(c.cmd(base64.b64encode(raw).decode()), 235, "2.7.0",
            "the token after 334 authenticates (235 2.7.0)")
    code_is(c.auth(a["token"]), 503, "5.5.1", "a second AUTH is 503")
    c.cmd("QUIT")
    c.close()


def test_rcpt_rules(d, a, b):
    port = d.smtp_port
    c = Client(port)
    c.ehlo()
    c.auth(a["token"])
    code_is(c.cmd("RCPT TO:<patient-%d@%s>" % (a["patient"], a["domain"])),
            503, "5.5.1", "RCPT before MAIL is 503 5.5.1")
    code_is(c.cmd("DATA"), 503, "5.5.1", "DATA before MAIL is 503 5.5.1")
    code_is(c.cmd("MAIL FROM:<%s> SIZE=999999999" % a["clinician_email"]),
            552, "5.3.4", "MAIL SIZE over the limit is 552 5.3.4")
    code_is(c.cmd("MAIL FROM:<%s> SMTPUTF8" % a["clinician_email"]),
            555, "5.5.4", "an unknown MAIL parameter is 555 5.5.4")
    code_is(c.cmd("MAIL FROM:<not an address>"), 501, "5.1.7",
            "a malformed sender is 501 5.1.7")
    c.cmd("QUIT")
    c.close()

    # (a session closes after 10 errors: a new one every few checks)
    c = Client(port)
    c.ehlo()
    c.auth(a["token"])
    code_is(c.cmd("MAIL FROM:<%s>" % a["clinician_email"]), 250, "2.1.0",
            "MAIL FROM a clinician is 250")
    code_is(c.cmd("MAIL FROM:<%s>" % a["clinician_email"]), 503, "5.5.1",
            "a nested MAIL is 503 5.5.1")
    code_is(c.cmd("DATA"), 554, "5.5.1",
            "DATA without recipients is 554 5.5.1")
    code_is(c.cmd("RCPT TO:<patient-999999@%s>" % a["domain"]), 550,
            "5.1.1", "an unknown patient is 550 5.1.1")
    code_is(c.cmd("RCPT TO:<patient-%d@%s>" % (b["patient"], a["domain"])),
            550, "5.1.1", "another practice's patient under our domain is "
            "550 5.1.1")
    c.cmd("QUIT")
    c.close()

    c = Client(port)
    c.ehlo()
    c.auth(a["token"])
    c.cmd("MAIL FROM:<%s>" % a["clinician_email"])
    code_is(c.cmd("RCPT TO:<patient-%d@%s>" % (b["patient"], b["domain"])),
            550, "5.7.1", "another practice's domain is 550 5.7.1")
    code_is(c.cmd("RCPT TO:<%s>" % a["clinician_email"]), 550, "5.1.1",
            "a non-patient address is 550 5.1.1")
    code_is(c.cmd("RCPT TO:<patient-0@%s>" % a["domain"]), 550, "5.1.1",
            "patient-0 is 550 5.1.1")
    code_is(c.cmd("RCPT TO:<patient-%d@%s> NOTIFY=NEVER" %
                  (a["patient"], a["domain"])), 555, "5.5.4",
            "RCPT parameters are 555 5.5.4")
    code_is(c.cmd("RCPT TO:<patient-%d@%s>" % (a["patient"], a["domain"])),
            250, "2.1.5", "RCPT of our patient is 250")
    code_is(c.cmd("RCPT TO:<patient-%d@%s>" % (a["patient2"], a["domain"])),
            250, "2.1.5", "a second patient is 250")
    code_is(c.cmd("RCPT TO:<patient-%d@%s>" % (a["patient3"], a["domain"])),
            452, "4.5.3", "a third patient over max_recipients=2 is 452 "
            "4.5.3")
    code_is(c.cmd("RSET"), 250, "2.0.0", "RSET is 250")
    code_is(c.cmd("RCPT TO:<patient-%d@%s>" % (a["patient"], a["domain"])),
            503, "5.5.1", "RSET ends the transaction")
    c.cmd("QUIT")
    c.close()

    # the author: a client without a default author needs a clinician's
    # address in MAIL FROM
    c = Client(port)
    c.ehlo()
    c.auth(a["token_noauthor"])
    code_is(c.cmd("MAIL FROM:<someone@elsewhere.example>"), 550, "5.7.1",
            "a sender who is no clinician (no default author) is 550 5.7.1")
    code_is(c.cmd("MAIL FROM:<>"), 550, "5.7.1",
            "the null sender without a default author is 550 5.7.1")
    code_is(c.cmd("MAIL FROM:<%s>" % a["clinician_email"]), 250, "2.1.0",
            "the clinician's own address is accepted")
    c.cmd("QUIT")
    c.close()
    # with a default author, another sender falls back to it
    r = submit(port, a["token"], "reception@elsewhere.example",
               ["patient-%d@%s" % (a["patient"], a["domain"])], message())
    ids = queued_ids(r[1])
    tap.ok(r[0] == 250 and ids and letter_show(d, ids[0]).get("author") ==
           str(a["clinician"]), "another sender falls back to the client's "
           "default author")


def test_commands(d, a):
    port = d.smtp_port
    c = Client(port)
    code_is(c.cmd("MAIL FROM:<%s>" % a["clinician_email"]), 503, "5.5.1",
            "MAIL before EHLO is 503 5.5.1")
    code_is(c.cmd("HELO client.test"), 250, None, "HELO works")
    code_is(c.cmd("NOOP"), 250, "2.0.0", "NOOP is 250")
    code_is(c.cmd("VRFY patient-1"), 252, None, "VRFY is 252")
    code_is(c.cmd("HELP"), 214, None, "HELP is 214")
    code_is(c.cmd("BDAT 10 LAST"), 502, "5.5.1", "BDAT is 502 (no "
            "CHUNKING)")
    code_is(c.cmd("FOO bar"), 500, "5.5.1", "an unknown command is 500 "
            "5.5.1")
    code_is(c.cmd("NOOP " + "x" * 600), 500, "5.5.2",
            "a 600-byte command line is 500 5.5.2")
    code_is(c.cmd("NOOP\nNOOP"), 500, "5.5.2",
            "a bare LF in a command is 500 5.5.2")
    code_is(c.reply(), 250, "2.0.0", "... and what follows the LF is the "
            "next command")
    code_is(c.cmd("NOOP \x00x"), 500, "5.5.2", "a NUL in a command is 500 "
            "5.5.2")
    code_is(c.cmd("NOOP"), 250, "2.0.0", "the session goes on after them")
    c.close()

    # an endless line closes the session
    c = Client(port)
    c.ehlo()
    c.send("NOOP " + "y" * 4000)
    r = c.reply()
    code_is(r, 500, "5.5.2", "4000 bytes without a line end is 500 5.5.2")
    tap.ok(c.closed(), "... and closes the session")
    c.close()

    # a client pipelining without reading replies is paused, not buffered
    def rss_kb():
        with open("/proc/%d/status" % d.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(1)
    rss0 = rss_kb()
    flood = b"NOOP\r\n" * (1024 * 1024 // 6)
    sent = 0
    t0 = time.time()
    while time.time() - t0 < 8:
        try:
            sent += sock.send(flood)
        except (socket.timeout, TimeoutError):
            pass
    grown = rss_kb() - rss0
    tap.ok(grown < 8 * 1024,
           "pipelined NOOPs for 8 s, replies unread: the daemon stops "
           "reading (took %d MB, RSS +%d KB)" % (sent >> 20, grown))
    sock.close()

    # ten errors close the session
    c = Client(port)
    c.ehlo()
    codes = [c.cmd("XYZZY")[0] for _ in range(10)]
    r = c.reply()
    tap.ok(codes == [500] * 10 and r[0] == 421 and c.closed(),
           "ten errors: 421 and the session is closed")
    c.close()


def test_data_rules(d, a):
    port = d.smtp_port
    rcpt = "patient-%d@%s" % (a["patient"], a["domain"])
    sender = a["clinician_email"]

    def session():
        c = Client(port)
        c.ehlo()
        c.auth(a["token"])
        return c

    before = letters(d)
    c = session()
    big = message(body=("x" * 70 + "\r\n") * 1600)      # ~115 KB > 100K
    r = transaction(c, sender, [rcpt], big)[-1]
    code_is(r, 552, "5.3.4", "a message over max_letter_size is 552 5.3.4")
    code_is(c.cmd("NOOP"), 250, "2.0.0", "the session goes on after 552")
    hdr = message(headers=["X-Filler-%d: %s" % (i, "h" * 60)
                           for i in range(200)])     # ~14 KB > 8K header
    r = transaction(c, sender, [rcpt], hdr)[-1]
    code_is(r, 552, "5.3.4", "a header section over max_header_size is 552 "
            "5.3.4")
    r = transaction(c, sender, [rcpt], message(body="z" * 1200))[-1]
    code_is(r, 500, "5.6.0", "a 1202-byte DATA line is 500 5.6.0")
    r = transaction(c, sender, [rcpt], message(body="nul\x00here"))[-1]
    code_is(r, 554, "5.6.0", "a NUL in DATA is 554 5.6.0")
    r = transaction(c, sender, [rcpt], message(body="bare\nLF"))[-1]
    code_is(r, 550, "5.6.0", "a bare LF in DATA is 550 5.6.0")
    r = transaction(c, sender, [rcpt], message(body="bare\rCR"))[-1]
    code_is(r, 550, "5.6.0", "a bare CR in DATA is 550 5.6.0")
    c.cmd("QUIT")
    c.close()
    tap.is_eq(letters(d), before, "no letter from any refused message")

    # SMTP smuggling (github.com/hannob/smtpsmug): the smuggled
    # transaction must never run; the one message is refused at the real
    # end, and only then
    variants = [("\\n.\\n", b"\n.\n"), ("\\r.\\r", b"\r.\r"),
                ("\\n.\\r\\n", b"\n.\r\n"), ("\\r\\n.\\n", b"\r\n.\n"),
                ("\\r\\n.\\r", b"\r\n.\r"), ("\\r.\\n", b"\r.\n"),
                ("\\n.\\r", b"\n.\r"), ("\\r\\n\\x00.\\r\\n", b"\r\n\0.\r\n")]
    for name, seq in variants:
        before = letters(d)
        c = session()
        c.cmd("MAIL FROM:<%s>" % sender)
        c.cmd("RCPT TO:<%s>" % rcpt)
        c.cmd("DATA")
        smuggled = ("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" %
                    (sender, rcpt)).encode() + message(subject="smuggled")
        c.send(message(subject="carrier") + b"text" + seq + smuggled +
               b"\r\n.\r\n" + b"QUIT\r\n")
        replies = []
        try:
            while True:
                replies.append(c.reply())
                if replies[-1][0] == 221:
                    break
        except (EOFError, OSError):
            pass
        c.close()
        codes = [r[0] for r in replies]
        want = 554 if b"\0" in seq else 550
        if not tap.ok(codes == [want, 221] and
                      "5.6.0" in replies[0][1],
                      "smuggling %s: one refusal (%d 5.6.0), no second "
                      "transaction" % (name, want)):
            tap.diag("  replies: %r" % replies)
        tap.is_eq(letters(d), before, "smuggling %s: no letter" % name)

    # pipelining: a legitimate group, and QUIT after the final dot
    c = session()
    c.send("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (sender, rcpt))
    codes = [c.reply()[0] for _ in range(3)]
    tap.is_eq(codes, [250, 250, 354], "pipelined MAIL, RCPT, DATA: 250 250 "
              "354")
    c.send(dot_stuff(message()) + b".\r\nQUIT\r\n")
    r1, r2 = c.reply(), c.reply()
    tap.ok(r1[0] == 250 and queued_ids(r1[1]) and r2[0] == 221,
           "the message and a pipelined QUIT: 250 then 221")
    c.close()

    # pipelining abuse: the message sent before 354
    before = letters(d)
    c = session()
    c.send("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (sender, rcpt) +
           dot_stuff(message()).decode() + ".\r\n")
    replies = []
    try:
        while True:
            replies.append(c.reply())
    except (EOFError, OSError):
        pass
    codes = [r[0] for r in replies]
    if not tap.ok(codes == [250, 250, 554] and "5.5.0" in replies[-1][1],
                  "data sent before 354 is 554 5.5.0 improper pipelining"):
        tap.diag("  replies: %r" % replies)
    tap.ok(c.closed(1), "... and the session is closed")
    c.close()
    tap.is_eq(letters(d), before, "no letter from the improper pipelining")


def test_disconnect_during_commit(d, a):
    """The client leaves right after the final dot: the letter is still
    committed and the daemon is fine."""
    before = letters(d)
    c = Client(d.smtp_port)
    c.ehlo()
    c.auth(a["token"])
    c.cmd("MAIL FROM:<%s>" % a["clinician_email"])
    c.cmd("RCPT TO:<patient-%d@%s>" % (a["patient"], a["domain"]))
    c.cmd("DATA")
    c.send(dot_stuff(message()) + b".\r\n")
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    deadline = time.time() + 20
    while time.time() < deadline and letters(d) != before + 1:
        time.sleep(0.1)
    tap.is_eq(letters(d), before + 1, "a client leaving after the final dot "
              "still gets its letter committed")
    tap.ok(d.running(), "the daemon survives it")


def test_shutdown(d):
    """SIGTERM: an idle session is told 421 4.3.2; the daemon exits 0."""
    c = Client(d.smtp_port)
    c.ehlo()
    d.proc.send_signal(signal.SIGTERM)
    try:
        r = c.reply()
    except (EOFError, OSError) as e:
        r = (0, str(e))
    code_is(r, 421, "4.3.2", "SIGTERM: an idle session gets 421 4.3.2")
    tap.ok(c.closed(), "... and is closed")
    c.close()
    tap.is_eq(d.stop(), 0, "the daemon stops cleanly (exit 0)")


def run_plain():
    d = st.Daemon(config={
        "smtp": {"max_recipients": "2", "max_header_size": "8K"},
        "limits": {"max_letter_size": "100K"},
    })
    try:
        a, b = setup(d)
        d.start()
    except Exception as e:          # noqa: BLE001
        tap.diag(str(e))
        d.cleanup()
        tap.bail("could not set up the daemon")
    try:
        test_basics(d, a)
        good_submission(d, a, "the basics")
        test_auth(d, a)
        good_submission(d, a, "AUTH failures")
        test_rcpt_rules(d, a, b)
        good_submission(d, a, "recipient refusals")
        test_commands(d, a)
        good_submission(d, a, "command errors")
        test_data_rules(d, a)
        good_submission(d, a, "DATA refusals, smuggling and pipelining")
        test_disconnect_during_commit(d, a)
        good_submission(d, a, "a disconnect during the commit")
        tap.ok("panic" not in d.log_text().lower() and d.running(),
               "no panic in the daemon log")
        test_shutdown(d)
    except Exception as e:          # noqa: BLE001
        tap.ok(False, "unexpected exception: %r" % e)
        tap.diag(d.log_tail())
    finally:
        d.cleanup()


# ---- TLS on loopback -----------------------------------------------------

def tls_ctx(minv=None, maxv=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minv is not None or maxv is not None:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        # TLS 1.0/1.1 are deprecated: offering them is the point here
        warnings.simplefilter("ignore", DeprecationWarning)
        if minv is not None:
            ctx.minimum_version = minv
        if maxv is not None:
            ctx.maximum_version = maxv
    return ctx


def run_tls():
    if not st.have("openssl"):
        tap.skip("openssl not installed: no TLS tests")
        return
    d = st.Daemon(config={"smtp": {"timeout": "3s", "max_sessions": "4"}})
    try:
        cert, key = st.make_self_signed(d.dir)
        d.config["smtp"]["tls_cert"] = cert
        d.config["smtp"]["tls_key"] = key
        d.write_config()
        a = d.setup_practice()
        d.start()
    except Exception as e:          # noqa: BLE001
        tap.diag(str(e))
        d.cleanup()
        tap.bail("could not set up the TLS daemon")
    port = d.smtp_port
    rcpt = "patient-%d@%s" % (a["patient"], a["domain"])
    try:
        c = Client(port)
        code, text = c.ehlo()
        ext = [line[4:] for line in text.splitlines()]
        tap.ok("STARTTLS" in ext and "AUTH PLAIN" in ext,
               "TLS listener on loopback: STARTTLS and AUTH PLAIN offered")
        # CVE-2011-0411: a command pipelined after STARTTLS
        c.send("STARTTLS\r\nAUTH PLAIN %s\r\n" % base64.b64encode(
            b"\0c\0" + a["token"].encode()).decode())
        r = c.reply()
        code_is(r, 554, "5.5.0", "a command pipelined after STARTTLS is "
                "554 5.5.0, not 220")
        tap.ok(c.closed(), "... and the session is closed")
        c.close()

        c = Client(port)
        c.ehlo()
        r = c.starttls()
        code_is(r, 220, "2.0.0", "STARTTLS is 220 2.0.0")
        ver = c.sock.version() if hasattr(c.sock, "version") else None
        tap.ok(ver in ("TLSv1.2", "TLSv1.3"), "TLS is up (%s)" % ver)
        code, text = c.ehlo()
        ext = [line[4:] for line in text.splitlines()]
        tap.ok("STARTTLS" not in ext and "AUTH PLAIN" in ext,
               "after STARTTLS: AUTH PLAIN, no STARTTLS")
        code_is(c.auth(a["token"]), 235, "2.7.0", "AUTH over TLS is 235")
        r = transaction(c, a["clinician_email"], [rcpt], message())[-1]
        code_is(r, 250, "2.0.0", "a submission over STARTTLS is 250")
        c.cmd("QUIT")
        c.close()
        tap.ok("event=starttls version=TLSv1." in d.log_text(),
               "the log records the TLS version")

        # TLS 1.1 is refused; the same client at 1.2 works (control)
        def handshake(ctx):
            c = Client(port)
            c.ehlo()
            try:
                c.starttls(ctx)
                c.ehlo()
                return True, c.sock.version()
            except (ssl.SSLError, OSError, EOFError) as e:
                return False, str(e)
            finally:
                c.close()
        good, info = handshake(tls_ctx(ssl.TLSVersion.TLSv1_2,
                                       ssl.TLSVersion.TLSv1_2))
        tap.ok(good, "a TLS 1.2 client is accepted (%s)" % info)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                old = (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)
            bad, info = handshake(tls_ctx(*old))
        except ValueError as e:
            bad, info = None, str(e)
        if bad is None or "NO_PROTOCOLS_AVAILABLE" in info.upper():
            tap.skip("this client cannot offer TLS 1.1: %s" % info)
        else:
            tap.ok(not bad, "a TLS 1.0/1.1 client is refused (%s)" % info)
            time.sleep(0.2)
            tap.ok("unsupported protocol" in d.log_text(),
                   "... by the server: its log says unsupported protocol")

        # swaks over STARTTLS
        rc, out = swaks(port, a["token"], a["clinician_email"], rcpt,
                        ["--tls"])
        if "TLS" in out and "not available" in out:
            tap.skip("swaks has no TLS support here")
        else:
            tap.ok(rc == 0 and queued_ids(out), "swaks --tls submission "
                   "gets 250")

        # max_sessions = 4
        time.sleep(0.3)
        held = [Client(port) for _ in range(4)]
        extra = Client(port)
        tap.ok(all(h.code == 220 for h in held) and extra.code == 421 and
               "4.7.0" in extra.greeting,
               "a fifth session over max_sessions=4 gets 421 4.7.0")
        extra.close()
        for h in held:
            h.close()

        # idle timeout (3s)
        time.sleep(0.3)
        c = Client(port)
        c.ehlo()
        t0 = time.time()
        try:
            r = c.reply()
        except (EOFError, OSError) as e:
            r = (0, str(e))
        dt = time.time() - t0
        tap.ok(r[0] == 421 and "4.4.2" in r[1] and 2 <= dt <= 10,
               "an idle session gets 421 4.4.2 after the timeout (%.1fs)"
               % dt)
        tap.ok(c.closed(), "... and is closed")
        c.close()
        r = submit(port, a["token"], a["clinician_email"], [rcpt],
                   message())
        code_is(r, 250, "2.0.0", "the TLS daemon still takes a submission")
        tap.is_eq(d.stop(), 0, "the TLS daemon stops cleanly")
    except Exception as e:          # noqa: BLE001
        tap.ok(False, "unexpected exception: %r" % e)
        tap.diag(d.log_tail())
    finally:
        d.cleanup()


# ---- off loopback, inside a private network namespace --------------------

def netns_child():
    """Runs inside `unshare -n`: lo is up and has NETNS_ADDR.  Prints
    "ok - name" / "not ok - name" / "# diag" lines for the parent."""
    def ok(cond, name):
        print("%s - %s" % ("ok" if cond else "not ok", name), flush=True)
        return cond

    def diag(msg):
        for line in str(msg).splitlines():
            print("# " + line, flush=True)

    # off loopback, no TLS, no allow_plaintext: refused at start
    d = st.Daemon(config={"http": {"listen": ""}})
    try:
        d.config["smtp"]["listen"] = "%s:%d" % (NETNS_ADDR, st.free_port())
        d.write_config()
        d.start(timeout=10)
        ok(False, "a plaintext listener off loopback is refused")
    except RuntimeError as e:
        ok("exited with 78" in str(e) and "loopback" in str(e),
           "a plaintext listener off loopback is refused (exit 78)")
    finally:
        d.cleanup()

    # off loopback with TLS: AUTH only after STARTTLS
    d = st.Daemon(config={"http": {"listen": ""}})
    try:
        cert, key = st.make_self_signed(d.dir)
        port = st.free_port()
        d.config["smtp"].update({"listen": "%s:%d" % (NETNS_ADDR, port),
                                 "tls_cert": cert, "tls_key": key})
        d.write_config()
        a = d.setup_practice()
        d.start()
        rcpt = "patient-%d@%s" % (a["patient"], a["domain"])
        c = Client(port, NETNS_ADDR)
        code, text = c.ehlo()
        ext = [line[4:] for line in text.splitlines()]
        ok("STARTTLS" in ext and "AUTH PLAIN" not in ext,
           "off loopback: STARTTLS offered, AUTH not before it")
        r = c.auth(a["token"])
        ok(r[0] == 538 and "5.7.11" in r[1],
           "off loopback: AUTH before STARTTLS is 538 5.7.11")
        r = c.cmd("MAIL FROM:<%s>" % a["clinician_email"])
        ok(r[0] == 530, "off loopback: MAIL before AUTH is 530")
        c.starttls()
        code, text = c.ehlo()
        ext = [line[4:] for line in text.splitlines()]
        ok("AUTH PLAIN" in ext, "off loopback: AUTH offered after STARTTLS")
        ok(c.auth(a["token"])[0] == 235, "off loopback: AUTH over TLS is "
           "235")
        r = transaction(c, a["clinician_email"], [rcpt], message())[-1]
        ok(r[0] == 250, "off loopback: submission over TLS is 250")
        c.close()
        ok(d.stop() == 0, "off loopback TLS daemon stops cleanly")
    except Exception as e:          # noqa: BLE001
        ok(False, "off loopback TLS: %r" % e)
        diag(d.log_tail())
    finally:
        d.cleanup()

    # off loopback, allow_plaintext: AUTH allowed without TLS
    d = st.Daemon(config={"http": {"listen": ""}})
    try:
        port = st.free_port()
        d.config["smtp"].update({"listen": "%s:%d" % (NETNS_ADDR, port),
                                 "allow_plaintext": "yes"})
        d.write_config()
        a = d.setup_practice()
        d.start()
        c = Client(port, NETNS_ADDR)
        code, text = c.ehlo()
        ok("AUTH PLAIN" in text and "STARTTLS" not in text,
           "allow_plaintext off loopback: AUTH offered, no STARTTLS")
        ok(c.auth(a["token"])[0] == 235,
           "allow_plaintext off loopback: AUTH is 235")
        c.close()
    except Exception as e:          # noqa: BLE001
        ok(False, "allow_plaintext off loopback: %r" % e)
        diag(d.log_tail())
    finally:
        d.cleanup()


def run_netns():
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up && ip addr add "
         "%s/32 dev lo" % NETNS_ADDR], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    if probe.returncode != 0:
        tap.skip("no private network namespace (unshare -n: %s): the "
                 "off-loopback rules are not exercised" %
                 probe.stdout.strip()[:80])
        return
    r = subprocess.run(
        ["unshare", "-n", "sh", "-c",
         'ip link set lo up && ip addr add %s/32 dev lo && exec "$0" "$1" '
         '--netns-child' % NETNS_ADDR, sys.executable,
         os.path.abspath(__file__)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=300)
    seen = 0
    for line in r.stdout.splitlines():
        if line.startswith("ok - "):
            tap.ok(True, line[5:])
            seen += 1
        elif line.startswith("not ok - "):
            tap.ok(False, line[9:])
            seen += 1
        else:
            tap.diag(line)
    tap.ok(r.returncode == 0 and seen >= 8,
           "the network-namespace part ran (%d checks, exit %d)" %
           (seen, r.returncode))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--netns-child":
        netns_child()
        return
    if not os.path.exists(st.prog("sealpostd")):
        tap.bail("no sealpostd in %s" % st.builddir())
    if not st.have("swaks"):
        tap.bail("swaks is not installed")
    run_plain()
    run_tls()
    run_netns()
    tap.done()


if __name__ == "__main__":
    main()
