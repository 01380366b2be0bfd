#!/usr/bin/env python3
"""t_relay.py - src/relay.c against real SMTP servers on loopback
(TESTPLAN.md T6 and the relay half of T15).

The client is tests/relay_send (one relay_send() per message over one
session; results on stdout).  The servers:

  - Postfix (tests/rig/postfix.sh) as the smarthost, STARTTLS with a test
    CA certificate (tests/rig/testca.sh), relaying to smtp-sink, which
    dumps every message: byte comparison, three messages on one
    connection, per-recipient replies from an access map (550, 554, 451,
    452, 421), sender rejects at MAIL and at DATA, rejects at end of data,
    a second listener with a wrong-name certificate (its log proves no
    MAIL/AUTH came after the failed verification), an smtps listener.
  - tests/rig/smtp_script.py (python3-aiosmtpd) for what Postfix cannot
    do on demand: AUTH PLAIN/LOGIN with a known user, the certificate
    failures with a record of every command received, a server stuck at
    TLS 1.1, SNI, STARTTLS response injection, no STARTTLS, implicit
    TLS, stalls at one exact command (timeout bounds measured), 421
    mid-session, a drop after the message, 452 on the N-th RCPT, an idle
    session the server dropped.

Plus: refusals before connecting (bad addresses, plaintext off loopback),
connection refused, relay_cancel() from another thread, and the password
never appearing in the driver's output.  With SEALPOST_ASAN_BUILDDIR set
(tests/run --asan-builddir) the main cases run again with that build's
driver.  Postfix needs root and the postfix package; smtp_script.py needs
python3-aiosmtpd: without them those cases are skipped, saying why.
TAP output.
"""

import concurrent.futures
import os
import select
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sealpost_test as st  # noqa: E402

tap = st.Tap()
RIG = os.path.join(st.SRCDIR, "tests", "rig")
PASSWORD = "Pw-9f3c1e77-relay-secret"
USER = "relayuser"
TMP = tempfile.mkdtemp(prefix="sealpost-relay-")
CA = os.path.join(TMP, "ca")

MESSAGE = (
    b"From: Practice <practice@rig.test>\r\n"
    b"To: patient@rig.test\r\n"
    b"Subject: relay test\r\n"
    b"Date: Mon, 1 Jan 2024 09:00:00 +0000\r\n"
    b"Message-ID: <relay-test-1@rig.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b".a line that starts with a dot\r\n"
    b"..two dots\r\n"
    b".\r\n"
    b"\r\n"
    b"caf\xc3\xa9 8-bit text\r\n"
    + b"x" * 998 + b"\r\n"
    b"last line\r\n")


# ---- the driver -------------------------------------------------------------

class Result:
    """One relay_send run: sends, per-recipient results, raw output."""

    def __init__(self, proc, elapsed):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        self.elapsed = elapsed
        self.sends = []
        self.rcpts = {}
        self.end = None
        for line in self.out.splitlines():
            f = line.split(" ", 5)
            if f[0] == "send" and len(f) >= 6:
                self.sends.append({"result": f[2], "ms": int(f[3]),
                                   "conn": f[4], "err": f[5]})
            elif f[0] == "rcpt" and len(f) >= 6:
                self.rcpts[(int(f[1]), int(f[2]))] = (int(f[3]), f[4], f[5])
            elif f[0] == "end":
                self.end = f[1]

    def result(self, i=1):
        return self.sends[i - 1]["result"] if len(self.sends) >= i else None

    def error(self, i=1):
        return self.sends[i - 1]["err"] if len(self.sends) >= i else ""

    def code(self, i, j):
        return self.rcpts.get((i, j), (None,))[0]

    def diag(self):
        tap.diag("relay_send exit %s\n%s%s" % (self.rc, self.out,
                                               self.err[-2000:]))


def driver_path(build):
    return os.path.join(build, "tests", "relay_send")


DRIVER = driver_path(st.builddir())
ASAN_BUILD = os.environ.get("SEALPOST_ASAN_BUILDDIR") or ""
ASAN_DRIVER = driver_path(ASAN_BUILD) if ASAN_BUILD else None
if ASAN_DRIVER and not os.access(ASAN_DRIVER, os.X_OK):
    ASAN_DRIVER = None


def send(port, *args, host="127.0.0.1", to=("ok@rig.test",),
         sender="practice@rig.test", message=MESSAGE, ca=True, driver=None,
         timeout=60):
    """Run relay_send against host:port; extra args as given."""
    fd, msgfile = tempfile.mkstemp(dir=TMP, suffix=".eml")
    with os.fdopen(fd, "wb") as f:
        f.write(message)
    cmd = [driver or DRIVER, "--host", host, "--port", str(port),
           "--from", sender, "--message", msgfile]
    if ca:
        cmd += ["--ca-file", os.path.join(CA, "ca.crt")]
    for t in to:
        cmd += ["--to", t]
    cmd += [str(a) for a in args]
    env = dict(os.environ)
    if driver is not None and driver == ASAN_DRIVER:
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        env.setdefault("UBSAN_OPTIONS",
                       "print_stacktrace=1:halt_on_error=1")
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, errors="replace", timeout=timeout, env=env)
    return Result(p, time.monotonic() - t0)


