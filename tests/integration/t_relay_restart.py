#!/usr/bin/env python3
"""t_relay_restart - SIGKILL while letters are being relayed, and a
smarthost whose certificate does not verify (TESTPLAN T1, T9 at the
daemon level; the TLS part of T7).

Part 1, restart during sending.  A private Postfix smarthost (STARTTLS
required, a self-signed certificate sealpostd verifies) is slowed with
"smtpd_end_of_data_restrictions = sleep 1, permit": each message waits a
second between the client's final "." and Postfix's 250, so with ten relay
workers and max_active 200 there are always many deliveries "sending".
Postfix commits a message after that pause even when the client is gone,
so a kill inside the pause gives a real duplicate: the message reached the
smarthost, sealpostd never saw the 250, and sends it again after the
restart.  LETTERS letters are posted over HTTP by two client threads, each
with an Idempotency-Key and retried until a 202 (across the kills, as a
real client would); sealpostd is killed with SIGKILL KILLS times at random
moments (seed printed; SEALPOST_TEST_SEED=N repeats it) and restarted.
After each kill, before the restart: "db check" says ok and "queue list -s
sending" counts the rows left sending; after the restart the log says
exactly that many were queued again.  At the end:
  - every accepted letter is stored once (the retries made nothing new),
    and every letter and delivery is final: T9's reconciliation, through
    "queue list" (no open state, every delivery in a known final state)
    and through the API (every letter "sent");
  - every accepted letter reached the capturing sink behind Postfix at
    least once, and nothing else did (no phantoms): sink files are mapped
    to letters by the number in the subject, and each one's Message-ID is
    the one the API gives for that letter's delivery, duplicates included;
  - a letter seen N times at the sink has at least N attempts, and there
    are no more duplicates than deliveries requeued by the restarts; the
    duplicate count is reported.

Part 2, TLS failure.  A second Postfix (STARTTLS required) in front of a
second sink.  sealpostd first with relay.tls_name = wrong.example (the
certificate says localhost), then with relay.ca_file = a certificate from
another, unknown issuer.  Each time: the deliveries are deferred with a
"tls:" reason and retried, never sent and never failed to paper; Postfix
saw connections but no MAIL FROM (no smtpd session logs mail=, no queue
file, nothing at the sink); one alert of kind "tls" for the practice's
failsafe address is queued (status alerts_queued, and the alerts row read
from the database: the only place the kind is visible, since the alert
itself cannot be sent through the smarthost it is about).  Then the
configuration is corrected: the letters and the queued "tls" alerts go
out, and the alert mail is checked at the sink (failsafe address, MAIL
FROM:<>, kind tls in the subject, no letter content).
"""

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sealpost_test as st  # noqa: E402

LETTERS = int(os.environ.get("SEALPOST_RESTART_LETTERS", "300"))
KILLS = 4
POOL = 10
TERM = 60                           # letters for the clean-stop check
CANARY = "CANARY-restart-7c2d"     # letter text: never in an alert or log

tap = st.Tap()
rig = st.rig
wait_for = st.wait_for

if os.geteuid() != 0 or not st.have("postfix") or \
        not os.path.exists("/usr/sbin/smtp-sink") or not st.have("openssl"):
    tap.skip("needs root, openssl and the Debian postfix package "
             "(smarthost and smtp-sink): contrib/deps.sh test installs it")
    tap.done()

SEED = int(os.environ.get("SEALPOST_TEST_SEED") or time.time())
rnd = random.Random(SEED)
tap.diag("seed %d (SEALPOST_TEST_SEED=%d repeats the kill moments)"
         % (SEED, SEED))

TMP = tempfile.mkdtemp(prefix="t_relay_restart-")
os.chmod(TMP, 0o755)



def capture_dir(name):
    path = os.path.join(TMP, name)
    os.makedirs(path)
    os.chmod(path, 0o777)           # smtp-sink runs as user postfix
    return path


def captured(cap):
    """Every message a capturing sink received (st.sink_messages)."""
    return st.sink_messages(cap)


def http_post(d, p, key, n, timeout=10):
    """POST letter number n; returns (status, id or None)."""
    return st.api_post_letter(d, p["token"], {
        "patient": p["patient"], "author": p["clinician"],
        "subject": "Result %d" % n,
        "text": "Letter number %d. %s\n" % (n, CANARY)},
        headers=[("Idempotency-Key", key)], timeout=timeout)


