"""t_canary - nothing clinical in clear, and every party can open its copy.

A letter carrying a unique canary string in its subject, text, HTML,
attachment name and attachment bytes is submitted over HTTP (curl) and over
SMTP (swaks).  Then:
  - the canary (and its base64 forms) appears nowhere in the database file,
    the WAL, or the daemon's debug log, while running and after a stop;
  - the sealed blob of each letter decrypts with the stock `age` tool for
    each recipient: the patient, the author clinician, the practice archive,
    and the patient's own age recipient when the record has one;
  - the decrypted document holds exactly what was submitted.
"""

import base64
import json
import os
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sealpost_test as st  # noqa: E402

tap = st.Tap()
if not st.have("curl") or not st.have("age") or not st.have("swaks"):
    tap.skip("curl, swaks and age are needed (contrib/deps.sh test)")
    tap.done()

canary = "CANARY" + os.urandom(8).hex().upper()
attachment = ("attachment bytes " + canary + "\n").encode() + bytes(range(256))


def b64_forms(s):
    """base64 of s at the three alignments, minus the partial edges."""
    out = []
    for pad in range(3):
        enc = base64.b64encode(b"\0" * pad + s.encode()).decode()
        out.append(enc[4:-4])
    return out


def find_canary(blob):
    """Names of the forms of the canary found in bytes."""
    found = []
    if canary.encode() in blob:
        found.append("clear")
    if canary.lower().encode() in blob:
        found.append("lower")
    for f in b64_forms(canary):
        if f.encode() in blob:
            found.append("base64")
    return found


def sealed_blobs(db):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        return dict(con.execute("select id, sealed from letters"))
    finally:
        con.close()


