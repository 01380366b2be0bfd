#!/usr/bin/env python3
"""t_replies_api - replies through the HTTP API and sealpostctl.

A real sealpostd; letters submitted through its API; replies stored as
the intake stores them (tests/reply_commit: a sealpost-reply/1 document
sealed with age for the archive and the clinician, committed with
store_replies_commit).  Then:
  GET /v1/threads/{id}: the letter and its replies, content only for the
    filed ones and only for the letter's own practice (404 otherwise);
  GET /v1/replies: the practice's filed replies by cursor, paging, the
    size bound, bad parameters naming the field;
  every content read is one audit row "reply.read" (client:N, reply:ID);
  sealpostctl quarantine list/show/file/reject, letter close, practice
    and clinician set, wrong states refused, the audit chain intact;
  no reply content in the daemon's log.
"""

import base64
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sealpost_test as st  # noqa: E402

tap = st.Tap()
SUBJ = "CANARY-reply-subject-51c2"      # must never be logged
NEW = "CANARY new text: the rash is better 9e1d"
FULL = NEW + "\n\n> On Monday the surgery wrote:\n> quoted"


def doc(subject=SUBJ, new=NEW, text=FULL, atts=(), original=b"raw"):
    return {"format": "sealpost-reply/1", "subject": subject,
            "new_text": new, "text": text, "html": None,
            "attachments": [{"filename": n, "content_type": t,
                             "data": base64.b64encode(b).decode()}
                            for (n, t, b) in atts],
            "removed": ["quote"],
            "original": base64.b64encode(original).decode()}