def api_letter(d, p, lid):
    return st.api_letter(d, p["token"], lid)


def queue_rows(d, states):
    """sealpostctl queue list -s STATES: a list of dicts (the store
    directly; works with the daemon down)."""
    out = d.ctl("queue", "list", "-s", states, "-n", "1000000")
    rows = []
    for line in out.splitlines()[1:]:
        f = line.split(None, 7)
        if len(f) >= 5:
            rows.append({"delivery": int(f[0]), "letter": int(f[1]),
                         "state": f[3], "attempts": int(f[4]),
                         "reason": f[7] if len(f) > 7 else ""})
    return rows


def status(d):
    try:
        return json.loads(d.ctl("status"))
    except (RuntimeError, ValueError):
        return {}


class Clients:
    """Client threads posting letters 1..LETTERS, each with its own
    Idempotency-Key, retried (same key, same body) until a definite
    answer: through a kill, a retry may get the 202 the first try lost."""

    def __init__(self, d, p, nthreads=2, pace=0.03):
        self.d, self.p, self.pace = d, p, pace
        self.lock = threading.Lock()
        self.next_n = 0
        self.ids = {}               # n -> letter id
        self.bad = []               # (n, status) other than 202
        self.mismatch = []          # a retry answered with another id
        self.retries = 0
        self.threads = [threading.Thread(target=self.run)
                        for _ in range(nthreads)]

    def take(self):
        with self.lock:
            if self.next_n >= LETTERS:
                return None
            self.next_n += 1
            return self.next_n

    def run(self):
        while True:
            n = self.take()
            if n is None:
                return
            key = "restart-%d-%d" % (SEED, n)
            deadline = time.time() + 60
            got = None
            while time.time() < deadline:
                status_, lid = http_post(self.d, self.p, key, n)
                if status_ == 202 and lid:
                    got = lid
                    break
                if status_ is not None and status_ not in (500, 503):
                    with self.lock:
                        self.bad.append((n, status_))
                    break
                with self.lock:
                    self.retries += 1
                time.sleep(0.1)
            if got is not None:
                # Ask once more: an idempotent retry names the same letter.
                if n % 25 == 0:
                    s2, lid2 = http_post(self.d, self.p, key, n)
                    if s2 == 202 and lid2 != got:
                        with self.lock:
                            self.mismatch.append((n, got, lid2))
                with self.lock:
                    self.ids[n] = got
            elif not any(b[0] == n for b in self.bad):
                with self.lock:
                    self.bad.append((n, "no answer in 60s"))
            time.sleep(self.pace)

    def start(self):
        for t in self.threads:
            t.start()

    def join(self, timeout=120):
        for t in self.threads:
            t.join(timeout)


