#!/usr/bin/env python3
"""t_backlog - a backlog of retries does not starve new urgent letters,
and memory stays flat while it drains (TESTPLAN T8 at suite scale).

sealpostd relays to a loopback port where nothing listens yet: BACKLOG
routine letters are posted (by contrib/bench/sp-loadgen when it is built,
else by Python clients), each is tried once, refused, and deferred with a
first retry ten minutes away.  Then a private Postfix smarthost (STARTTLS
required, a verified self-signed certificate, relaying to an smtp-sink) is
started on that port and "sealpostctl queue retry" makes the whole backlog
due at once.  About a second into the drain, URGENT urgent letters are
posted, one every 0.3 s, and each is polled through the API until its
delivery is "sent".  The scheduler takes new letters and retries
alternately, urgent first, with at most queue.max_active in flight, so an
urgent letter waits behind at most max_active deliveries, not behind the
backlog.  Checked:
  - every urgent letter is sent within URGENT_BOUND seconds of its 202
    (8 s: max_active over the drain rate is about 1.2 s on 2 cores; the
    rest is margin for a shared machine), within a quarter of the time
    the drain takes, and while backlog letters are still waiting (it
    overtook them);
  - sealpostd's VmRSS, sampled every 0.1 s from /proc during the drain,
    stays below RSS_BOUND_MB (the peak is reported);
  - at the end every delivery is sent (none open, none failed), the sink
    received exactly BACKLOG + URGENT messages, and db check says ok.
Figures (submission rate, drain time and rate, urgent latencies, RSS) are
printed as TAP comments.  The sizes and bounds come from the environment
(SEALPOST_BACKLOG, SEALPOST_BACKLOG_URGENT, SEALPOST_BACKLOG_URGENT_BOUND,
SEALPOST_BACKLOG_RSS_MB, SEALPOST_BACKLOG_TIMEOUT, SEALPOST_BACKLOG_POOL
for relay.pool_size, default the daemon's 4); contrib/soak-relay.sh
runs this test at 100,000 letters.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sealpost_test as st  # noqa: E402

BACKLOG = int(os.environ.get("SEALPOST_BACKLOG", "5000"))
URGENT = int(os.environ.get("SEALPOST_BACKLOG_URGENT", "20"))
URGENT_BOUND = float(os.environ.get("SEALPOST_BACKLOG_URGENT_BOUND", "8"))
RSS_BOUND_MB = int(os.environ.get("SEALPOST_BACKLOG_RSS_MB", "64"))
POOL = os.environ.get("SEALPOST_BACKLOG_POOL")    # relay.pool_size
# Seconds allowed for each long wait (deferral, drain).
TIMEOUT = float(os.environ.get("SEALPOST_BACKLOG_TIMEOUT", "90"))
MAX_ACTIVE = 200                    # queue.max_active, the default

tap = st.Tap()
rig = st.rig
wait_for = st.wait_for

if os.geteuid() != 0 or not st.have("postfix") or \
        not os.path.exists("/usr/sbin/smtp-sink") or not st.have("openssl"):
    tap.skip("needs root, openssl and the Debian postfix package "
             "(smarthost and smtp-sink): contrib/deps.sh test installs it")
    tap.done()

TMP = tempfile.mkdtemp(prefix="t_backlog-")
os.chmod(TMP, 0o755)
PF = os.path.join(TMP, "pf")




def status(d):
    try:
        return json.loads(d.ctl("status")).get("queue", {})
    except (RuntimeError, ValueError):
        return {}


def rss_kb(pid, field="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def http_post(d, p, n, priority="routine", timeout=30):
    return st.api_post_letter(d, p["token"], {
        "patient": p["patient"], "author": p["clinician"],
        "subject": "%s %d" % (priority.capitalize(), n),
        "text": "Letter number %d.\n" % n, "priority": priority},
        timeout=timeout)


def api_delivery(d, p, lid):
    return (st.api_letter(d, p["token"], lid).get("deliveries") or [{}])[0]


def submit_backlog(d, p):
    """Post BACKLOG routine letters; returns the number acknowledged."""
    loadgen = os.path.join(st.builddir(), "contrib", "bench", "sp-loadgen")
    if os.access(loadgen, os.X_OK):
        r = subprocess.run(
            [loadgen, "-m", "http", "-p", str(d.http_port), "-t",
             p["token"], "-P", str(p["patient"]), "-A", str(p["clinician"]),
             "-c", "8", "-n", str(BACKLOG), "-s", "2000"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            timeout=TIMEOUT * 20)
        tap.diag("sp-loadgen: " + r.stdout.strip())
        m = re.search(r"acked=(\d+)", r.stdout)
        return int(m.group(1)) if m else 0
    tap.diag("contrib/bench/sp-loadgen not built: Python clients post")
    acked = [0]
    lock = threading.Lock()
    counter = iter(range(1, BACKLOG + 1))

    def client():
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            s, lid = http_post(d, p, n)
            if s == 202 and lid:
                with lock:
                    acked[0] += 1
    ts = [threading.Thread(target=client) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return acked[0]


d = None
try:
    cert, key = st.make_self_signed(TMP, "localhost")
    smarthost = st.free_port()
    os.makedirs(os.path.join(TMP, "d"))
    d = st.Daemon({
        "relay": {"host": "127.0.0.1", "port": str(smarthost),
                  "tls": "starttls", "ca_file": cert, "tls_name": "localhost",
                  "connect_timeout": "5s", "command_timeout": "20s",
                  "data_timeout": "20s", "pool_size": POOL},
        "queue": {"retry_first": "10m", "retry_max": "1h",
                  "lifetime_routine": "1d", "lifetime_urgent": "1d",
                  "warn_routine": "0s", "warn_urgent": "0s",
                  "max_active": str(MAX_ACTIVE)},
    }, debug=False, tmpdir=os.path.join(TMP, "d"))
    p = d.setup_practice(domain="riverside.example",
                         name="Riverside Surgery",
                         patient_email="jo@patient.test")
    d.start()
    pid = d.proc.pid
    rss_idle = rss_kb(pid)

    # --- the backlog, refused and deferred --------------------------------
    t = time.time()
    acked = submit_backlog(d, p)
    sub_s = time.time() - t
    tap.is_eq(acked, BACKLOG, "backlog: %d letters accepted in %.1fs "
              "(%.0f/s)" % (acked, sub_s, acked / max(sub_s, 0.001)))
    t = time.time()
    q = wait_for(lambda: (lambda q: q if q.get("deferred") == BACKLOG
                          else None)(status(d)), TIMEOUT, 0.5)
    tap.ok(bool(q), "backlog: every letter tried once, refused and "
           "deferred (%.1fs)" % (time.time() - t))
    if not q:
        tap.diag("status: %s" % status(d))
    rss_backlog = rss_kb(pid)

    # --- the smarthost comes up; the backlog is due at once ---------------
    rig("sink-start", PF, st.free_port())
    rig("start", PF, "--port", smarthost, "--tls", cert, key,
        "-o", "smtpd_tls_security_level = encrypt")
    samples = []                    # (time, VmRSS kB)
    progress = []                   # (time, sent)
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            samples.append((time.time(), rss_kb(pid)))
            time.sleep(0.1)

    def counter():
        while not stop.is_set():
            progress.append((time.time(), status(d).get("sent", 0)))
            time.sleep(0.5)
    ths = [threading.Thread(target=f, daemon=True)
           for f in (sampler, counter)]
    for th in ths:
        th.start()
    out = d.ctl("queue", "retry")
    t_drain = time.time()
    tap.is_eq(out, "%d deliveries due now" % BACKLOG,
              "queue retry: the whole backlog due now")

    # --- urgent letters while it drains -----------------------------------
    time.sleep(1.0)
    sent_at_start = status(d).get("sent", 0)
    urgent = {}                     # id -> [submitted, sent or None]
    lock = threading.Lock()

    def poster():
        for i in range(1, URGENT + 1):
            t0 = time.time()
            s, lid = http_post(d, p, i, priority="urgent")
            if s == 202 and lid:
                with lock:
                    urgent[lid] = [t0, None]
            time.sleep(0.3)
    pt = threading.Thread(target=poster)
    pt.start()
    backlog_left = []               # backlog still unsent at each urgent
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        with lock:
            pending = [k for k, v in urgent.items() if v[1] is None]
        if not pending and not pt.is_alive():
            break
        for lid in pending:
            if api_delivery(d, p, lid).get("state") == "sent":
                now = time.time()
                with lock:
                    urgent[lid][1] = now
                sent = progress[-1][1] if progress else 0
                backlog_left.append(BACKLOG + URGENT - sent)
        time.sleep(0.1)
    pt.join()
    tap.is_eq(len(urgent), URGENT, "urgent: %d letters accepted during "
              "the drain (%d of the backlog sent by then)"
              % (len(urgent), sent_at_start))
    lat = sorted(v[1] - v[0] for v in urgent.values() if v[1] is not None)
    tap.is_eq(len(lat), URGENT, "urgent: every one sent")

    # --- the end of the drain ---------------------------------------------
    total = BACKLOG + URGENT
    done = wait_for(lambda: status(d).get("sent", 0) >= total, TIMEOUT, 0.2)
    drain_s = time.time() - t_drain
    stop.set()
    for th in ths:
        th.join(5)
    tap.ok(done, "the backlog drained: %d sent in %.1fs (%.0f/s)"
           % (status(d).get("sent", 0), drain_s,
              status(d).get("sent", 0) / max(drain_s, 0.001)))
    # The claim walks an index and stops at its limit: the drain should
    # not slow down as the backlog shrinks or grow slower with its size.
    if len(progress) >= 8:
        span = progress[-1][0] - progress[0][0]
        def rate(a, b):
            sel = [x for x in progress if a <= x[0] - progress[0][0] <= b]
            if len(sel) < 2 or sel[-1][0] == sel[0][0]:
                return 0.0
            return (sel[-1][1] - sel[0][1]) / (sel[-1][0] - sel[0][0])
        tap.diag("drain rate: first quarter %.0f/s, last quarter %.0f/s"
                 % (rate(0, span / 4), rate(span * 3 / 4, span)))
    if lat:
        tap.diag("urgent latency (202 to sent): median %.2fs, max %.2fs, "
                 "min %.2fs; drain %.1fs"
                 % (statistics.median(lat), lat[-1], lat[0], drain_s))
        tap.ok(lat[-1] <= URGENT_BOUND, "urgent: each sent within %.0fs "
               "of its 202 (max %.2fs)" % (URGENT_BOUND, lat[-1]))
        tap.ok(lat[-1] <= drain_s / 4, "urgent: each sent within a quarter "
               "of the drain time (%.2fs vs %.1fs)" % (lat[-1], drain_s))
    tap.ok(backlog_left and min(backlog_left) > 0,
           "urgent: every one overtook the backlog (at least %s backlog "
           "letters still unsent when the last was sent)"
           % (min(backlog_left) if backlog_left else "?"))
    rss = [s[1] for s in samples if s[1] > 0]
    peak = max(rss) if rss else 0
    tap.diag("VmRSS: idle %d kB, with the backlog deferred %d kB, peak "
             "during the drain %d kB (%d samples), VmHWM %d kB"
             % (rss_idle, rss_backlog, peak, len(rss),
                rss_kb(pid, "VmHWM")))
    tap.ok(0 < peak < RSS_BOUND_MB * 1024, "VmRSS during the drain stays "
           "below %d MB (peak %.1f MB)" % (RSS_BOUND_MB, peak / 1024.0))

    q = status(d)
    tap.ok(q.get("sent") == total and
           sum(q.get(s, 1) for s in ("queued", "sending", "deferred", "held",
                                     "failed", "expired")) == 0,
           "every delivery sent, none open or failed (%s)" % json.dumps(q))
    tap.ok(wait_for(lambda: rig("queue", PF) == "0", TIMEOUT),
           "Postfix relayed everything it accepted")
    tap.is_eq(int(rig("sink-count", PF)), total,
              "the sink received every letter once")
    r = d.ctl_run("db", "check")
    tap.ok(r.returncode == 0 and r.stdout.strip() == "ok", "db check ok")
    tap.is_eq(d.stop(), 0, "clean stop")
except Exception as e:  # noqa: BLE001
    tap.ok(False, "unexpected error: %s" % e)
    if d is not None:
        tap.diag(d.log_tail(40))
finally:
    if d is not None:
        d.stop()
    rig("stop", PF, check=False)
    rig("sink-stop", PF, check=False)
    if not os.environ.get("SEALPOST_TEST_KEEP"):
        if d is not None:
            d.cleanup()
        shutil.rmtree(TMP, ignore_errors=True)
    else:
        tap.diag("kept %s" % TMP)
tap.done()