def expect(r, result, name, i=1):
    """ok(result of send i == result), with the output when not."""
    good = tap.ok(r.result(i) == result,
                  "%s: %s (%s)" % (name, result, r.error(i)))
    if not good:
        r.diag()
    return good


# ---- smtp_script.py ----------------------------------------------------------

def aiosmtpd_python():
    """An interpreter that can import aiosmtpd (the Debian package
    installs it for /usr/bin/python3, which may not be python3 on PATH)."""
    for py in (sys.executable, "/usr/bin/python3"):
        if py and os.access(py, os.X_OK) and subprocess.run(
                [py, "-c", "import aiosmtpd"], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL).returncode == 0:
            return py
    return None


PY = aiosmtpd_python()

# The scripted servers, by name: smtp_script.py options, TLS certificate
# (None: no TLS) and whether AUTH with USER/PASSWORD is required.  One
# process serves them all (one interpreter start); each has its own port
# and record.  PER_DRIVER ones are started again for the ASan driver
# (their counters, like "the 2nd MAIL", must start from zero).
PER_DRIVER = {
    "happy": ([], "server", True),
    "login": (["--auth-mechs", "LOGIN"], "server", True),
    "badpw": ([], "server", True),
    "badpw_login": (["--auth-mechs", "LOGIN"], "server", True),
    "noauth": (["--auth-mechs", "NONE"], "server", False),
    "cert_wrongname": ([], "wrongname", True),
    "cert_unknownca": ([], "unknownca", True),
    "cert_expired": ([], "expired", True),
    "cert_clientonly": ([], "clientonly", True),
    "nostarttls": (["--no-starttls"], "server", True),
    "inject": (["--starttls-inject"], "server", True),
    "systemstore": ([], "server", True),
    "implicit_wrong": (["--implicit"], "wrongname", False),
    "tls11": (["--max-tls", "1.1"], "server", True),
    "tls11_implicit": (["--max-tls", "1.1", "--implicit"], "server", False),
    "tls12": (["--max-tls", "1.2"], "server", False),
    "drop_dot": (["--drop-at", "DOT"], None, False),
    "greet421": (["--reply421-at", "GREETING"], None, False),
    "mail421": (["--reply421-at", "MAIL:2"], None, False),
    "rcpt452": (["--rcpt-452-at", "2", "--rcpt-reply",
                 "gone@rig.test=550 5.1.1 no such user"], None, False),
    "stall_GREETING": (["--stall-at", "GREETING"], None, False),
    "stall_EHLO": (["--stall-at", "EHLO"], None, False),
    "stall_MAIL": (["--stall-at", "MAIL"], None, False),
    "stall_RCPT": (["--stall-at", "RCPT"], None, False),
    "stall_DOT": (["--stall-at", "DOT"], None, False),
    "stall_HANDSHAKE": (["--stall-at", "HANDSHAKE"], "server", False),
    "stall_HANDSHAKE_implicit": (["--stall-at", "HANDSHAKE", "--implicit"],
                                 "server", False),
    "cancel": (["--stall-at", "MAIL:2"], "server", False),
    "input": ([], None, False),
}
ONCE = {
    "tlsname": ([], "server", False),
    "iplit": ([], "server", False),
    "badtlsname": ([], "server", False),
    "implicit": (["--implicit"], "server", False),
    "plain": ([], None, False),
    "reuse_drop": (["--drop-after-messages", "1"], None, False),
    "reuse_noop": ([], None, False),
    "reuse_idle": ([], None, False),
}