def commit(d, practice, document, letter=0, clinician=0, state="filed",
           reason=None, detail=None, frm="jo@patient.example", urgent=False):
    args = [st.prog("../tests/reply_commit"), "-d",
            d.config["daemon"]["database"], "-p", str(practice),
            "-s", state, "-f", frm]
    if letter:
        args += ["-l", str(letter)]
    if clinician:
        args += ["-c", str(clinician)]
    if reason:
        args += ["-r", reason]
    if detail:
        args += ["-e", detail]
    if urgent:
        args += ["-u"]
    r = subprocess.run(args, input=json.dumps(document).encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError("reply_commit: %s" % r.stderr.decode())
    return int(r.stdout)


def get(d, path, token, method="GET"):
    """(status, JSON or None, headers)."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (d.http_port,
                                                            path),
                                 method=method,
                                 headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
            return r.status, json.loads(body) if body else None, r.headers
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body), e.headers
        except ValueError:
            return e.code, None, e.headers


def db(d):
    return sqlite3.connect("file:%s?mode=ro" % d.config["daemon"]["database"],
                           uri=True, timeout=10)


def audits(d, action, obj=None, actor=None):
    q = "SELECT count(*) FROM audit WHERE action = ?"
    a = [action]
    if obj:
        q += " AND object = ?"
        a.append(obj)
    if actor:
        q += " AND actor = ?"
        a.append(actor)
    con = db(d)
    try:
        return con.execute(q, a).fetchone()[0]
    finally:
        con.close()


def main():
    if not os.path.exists(st.prog("../tests/reply_commit")):
        tap.bail("tests/reply_commit is not built (make check-programs)")
    with st.Daemon(config={"replies": {"forward": "smtp"}}) as d:
        try:
            p = d.setup_practice()
            q = d.setup_practice(domain="hillside.example", name="Hillside",
                                 patient_email="sam@patient.example")
            d.start()
        except Exception as e:  # noqa: BLE001
            tap.bail("daemon setup: %s" % e)
        con = db(d)
        cids = dict(con.execute("SELECT practice_id, id FROM clients"))
        con.close()
        p["client"], q["client"] = cids[p["practice"]], cids[q["practice"]]
        run(d, p, q)
        rc = d.stop()
        tap.is_eq(rc, 0, "SIGTERM: clean exit")
        log = d.log_text()
        tap.ok("CANARY" not in log and "rash" not in log,
               "no reply subject or text in the daemon log")
        tap.ok("Sanitizer" not in log and "runtime error:" not in log,
               "no sanitizer report in the log")
    tap.done()


def run(d, p, q):
    letter = {"subject": "Results", "text": "Your results are normal."}
    s1, l1 = st.api_post_letter(d, p["token"], dict(
        letter, patient=p["patient"], author=p["clinician"]))
    s2, lq = st.api_post_letter(d, q["token"], dict(
        letter, patient=q["patient"], author=q["clinician"]))
    if not tap.ok(s1 == 202 and s2 == 202, "two letters submitted"):
        tap.bail("no letters")

    pdf = bytes(range(256)) * 4
    r1 = commit(d, p["practice"], doc(atts=[("scan.pdf", "application/pdf",
                                             pdf)]),
                letter=l1, clinician=p["clinician"], urgent=True)
    r2 = commit(d, p["practice"], doc(subject="CANARY-q2", new="CANARY q2"),
                letter=l1, clinician=p["clinician"], state="quarantined",
                reason="from_mismatch", detail="From is not the patient",
                frm="someone@else.example")
    r3 = commit(d, p["practice"], doc(subject="CANARY-q3",
                                      new="CANARY q3 \x1b[31mred"),
                state="quarantined", reason="no_token",
                detail="no reply token")
    r4 = commit(d, q["practice"], doc(subject="CANARY-hill"), letter=lq,
                clinician=q["clinician"])
    r5 = commit(d, p["practice"], doc(subject="CANARY-second",
                                      new="CANARY second"),
                letter=l1, clinician=p["clinician"])
    tap.ok(r1 < r2 < r3 < r4 < r5, "five replies stored")
    actor_p = "client:%d" % p["client"]

    # --- GET /v1/threads/{id} ---------------------------------------------
    before = audits(d, "reply.read")
    s, j, _ = get(d, "/v1/threads/%d" % l1, p["token"])
    ok = s == 200 and isinstance(j, dict)
    tap.ok(ok, "thread of the practice's letter: 200")
    if not ok:
        tap.diag("got %r %r" % (s, j))
        return
    msgs = j["messages"]
    tap.ok(j["id"] == l1 and j["closed"] is None and
           j["patient"] == p["patient"] and j["author"] == p["clinician"] and
           isinstance(j["deliveries"], list) and len(j["deliveries"]) == 1,
           "thread: letter fields, open, one delivery")
    tap.ok(msgs[0]["type"] == "letter" and msgs[0]["id"] == l1 and
           msgs[0]["state"] == j["state"],
           "thread: the letter is the first message")
    by = {m["id"]: m for m in msgs[1:]}
    tap.is_eq(sorted(by), [r1, r2, r5],
              "thread: its three replies, none of another thread")
    m1 = by.get(r1, {})
    tap.ok(m1.get("state") == "filed" and m1.get("subject") == SUBJ and
           m1.get("new_text") == NEW and m1.get("urgent") is True and
           m1.get("sender") == "verified" and
           m1.get("from") == "jo@patient.example" and
           m1.get("reason") is None and m1.get("received"),
           "thread: a filed reply with its subject, new text and marks")
    tap.is_eq(m1.get("attachments"), [{"filename": "scan.pdf",
                                       "content_type": "application/pdf",
                                       "size": len(pdf)}],
              "thread: attachment name, type and exact size")
    tap.ok("text" not in m1 and "original" not in m1,
           "thread: neither the full text nor the original")
    m2 = by.get(r2, {})
    tap.ok(m2.get("state") == "quarantined" and
           m2.get("reason") == "from_mismatch" and
           m2.get("from") == "someone@else.example" and
           "subject" not in m2 and "new_text" not in m2,
           "thread: a quarantined reply is listed without content")
    tap.ok(j["more"] is False and j["next"] is None,
           "thread: complete, no cursor")
    tap.is_eq(audits(d, "reply.read") - before, 2,
              "thread: one reply.read audit row per filed reply opened")
    tap.is_eq(audits(d, "reply.read", "reply:%d" % r1, actor_p), 1,
              "audit row names client:N and reply:ID")
    tap.is_eq(audits(d, "reply.read", "reply:%d" % r2), 0,
              "no audit row for the quarantined reply (nothing opened)")

    s, j, _ = get(d, "/v1/threads/%d?since=%d" % (l1, r1), p["token"])
    tap.ok(s == 200 and [m["id"] for m in j["messages"]] == [r2, r5],
           "thread ?since=: only the later replies, no letter")

    s, j, _ = get(d, "/v1/threads/%d" % l1, q["token"])
    tap.ok(s == 404 and j["error"]["code"] == "unknown_thread",
           "thread of another practice: 404 unknown_thread")
    s, j, _ = get(d, "/v1/threads/%d" % 999999, p["token"])
    tap.ok(s == 404 and j["error"]["code"] == "unknown_thread",
           "missing thread: 404 the same")
    s, _, h = get(d, "/v1/threads/%d" % l1, p["token"], method="HEAD")
    tap.ok(s == 405 and h.get("Allow") == "GET",
           "HEAD on a thread: 405, Allow: GET (reads are audited)")
    s, j, _ = get(d, "/v1/threads/%d?since=x" % l1, p["token"])
    tap.ok(s == 422 and j["error"].get("field") == "since",
           "thread ?since=x: 422 naming since")
    s, j, _ = get(d, "/v1/threads/%d" % l1, "nope")
    tap.is_eq(s, 401, "thread without a good token: 401")

    # --- GET /v1/replies ----------------------------------------------------
    s, j, _ = get(d, "/v1/replies", p["token"])
    ids = [m["id"] for m in j.get("replies", [])] if s == 200 else None
    tap.is_eq(ids, [r1, r5], "feed: the practice's filed replies, oldest "
              "first, nothing quarantined, nothing of another practice")
    f1 = j["replies"][0] if ids else {}
    tap.ok(f1.get("thread") == l1 and f1.get("patient") == p["patient"] and
           f1.get("new_text") == NEW and f1.get("subject") == SUBJ and
           f1.get("urgent") is True and len(f1.get("attachments", [])) == 1,
           "feed: thread, patient, marks and content")
    seq = {m["id"]: m.get("seq") for m in j.get("replies", [])}
    tap.ok(seq.get(r1) is not None and seq.get(r5, 0) > seq.get(r1, 0),
           "feed: each reply has its place (seq), in filing order")
    tap.ok(j.get("next") == seq.get(r5) and j.get("more") is False and
           j.get("size_limited") is False,
           "feed: next is the last reply's place")
    s, j, _ = get(d, "/v1/replies", q["token"])
    tap.ok(s == 200 and [m["id"] for m in j["replies"]] == [r4] and
           j["replies"][0]["subject"] == "CANARY-hill",
           "feed of the other practice: its own reply only")

    seen, cur, pages = [], 0, 0
    while pages < 10:
        s, j, _ = get(d, "/v1/replies?since=%d&limit=1" % cur, p["token"])
        if s != 200:
            break
        pages += 1
        seen += [m["id"] for m in j["replies"]]
        cur = j["next"]
        if not j["more"]:
            break
    tap.ok(seen == [r1, r5] and pages == 2,
           "feed paging with limit=1: every reply once, more=false at end")
    s, j, _ = get(d, "/v1/replies?since=%d" % seq.get(r5, 0), p["token"])
    tap.ok(s == 200 and j["replies"] == [] and j["next"] == seq.get(r5) and
           j["more"] is False, "feed past the end: empty, next unchanged")

    for qs, field in (("since=-1", "since"), ("since=abc", "since"),
                      ("limit=0", "limit"), ("limit=501", "limit"),
                      ("limit=", "limit"), ("foo=1", "foo"),
                      ("since=1&since=2", "since")):
        s, j, _ = get(d, "/v1/replies?" + qs, p["token"])
        e = (j or {}).get("error", {})
        tap.ok(s == 422 and e.get("code") == "invalid_field" and
               e.get("field") == field,
               "feed ?%s: 422 invalid_field naming %s" % (qs, field))
    s, j, _ = get(d, "/v1/replies?limit=500", p["token"])
    tap.is_eq(s, 200, "feed ?limit=500: accepted")
    s, _, h = get(d, "/v1/replies", p["token"], method="POST")
    tap.is_eq(s, 405, "POST /v1/replies: 405")

    # --- sealpostctl ----------------------------------------------------------
    out = d.ctl("quarantine", "list")
    rows = [ln.split()[0] for ln in out.splitlines()[1:]]
    tap.is_eq(rows, [str(r2), str(r3)], "quarantine list: the two waiting")
    tap.ok("from_mismatch" in out and "someone@else.example" in out and
           "CANARY" not in out, "quarantine list: reason, from, no content")

    n0 = audits(d, "reply.show", "reply:%d" % r3)
    r = d.ctl_run("quarantine", "show", r3)
    tap.ok(r.returncode == 0 and "CANARY-q3" in r.stdout and
           "CANARY q3 ?[31mred" in r.stdout and "\x1b" not in r.stdout and
           "no_token" in r.stdout,
           "quarantine show: content, escape character replaced")
    tap.is_eq(audits(d, "reply.show", "reply:%d" % r3) - n0, 1,
              "quarantine show: audited reply.show")
    r = d.ctl_run("quarantine", "show", 99999)
    tap.ok(r.returncode == 1 and "no such reply" in r.stderr,
           "quarantine show of a missing reply: exit 1, said")

    r = d.ctl_run("quarantine", "file", r2, "--thread", lq)
    tap.ok(r.returncode == 1 and "practice" in r.stderr,
           "file into another practice's letter: refused")
    r = d.ctl_run("quarantine", "file", r2, "--thread", 99999)
    tap.ok(r.returncode == 1 and "no such letter" in r.stderr,
           "file into a missing letter: refused")
    r = d.ctl_run("quarantine", "file", r2)
    tap.is_eq(r.returncode, 2, "file without --thread: usage")
    r = d.ctl_run("quarantine", "file", r1, "--thread", l1)
    tap.ok(r.returncode == 1 and "not quarantined" in r.stderr,
           "file a filed reply: refused, said")

    r = d.ctl_run("quarantine", "file", r3, "--thread", l1)
    tap.ok(r.returncode == 0 and "filed to thread" in r.stdout,
           "quarantine file: done")
    if r.returncode != 0:
        tap.diag(r.stderr)
    con = db(d)
    row = con.execute("SELECT state, letter_id, patient_id, decided_by "
                      "FROM replies WHERE id = ?", (r3,)).fetchone()
    mail = con.execute("SELECT kind, to_addr, clinician_id FROM reply_mails "
                       "WHERE reply_id = ?", (r3,)).fetchall()
    con.close()
    tap.ok(row[0] == "filed" and row[1] == l1 and row[2] == p["patient"] and
           row[3].startswith("admin:"),
           "filed: state, thread, patient, decided by the admin")
    tap.is_eq(mail, [("forward", p["clinician_email"], p["clinician"])],
              "filed: a forward mail queued to the clinician")
    tap.is_eq(audits(d, "reply.file", "reply:%d" % r3), 1,
              "filed: audited reply.file")
    # A client whose cursor had passed r5 before staff filed r3 (a lower
    # id) still gets r3: filing gives it the next place in the feed.
    s, j, _ = get(d, "/v1/replies?since=%d" % seq.get(r5, 0), p["token"])
    tap.ok(s == 200 and [m["id"] for m in j["replies"]] == [r3] and
           j["replies"][0]["new_text"].startswith("CANARY q3"),
           "the reply filed from quarantine comes after the cursor, never "
           "behind it (resealed for the archive)")
    s, j, _ = get(d, "/v1/replies?since=%d" % seq.get(r1, 0), p["token"])
    tap.ok(s == 200 and [m["id"] for m in j["replies"]] == [r5, r3],
           "feed order is filing order, not id order")
    check_clinician_can_open(d, p, r3)
    r = d.ctl_run("quarantine", "file", r3, "--thread", l1)
    tap.ok(r.returncode == 1 and "not quarantined" in r.stderr,
           "file twice: refused")

    r = d.ctl_run("quarantine", "reject", r2, "-r", "x" * 48)
    tap.is_eq(r.returncode, 1, "reject with an over-long reason: refused")
    r = d.ctl_run("quarantine", "reject", r2, "-r", "spam")
    tap.ok(r.returncode == 0 and audits(d, "reply.reject",
                                        "reply:%d" % r2) == 1,
           "quarantine reject: done, audited")
    r = d.ctl_run("quarantine", "reject", r2)
    tap.ok(r.returncode == 1 and "rejected, not quarantined" in r.stderr,
           "reject twice: refused, said")
    out = d.ctl("quarantine", "list")
    tap.is_eq(len(out.splitlines()), 1, "quarantine list: empty now")
    out = d.ctl("quarantine", "list", "-a")
    rows = {ln.split()[0]: ln for ln in out.splitlines()[1:]}
    tap.ok(sorted(rows) == sorted([str(r2), str(r3)]) and
           "rejected" in rows.get(str(r2), "") and
           "filed" in rows.get(str(r3), ""),
           "quarantine list -a: the decided ones, not those filed on arrival")

    # the team address when the clinician is inactive
    r = d.ctl_run("practice", "set", p["practice"], "--team-email",
                  "team@riverside.example", "--duty-email",
                  "duty@riverside.example")
    tap.ok(r.returncode == 0 and audits(
        d, "practice.set.team_email", "practice:%d" % p["practice"]) == 1,
        "practice set --team-email --duty-email: audited")
    r = d.ctl_run("clinician", "set", p["clinician"], "--active", "no")
    tap.is_eq(r.returncode, 0, "clinician set --active no")
    r = d.ctl_run("clinician", "set", p["clinician"], "--email", "bad")
    tap.ok(r.returncode != 0 and "not an email address" in r.stderr,
           "clinician set --email bad: refused, said")
    r = d.ctl_run("clinician", "set", p["clinician"], "--role", "x")
    tap.is_eq(r.returncode, 2, "clinician set --role: usage")
    r6 = commit(d, p["practice"], doc(), state="quarantined",
                reason="no_token")
    r = d.ctl_run("quarantine", "file", r6, "--thread", l1)
    con = db(d)
    mail = con.execute("SELECT kind, to_addr, clinician_id FROM reply_mails "
                       "WHERE reply_id = ?", (r6,)).fetchall()
    active = con.execute("SELECT active, email FROM clinicians WHERE id = ?",
                         (p["clinician"],)).fetchone()
    duty = con.execute("SELECT duty_email FROM practices WHERE id = ?",
                       (p["practice"],)).fetchone()[0]
    con.close()
    if not tap.ok(r.returncode == 0 and mail == [("forward",
                                                  "team@riverside.example",
                                                  None)],
                  "inactive clinician: the forward goes to the team address"):
        tap.diag("exit %d %s; mails %r" % (r.returncode, r.stderr, mail))
    tap.ok(active[0] == 0 and active[1] == p["clinician_email"] and
           duty == "duty@riverside.example", "settings stored")
    # r6's place in the feed (it was filed last): the cursor below
    s, j, _ = get(d, "/v1/replies?limit=500", p["token"])
    seq6 = ([m["seq"] for m in j.get("replies", []) if m["id"] == r6] or
            [0])[0]
    tap.ok(seq6 > 0 and j["replies"][-1]["id"] == r6,
           "the reply filed last from quarantine is last in the feed")

    # letter close
    r = d.ctl_run("letter", "close", l1)
    tap.ok(r.returncode == 0 and audits(d, "letter.close",
                                        "letter:%d" % l1) == 1,
           "letter close: done, audited")
    r = d.ctl_run("letter", "close", l1)
    tap.ok(r.returncode == 1 and "already closed" in r.stderr,
           "letter close twice: refused, said")
    r = d.ctl_run("letter", "close", 99999)
    tap.ok(r.returncode == 1 and "no such letter" in r.stderr,
           "letter close of a missing letter: refused")
    s, j, _ = get(d, "/v1/threads/%d" % l1, p["token"])
    tap.ok(s == 200 and j["closed"] is not None, "thread: closed is set")
    tap.ok("closed:" in d.ctl("letter", "show", l1) and
           "closed:" not in d.ctl("letter", "show", lq),
           "letter show: the closed time, only when closed")

    # the size bound: two replies of ~5 MiB sealed each
    big = os.urandom(4 * 1024 * 1024)
    b1 = commit(d, p["practice"], doc(atts=[("a.bin", "image/png", big)]),
                letter=l1, clinician=p["clinician"])
    b2 = commit(d, p["practice"], doc(atts=[("b.bin", "image/png", big)]),
                letter=l1, clinician=p["clinician"])
    s, j, _ = get(d, "/v1/replies?since=%d&limit=10" % seq6, p["token"])
    tap.ok(s == 200 and [m["id"] for m in j["replies"]] == [b1] and
           j["more"] is True and j["size_limited"] is True and
           j["next"] == j["replies"][0]["seq"] and
           j["replies"][0]["attachments"][0]["size"] == len(big),
           "feed: the page stops at the size bound and says so")
    s, j, _ = get(d, "/v1/replies?since=%d&limit=10" % j["next"],
                  p["token"])
    tap.ok(s == 200 and [m["id"] for m in j["replies"]] == [b2] and
           j["more"] is False, "feed: the next page has the rest")
    s, j, _ = get(d, "/v1/threads/%d?since=%d" % (l1, r6), p["token"])
    tap.ok(s == 200 and [m["id"] for m in j["messages"]] == [b1] and
           j["more"] is True and j["next"] == b1,
           "thread: stops at the size bound, next is the cursor")

    # the audit comes first: when it cannot be written, no content
    lock = sqlite3.connect(d.config["daemon"]["database"], timeout=10)
    lock.execute("BEGIN IMMEDIATE")
    n0 = audits(d, "reply.read")
    s, j, h = get(d, "/v1/replies?since=%d&limit=1" % seq6, p["token"])
    lock.rollback()
    lock.close()
    tap.ok(s == 503 and (j or {}).get("error", {}).get("code") ==
           "unavailable" and h.get("Retry-After") and
           "CANARY" not in json.dumps(j) and
           audits(d, "reply.read") == n0,
           "database locked: 503 with Retry-After, no content, no audit")
    s, j, _ = get(d, "/v1/replies?since=%d&limit=1" % seq6, p["token"])
    tap.ok(s == 200 and [m["id"] for m in j["replies"]] == [b1] and
           audits(d, "reply.read") == n0 + 1,
           "lock gone: the same page, audited")

    # a client that leaves while its read waits on the reader thread
    def answered():
        return d.log_text().count("path=/v1/replies status=")
    n_ans = answered()
    lock = sqlite3.connect(d.config["daemon"]["database"], timeout=10)
    lock.execute("BEGIN IMMEDIATE")
    sk = socket.create_connection(("127.0.0.1", d.http_port), timeout=5)
    sk.sendall(("GET /v1/replies?since=%d&limit=1 HTTP/1.1\r\n"
                "Host: x\r\nAuthorization: Bearer %s\r\n\r\n" %
                (seq6, p["token"])).encode())
    time.sleep(0.5)
    sk.close()
    time.sleep(0.5)
    lock.rollback()
    lock.close()
    tap.ok(st.wait_for(lambda: answered() == n_ans + 1, timeout=10),
           "a client gone while its read waited: its read still ends")
    s, j, _ = get(d, "/v1/replies?since=%d&limit=1" % seq6, p["token"])
    tap.ok(s == 200 and d.running(), "and the next read is served")

    r = d.ctl_run("audit", "verify")
    tap.ok(r.returncode == 0 and "audit chain ok" in r.stdout,
           "audit chain verifies")


def check_clinician_can_open(d, p, rid):
    """The resealed reply opens with the thread author's identity."""
    idf = os.path.join(d.dir, "clin.key")
    blobf = os.path.join(d.dir, "r.age")
    try:
        d.ctl("identity", "export", "clinician", p["clinician"], "-o", idf)
        con = db(d)
        blob = con.execute("SELECT sealed FROM replies WHERE id = ?",
                           (rid,)).fetchone()[0]
        con.close()
        with open(blobf, "wb") as f:
            f.write(blob)
        r = subprocess.run([st.prog("sealpost-agetool"), "decrypt", "-i",
                            idf, blobf], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        j = json.loads(r.stdout) if r.returncode == 0 else {}
        tap.ok(j.get("format") == "sealpost-reply/1" and
               j.get("subject") == "CANARY-q3",
               "filed: the clinician's identity opens the resealed reply")
    except (RuntimeError, sqlite3.Error, ValueError) as e:
        tap.ok(False, "filed: the clinician's identity opens it (%s)" % e)
    finally:
        for f in (idf, blobf):
            if os.path.exists(f):
                os.unlink(f)


if __name__ == "__main__":
    main()