d = None
dt = None
try:
    # ===== part 1: SIGKILL while sending ===================================
    cert, key = st.make_self_signed(TMP, "localhost")
    cap = capture_dir("capture")
    PF = os.path.join(TMP, "pf")
    rig("sink-start", PF, st.free_port(), "-d", os.path.join(cap, "%H%M%S."))
    smarthost = int(rig(
        "start", PF, "--tls", cert, key,
        "-o", "smtpd_tls_security_level = encrypt",
        "-o", "smtpd_end_of_data_restrictions = sleep 1, permit"))
    tap.ok(smarthost > 0, "slow Postfix smarthost (STARTTLS, 1 s before "
           "each 250) on port %d" % smarthost)

    os.makedirs(os.path.join(TMP, "d"))
    d = st.Daemon({
        "relay": {"host": "127.0.0.1", "port": str(smarthost),
                  "tls": "starttls", "ca_file": cert, "tls_name": "localhost",
                  "pool_size": str(POOL), "connect_timeout": "5s",
                  "command_timeout": "10s", "data_timeout": "10s"},
        "queue": {"retry_first": "1s", "retry_max": "2s",
                  "lifetime_routine": "1h", "warn_routine": "0s"},
    }, debug=False, tmpdir=os.path.join(TMP, "d"))
    p = d.setup_practice(domain="riverside.example",
                         name="Riverside Surgery",
                         patient_email="jo@patient.test")
    d.ctl("practice", "set", p["practice"], "--failsafe",
          "alerts@riverside.example")
    d.start()

    clients = Clients(d, p)
    t0 = time.time()
    clients.start()
    # Kill moments: spread over the first ~25 s, when sending is busy
    # (the drain takes LETTERS / POOL seconds at least).
    moments = sorted(rnd.uniform(1.5, 24.0) for _ in range(KILLS))
    for i in range(1, KILLS):
        moments[i] = max(moments[i], moments[i - 1] + 2.5)
    requeued_total = 0
    kills_with_sending = 0
    for k, at in enumerate(moments, 1):
        delay = t0 + at - time.time()
        if delay > 0:
            time.sleep(delay)
        sent_before = status(d).get("queue", {}).get("sent")
        d.stop(sig=signal.SIGKILL)
        r = d.ctl_run("db", "check")
        tap.ok(r.returncode == 0 and r.stdout.strip() == "ok",
               "kill %d at %.1fs: db check ok" % (k, time.time() - t0))
        sending = len(queue_rows(d, "sending"))
        if sending > 0:
            kills_with_sending += 1
        requeued_total += sending
        time.sleep(rnd.uniform(0.2, 1.0))   # clients meet a closed port
        offset = len(d.log_text())
        d.start()
        m = re.search(r"queue: (\d+) deliveries were being sent when the "
                      r"daemon stopped", d.log_text()[offset:])
        logged = int(m.group(1)) if m else 0
        tap.is_eq(logged, sending, "kill %d: restart logs %d deliveries "
                  "queued again (%d were sending; %s sent before)"
                  % (k, logged, sending, sent_before))
    tap.ok(kills_with_sending >= KILLS - 1,
           "%d of %d kills caught deliveries in the middle of sending "
           "(%d requeued in all)" % (kills_with_sending, KILLS,
                                    requeued_total))

    clients.join()
    ids = dict(clients.ids)
    tap.is_eq(len(ids), LETTERS, "every letter accepted (202) by the "
              "clients, %d retries through the kills" % clients.retries)
    if clients.bad:
        tap.diag("not accepted: %s" % clients.bad[:10])
    tap.ok(not clients.mismatch, "idempotent retries name the same letter")
    tap.is_eq(len(set(ids.values())), len(ids),
              "every accepted letter has its own id")

    def open_count():
        q = status(d).get("queue", {})
        return sum(q.get(s, 1) for s in ("queued", "sending", "deferred",
                                          "held"))
    drained = wait_for(lambda: open_count() == 0, timeout=90, step=0.5)
    if not drained and status(d).get("queue", {}).get("deferred"):
        tap.diag("deferred left: %s" % d.ctl("queue", "retry"))
        drained = wait_for(lambda: open_count() == 0, timeout=30, step=0.5)
    tap.ok(drained, "the queue drains after the last restart (%.0fs from "
           "the first post)" % (time.time() - t0))

    # --- 1b: a clean stop (SIGTERM) in the middle of sending --------------
    # TERM more letters are posted and the daemon is stopped cleanly while
    # they are claimed.  queue_stop() hands every job no worker has started
    # back to "queued" and says so: "Jobs not started: back to the queue
    # at once (not an attempt)"; the jobs in a worker are cancelled and
    # deferred.  The claim counted an attempt (attempts + 1) that the
    # requeue does not take back, so a delivery that never left sealpostd
    # shows an attempt in "queue list" and the API, lengthens its next
    # backoff, and is counted in the "lifetime ended after N attempts"
    # reason.  This check fails until the requeue restores the count (or
    # the claim stops counting it); reported to the lead.
    extra_n = range(LETTERS + 1, LETTERS + 1 + TERM)
    term_ids = {}
    for n in extra_n:
        s_, lid = http_post(d, p, "term-%d-%d" % (SEED, n), n)
        if s_ == 202 and lid:
            term_ids[n] = lid
    tap.is_eq(len(term_ids), TERM, "clean stop: %d more letters accepted"
              % len(term_ids))
    claimed = wait_for(lambda: status(d).get("queue", {})
                       .get("sending", 0) >= TERM // 2, 10, 0.1)
    tap.ok(claimed, "clean stop: letters claimed and sending (%s)"
           % status(d).get("queue", {}).get("sending"))
    tap.is_eq(d.stop(), 0, "clean stop (SIGTERM) while sending exits 0")
    trow = [r for r in queue_rows(d, "queued|sending|deferred|sent")
            if r["letter"] in set(term_ids.values())]
    tstate = {}
    for r in trow:
        tstate[r["state"]] = tstate.get(r["state"], 0) + 1
    tap.diag("after the clean stop: %s" % tstate)
    tap.ok("sending" not in tstate, "clean stop: no delivery left sending")
    requeued_by_stop = [r for r in trow if r["state"] == "queued"]
    cancelled_by_stop = tstate.get("deferred", 0)
    counted = [r for r in requeued_by_stop if r["attempts"] != 0]
    tap.ok(requeued_by_stop and not counted,
           "clean stop: the %d deliveries no worker had started are queued "
           "with attempts 0, as before their claim (%d show an attempt)"
           % (len(requeued_by_stop), len(counted)))
    d.start()
    ids.update(term_ids)
    total = len(ids)
    tap.ok(wait_for(lambda: open_count() == 0, timeout=60, step=0.5),
           "clean stop: the queue drains after the restart")

    # T9: reconciliation, through the store and through the API.
    rows = queue_rows(d, "queued|sending|deferred|held|sent|failed|expired|"
                      "cancelled")
    tap.is_eq(len(rows), total, "one delivery per accepted letter "
              "(the retried POSTs stored nothing twice)")
    tap.ok(set(r["letter"] for r in rows) == set(ids.values()),
           "the deliveries belong to exactly the accepted letters")
    tap.is_eq(len(queue_rows(d, "queued|sending|deferred|held")), 0,
              "no delivery left open (queued, sending, deferred, held)")
    finals = {}
    for r in rows:
        finals[r["state"]] = finals.get(r["state"], 0) + 1
    tap.is_eq(finals, {"sent": total}, "every delivery sent")
    letters = {n: api_letter(d, p, lid) for n, lid in ids.items()}
    lstates = {}
    for j in letters.values():
        lstates[j.get("state")] = lstates.get(j.get("state"), 0) + 1
    tap.is_eq(lstates, {"sent": total},
              "API: every letter is in a final state, sent")
    msgid = {}                  # n -> the delivery's Message-ID
    attempts = {}
    for n, j in letters.items():
        dl = (j.get("deliveries") or [{}])[0]
        msgid[n] = dl.get("message_id")
        attempts[n] = dl.get("attempts") or 0
    tap.ok(all(msgid.values()) and len(set(msgid.values())) == total,
           "API: every delivery has its own Message-ID")

    # The sink, behind Postfix.
    tap.ok(wait_for(lambda: rig("queue", PF) == "0", 60),
           "Postfix relayed everything it accepted")
    got = captured(cap)
    by_n = {}
    strangers = []
    for m in got:
        sm = re.fullmatch(r"Result (\d+)", m["subject"])
        n = int(sm.group(1)) if sm else None
        if n is None or n not in ids:
            strangers.append(m)
            continue
        by_n.setdefault(n, []).append(m)
    tap.ok(not strangers, "no phantoms: every message at the sink is an "
           "accepted letter (%d strangers)" % len(strangers))
    for m in strangers[:5]:
        tap.diag("stranger: %s %s" % (m["msgid"], m["subject"]))
    missing = sorted(set(ids) - set(by_n))
    tap.ok(not missing, "every accepted letter reached the sink at least "
           "once (%d of %d)" % (len(by_n), total))
    if missing:
        tap.diag("missing letters: %s" % missing[:20])
    wrong_id = [(n, m["msgid"], msgid.get(n)) for n, ms in by_n.items()
                for m in ms if m["msgid"] != msgid.get(n)]
    tap.ok(not wrong_id, "each message at the sink, duplicates included, "
           "carries its delivery's Message-ID")
    for w in wrong_id[:5]:
        tap.diag("letter %d: sink %s, API %s" % w)
    tap.ok(all(m["rcpt"] == "jo@patient.test" and
               (m["mail"] or "").startswith("bounce+") for m in got),
           "envelope: the patient, from the letter's bounce address")
    dup = {n: len(ms) for n, ms in by_n.items() if len(ms) > 1}
    extra = sum(c - 1 for c in dup.values())
    tap.diag("duplicates: %d letters reached the sink more than once, %d "
             "extra copies in %d messages (%d requeued by %d kills, %d "
             "cancelled by the clean stop)" % (len(dup), extra, len(got),
                                               requeued_total, KILLS,
                                               cancelled_by_stop))
    tap.ok(all(attempts[n] >= c for n, c in dup.items()),
           "a letter seen N times at the sink was attempted at least N "
           "times")
    # A duplicate needs a transaction cut after its final dot: one per
    # relay worker at each kill, and the clean stop's cancelled ones.
    bound = min(requeued_total, KILLS * POOL) + cancelled_by_stop
    tap.ok(extra <= bound, "no more duplicates (%d) than transactions "
           "that can have been cut after the final dot (%d)"
           % (extra, bound))
    log = d.log_text()
    tap.ok(CANARY not in log, "the log holds no letter content")
    tap.is_eq(d.ctl_run("audit", "verify").returncode, 0,
              "audit chain verifies")
    tap.is_eq(d.stop(), 0, "clean stop after the kills")
    rig("stop", PF, check=False)
    rig("sink-stop", PF, check=False)

    # ===== part 2: a smarthost certificate that does not verify ===========
    cap2 = capture_dir("capture-tls")
    PF2 = os.path.join(TMP, "pf-tls")
    rig("sink-start", PF2, st.free_port(), "-d",
        os.path.join(cap2, "%H%M%S."))
    tlshost = int(rig("start", PF2, "--tls", cert, key,
                      "-o", "smtpd_tls_security_level = encrypt"))
    other_dir = os.path.join(TMP, "other")
    os.makedirs(other_dir)
    other_cert, _ = st.make_self_signed(other_dir, "localhost")

    os.makedirs(os.path.join(TMP, "dt"))
    dt = st.Daemon({
        "relay": {"host": "127.0.0.1", "port": str(tlshost),
                  "tls": "starttls", "ca_file": cert,
                  "tls_name": "wrong.example", "pool_size": "2",
                  "connect_timeout": "5s", "command_timeout": "10s"},
        "queue": {"retry_first": "1s", "retry_max": "2s",
                  "lifetime_routine": "1h", "warn_routine": "0s"},
    }, debug=False, tmpdir=os.path.join(TMP, "dt"))
    pt = dt.setup_practice(domain="riverside.example",
                           name="Riverside Surgery",
                           patient_email="jo@patient.test")
    dt.ctl("practice", "set", pt["practice"], "--failsafe",
           "alerts@riverside.example")
    dbt = dt.config["daemon"]["database"]

    def tls_alerts():
        con = sqlite3.connect("file:%s?mode=ro" % dbt, uri=True, timeout=30)
        try:
            return con.execute(
                "SELECT a.id, a.kind, a.state, p.failsafe_email "
                "FROM alerts a JOIN practices p ON p.id = a.practice_id "
                "ORDER BY a.id").fetchall()
        finally:
            con.close()

    def maillog():
        with open(os.path.join(PF2, "maillog"), errors="replace") as f:
            return f.read()

    tls_letters = []
    for case, change in (("tls_name does not match", {}),
                         ("unknown issuer (ca_file)",
                          {"tls_name": "localhost",
                           "ca_file": other_cert})):
        dt.config["relay"].update(change)
        dt.write_config()
        alerts_before = len(tls_alerts())
        offset = len(dt.log_text())
        dt.start()
        lids = [http_post(dt, pt, "tls-%d-%d" % (SEED, i), i)[1]
                for i in range(len(tls_letters), len(tls_letters) + 2)]
        tap.ok(all(lids), "%s: letters accepted" % case)
        tls_letters += [x for x in lids if x]

        def all_retried():
            ds = [(api_letter(dt, pt, x).get("deliveries") or [{}])[0]
                  for x in tls_letters]
            if all(x.get("state") == "deferred" and
                   (x.get("attempts") or 0) >= 2 for x in ds):
                return ds
            return None
        ds = wait_for(all_retried, 20)
        tap.ok(bool(ds), "%s: every delivery deferred and retried" % case)
        for x in ds or []:
            tap.diag("  delivery %s: attempts %s, %s" % (
                x.get("id"), x.get("attempts"), x.get("last_error")))
        tap.ok(bool(ds) and all((x.get("last_error") or "").startswith("tls:")
                                for x in ds),
               "%s: the reason is a tls one" % case)
        tap.ok(bool(ds) and all(x.get("smtp_code") in (None, 0) for x in ds),
               "%s: no SMTP reply recorded for the letters" % case)
        log = dt.log_text()[offset:]
        tap.ok(re.search(r"deferred, smarthost unusable \(tlsfail\)", log)
               is not None, "%s: the log says the smarthost is unusable "
               "(tlsfail)" % case)
        ml = maillog()
        # One "disconnect" line per smtpd session, with its command
        # counts; the rig's own banner probe is "quit=1 commands=1".
        ends = re.findall(r"smtpd\[\d+\]: disconnect from .*", ml)
        sessions = [x for x in ends if " ehlo=" in x]
        tap.ok(len(sessions) > 0 and not any(" mail=" in x for x in ends),
               "%s: Postfix saw %d sessions, none with MAIL FROM"
               % (case, len(sessions)))
        tap.ok(all(x.endswith(" ehlo=1 starttls=1 commands=2")
                   for x in sessions),
               "%s: each ended after STARTTLS: nothing was sent after the "
               "handshake, not even EHLO" % case)
        tap.ok("from=<" not in ml and rig("queue", PF2) == "0" and
               not captured(cap2),
               "%s: nothing queued by Postfix, nothing at the sink" % case)
        tap.ok(wait_for(lambda: status(dt).get("queue", {})
                        .get("alerts_queued", 0) >= 1, 10),
               "%s: status: an alert is queued (alerts_queued %s)"
               % (case, status(dt).get("queue", {}).get("alerts_queued")))
        new = tls_alerts()[alerts_before:]
        tap.ok(len(new) == 1 and new[0][1] == "tls" and
               new[0][2] in ("queued", "sending") and
               new[0][3] == "alerts@riverside.example",
               "%s: one alert of kind tls for the failsafe address, not "
               "sent (%s)" % (case, new))
        tap.ok(all((api_letter(dt, pt, x).get("state")) == "accepted"
                   for x in tls_letters),
               "%s: the letters stay accepted (not paper)" % case)
        tap.is_eq(dt.stop(), 0, "%s: clean stop" % case)

    # Corrected: the letters go, and so do the queued tls alerts.
    dt.config["relay"].update({"tls_name": "localhost", "ca_file": cert})
    dt.write_config()
    dt.start()
    dt.ctl("queue", "retry")
    ok = wait_for(lambda: all((api_letter(dt, pt, x).get("deliveries") or
                               [{}])[0].get("state") == "sent"
                              for x in tls_letters), 20)
    tap.ok(ok, "certificate fixed: the deferred letters are sent")
    def tls_alert_mails():
        return [m for m in captured(cap2)
                if m["rcpt"] == "alerts@riverside.example"
                and "(tls)" in m["subject"]]
    # Wait for both (the second may still be in its retry backoff), then
    # count what came: exactly two.
    wait_for(lambda: len(tls_alert_mails()) >= 2, 20)
    al = tls_alert_mails()
    tap.is_eq(len(al), 2, "both tls alerts reached the failsafe address")
    tap.ok(bool(al) and all(m["mail"] == "" and
                            CANARY.encode() not in m["raw"] and
                            b"Letter number" not in m["raw"] for m in al),
           "alert mail: MAIL FROM:<>, no letter content")
    if al:
        tap.diag("alert subject: %s" % al[0]["subject"])
    tap.ok(CANARY not in dt.log_text(), "the log holds no letter content")
    tap.is_eq(dt.stop(), 0, "clean stop")
except Exception as e:  # noqa: BLE001
    tap.ok(False, "unexpected error: %s" % e)
    for x in (d, dt):
        if x is not None:
            tap.diag(x.log_tail(40))
finally:
    for x in (d, dt):
        if x is not None:
            x.stop()
    for name in ("pf", "pf-tls"):
        rig("stop", os.path.join(TMP, name), check=False)
        rig("sink-stop", os.path.join(TMP, name), check=False)
    if not os.environ.get("SEALPOST_TEST_KEEP"):
        for x in (d, dt):
            if x is not None:
                x.cleanup()
        shutil.rmtree(TMP, ignore_errors=True)
    else:
        tap.diag("kept %s" % TMP)
tap.done()
