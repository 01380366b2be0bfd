#!/usr/bin/env python3
"""t_api - the HTTP API and the control socket against the real daemon.

Real curl against a real sealpostd (plain HTTP on 127.0.0.1, then HTTPS
with a self-signed certificate made by openssl), raw sockets for what curl
will not send (pipelined requests, a client that leaves mid-request), the
stock `age' to open a sealed letter, sqlite3 to count what was stored.
After every refused request the letter count must not move and a good
request must still be served.
"""

import json
import os
import re
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sealpost_test as st  # noqa: E402

tap = st.Tap()
TMP = tempfile.mkdtemp(prefix="t_api-")
MAX_LETTER = 64 * 1024
BODY_MAX = MAX_LETTER // 3 * 4 + 4 + 64 * 1024   # as api.c computes it
CANARY = "CANARY-subject-7f3a"                     # must never be logged


class Resp:
    def __init__(self, rc, status, headers, body):
        self.rc, self.status, self.headers, self.body = rc, status, headers, body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def err(self):
        j = self.json()
        if isinstance(j, dict) and isinstance(j.get("error"), dict):
            return j["error"]
        return {}


def curl(url, method=None, headers=(), data=None, token=None, extra=(),
         timeout=20):
    """One request with curl; data is str/bytes (sent from a file)."""
    hfile = os.path.join(TMP, "h")
    bfile = os.path.join(TMP, "b")
    for f in (hfile, bfile):
        if os.path.exists(f):
            os.unlink(f)
    cmd = ["curl", "-sS", "--max-time", str(timeout), "-o", bfile,
           "-D", hfile, "-w", "%{http_code}"]
    if method:
        cmd += ["-X", method]
    if token is not None:
        cmd += ["-H", "Authorization: Bearer " + token]
    for h in headers:
        cmd += ["-H", h]
    if data is not None:
        dfile = os.path.join(TMP, "d")
        with open(dfile, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        cmd += ["--data-binary", "@" + dfile]
    cmd += list(extra) + [url]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    hdrs = {}
    try:
        with open(hfile) as f:
            for line in f.read().splitlines():
                if ":" in line:
                    k, v = line.split(":", 1)
                    hdrs[k.strip().lower()] = v.strip()
    except FileNotFoundError:
        pass
    try:
        with open(bfile, "rb") as f:
            body = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        body = ""
    try:
        status = int(r.stdout.strip() or "0")
    except ValueError:
        status = 0
    return Resp(r.returncode, status, hdrs, body)


def raw(port, data, wait=3.0, shut=True):
    """Send bytes on one connection, read until EOF or `wait' seconds of
    silence; returns the bytes read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    s.sendall(data)
    if shut:
        s.shutdown(socket.SHUT_WR)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return out


def statuses(blob):
    """The status codes of the HTTP responses in a byte stream (our JSON
    bodies end in a newline, so a status line follows a "\\n")."""
    return [int(c) for c in
            re.findall(rb"(?:^|\n)HTTP/1\.[01] (\d{3}) ", blob)]


def letter_body(p, **kw):
    b = {"patient": p["patient"], "author": p["clinician"],
         "subject": CANARY, "text": "Your results are normal."}
    b.update(kw)
    return json.dumps(b)


def main():
    conf = {"limits": {"max_letter_size": "64K"}}
    with st.Daemon(config=conf) as d:
        try:
            p = d.setup_practice()
            q = d.setup_practice(domain="hillside.example", name="Hillside",
                                 patient_email="sam@patient.example")
            d.start()
        except Exception as e:  # noqa: BLE001
            tap.bail("daemon setup: %s" % e)
        run_http(d, p, q)
        run_control(d)
        rc = d.stop()
        tap.is_eq(rc, 0, "SIGTERM: clean exit")
        log = d.log_text()
        tap.ok(CANARY not in log and "Your results" not in log,
               "no subject or letter text in the daemon log")
        tap.ok("Sanitizer" not in log and
               "runtime error:" not in log, "no sanitizer report in the log")
    run_drain()
    run_control_dir()
    run_restart_stale_socket()
    run_https()
    run_plaintext_refused()
    tap.done()


def db_count(d, table="letters"):
    con = sqlite3.connect("file:%s?mode=ro" % d.config["daemon"]["database"],
                          uri=True, timeout=10)
    try:
        return con.execute("SELECT count(*) FROM %s" % table).fetchone()[0]
    finally:
        con.close()


def run_http(d, p, q):
    base = "http://127.0.0.1:%d" % d.http_port
    tok, tok2 = p["token"], q["token"]
    jh = ["Content-Type: application/json"]
    good_n = [0]

    def good(name):
        """A good submission still works and adds exactly one letter."""
        before = db_count(d)
        r = curl(base + "/v1/letters", headers=jh, token=tok,
                 data=letter_body(p))
        ok = r.status == 202 and db_count(d) == before + 1
        good_n[0] += 1
        tap.ok(ok, "after %s: a good letter is still accepted" % name)

    def refused(name, r, status, code, field=None, count_before=None):
        e = r.err()
        ok = (r.status == status and e.get("code") == code and
              r.headers.get("content-type", "").startswith(
                  "application/json"))
        if field is not None:
            ok = ok and e.get("field") == field
        if not tap.ok(ok, "%s -> %d %s%s" % (name, status, code,
                                             " field=" + field if field
                                             else "")):
            tap.diag("got %d %r headers=%r" % (r.status, r.body[:300],
                                               r.headers))
        if count_before is not None:
            tap.is_eq(db_count(d), count_before,
                      "%s: nothing stored" % name)
            good(name)

    # health
    r = curl(base + "/healthz")
    tap.ok(r.status == 200 and r.json() == {"status": "ok"} and
           r.headers.get("content-type") == "application/json" and
           r.headers.get("cache-control") == "no-store",
           "GET /healthz: 200 {\"status\":\"ok\"}, JSON, no-store")

    # a letter, then its state
    n0 = db_count(d)
    r = curl(base + "/v1/letters", headers=jh + ["Idempotency-Key: key-1"],
             token=tok, data=letter_body(p, priority="urgent"))
    j = r.json() or {}
    lid = j.get("id")
    tap.ok(r.status == 202 and isinstance(lid, int) and
           j.get("status") == "accepted" and
           j.get("status_url") == "/v1/letters/%s" % lid and
           r.headers.get("location") == "/v1/letters/%s" % lid,
           "POST /v1/letters: 202 with id, status_url and Location")
    first_body = r.body
    tap.is_eq(db_count(d), n0 + 1, "the letter is in the database")
    r = curl(base + "/v1/letters/%s" % lid, token=tok)
    j = r.json() or {}
    dl = (j.get("deliveries") or [{}])[0]
    tap.ok(r.status == 200 and j.get("id") == lid and
           j.get("priority") == "urgent" and j.get("channel") == "http" and
           j.get("patient") == p["patient"] and
           j.get("author") == p["clinician"] and
           isinstance(j.get("sealed_size"), int) and j["sealed_size"] > 0 and
           str(j.get("created", "")).endswith("Z"),
           "GET /v1/letters/N: state, priority, channel, parties, size")
    # No smarthost in this test: the scheduler claims the delivery at once
    # and puts it back to wait, saying why, without counting an attempt
    # (while claimed it is "sending" with attempts 1).
    open_ok = (dl.get("state") in ("queued", "deferred") and
               dl.get("attempts") == 0) or \
        (dl.get("state") == "sending" and dl.get("attempts") == 1)
    tap.ok(dl.get("recipient") == "patient" and open_ok and
           "last_error" in dl and len(j.get("deliveries") or []) == 1,
           "GET /v1/letters/N: one open delivery to the patient (%s)"
           % dl.get("state"))
    if dl.get("state") == "deferred":
        tap.ok("no smarthost" in (dl.get("last_error") or ""),
               "deferred without a smarthost, and it says so")
    else:
        tap.ok(dl.get("state") in ("queued", "sending"),
               "not yet deferred: still open")
    tap.ok(CANARY not in r.body and "results" not in r.body,
           "GET /v1/letters/N: no content in the answer")

    # idempotency
    n1 = db_count(d)
    r = curl(base + "/v1/letters", headers=jh + ["Idempotency-Key: key-1"],
             token=tok, data=letter_body(p, priority="urgent"))
    tap.ok(r.status == 202 and r.body == first_body,
           "idempotent repeat: 202 with the original body")
    r = curl(base + "/v1/letters", headers=jh + ["Idempotency-Key: key-1"],
             token=tok, data=letter_body(p, priority="urgent"))
    tap.is_eq((r.status, (r.json() or {}).get("id")), (202, lid),
              "second repeat: same id")
    tap.is_eq(db_count(d), n1, "repeats stored nothing new")
    refused("same key, other body",
            curl(base + "/v1/letters",
                 headers=jh + ["Idempotency-Key: key-1"], token=tok,
                 data=letter_body(p, text="another letter")),
            409, "idempotency_conflict", count_before=n1)
    n = db_count(d)
    refused("Idempotency-Key of 129 characters",
            curl(base + "/v1/letters",
                 headers=jh + ["Idempotency-Key: " + "k" * 129], token=tok,
                 data=letter_body(p)),
            422, "invalid_field", "Idempotency-Key", count_before=n)
    # The same key from another client is another key.
    r = curl(base + "/v1/letters", headers=jh + ["Idempotency-Key: key-1"],
             token=tok2, data=letter_body(q, priority="urgent"))
    tap.ok(r.status == 202 and (r.json() or {}).get("id") != lid,
           "the same key from another client makes its own letter")

    # the same key and body at once from five connections: one letter
    n = db_count(d)
    dfile = os.path.join(TMP, "race-body")
    with open(dfile, "w") as f:
        f.write(letter_body(p, text="raced"))
    procs = [subprocess.Popen(
        ["curl", "-sS", "--max-time", "20", "-H", "Authorization: Bearer " +
         tok, "-H", "Content-Type: application/json", "-H",
         "Idempotency-Key: race-1", "--data-binary", "@" + dfile,
         base + "/v1/letters"], stdout=subprocess.PIPE, text=True)
        for _ in range(5)]
    ids = set()
    for pr in procs:
        out, _ = pr.communicate(timeout=30)
        try:
            ids.add(json.loads(out)["id"])
        except (ValueError, KeyError):
            ids.add(None)
    tap.ok(len(ids) == 1 and None not in ids and db_count(d) == n + 1,
           "five concurrent repeats of one key: one id, one letter")

    # bad requests: nothing stored, the daemon still serves
    n = db_count(d)
    refused("malformed JSON", curl(base + "/v1/letters", headers=jh,
                                   token=tok, data='{"patient": 1,'),
            400, "malformed_json", count_before=n)
    n = db_count(d)
    refused("patient as a string",
            curl(base + "/v1/letters", headers=jh, token=tok,
                 data=letter_body(p, patient="one")),
            422, "invalid_field", "patient", count_before=n)
    n = db_count(d)
    body = json.loads(letter_body(p))
    del body["subject"]
    r = curl(base + "/v1/letters", headers=jh, token=tok,
             data=json.dumps(body))
    refused("missing subject", r, 422, r.err().get("code", "?"), "subject",
            count_before=n)
    tap.ok(r.err().get("code") in ("missing_field", "invalid_field"),
           "missing subject: code names a missing/invalid field")
    n = db_count(d)
    body = json.loads(letter_body(p))
    del body["text"]
    refused("neither text nor html",
            curl(base + "/v1/letters", headers=jh, token=tok,
                 data=json.dumps(body)),
            422, "missing_field", "text", count_before=n)
    n = db_count(d)
    att = [{"filename": "a.pdf", "content_type": "application/pdf",
            "data": "not*base64!"}]
    refused("bad base64 attachment",
            curl(base + "/v1/letters", headers=jh, token=tok,
                 data=letter_body(p, attachments=att)),
            422, "invalid_base64", "attachments[0].data", count_before=n)
    n = db_count(d)
    refused("unknown patient",
            curl(base + "/v1/letters", headers=jh, token=tok,
                 data=letter_body(p, patient=99999)),
            404, "unknown_patient", count_before=n)
    n = db_count(d)
    refused("another practice's patient",
            curl(base + "/v1/letters", headers=jh, token=tok,
                 data=letter_body(p, patient=q["patient"])),
            404, "unknown_patient", count_before=n)
    n = db_count(d)
    refused("another practice's clinician as author",
            curl(base + "/v1/letters", headers=jh, token=tok,
                 data=letter_body(p, author=q["clinician"])),
            422, "invalid_field", "author", count_before=n)
    n = db_count(d)
    refused("another practice named in the body",
            curl(base + "/v1/letters", headers=jh, token=tok,
                 data=letter_body(p, practice=q["practice"])),
            403, "forbidden", count_before=n)
    r = curl(base + "/v1/letters", headers=jh, token=tok,
             data=letter_body(p, practice=p["practice"]))
    tap.is_eq(r.status, 202, "its own practice named in the body: 202")

    # an inactive author
    con = sqlite3.connect(d.config["daemon"]["database"], timeout=10)
    extra = con.execute(
        "INSERT INTO clinicians (practice_id, name, email, active, created, "
        "pk) SELECT practice_id, 'Dr Gone', 'gone@' || 'x.example', 0, "
        "created, pk FROM clinicians WHERE id = ?",
        (p["clinician"],)).lastrowid
    con.commit()
    con.close()
    n = db_count(d)
    refused("an inactive author",
            curl(base + "/v1/letters", headers=jh, token=tok,
                 data=letter_body(p, author=extra)),
            422, "invalid_field", "author", count_before=n)

    # size: JSON 413 before the body is read (no Expect, then Expect)
    for size, label in ((BODY_MAX + 1, "just over the bound"),
                        (3 * 1024 * 1024, "3 MiB, Expect: 100-continue")):
        n = db_count(d)
        t0 = time.time()
        r = curl(base + "/v1/letters", headers=jh, token=tok,
                 data=b"x" * size)
        refused("body %s" % label, r, 413, "too_large", count_before=n)
    big = "A" * (MAX_LETTER + 1000)
    att = [{"filename": "big.bin", "content_type": "application/octet-stream",
            "data": __import__("base64").b64encode(big.encode()).decode()}]
    n = db_count(d)
    refused("an attachment over max_letter_size in a body under the bound",
            curl(base + "/v1/letters", headers=jh, token=tok,
                 data=letter_body(p, attachments=att)),
            413, "too_large", count_before=n)

    # auth
    n = db_count(d)
    r = curl(base + "/v1/letters", headers=jh, data=letter_body(p))
    refused("no token", r, 401, "unauthorized", count_before=n)
    tap.ok(r.headers.get("www-authenticate", "").startswith("Bearer"),
           "no token: WWW-Authenticate: Bearer")
    n = db_count(d)
    r = curl(base + "/v1/letters", headers=jh, token="not-a-token",
             data=letter_body(p))
    refused("unknown token", r, 401, "unauthorized", count_before=n)
    tap.ok('error="invalid_token"' in r.headers.get("www-authenticate", ""),
           "unknown token: WWW-Authenticate says invalid_token")
    r = curl(base + "/v1/letters", headers=jh + ["Authorization: Basic Zm9v"],
             data=letter_body(p))
    refused("Basic instead of Bearer", r, 401, "unauthorized")
    r = curl(base + "/v1/letters/%s" % lid, token="x y")
    refused("malformed bearer token", r, 401, "unauthorized")

    # media type, methods, routes
    n = db_count(d)
    refused("text/plain body",
            curl(base + "/v1/letters", headers=["Content-Type: text/plain"],
                 token=tok, data=letter_body(p)),
            415, "unsupported_media_type", count_before=n)
    r = curl(base + "/v1/letters",
             headers=["Content-Type: application/json; charset=UTF-8"],
             token=tok, data=letter_body(p))
    tap.is_eq(r.status, 202, "application/json; charset=UTF-8 is accepted")
    refused("charset=latin1",
            curl(base + "/v1/letters",
                 headers=["Content-Type: application/json; charset=latin1"],
                 token=tok, data=letter_body(p)),
            415, "unsupported_media_type")
    r = curl(base + "/v1/letters/%s" % lid, method="DELETE", token=tok)
    refused("DELETE /v1/letters/N", r, 405, "method_not_allowed")
    tap.ok("GET" in r.headers.get("allow", ""), "405 carries Allow: GET")
    r = curl(base + "/v1/letters", token=tok)
    refused("GET /v1/letters", r, 405, "method_not_allowed")
    tap.is_eq(r.headers.get("allow"), "POST", "405 carries Allow: POST")
    refused("unknown route", curl(base + "/v2/nothing", token=tok), 404,
            "not_found")
    refused("non-numeric letter id", curl(base + "/v1/letters/abc",
                                          token=tok), 404, "not_found")
    refused("unknown letter", curl(base + "/v1/letters/999999", token=tok),
            404, "unknown_letter")
    refused("another practice's letter",
            curl(base + "/v1/letters/%s" % lid, token=tok2), 404,
            "unknown_letter")

    # pipelining on one connection: oversize, then a GET, then a POST
    ok_body = letter_body(p).encode()
    auth = ("Authorization: Bearer %s\r\n" % tok).encode()
    req = (b"POST /v1/letters HTTP/1.1\r\nHost: t\r\n" + auth +
           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
           % (BODY_MAX + 10) + b"y" * (BODY_MAX + 10) +
           b"GET /v1/letters/%d HTTP/1.1\r\nHost: t\r\n" % lid + auth +
           b"\r\n" +
           b"POST /v1/letters HTTP/1.1\r\nHost: t\r\n" + auth +
           b"Content-Type: application/json\r\nContent-Length: %d\r\n"
           b"Connection: close\r\n\r\n" % len(ok_body) + ok_body)
    n = db_count(d)
    out = raw(d.http_port, req, wait=10, shut=False)
    if not tap.is_eq(statuses(out), [413, 200, 202],
                     "one connection: oversize body dropped in step, next "
                     "requests served"):
        tap.diag(out.decode("utf-8", "replace")[:1500])
    tap.is_eq(db_count(d), n + 1, "one connection: only the good POST stored")
    # the same with the header section split over many small writes
    s = socket.create_connection(("127.0.0.1", d.http_port), timeout=10)
    head = (b"POST /v1/letters HTTP/1.1\r\nHost: t\r\n" + auth +
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (BODY_MAX + 1))
    for i in range(0, len(head), 7):
        s.sendall(head[i:i + 7])
        time.sleep(0.002)
    out = b""
    try:
        while b"\r\n\r\n" not in out or b"}" not in out:
            c = s.recv(4096)
            if not c:
                break
            out += c
    except socket.timeout:
        pass
    s.close()
    tap.is_eq(statuses(out)[:1], [413],
              "headers in 7-byte pieces: still a JSON 413 before the body")

    # the stream cut at random points: the guard keeps in step
    import random
    rng = random.Random(4242)
    good_req = (b"POST /v1/letters HTTP/1.1\r\nHost: t\r\n" + auth +
                b"Content-Type: application/json\r\nContent-Length: %d\r\n"
                b"\r\n" % len(ok_body) + ok_body)
    over_req = (b"PUT /v1/letters HTTP/1.1\r\nHost: t\r\n"
                b"Content-Length: %d\r\n\r\n" % (BODY_MAX + 3) +
                b"q" * (BODY_MAX + 3))
    get_body = b"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
    head_req = b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    last = b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    stream = good_req + over_req + get_body + head_req + over_req + last
    in_step = 0
    n = db_count(d)
    for trial in range(4):
        s = socket.create_connection(("127.0.0.1", d.http_port), timeout=10)
        i = 0
        while i < len(stream):
            k = rng.choice((1, 2, 3, 50, 700, 5000, 70000))
            s.sendall(stream[i:i + k])
            i += k
            if rng.random() < 0.05:
                time.sleep(0.01)
        out = b""
        try:
            while True:
                c = s.recv(65536)
                if not c:
                    break
                out += c
        except socket.timeout:
            pass
        s.close()
        got = statuses(out)
        if got == [202, 413, 200, 200, 413, 200]:
            in_step += 1
        else:
            tap.diag("trial %d: %r" % (trial, got))
    tap.is_eq(in_step, 4, "random cuts: every response in order, 413s JSON")
    tap.is_eq(db_count(d), n + 4, "random cuts: one letter per good POST")

    # what the guard leaves to libevent: still refused, nothing stored
    n = db_count(d)
    r = curl(base + "/v1/letters", headers=jh + ["Transfer-Encoding: chunked"],
             token=tok, data=b"x" * (BODY_MAX + 100))
    tap.is_eq(r.status, 413, "chunked oversize body: 413 (libevent's page)")
    tap.is_eq(db_count(d), n, "chunked oversize body: nothing stored")
    good("chunked oversize body")
    r = curl(base + "/healthz", headers=["X-Big: " + "h" * 20000])
    tap.ok(r.status in (400, 413, 431) or r.rc != 0,
           "20 KB header section: refused (%d)" % r.status)
    good("an over-long header section")
    r = curl(base + "/healthz", headers=["X-Sealpost-Oversize: forged"])
    tap.is_eq(r.status, 200, "a forged guard header is ignored")

    # a client that leaves while its letter is being committed
    n = db_count(d)
    body = letter_body(p, text="left early").encode()
    req = (b"POST /v1/letters HTTP/1.1\r\nHost: t\r\n" + auth +
           b"Idempotency-Key: gone-1\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body) + body)
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", d.http_port))
        s.sendall(req)
        s.close()
    time.sleep(1.0)
    r = curl(base + "/v1/letters", headers=jh + ["Idempotency-Key: gone-1"],
             token=tok, data=body)
    tap.ok(r.status == 202 and db_count(d) == n + 1,
           "client gone mid-request: the retry gets 202 and one letter")
    tap.ok(d.running(), "client gone mid-request: the daemon is alive")

    # the patient's own age recipient is a recipient of the seal
    if st.have("age") and st.have("age-keygen"):
        ident = os.path.join(TMP, "patient.key")
        subprocess.run(["age-keygen", "-o", ident], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pub = [ln.split(": ", 1)[1] for ln in open(ident).read().splitlines()
               if ln.startswith("# public key: ")][0]
        pid = int(d.ctl("patient", "add", "--practice", p["practice"],
                        "--name", "Alex", "--email", "alex@patient.example",
                        "--verified", "--consent", "--age-recipient", pub))
        r = curl(base + "/v1/letters", headers=jh, token=tok,
                 data=letter_body(p, patient=pid, text="for alex"))
        nid = (r.json() or {}).get("id")
        blob = os.path.join(TMP, "sealed.age")
        con = sqlite3.connect("file:%s?mode=ro" %
                              d.config["daemon"]["database"], uri=True)
        row = con.execute("SELECT sealed FROM letters WHERE id = ?",
                          (nid,)).fetchone()
        con.close()
        with open(blob, "wb") as f:
            f.write(row[0] if row else b"")
        dec = subprocess.run(["age", "-d", "-i", ident, blob],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        tap.ok(r.status == 202 and dec.returncode == 0 and
               b"for alex" in dec.stdout,
               "the patient's own age key opens the sealed letter")
    else:
        tap.skip("age / age-keygen not installed")

    # the store cannot commit: 503 + Retry-After, nothing stored
    n = db_count(d)
    lock = sqlite3.connect(d.config["daemon"]["database"],
                           isolation_level=None, timeout=10)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        r = curl(base + "/v1/letters", headers=jh, token=tok,
                 data=letter_body(p), timeout=30)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    refused("database locked past the busy timeout", r, 503, "unavailable",
            count_before=n)
    tap.ok(r.headers.get("retry-after", "").isdigit(),
           "503 carries Retry-After")

    # a revoked client
    con = sqlite3.connect(d.config["daemon"]["database"], timeout=10)
    con.execute("UPDATE clients SET revoked = 1 WHERE id = ("
                "SELECT id FROM clients WHERE practice_id = ?)",
                (q["practice"],))
    con.commit()
    con.close()
    refused("revoked token", curl(base + "/v1/letters/1", token=tok2), 401,
            "unauthorized")

    # one log line per request, without query strings
    curl(base + "/healthz?secret=querystring")
    log = d.log_text()
    tap.ok("method=POST path=/v1/letters status=202" in log and
           "client=%s" % "1" in log, "log: one line per request")
    tap.ok("querystring" not in log, "log: paths without the query")


def run_control(d):
    sock = d.config["daemon"]["control_socket"]
    mode = stat.S_IMODE(os.stat(sock).st_mode)
    tap.is_eq(oct(mode), oct(0o600), "control socket is mode 0600")
    r = d.ctl_run("status")
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = None
    tap.ok(r.returncode == 0 and isinstance(j, dict),
           "sealpostctl status: a JSON object")
    if not isinstance(j, dict):
        tap.diag(r.stdout + r.stderr)
    r = d.ctl_run("reload")
    tap.ok(r.returncode == 0, "sealpostctl reload")

    def ask(data):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(15)
        s.connect(sock)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            out += c
        s.close()
        return out

    try:
        a = json.loads(ask(b"frobnicate\n"))
    except ValueError:
        a = {}
    tap.is_eq(a.get("error", {}).get("code"), "unknown_command",
              "control: unknown command -> error JSON")
    try:
        a = json.loads(ask(b"s" * 5000 + b"\n"))
    except ValueError:
        a = {}
    tap.is_eq(a.get("error", {}).get("code"), "line_too_long",
              "control: a 5000-byte line is refused")
    try:
        a = json.loads(ask(b"status"))
    except ValueError:
        a = {}
    tap.ok("error" not in a and len(a) > 0,
           "control: a command ended by EOF, no newline")


def wait_log(d, text, count, timeout=15):
    """Wait until the daemon's log holds `text' at least `count' times."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if d.log_text().count(text) >= count:
            return True
        time.sleep(0.02)
    return False


def read_response(sock):
    """Read one HTTP response (headers + Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        c = sock.recv(4096)
        if not c:
            return data
        data += c
    head, _, rest = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    want = int(m.group(1)) if m else 0
    while len(rest) < want:
        c = sock.recv(4096)
        if not c:
            break
        rest += c
    return head + b"\r\n\r\n" + rest


def run_drain():
    """SIGTERM with a letter waiting on a locked store: the listener
    closes, a kept-alive connection gets 503 shutting_down, the pending
    letter is still answered 202 and the daemon exits 0."""
    with st.Daemon() as d:
        p = d.setup_practice()
        d.start()
        port = d.http_port
        ka = socket.create_connection(("127.0.0.1", port), timeout=15)
        ka.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        tap.is_eq(statuses(read_response(ka)), [200],
                  "drain: a kept-alive connection is served")
        lock = sqlite3.connect(d.config["daemon"]["database"],
                               isolation_level=None, timeout=10)
        lock.execute("BEGIN EXCLUSIVE")
        dfile = os.path.join(TMP, "drain-body")
        with open(dfile, "w") as f:
            f.write(letter_body(p))
        pending = subprocess.Popen(
            ["curl", "-sS", "--max-time", "30", "-w", "\n%{http_code}",
             "-H", "Authorization: Bearer " + p["token"],
             "-H", "Content-Type: application/json",
             "--data-binary", "@" + dfile,
             "http://127.0.0.1:%d/v1/letters" % port],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_log(d, " queued", 1)
        d.proc.send_signal(15)
        wait_log(d, "draining", 1)
        ka.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        out = read_response(ka)
        tap.ok(statuses(out) == [503] and b"shutting_down" in out and
               re.search(rb"(?i)\r\nconnection: close", out) is not None and
               re.search(rb"(?i)\r\nretry-after: \d+", out) is not None,
               "drain: /healthz is 503 shutting_down, Retry-After, "
               "Connection: close")
        ka.close()
        r = curl("http://127.0.0.1:%d/healthz" % port, timeout=5)
        tap.ok(r.status == 0, "drain: the listener is closed")
        lock.execute("ROLLBACK")
        lock.close()
        out, _ = pending.communicate(timeout=40)
        tap.ok(out.strip().endswith("202"),
               "drain: the letter waiting on the store is answered 202")
        # It exits by itself once nothing is in flight (a second SIGTERM
        # from stop() would be a forced stop).
        try:
            d.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        tap.is_eq(d.stop(), 0, "drain: clean exit after the pending letter")
        tap.is_eq(db_count(d), 1, "drain: the pending letter was stored")


def run_control_dir():
    """The control socket's directory is made 0750 when missing."""
    with st.Daemon() as d:
        sub = os.path.join(d.dir, "run-sealpost")
        d.config["daemon"]["control_socket"] = os.path.join(sub, "ctl.sock")
        d.write_config()
        d.setup_practice()
        try:
            d.start()
            mode = stat.S_IMODE(os.stat(sub).st_mode)
        except (RuntimeError, OSError) as e:
            tap.diag(str(e))
            mode = None
        tap.is_eq(mode, 0o750, "missing control directory is made 0750")
        tap.is_eq(d.ctl_run("status").returncode, 0,
                  "control works in the new directory")
        d.stop()
        tap.ok(not os.path.exists(os.path.join(sub, "ctl.sock")),
               "a clean stop removes the control socket")


def run_restart_stale_socket():
    with st.Daemon() as d:
        d.setup_practice()
        d.start()
        tap.is_eq(d.stop(sig=9), -9, "SIGKILL leaves a stale control socket")
        sock = d.config["daemon"]["control_socket"]
        tap.ok(os.path.exists(sock), "the stale socket file is there")
        # Start() waits for " ready " in a fresh log.
        os.rename(d.logpath, d.logpath + ".1")
        try:
            d.start()
            started = True
        except RuntimeError as e:
            tap.diag(str(e))
            started = False
        tap.ok(started and d.ctl_run("status").returncode == 0,
               "restart removes the stale socket and serves control")
        # A second daemon must not steal the live socket.
        conf2 = d.conf + ".2"
        with open(d.conf) as f:
            text = f.read()
        text = text.replace(str(d.http_port), str(st.free_port()))
        text = text.replace(str(d.smtp_port), str(st.free_port()))
        with open(conf2, "w") as f:
            f.write(text)
        r = subprocess.run([st.prog("sealpostd"), "-f", conf2],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=30)
        tap.ok(r.returncode != 0 and d.ctl_run("status").returncode == 0,
               "a second daemon refuses to take a live control socket")
        d.stop()


def run_https():
    if not st.have("openssl"):
        tap.skip("openssl not installed")
        return
    with st.Daemon(config={"limits": {"max_letter_size": "64K"}}) as d0:
        cert, key = st.make_self_signed(d0.dir)
        d0.config["http"].update({"tls_cert": cert, "tls_key": key})
        d0.write_config()
        p = d0.setup_practice()
        try:
            d0.start()
        except RuntimeError as e:
            tap.diag(str(e))
            tap.ok(False, "HTTPS daemon starts")
            return
        base = "https://127.0.0.1:%d" % d0.http_port
        r = curl(base + "/healthz", extra=["--cacert", cert])
        tap.is_eq(r.status, 200, "HTTPS: /healthz with the test CA")
        r = curl(base + "/v1/letters", token=p["token"],
                 headers=["Content-Type: application/json"],
                 data=letter_body(p), extra=["--cacert", cert])
        tap.is_eq(r.status, 202, "HTTPS: a letter is accepted")
        r = curl(base + "/v1/letters", token=p["token"],
                 headers=["Content-Type: application/json"],
                 data=b"z" * (3 * 1024 * 1024), extra=["--cacert", cert])
        tap.ok(r.status == 413 and r.err().get("code") == "too_large",
               "HTTPS: oversize body -> JSON 413")
        r = curl(base + "/healthz", extra=["--cacert", cert, "--tlsv1.1",
                                            "--tls-max", "1.1", "--ciphers",
                                            "DEFAULT:@SECLEVEL=0"])
        tap.ok(r.rc == 35 and r.status == 0,
               "HTTPS: TLS 1.1 is refused (curl exit %d)" % r.rc)
        r = curl(base + "/healthz", extra=["--cacert", cert, "--tlsv1.2",
                                            "--tls-max", "1.2"])
        tap.is_eq(r.status, 200, "HTTPS: TLS 1.2 is served")
        r = curl("http://127.0.0.1:%d/healthz" % d0.http_port)
        tap.ok(r.status != 200, "HTTPS port: plaintext HTTP is not served")
        tap.is_eq(d0.stop(), 0, "HTTPS daemon: clean exit")


def run_plaintext_refused():
    """Plain HTTP off loopback needs allow_plaintext: config.c refuses it
    (api.c checks again); the daemon must not start."""
    with st.Daemon() as d:
        d.config["http"]["listen"] = "0.0.0.0:%d" % st.free_port()
        d.write_config()
        r = subprocess.run([st.prog("sealpostd"), "-f", d.conf],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=30)
        tap.ok(r.returncode != 0 and "loopback" in r.stdout,
               "plain HTTP on 0.0.0.0 without allow_plaintext: the daemon "
               "refuses to start (exit %d)" % r.returncode)
        d.config["http"]["allow_plaintext"] = "yes"
        d.write_config()
        d.setup_practice()
        try:
            d.start(timeout=15)
            started = True
        except RuntimeError as e:
            tap.diag(str(e))
            started = False
        r = curl("http://127.0.0.1:%s/healthz" %
                 d.config["http"]["listen"].rsplit(":", 1)[1])
        tap.ok(started and r.status == 200,
               "with allow_plaintext = yes it starts and serves")
        d.stop()


if __name__ == "__main__":
    try:
        main()
    finally:
        import shutil
        shutil.rmtree(TMP, ignore_errors=True)
