"""sealpost_test - shared helpers for the Python integration tests.

Start a real sealpostd on a throwaway directory and free loopback ports,
run sealpostctl against it, speak TAP.  Python 3 standard library only.

    import sealpost_test as st

    tap = st.Tap()
    with st.Daemon() as d:               # temp dir, config, master key
        p = d.setup_practice()           # practice, clinician, patient, client
        d.start()                        # waits for "ready"
        tap.ok(..., "name")
        print(d.ctl("letter", "show", "1"))
        d.stop()                         # SIGTERM, returns the exit status
    tap.done()                           # prints the plan, exits 0 or 1

Programs are found through SEALPOST_BUILDDIR (set by tests/run), else the
source tree itself (an in-tree build), else ./build.  Everything listens on
127.0.0.1 only.  Set SEALPOST_TEST_KEEP=1 to keep the temp directory.
"""

import email
import email.policy
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SRCDIR = os.environ.get("SEALPOST_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def builddir():
    """The build directory holding src/sealpostd and src/sealpostctl."""
    env = os.environ.get("SEALPOST_BUILDDIR")
    if env:
        return env
    for d in (SRCDIR, os.path.join(SRCDIR, "build")):
        if os.path.exists(os.path.join(d, "src", "sealpostd")):
            return d
    return SRCDIR


def prog(name):
    """Path of a built program, e.g. prog("sealpostctl")."""
    return os.path.join(builddir(), "src", name)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def have(program):
    """Is `program' on $PATH?"""
    return shutil.which(program) is not None


def make_self_signed(directory, name="localhost"):
    """Write a self-signed EC certificate and key (PEM) with openssl;
    returns (cert_path, key_path)."""
    cert = os.path.join(directory, "tls.crt")
    key = os.path.join(directory, "tls.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
         "-days", "2", "-subj", "/CN=" + name,
         "-addext", "subjectAltName=DNS:%s,IP:127.0.0.1" % name],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(key, 0o600)
    return cert, key


class Tap:
    """A tiny TAP producer: ok(), skip(), diag(), done()."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name):
        """One test point; returns cond so callers can chain."""
        self.n += 1
        if not cond:
            self.failed += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, name),
              flush=True)
        return bool(cond)

    def is_eq(self, got, want, name):
        """ok(got == want), with a diagnostic when they differ."""
        r = self.ok(got == want, name)
        if not r:
            self.diag("  got %r, want %r" % (got, want))
        return r

    def skip(self, reason):
        self.n += 1
        print("ok %d # SKIP %s" % (self.n, reason), flush=True)

    def diag(self, msg):
        for line in str(msg).splitlines() or [""]:
            print("# " + line, flush=True)

    def bail(self, msg):
        """Stop the whole test: a setup step failed."""
        print("Bail out! " + msg, flush=True)
        sys.exit(1)

    def done(self):
        """Print the plan and exit (1 if anything failed)."""
        print("1..%d" % self.n, flush=True)
        sys.exit(1 if self.failed else 0)


class Daemon:
    """A sealpostd on a temp dir.  `config' is {section: {option: value}}
    merged over the defaults (database, key, control socket in the temp
    dir; HTTP and SMTP on free loopback ports; log to stderr).  A value of
    None removes an option.  The master key is made at construction."""

    def __init__(self, config=None, debug=True, tmpdir=None):
        self.dir = tmpdir or tempfile.mkdtemp(prefix="sealpost-test-")
        self.debug = debug
        self.proc = None
        self.logpath = os.path.join(self.dir, "sealpostd.log")
        self.conf = os.path.join(self.dir, "sealpost.conf")
        self.http_port = free_port()
        self.smtp_port = free_port()
        self.config = {
            "daemon": {
                "database": os.path.join(self.dir, "sealpost.db"),
                "master_key_file": os.path.join(self.dir, "master.key"),
                "control_socket": os.path.join(self.dir, "control.sock"),
                "log": "stderr",
                "shutdown_timeout": "10s",
            },
            "http": {"listen": "127.0.0.1:%d" % self.http_port},
            "smtp": {"listen": "127.0.0.1:%d" % self.smtp_port,
                     "hostname": "sealpost.test"},
        }
        for sect, opts in (config or {}).items():
            self.config.setdefault(sect, {})
            for k, v in opts.items():
                if v is None:
                    self.config[sect].pop(k, None)
                else:
                    self.config[sect][k] = v
        self.write_config()
        self.ctl("keys", "init")

    # -- configuration and the admin CLI ---------------------------------

    def write_config(self):
        """(Re)write the config file from self.config."""
        with open(self.conf, "w") as f:
            for sect, opts in self.config.items():
                f.write("[%s]\n" % sect)
                for k, v in opts.items():
                    f.write("%s = %s\n" % (k, v))
                f.write("\n")

    def ctl_run(self, *args, check=False):
        """Run sealpostctl -f CONF ARGS; returns the CompletedProcess
        (text mode, stdout and stderr captured)."""
        return subprocess.run([prog("sealpostctl"), "-f", self.conf] +
                              [str(a) for a in args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=60, check=check)

    def ctl(self, *args):
        """Run sealpostctl and return its stdout, stripped; raises
        RuntimeError with stderr when it fails."""
        r = self.ctl_run(*args)
        if r.returncode != 0:
            raise RuntimeError("sealpostctl %s: exit %d: %s" % (
                " ".join(str(a) for a in args), r.returncode,
                r.stderr.strip()))
        return r.stdout.strip()

    def setup_practice(self, domain="riverside.example", name="Riverside",
                       patient_email="jo@patient.example", author=True):
        """Make a practice with one clinician, one verified, consenting
        patient and one client (default author: the clinician unless
        author=False).  Returns a dict: practice, clinician,
        clinician_email, patient, domain, token, client_name."""
        practice = self.ctl("practice", "add", "--name", name,
                            "--domain", domain)
        email = "dr.patel@" + domain
        clinician = self.ctl("clinician", "add", "--practice", practice,
                             "--name", "Dr Patel", "--email", email)
        pargs = ["patient", "add", "--practice", practice, "--name", "Jo"]
        if patient_email:
            pargs += ["--email", patient_email, "--verified", "--consent"]
        patient = self.ctl(*pargs)
        cargs = ["client", "add", "--practice", practice, "--name",
                 "clinical-system"]
        if author:
            cargs += ["--author", clinician]
        token = self.ctl(*cargs)
        return {"practice": int(practice), "clinician": int(clinician),
                "clinician_email": email, "patient": int(patient),
                "domain": domain, "token": token,
                "client_name": "clinical-system"}

    # -- the daemon -------------------------------------------------------

    def start(self, timeout=30, args=()):
        """Start sealpostd (stderr to self.logpath) and wait until it logs
        "ready"; raises RuntimeError with the log tail if it exits or
        times out."""
        # The log is appended across restarts: look for "ready" only in
        # what this start writes.
        offset = len(self.log_text())
        log = open(self.logpath, "ab")
        cmd = [prog("sealpostd"), "-f", self.conf]
        if self.debug:
            cmd.append("-d")
        cmd += list(args)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sealpostd exited with %d:\n%s" % (
                    self.proc.returncode, self.log_tail()))
            if " ready " in self.log_text()[offset:]:
                return self
            time.sleep(0.05)
        raise RuntimeError("sealpostd not ready after %ds:\n%s" % (
            timeout, self.log_tail()))

    def running(self):
        """Is the daemon process alive?"""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signal the daemon and wait; returns its exit status (negative:
        killed by a signal), or None if it was not running.  Kills it with
        SIGKILL after `timeout'."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def log_text(self):
        """Everything the daemon logged so far."""
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=30):
        return "\n".join(self.log_text().splitlines()[-n:])

    def cleanup(self):
        """Stop the daemon and remove the temp dir (unless
        SEALPOST_TEST_KEEP is set)."""
        self.stop()
        if os.environ.get("SEALPOST_TEST_KEEP"):
            print("# kept %s" % self.dir, flush=True)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False


