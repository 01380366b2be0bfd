"""t_durability - an acknowledged letter survives SIGKILL.

Clients submit letters concurrently over HTTP and SMTP while the daemon is
killed with SIGKILL at a random moment in the middle of the load, several
times over.  After each restart:
  - every letter that was acknowledged (202 / 250) is in the database, with
    its delivery row;
  - PRAGMA integrity_check is "ok" (sealpostctl db check) and the audit
    chain verifies;
  - an Idempotency-Key acknowledged before the kill returns the same letter
    after it, and creates nothing new.
Finally a clean SIGTERM stop exits 0 and a restart still has everything.
"""

import json
import os
import random
import signal
import smtplib
import sqlite3
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sealpost_test as st  # noqa: E402

ROUNDS = 4
HTTP_CLIENTS = 6
SMTP_CLIENTS = 2

tap = st.Tap()


def http_post(d, p, key, n, timeout=10):
    """POST one letter; returns (status, id or None)."""
    body = json.dumps({"patient": p["patient"], "author": p["clinician"],
                       "subject": "Result %d" % n,
                       "text": "letter number %d" % n}).encode()
    req = urllib.request.Request(
        "http://127.0.0.1:%d/v1/letters" % d.http_port, data=body,
        method="POST",
        headers={"Authorization": "Bearer " + p["token"],
                 "Content-Type": "application/json",
                 "Idempotency-Key": key})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read()).get("id")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError):
        return None, None


class Load:
    """Client threads submitting until stopped; acked ids recorded."""

    def __init__(self, d, p, rnd):
        self.d, self.p, self.rnd = d, p, rnd
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked_http = {}        # idempotency key -> id
        self.acked_smtp = []        # Message-IDs acknowledged
        self.seq = 0
        self.threads = []

    def next(self):
        with self.lock:
            self.seq += 1
            return self.seq

    def http_client(self):
        while not self.stop.is_set():
            n = self.next()
            key = "r%d-h%d" % (self.rnd, n)
            status, lid = http_post(self.d, self.p, key, n)
            if status == 202 and lid:
                with self.lock:
                    self.acked_http[key] = lid

    def smtp_client(self):
        while not self.stop.is_set():
            try:
                s = smtplib.SMTP("127.0.0.1", self.d.smtp_port, timeout=10)
                s.ehlo("durability.test")
                s.login("clinical-system", self.p["token"])
                while not self.stop.is_set():
                    n = self.next()
                    mid = "<r%d-s%d@durability.test>" % (self.rnd, n)
                    msg = ("From: %s\r\nTo: patient-%d@%s\r\n"
                           "Subject: Result %d\r\nMessage-ID: %s\r\n\r\n"
                           "letter number %d\r\n" % (
                               self.p["clinician_email"], self.p["patient"],
                               self.p["domain"], n, mid, n))
                    s.sendmail(self.p["clinician_email"],
                               ["patient-%d@%s" % (self.p["patient"],
                                                   self.p["domain"])], msg)
                    # sendmail returned: the server said 250 to DATA.
                    with self.lock:
                        self.acked_smtp.append(mid)
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)

    def start(self):
        for _ in range(HTTP_CLIENTS):
            self.threads.append(threading.Thread(target=self.http_client))
        for _ in range(SMTP_CLIENTS):
            self.threads.append(threading.Thread(target=self.smtp_client))
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def stored(db):
    """(letter ids with a delivery row, letters by idempotency key)."""
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=30)
    try:
        ids = set(r[0] for r in con.execute(
            "select l.id from letters l join deliveries d "
            "on d.letter_id = l.id"))
        keys = dict(con.execute("select key, letter_id from idempotency"))
        return ids, keys
    finally:
        con.close()


with st.Daemon(debug=False) as d:
    p = d.setup_practice()
    db = d.config["daemon"]["database"]
    all_http = {}
    all_smtp = []
    d.start()
    for rnd in range(1, ROUNDS + 1):
        load = Load(d, p, rnd)
        load.start()
        # Let the load build up, then kill in the middle of it.
        time.sleep(random.uniform(1.0, 2.5))
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait()
        d.proc = None
        load.join()
        all_http.update(load.acked_http)
        all_smtp.extend(load.acked_smtp)
        tap.ok(len(load.acked_http) > 0 and len(load.acked_smtp) > 0,
               "round %d: load acknowledged %d HTTP and %d SMTP letters "
               "before SIGKILL" % (rnd, len(load.acked_http),
                                  len(load.acked_smtp)))

        r = d.ctl_run("db", "check")
        tap.ok(r.returncode == 0 and r.stdout.strip() == "ok",
               "round %d: integrity_check ok after SIGKILL" % rnd)
        d.start()
        ids, keys = stored(db)
        missing = [k for k, v in all_http.items()
                   if v not in ids or keys.get(k) != v]
        tap.ok(not missing, "round %d: all %d acknowledged HTTP letters "
               "are stored" % (rnd, len(all_http)))
        if missing:
            tap.diag("missing: %s" % missing[:10])
        smtp_keys = [k for k in keys if k.startswith("smtp:")]
        missing = [m for m in all_smtp
                   if not any(k.startswith("smtp:" + m + ":")
                              for k in smtp_keys)]
        tap.ok(not missing, "round %d: all %d acknowledged SMTP letters "
               "are stored" % (rnd, len(all_smtp)))
        if missing:
            tap.diag("missing: %s" % missing[:10])
        r = d.ctl_run("audit", "verify")
        tap.ok(r.returncode == 0, "round %d: audit chain verifies" % rnd)

        # A retry of an acknowledged key after the crash: same letter.
        if all_http:
            key, lid = random.choice(sorted(all_http.items()))
            n = int(key.split("-h")[1])
            before, _ = stored(db)
            status, got = http_post(d, p, key, n)
            after, _ = stored(db)
            tap.ok(status == 202 and got == lid and len(after) == len(before),
                   "round %d: idempotent retry after the crash returns "
                   "letter %s and stores nothing new" % (rnd, lid))

    tap.is_eq(d.stop(signal.SIGTERM), 0, "clean stop exits 0")
    d.start()
    ids, _ = stored(db)
    tap.ok(all(v in ids for v in all_http.values()),
           "after a clean restart every acknowledged letter is still there")
    r = d.ctl_run("status")
    tap.ok(r.returncode == 0 and '"state":"running"' in r.stdout,
           "status over the control socket after restart")
    tap.is_eq(d.stop(), 0, "final stop exits 0")

tap.done()