def age_decrypt(keyfile, blob, workdir, name):
    path = os.path.join(workdir, name + ".age")
    with open(path, "wb") as f:
        f.write(blob)
    r = subprocess.run(["age", "-d", "-i", keyfile, path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


with st.Daemon() as d:
    p = d.setup_practice()
    # A second patient with her own age key (e.g. for her own archive).
    own_key = os.path.join(d.dir, "own.key")
    subprocess.run(["age-keygen", "-o", own_key], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    own_pub = subprocess.run(["age-keygen", "-y", own_key], check=True,
                             stdout=subprocess.PIPE,
                             text=True).stdout.strip()
    patient2 = int(d.ctl("patient", "add", "--practice", p["practice"],
                         "--name", "Sam", "--email", "sam@patient.example",
                         "--verified", "--consent", "--age-recipient",
                         own_pub))
    d.start()

    # --- HTTP, with curl ---------------------------------------------------
    body = {
        "patient": patient2, "author": p["clinician"],
        "subject": "Results " + canary,
        "text": "Dear Sam, " + canary + " is in the text.",
        "html": "<p>" + canary + "</p>",
        "attachments": [{"filename": "report-" + canary + ".pdf",
                         "content_type": "application/pdf",
                         "data": base64.b64encode(attachment).decode()}],
        "priority": "urgent",
    }
    bodyfile = os.path.join(d.dir, "body.json")
    with open(bodyfile, "w") as f:
        json.dump(body, f)
    r = subprocess.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}",
         "http://127.0.0.1:%d/v1/letters" % d.http_port,
         "-H", "Authorization: Bearer " + p["token"],
         "-H", "Content-Type: application/json",
         "--data-binary", "@" + bodyfile],
        stdout=subprocess.PIPE, text=True, timeout=60)
    os.unlink(bodyfile)
    out, _, code = r.stdout.rpartition("\n")
    tap.is_eq(code, "202", "HTTP letter accepted (202)")
    try:
        http_id = json.loads(out)["id"]
    except (ValueError, KeyError):
        http_id = None
    tap.ok(isinstance(http_id, int), "202 names the letter id")

    # --- SMTP, with swaks ---------------------------------------------------
    attpath = os.path.join(d.dir, "att-" + canary + ".bin")
    with open(attpath, "wb") as f:
        f.write(attachment)
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1:%d" % d.smtp_port,
         "--auth", "PLAIN", "--auth-user", "clinical-system",
         "--auth-password", p["token"], "--from", p["clinician_email"],
         "--to", "patient-%d@%s" % (p["patient"], p["domain"]),
         "--header", "Subject: Letter " + canary,
         "--body", "Dear Jo, " + canary + " is in the body.",
         "--attach-type", "application/octet-stream",
         "--attach", "@" + attpath],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=60)
    os.unlink(attpath)
    tap.ok(r.returncode == 0 and "<-  250 " in r.stdout,
           "SMTP letter accepted (250)")
    if r.returncode != 0:
        tap.diag(r.stdout[-2000:])

    db = d.config["daemon"]["database"]
    blobs = sealed_blobs(db)
    tap.is_eq(len(blobs), 2, "two letters stored")

    # --- nothing in clear ---------------------------------------------------
    def scan(when):
        for path in (db, db + "-wal", d.logpath):
            if not os.path.exists(path):
                continue
            with open(path, "rb") as f:
                found = find_canary(f.read())
            tap.ok(not found, "%s: no canary in %s%s" % (
                when, os.path.basename(path),
                " (found: %s)" % ",".join(found) if found else ""))
    tap.ok(os.path.exists(db + "-wal"), "WAL file present while running")
    scan("running")

    # --- every recipient opens its copy with the stock age ----------------
    keys = {}
    for kind, ident in (("patient", patient2), ("patient", p["patient"]),
                        ("clinician", p["clinician"]),
                        ("practice", p["practice"])):
        path = os.path.join(d.dir, "%s-%d.key" % (kind, ident))
        d.ctl("identity", "export", kind, ident, "-o", path)
        keys["%s:%d" % (kind, ident)] = path
    keys["own"] = own_key

    http_readers = ["patient:%d" % patient2, "clinician:%d" % p["clinician"],
                    "practice:%d" % p["practice"], "own"]
    smtp_readers = ["patient:%d" % p["patient"],
                    "clinician:%d" % p["clinician"],
                    "practice:%d" % p["practice"]]
    smtp_id = [i for i in blobs if i != http_id]
    smtp_id = smtp_id[0] if smtp_id else None

    if http_id in blobs:
        for who in http_readers:
            rc, pt, err = age_decrypt(keys[who], blobs[http_id], d.dir,
                                      "http-" + who.replace(":", "-"))
            if not tap.ok(rc == 0, "age -d opens the HTTP letter as " + who):
                tap.diag(err)
                continue
            doc = json.loads(pt)
            tap.ok(doc.get("subject") == body["subject"] and
                   doc.get("text") == body["text"] and
                   doc.get("html") == body["html"],
                   "HTTP letter content intact for " + who)
            att = doc.get("attachments") or [{}]
            tap.ok(att[0].get("filename") == body["attachments"][0]
                   ["filename"] and base64.b64decode(
                       att[0].get("data", "")) == attachment,
                   "HTTP attachment byte-identical for " + who)
        rc, _, _ = age_decrypt(keys["patient:%d" % p["patient"]],
                               blobs[http_id], d.dir, "http-other")
        tap.ok(rc != 0, "another patient's key does not open the letter")
    else:
        tap.ok(False, "HTTP letter stored")

    if smtp_id is not None:
        for who in smtp_readers:
            rc, pt, err = age_decrypt(keys[who], blobs[smtp_id], d.dir,
                                      "smtp-" + who.replace(":", "-"))
            if not tap.ok(rc == 0, "age -d opens the SMTP letter as " + who):
                tap.diag(err)
                continue
            doc = json.loads(pt)
            tap.ok(doc.get("subject") == "Letter " + canary and
                   canary in (doc.get("text") or ""),
                   "SMTP letter subject and text intact for " + who)
            atts = [a for a in doc.get("attachments") or []
                    if base64.b64decode(a.get("data", "")) == attachment]
            tap.ok(len(atts) == 1, "SMTP attachment byte-identical for " +
                   who)
    else:
        tap.ok(False, "SMTP letter stored")

    tap.is_eq(d.stop(), 0, "daemon stops cleanly on SIGTERM")
    scan("stopped")
    # The exported keys are secrets of this test only; remove them now.
    for path in keys.values():
        os.unlink(path)

tap.done()