# -- the mail rig and the API, for the letters-out tests ---------------------

RIG = os.path.join(SRCDIR, "tests", "rig", "postfix.sh")


def have_postfix_rig():
    """Can tests/rig/postfix.sh run here (root, Postfix, smtp-sink)?"""
    return os.geteuid() == 0 and have("postfix") and \
        os.path.exists("/usr/sbin/smtp-sink")


def rig(*args, check=True):
    """Run tests/rig/postfix.sh ARGS; its stdout, stripped.  Raises
    RuntimeError with its stderr when it fails (unless check=False)."""
    r = subprocess.run([RIG] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=120)
    if check and r.returncode != 0:
        raise RuntimeError("postfix.sh %s: %s" % (args[0], r.stderr))
    return r.stdout.strip()


def wait_for(fn, timeout=20.0, step=0.2):
    """Call fn until it returns something true or timeout seconds pass;
    returns its last value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def sink_messages(directory):
    """Every message a capturing smtp-sink (-d DIR/...) wrote, oldest
    first: dicts with path, mail and rcpt (the envelope), msgid, subject,
    msg (email.message.EmailMessage) and raw (bytes)."""
    out = []
    for path in sorted(glob.glob(os.path.join(directory, "*"))):
        with open(path, "rb") as f:
            data = f.read()
        env = {}
        for line in data.split(b"\n")[:8]:
            m = re.match(rb"X-(Mail|Rcpt)-Args: <([^>]*)>", line)
            if m:
                env[m.group(1).decode().lower()] = m.group(2).decode()
        msg = email.message_from_bytes(data, policy=email.policy.default)
        out.append({"path": path, "mail": env.get("mail"),
                    "rcpt": env.get("rcpt"),
                    "msgid": str(msg["Message-ID"] or ""),
                    "subject": str(msg["Subject"] or ""), "msg": msg,
                    "raw": data})
    return out


def api_post_letter(d, token, body, headers=(), timeout=30):
    """POST /v1/letters with a JSON body (dict); (status, id or None)."""
    req = urllib.request.Request(
        "http://127.0.0.1:%d/v1/letters" % d.http_port,
        data=json.dumps(body).encode(), method="POST",
        headers=dict([("Authorization", "Bearer " + token),
                      ("Content-Type", "application/json")] +
                     list(headers)))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read()).get("id")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError):
        return None, None


def api_letter(d, token, lid, timeout=10):
    """GET /v1/letters/ID as a dict ({} when it cannot be had)."""
    req = urllib.request.Request(
        "http://127.0.0.1:%d/v1/letters/%d" % (d.http_port, lid),
        headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return {}


# -- the IMAP rig: a private Dovecot (tests/rig/dovecot.sh) -----------------

DOVECOT_RIG = os.path.join(SRCDIR, "tests", "rig", "dovecot.sh")


def have_dovecot_rig():
    """Can tests/rig/dovecot.sh run here (root, dovecot-imapd and
    dovecot-lmtpd installed)?"""
    return os.geteuid() == 0 and os.access("/usr/sbin/dovecot", os.X_OK) \
        and os.path.exists("/usr/lib/dovecot/imap") \
        and os.path.exists("/usr/lib/dovecot/lmtp")


class DovecotRig:
    """A started Dovecot: ports (imap, imaps, wrongname, nomove, plain,
    lmtp as ints), user, password, ca (the test CA file), directory,
    maildir; login() logs in with imaplib over implicit TLS; folder_count()
    counts the messages of a folder on disk; log_text() reads its log."""

    def __init__(self, directory, fields):
        self.directory = directory
        self.user = fields["user"]
        self.password = fields["password"]
        self.ca = fields["ca"]
        for k in ("imap", "imaps", "wrongname", "nomove", "plain", "lmtp"):
            setattr(self, k, int(fields[k]))
        self.maildir = os.path.join(directory, "mail", self.user, "Maildir")

    def login(self):
        import imaplib
        import ssl
        ctx = ssl.create_default_context(cafile=self.ca)
        m = imaplib.IMAP4_SSL("127.0.0.1", self.imaps, ssl_context=ctx)
        m.login(self.user, self.password)
        return m

    def folder_count(self, folder="INBOX"):
        base = self.maildir if folder == "INBOX" else \
            os.path.join(self.maildir, "." + folder)
        n = 0
        for sub in ("cur", "new"):
            try:
                n += len([f for f in os.listdir(os.path.join(base, sub))
                          if not f.startswith(".")])
            except FileNotFoundError:
                pass
        return n

    def log_text(self):
        try:
            with open(os.path.join(self.directory, "dovecot.log")) as fp:
                return fp.read()
        except OSError:
            return ""


class dovecot:
    """Context manager: start tests/rig/dovecot.sh in a temp directory,
    yield a DovecotRig, stop it (and remove the directory unless
    SEALPOST_TEST_KEEP is set).

        with st.dovecot() as dv:
            m = dv.login(); m.append("INBOX", None, None, b"..."); m.logout()
    """

    def __init__(self, user=None, password=None):
        self.args = []
        if user is not None:
            self.args += ["--user", user]
        if password is not None:
            self.args += ["--password", password]
        self.directory = None

    def __enter__(self):
        self.directory = tempfile.mkdtemp(prefix="sealpost-dovecot-")
        r = subprocess.run([DOVECOT_RIG, "start", self.directory] +
                           self.args, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        if r.returncode != 0:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise RuntimeError("dovecot.sh start: %s" % r.stderr.strip())
        fields = dict(kv.split("=", 1) for kv in r.stdout.split())
        return DovecotRig(self.directory, fields)

    def __exit__(self, *exc):
        args = [DOVECOT_RIG, "stop", self.directory]
        if not os.environ.get("SEALPOST_TEST_KEEP"):
            args.append("--remove")
        subprocess.run(args, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
        return False