class Server:
    """One scripted server of a ServerSet: port, record, saved messages."""

    def __init__(self, name, directory):
        self.name = name
        self.dir = directory
        self.recfile = os.path.join(directory, "record")
        self.port = None

    def record(self):
        try:
            with open(self.recfile) as f:
                return [line.rstrip("\n") for line in f]
        except FileNotFoundError:
            return []

    def verbs(self):
        return [line.split(" ")[0] for line in self.record()]

    def saved(self, n):
        try:
            with open(os.path.join(self.dir, "save", "msg-%d.eml" % n),
                      "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None


class ServerSet:
    """One smtp_script.py --multi process serving the given specs."""

    def __init__(self, specs, tag):
        base = os.path.join(TMP, "script-" + (tag.strip(": ") or "main"))
        os.makedirs(base)
        self.servers = {}
        lines = []
        for name, (args, cert, auth) in specs.items():
            d = os.path.join(base, name)
            os.makedirs(os.path.join(d, "save"))
            srv = self.servers[name] = Server(name, d)
            opts = ["--record", srv.recfile, "--save-dir",
                    os.path.join(d, "save")] + list(args)
            if cert:
                opts += ["--cert", os.path.join(CA, cert + ".crt"),
                         "--key", os.path.join(CA, cert + ".key")]
            if auth:
                opts += ["--auth", "%s:%s" % (USER, PASSWORD)]
            lines.append(name + " " + " ".join(shlex.quote(o) for o in opts))
        multi = os.path.join(base, "servers")
        with open(multi, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.errpath = os.path.join(base, "stderr")
        self.errfile = open(self.errpath, "w")
        self.proc = subprocess.Popen(
            [PY, os.path.join(RIG, "smtp_script.py"), "--multi", multi],
            stdout=subprocess.PIPE, stderr=self.errfile)
        # "NAME PORT" lines, then READY; raw reads, so select() is honest.
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + 30
        while b"READY\n" not in buf:
            r, _, _ = select.select([fd], [], [],
                                    max(0, deadline - time.monotonic()))
            chunk = os.read(fd, 4096) if r else b""
            if not chunk:
                self.stop()
                with open(self.errpath) as e:
                    tap.bail("smtp_script.py did not start: %s"
                             % e.read()[-1500:])
            buf += chunk
        for line in buf.decode().splitlines():
            f = line.split()
            if len(f) == 2 and f[0] in self.servers:
                self.servers[f[0]].port = int(f[1])

    def __getitem__(self, name):
        return self.servers[name]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errfile.close()


def parallel(*calls):
    """Run the zero-argument calls at once (each waits on its own server);
    their results in order."""
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as ex:
        return [f.result() for f in [ex.submit(c) for c in calls]]


def no_mail_no_auth(s, name):
    """The server saw neither MAIL nor AUTH (after a TLS failure)."""
    v = s.verbs()
    if not tap.ok("MAIL" not in v and "AUTH" not in v,
                  "%s: server saw no MAIL, no AUTH" % name):
        tap.diag("record: %r" % s.record())


def within(r, lo, hi, name):
    """relay_send() took lo..hi seconds (as the driver measured it: the
    process itself may start slowly, under ASan on a busy machine)."""
    t = r.sends[0]["ms"] / 1000.0 if r.sends else -1
    if not tap.ok(lo <= t <= hi, "%s: returned after %.2f s (expected "
                  "%.1f..%.1f)" % (name, t, lo, hi)):
        r.diag()


# ---- cases with smtp_script.py ------------------------------------------------

def case_happy(S, driver, tag):
    """STARTTLS + AUTH PLAIN, three messages on one connection."""
    s = S["happy"]
    r = send(s.port, "--username", USER, "--password", PASSWORD,
             "--count", 3, "--debug", host="localhost",
             to=("a@rig.test", "b@rig.test"), driver=driver)
    for i in (1, 2, 3):
        expect(r, "ok", "%shappy send %d" % (tag, i), i)
    tap.ok(r.code(1, 0) == 250 and r.code(3, 1) == 250,
           "%shappy: 250 for every recipient" % tag)
    tap.ok([x["conn"] for x in r.sends] == ["open", "same", "same"],
           "%shappy: one conn reused" % tag)
    rec = s.record()
    tap.is_eq(rec.count("CONNECT"), 1, "%shappy: one connection for three "
              "messages" % tag)
    tap.ok("SNI localhost" in rec, "%shappy: SNI localhost sent" % tag)
    tap.ok("AUTH PLAIN" in rec and "AUTHRESULT PLAIN ok" in rec,
           "%shappy: AUTH PLAIN" % tag)
    mail = "MAIL FROM:<practice@rig.test> SIZE=%d BODY=8BITMIME" % len(
        MESSAGE)
    tap.ok("TLS" in rec and "AUTH PLAIN" in rec and mail in rec and
           rec.index("TLS") < rec.index("AUTH PLAIN") < rec.index(mail),
           "%shappy: TLS, then AUTH, then MAIL with SIZE and BODY" % tag)
    tap.ok(all(s.saved(i) == MESSAGE for i in (1, 2, 3)),
           "%shappy: the server got the exact bytes, three times" % tag)
    tap.ok(PASSWORD not in r.out + r.err,
           "%shappy: password not in the driver's output" % tag)
    tap.ok("QUIT" in rec and
           set(rec[rec.index("QUIT") + 1:]) <= {"CLOSE"},
           "%shappy: QUIT at the end" % tag)


def pwfile():
    path = os.path.join(TMP, "password")
    with open(path, "w") as f:
        f.write(PASSWORD + "\n")
    return path


def case_auth(S, driver, tag):
    s = S["login"]
    r = send(s.port, "--username", USER, "--password-file", pwfile(),
             "--debug", driver=driver)
    expect(r, "ok", "%sAUTH LOGIN" % tag)
    tap.ok("AUTHRESULT LOGIN ok" in s.record(),
           "%sAUTH LOGIN: server saw LOGIN succeed" % tag)
    tap.ok(PASSWORD not in r.out + r.err,
           "%sAUTH LOGIN: password not in the driver's output" % tag)
    s = S["badpw"]
    r = send(s.port, "--username", USER, "--password", "wrong-" + PASSWORD,
             "--debug", driver=driver)
    expect(r, "authfail", "%sbad password" % tag)
    tap.ok("535" in r.error(), "%sbad password: the 535 in err" % tag)
    tap.ok("MAIL" not in s.verbs(), "%sbad password: no MAIL" % tag)
    tap.ok(PASSWORD not in r.out + r.err,
           "%sbad password: password not in output" % tag)
    r = send(S["badpw_login"].port, "--username", USER, "--password", "nope",
             driver=driver)
    expect(r, "authfail", "%sbad password, LOGIN" % tag)
    s = S["noauth"]
    r = send(s.port, "--username", USER, "--password", PASSWORD,
             driver=driver)
    expect(r, "authfail", "%sneither PLAIN nor LOGIN offered" % tag)
    tap.ok("AUTH" not in s.verbs() and "MAIL" not in s.verbs(),
           "%sno usable mechanism: no AUTH, no MAIL" % tag)


def case_tls_failures(S, driver, tag):
    for cert, why in (("wrongname", "name in the certificate does not match"),
                      ("unknownca", "issuer is unknown"),
                      ("expired", "expired"),
                      ("clientonly", "intended purpose")):
        s = S["cert_" + cert]
        r = send(s.port, "--username", USER, "--password", PASSWORD,
                 "--tls-name", "localhost", driver=driver)
        expect(r, "tlsfail", "%s%s certificate" % (tag, cert))
        tap.ok(why in r.error(), "%s%s: err names it" % (tag, cert))
        tap.ok("TLS" in s.verbs(), "%s%s: the handshake was done" %
               (tag, cert))
        no_mail_no_auth(s, tag + cert)
    s = S["nostarttls"]
    r = send(s.port, "--username", USER, "--password", PASSWORD,
             driver=driver)
    expect(r, "tlsfail", "%sno STARTTLS offered" % tag)
    no_mail_no_auth(s, tag + "no STARTTLS")
    s = S["inject"]
    r = send(s.port, "--username", USER, "--password", PASSWORD,
             driver=driver)
    expect(r, "tlsfail", "%sSTARTTLS response injection" % tag)
    tap.ok("injection" in r.error(), "%sinjection: err says so" % tag)
    tap.ok(s.verbs().count("EHLO") == 1, "%sinjection: no second EHLO" % tag)
    no_mail_no_auth(s, tag + "injection")
    # No anchors for the test CA: the system store knows nothing of it.
    s = S["systemstore"]
    r = send(s.port, "--tls-name", "localhost", ca=False, driver=driver)
    expect(r, "tlsfail", "%ssystem trust store, private CA" % tag)
    no_mail_no_auth(s, tag + "system store")
    s = S["implicit_wrong"]
    r = send(s.port, "--tls", "implicit", "--tls-name", "localhost",
             driver=driver)
    expect(r, "tlsfail", "%simplicit TLS, wrong name" % tag)
    tap.ok("TLS" in s.verbs() and "EHLO" not in s.verbs(),
           "%simplicit wrong name: nothing sent, not even EHLO" % tag)
    # libetpan offers TLS 1.0 and 1.1 (GnuTLS "NORMAL"): refused after
    # the handshake, before anything is sent.
    s = S["tls11"]
    r = send(s.port, "--username", USER, "--password", PASSWORD,
             "--tls-name", "localhost", driver=driver)
    expect(r, "tlsfail", "%sserver with TLS 1.1 at most" % tag)
    tap.ok("TLS1.1 refused" in r.error(), "%sTLS 1.1: err says so" % tag)
    tap.ok("TLS" in s.verbs() and s.verbs().count("EHLO") == 1,
           "%sTLS 1.1: handshake done, no EHLO after it" % tag)
    no_mail_no_auth(s, tag + "TLS 1.1")
    s = S["tls11_implicit"]
    r = send(s.port, "--tls", "implicit", "--tls-name", "localhost",
             driver=driver)
    expect(r, "tlsfail", "%simplicit TLS 1.1" % tag)
    tap.ok("EHLO" not in s.verbs(), "%simplicit TLS 1.1: no EHLO" % tag)
    r = send(S["tls12"].port, "--tls-name", "localhost", driver=driver)
    expect(r, "ok", "%sserver with TLS 1.2 at most" % tag)


def case_tls_names(S):
    s = S["tlsname"]
    r = send(s.port, "--tls-name", "smarthost.rig.test")
    expect(r, "ok", "tls_name smarthost.rig.test to 127.0.0.1")
    tap.ok("SNI smarthost.rig.test" in s.record(), "tls_name: it is the SNI")
    s = S["iplit"]
    r = send(s.port)
    expect(r, "ok", "IP literal host verified against the IP SAN")
    tap.ok("SNI -" in s.record(), "IP literal: no SNI (RFC 6066)")
    r = send(S["badtlsname"].port, "--tls-name", "other.rig.test")
    expect(r, "tlsfail", "tls_name not in the certificate")
    s = S["implicit"]
    r = send(s.port, "--tls", "implicit", host="localhost")
    expect(r, "ok", "implicit TLS")
    tap.ok("SNI localhost" in s.record() and "STARTTLS" not in s.verbs(),
           "implicit TLS: SNI, no STARTTLS")


def case_plaintext(S):
    s = S["plain"]
    r = send(s.port, "--tls", "none", ca=False)
    expect(r, "config", "tls none without allow_plaintext")
    tap.ok("CONNECT" not in s.verbs(), "tls none refused: no connection")
    r = send(s.port, "--tls", "none", "--allow-plaintext", ca=False)
    expect(r, "ok", "tls none, allow_plaintext, 127.0.0.1")
    r = send(s.port, "--tls", "none", "--allow-plaintext", host="localhost",
             ca=False)
    expect(r, "ok", "tls none, allow_plaintext, localhost")
    r = send(s.port, "--tls", "starttls")
    expect(r, "tlsfail", "starttls required, server has none")
    r = send(25, "--tls", "none", "--allow-plaintext", host="192.0.2.1",
             ca=False)
    expect(r, "config", "plaintext to a non-loopback host")
    tap.ok(r.elapsed < 2, "non-loopback plaintext: refused at once")


PLAIN = ("--tls", "none", "--allow-plaintext")


def case_failures(S, driver, tag):
    r = send(S["drop_dot"].port, *PLAIN, driver=driver)
    expect(r, "tempfail", "%sdropped after DATA" % tag)
    tap.ok("may have been delivered" in r.error(),
           "%sdropped after DATA: err flags a possible duplicate" % tag)
    tap.is_eq(r.code(1, 0), 0, "%sdropped: rcpt code 0" % tag)
    r = send(S["greet421"].port, *PLAIN, driver=driver)
    expect(r, "tempfail", "%s421 greeting" % tag)
    tap.ok(r.error().startswith("greeting: 421"), "%s421 greeting: err" % tag)
    r = send(S["mail421"].port, *PLAIN, "--count", 2, driver=driver)
    expect(r, "ok", "%s421 mid-session: first message" % tag)
    expect(r, "tempfail", "%s421 mid-session: second message" % tag, 2)
    tap.is_eq(r.sends[1]["conn"] if len(r.sends) > 1 else None, "closed",
              "%s421 mid-session: conn closed" % tag)
    r = send(S["rcpt452"].port, *PLAIN, to=("a@rig.test", "b@rig.test",
                                            "gone@rig.test", "c@rig.test"),
             driver=driver)
    expect(r, "ok", "%s452 on the 2nd RCPT" % tag)
    tap.is_eq([r.code(1, j) for j in range(4)], [250, 452, 550, 250],
              "%s452 on the 2nd RCPT: per-recipient codes" % tag)
    tap.is_eq(r.rcpts.get((1, 1), (0, ""))[1], "4.5.3",
              "%s452: enhanced status" % tag)
    r = send(st.free_port(), *PLAIN, driver=driver)
    expect(r, "tempfail", "%sconnection refused" % tag)
    tap.ok("refused" in r.error(), "%sconnection refused: err" % tag)


def case_stalls(S, driver, tag):
    """Each stall ends within its configured timeout (1 s) + slack; the
    stalls run at once, each against its own server."""
    # Only the timeout the contract names for a phase is 1 s; the others
    # are 30 s, so a phase under the wrong timeout fails the bound.
    conn1 = ("--connect-timeout", 1, "--command-timeout", 30,
             "--data-timeout", 30)
    cmd1 = ("--connect-timeout", 30, "--command-timeout", 1,
            "--data-timeout", 30)
    data1 = ("--connect-timeout", 30, "--command-timeout", 30,
             "--data-timeout", 1)
    tls = ("--tls-name", "localhost")
    cases = [
        ("GREETING", "stall_GREETING", PLAIN + conn1, "tempfail"),
        ("EHLO", "stall_EHLO", PLAIN + cmd1, "tempfail"),  # plaintext phase
        ("MAIL", "stall_MAIL", PLAIN + cmd1, "tempfail"),
        ("RCPT", "stall_RCPT", PLAIN + cmd1, "tempfail"),
        ("the final dot", "stall_DOT", PLAIN + data1, "tempfail"),
        ("the STARTTLS handshake", "stall_HANDSHAKE", tls + conn1, "tlsfail"),
        ("the implicit TLS handshake", "stall_HANDSHAKE_implicit",
         tls + conn1 + ("--tls", "implicit"), "tlsfail"),
    ]
    results = parallel(*[
        (lambda c=c: send(S[c[1]].port, *c[2], driver=driver))
        for c in cases])
    for (what, _, _, want), r in zip(cases, results):
        name = "%sstall at %s" % (tag, what)
        expect(r, want, name)
        within(r, 0.9, 2.5, name)
        if want == "tempfail":
            tap.ok("timed out after 1 s" in r.error(),
                   "%s: err says timed out" % name)


def case_cancel(S, driver, tag):
    r = send(S["cancel"].port, "--command-timeout", 20, "--count", 2,
             "--cancel-after-ms", 300, "--tls-name", "localhost",
             driver=driver)
    expect(r, "ok", "%scancel: first send" % tag)
    expect(r, "tempfail", "%scancel: stalled second send" % tag, 2)
    tap.ok("cancelled" in r.error(2), "%scancel: err" % tag)
    ms = r.sends[1]["ms"] if len(r.sends) > 1 else -1
    tap.ok(250 <= ms < 2000, "%scancel: returned after %d ms, not the 20 s "
           "timeout" % (tag, ms))


def case_reuse(S):
    pause = ("--count", 2, "--pause-ms", 1300, "--debug")
    drop, noop, idle = parallel(
        lambda: send(S["reuse_drop"].port, *PLAIN, *pause),
        lambda: send(S["reuse_noop"].port, *PLAIN, *pause),
        lambda: send(S["reuse_idle"].port, *PLAIN, *pause,
                     "--idle-timeout", 1, "--close-idle"))
    expect(drop, "ok", "server dropped the idle session: first")
    expect(drop, "ok", "server dropped the idle session: second", 2)
    tap.ok(S["reuse_drop"].verbs().count("CONNECT") == 2 and
           "NOOP 0" in drop.err,
           "dropped idle session: NOOP got nothing, new connection")
    v = S["reuse_noop"].verbs()
    tap.ok(noop.result(2) == "ok" and v.count("CONNECT") == 1 and
           v.count("NOOP") == 1, "idle 1.3 s: NOOP, same session")
    v = S["reuse_idle"].verbs()
    second = [i for i, x in enumerate(v) if x == "CONNECT"][1:2]
    tap.ok(idle.result(2) == "ok" and len(second) == 1 and
           "QUIT" in v[:second[0]] and "NOOP" not in v,
           "relay_close_idle after idle_timeout: QUIT, new session")


def case_input(S, driver, tag):
    s = S["input"]
    for addr, what in (("a@rig.test\r\nRCPT TO:<evil@rig.test>", "CRLF"),
                       ("a@rig.test\nX", "LF"), ("a@rig.test>", ">"),
                       ("<a@rig.test", "<"), ("a b@rig.test", "space"),
                       ("a@rig\x01.test", "a control"),
                       ("a" * 250 + "@x.yz", "255 octets")):
        r = send(s.port, *PLAIN, to=("ok@rig.test", addr), driver=driver)
        expect(r, "input", "%saddress with %s" % (tag, what))
    r = send(s.port, *PLAIN, sender="x@rig.test\r\nRSET", driver=driver)
    expect(r, "input", "%ssender with CRLF" % tag)
    r = send(s.port, *PLAIN, message=b"Subject: x\r\n\r\nnul \x00 here\r\n",
             driver=driver)
    expect(r, "input", "%smessage with NUL" % tag)
    r = send(s.port, *PLAIN, message=b"Subject: x\r\n\r\nbare\nLF\r\n",
             driver=driver)
    expect(r, "input", "%smessage with a bare LF" % tag)
    tap.ok("bare LF" in r.error(), "%sbare LF: err says so" % tag)
    r = send(s.port, *PLAIN, "--helo", "bad helo", driver=driver)
    expect(r, "input", "%sHELO name with a space" % tag)
    tap.is_eq(s.record(), [], "%sinput refusals: nothing reached the server"
              % tag)


# ---- Postfix ----------------------------------------------------------------

class Postfix:
    """The smarthost: Postfix with STARTTLS, access maps, a wrong-name
    listener and an smtps listener, relaying to smtp-sink -d."""

    def __init__(self):
        self.dir = os.path.join(TMP, "postfix")
        self.dump = os.path.join(self.dir, "dump")
        os.makedirs(self.dump)
        shutil.chown(self.dump, "postfix")
        self.rig = os.path.join(RIG, "postfix.sh")
        maps = {
            "rcpt": "reject550@rig.test 550 5.1.1 scripted no such user\n"
                    "reject554@rig.test 554 5.7.1 scripted policy\n"
                    "temp451@rig.test 451 4.3.0 scripted try later\n"
                    "temp452@rig.test 452 4.5.3 scripted full\n"
                    "temp421@rig.test 421 4.7.0 scripted closing\n",
            "mail": "mailreject@rig.test 553 5.7.1 scripted bad sender\n"
                    "mailtemp@rig.test 450 4.7.1 scripted sender later\n",
            "data": "datareject@rig.test 554 5.7.1 scripted no data\n",
            "eod": "eodreject@rig.test 554 5.7.1 scripted end-of-data "
                   "reject\n"
                   "eodtemp@rig.test 451 4.7.1 scripted end-of-data defer\n",
        }
        for name, text in maps.items():
            with open(os.path.join(self.dir, "access-" + name), "w") as f:
                f.write(text)
        sink = st.free_port()
        subprocess.run(["bash", self.rig, "sink-start", self.dir, str(sink),
                        "-d", self.dump + "/%H%M%S."], check=True)
        self.wrong = st.free_port()
        self.smtps = st.free_port()
        m = lambda n: "texthash:" + os.path.join(  # noqa: E731
            self.dir, "access-" + n)
        p = subprocess.run(
            ["bash", self.rig, "start", self.dir,
             "--tls", os.path.join(CA, "server.crt"),
             os.path.join(CA, "server.key"),
             "--listener", str(self.wrong), os.path.join(CA, "wrongname.crt"),
             os.path.join(CA, "wrongname.key"),
             "--smtps", str(self.smtps),
             "-o", "smtpd_delay_reject = no",
             "-o", "smtpd_sender_restrictions = check_sender_access "
                   + m("mail"),
             "-o", "smtpd_recipient_restrictions = check_recipient_access "
                   + m("rcpt") + ", permit_mynetworks, reject",
             "-o", "smtpd_data_restrictions = check_sender_access "
                   + m("data"),
             "-o", "smtpd_end_of_data_restrictions = check_sender_access "
                   + m("eod")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            self.stop()
            raise RuntimeError(p.stderr.strip())
        self.port = int(p.stdout.strip().splitlines()[-1])

    def maillog(self):
        with open(os.path.join(self.dir, "maillog"), errors="replace") as f:
            return f.read()

    def maillog_wait(self, pred, timeout=10):
        """Wait for a maillog line matching pred (Postfix writes it a
        moment after the session ends); True if one came."""
        deadline = time.monotonic() + timeout
        while True:
            if any(pred(l) for l in self.maillog().splitlines()):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def dumps(self, want, timeout=15):
        """Wait for `want' messages at the sink; their file contents."""
        deadline = time.monotonic() + timeout
        while True:
            files = sorted(os.listdir(self.dump))
            if len(files) >= want or time.monotonic() > deadline:
                break
            subprocess.run(["postqueue", "-c", self.dir, "-f"],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            time.sleep(0.2)
        time.sleep(0.2)         # the last file fully written
        out = []
        for n in sorted(os.listdir(self.dump)):
            with open(os.path.join(self.dump, n), "rb") as f:
                out.append(f.read())
        return out

    def stop(self):
        subprocess.run(["bash", self.rig, "stop", self.dir],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["bash", self.rig, "sink-stop", self.dir],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def sink_has(dump, message):
    """smtp-sink -d writes X-* lines, then the message as Postfix relayed
    it with LF line ends and a final empty line: the original must be
    there whole, after nothing but trace lines Postfix prepended."""
    body = message.replace(b"\r\n", b"\n") + b"\n"
    if not dump.endswith(body):
        return False
    head = dump[:-len(body)]
    return all(l.startswith((b"X-", b"Received:", b"\t"))
               for l in head.split(b"\n") if l)


def postfix_cases(pf, driver, tag):
    before = len(os.listdir(pf.dump))
    r = send(pf.port, "--count", 3, "--tls-name", "localhost",
             to=("ok@rig.test",), driver=driver)
    for i in (1, 2, 3):
        expect(r, "ok", "%spostfix: message %d" % (tag, i), i)
    tap.ok([x["conn"] for x in r.sends] == ["open", "same", "same"],
           "%spostfix: three messages on one session" % tag)
    dumps = pf.dumps(before + 3)
    new = dumps[before:] if len(dumps) >= before + 3 else []
    tap.ok(len(new) == 3 and all(sink_has(d, MESSAGE) for d in new),
           "%spostfix: three messages reached the sink intact" % tag)
    tap.ok(pf.maillog_wait(lambda l: "disconnect from" in l and
                           "mail=3 rcpt=3 data=3" in l),
           "%spostfix: the log shows one session with 3 MAIL" % tag)


def postfix_matrix(pf):
    r = send(pf.port, "--tls-name", "localhost",
             to=("ok@rig.test", "reject550@rig.test", "temp451@rig.test",
                 "temp452@rig.test", "reject554@rig.test"))
    expect(r, "ok", "postfix: mixed recipients in one transaction")
    tap.is_eq([r.code(1, j) for j in range(5)], [250, 550, 451, 452, 554],
              "postfix: per-recipient codes 250 550 451 452 554")
    tap.is_eq([r.rcpts.get((1, j), (0, ""))[1] for j in range(5)],
              ["2.0.0", "5.1.1", "4.3.0", "4.5.3", "5.7.1"],
              "postfix: per-recipient enhanced status")
    r = send(pf.port, "--tls-name", "localhost",
             to=("ok@rig.test", "temp421@rig.test"))
    expect(r, "tempfail", "postfix: 421 from the access map")
    tap.is_eq(r.code(1, 0), 0, "postfix 421: codes 0 (retry all)")
    r = send(pf.port, "--tls-name", "localhost", sender="mailreject@rig.test",
             to=("a@rig.test", "b@rig.test"))
    expect(r, "permfail", "postfix: 553 to MAIL FROM")
    tap.is_eq([r.code(1, 0), r.code(1, 1)], [553, 553],
              "postfix MAIL 553: every recipient has it")
    tap.is_eq(r.end, "open", "postfix MAIL 553: session kept")
    r = send(pf.port, "--tls-name", "localhost", sender="mailtemp@rig.test")
    expect(r, "tempfail", "postfix: 450 to MAIL FROM")
    r = send(pf.port, "--tls-name", "localhost", sender="datareject@rig.test",
             to=("ok@rig.test", "reject550@rig.test"))
    expect(r, "permfail", "postfix: 554 to DATA")
    tap.is_eq([r.code(1, 0), r.code(1, 1)], [554, 550],
              "postfix DATA 554: accepted rcpt gets it, refused keeps 550")
    r = send(pf.port, "--tls-name", "localhost", "--count", 2,
             sender="eodreject@rig.test")
    expect(r, "ok", "postfix: reject at end of data")
    tap.is_eq(r.code(1, 0), 554, "postfix end of data: 554 for the rcpt")
    expect(r, "ok", "postfix: next message on the same session", 2)
    r = send(pf.port, "--tls-name", "localhost", sender="eodtemp@rig.test")
    tap.ok(r.result() == "ok" and r.code(1, 0) == 451,
           "postfix end of data 451: ok with 451 for the rcpt")
    # The second listener has a wrong-name certificate.
    r = send(pf.wrong, "--tls-name", "localhost", "--username", USER,
             "--password", PASSWORD)
    expect(r, "tlsfail", "postfix wrong-name listener")
    # Postfix logs the disconnect a moment later (smtpd notices the
    # close, postlogd writes the file): wait for the line, bounded.
    deadline = time.time() + 10
    while True:
        log = [l for l in pf.maillog().splitlines()
               if "listener-%d/smtpd" % pf.wrong in l and
               "disconnect from" in l
               and "ehlo=" in l]      # not postfix.sh's banner probe
        if log or time.time() > deadline:
            break
        time.sleep(0.1)
    tap.ok(len(log) == 1 and "starttls=1" in log[0] and "mail=" not in log[0]
           and "auth=" not in log[0],
           "postfix wrong-name listener: STARTTLS, then no MAIL, no AUTH")
    if len(log) != 1:
        tap.diag("log: %r" % log)
    r = send(pf.smtps, "--tls", "implicit", host="localhost")
    expect(r, "ok", "postfix smtps listener (implicit TLS)")
    tap.ok(PASSWORD not in r.out + r.err, "postfix: password not printed")


# ---- main ---------------------------------------------------------------------

def main():
    if not os.access(DRIVER, os.X_OK):
        tap.bail("no %s: build with make check-programs" % DRIVER)
    os.chmod(TMP, 0o755)        # Postfix and smtp-sink run as postfix
    subprocess.run(["sh", os.path.join(RIG, "testca.sh"), CA], check=True)
    drivers = [(DRIVER, "")]
    if ASAN_DRIVER:
        drivers.append((ASAN_DRIVER, "asan: "))

    if PY is None:
        tap.skip("python3-aiosmtpd is not installed: no scripted server")
    else:
        for drv, tag in drivers:
            specs = dict(PER_DRIVER)
            if not tag:
                specs.update(ONCE)
            S = ServerSet(specs, tag)
            try:
                case_happy(S, drv, tag)
                case_auth(S, drv, tag)
                case_tls_failures(S, drv, tag)
                case_failures(S, drv, tag)
                case_stalls(S, drv, tag)
                case_cancel(S, drv, tag)
                case_input(S, drv, tag)
                if not tag:
                    case_tls_names(S)
                    case_plaintext(S)
                    case_reuse(S)
            finally:
                S.stop()

    if os.geteuid() != 0:
        tap.skip("not root: Postfix needs root for its own users")
    elif shutil.which("postfix") is None and not os.path.exists(
            "/usr/sbin/postfix"):
        tap.skip("Postfix is not installed (contrib/deps.sh test)")
    else:
        os.environ["PATH"] += ":/usr/sbin"
        try:
            pf = Postfix()
        except (RuntimeError, subprocess.CalledProcessError) as e:
            tap.ok(False, "postfix rig started: %s" % e)
        else:
            try:
                for drv, tag in drivers:
                    postfix_cases(pf, drv, tag)
                postfix_matrix(pf)
            finally:
                pf.stop()
    tap.done()


if __name__ == "__main__":
    try:
        main()
    finally:
        if not os.environ.get("SEALPOST_TEST_KEEP"):
            shutil.rmtree(TMP, ignore_errors=True)
        else:
            print("# kept %s" % TMP)
