#!/usr/bin/env python3
"""t_letters_out - letters out through a real smarthost (TESTPLAN T6, T7,
T19, T22 at the daemon level).

A private Postfix on loopback is the smarthost: STARTTLS required, a
self-signed certificate that sealpostd verifies (ca_file, tls_name),
relaying to a capturing smtp-sink (one file per message, with the
envelope).  Access-map entries make it answer 550 or 451 for chosen
patients; a transport entry sends one domain to a second smtp-sink that
refuses every RCPT, so Postfix accepts the letter (250: "sent") and then
writes a real bounce to the letter's VERP address, which the test hands
back with "sealpostctl bounce".

Checked: the message that arrives (headers, encoded subject, reply and
bounce addresses, Message-ID equal to the API's, the attachment byte for
byte, the safety-net text); the failsafe for no address, unverified, 5xx,
expiry and a bounce (paper queue, alert mail to the practice without
content, API state); deferral and retry on 4xx; the delay warning; the
misrouting guard (shared address, changed address) and "letter release";
webhook callbacks with their bearer token; the status counts.
"""

import base64
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sealpost_test as st  # noqa: E402

tap = st.Tap()
rig = st.rig
wait_for = st.wait_for
CANARY = "CANARY-result-5b1e"          # must never reach an alert or log

if os.geteuid() != 0 or not st.have("postfix") or \
        not os.path.exists("/usr/sbin/smtp-sink"):
    tap.skip("needs root and the Debian postfix package (smarthost and "
             "smtp-sink): contrib/deps.sh test installs it")
    tap.done()

TMP = tempfile.mkdtemp(prefix="t_letters_out-")
os.chmod(TMP, 0o755)
CAP = os.path.join(TMP, "capture")
os.makedirs(CAP)
os.chmod(CAP, 0o777)            # smtp-sink runs as user postfix
PF = os.path.join(TMP, "pf")
REJ = os.path.join(TMP, "rej")
os.makedirs(REJ)
os.chmod(REJ, 0o777)



def captured():
    """Every message the capturing sink received: (envelope dict, msg,
    raw bytes)."""
    return [({"mail": m["mail"], "rcpt": m["rcpt"]} if m["rcpt"] else {},
             m["msg"], m["raw"]) for m in st.sink_messages(CAP)]


def to_rcpt(addr):
    return [c for c in captured() if c[0].get("rcpt") == addr]


d = None
hook_srv = None
try:
    # --- the smarthost ------------------------------------------------------
    cert, key = st.make_self_signed(TMP, "localhost")
    sink_port = st.free_port()
    rej_port = st.free_port()
    rig("sink-start", PF, sink_port, "-d", os.path.join(CAP, "%H%M%S."))
    rig("sink-start", REJ, rej_port, "-f", "RCPT")
    with open(os.path.join(TMP, "rcpt"), "w") as f:
        f.write("perm@patient.test 550 5.1.1 mailbox unknown\n"
                "slow@patient.test 451 4.3.0 try again later\n"
                "old@patient.test 451 4.3.0 try again later\n")
    with open(os.path.join(TMP, "transport"), "w") as f:
        f.write("bounce.test smtp:[127.0.0.1]:%d\n" % rej_port)
    os.chmod(os.path.join(TMP, "rcpt"), 0o644)
    os.chmod(os.path.join(TMP, "transport"), 0o644)
    smarthost = int(rig(
        "start", PF, "--tls", cert, key,
        "-o", "smtpd_tls_security_level = encrypt",
        "-o", "smtpd_recipient_restrictions = check_recipient_access "
              "texthash:%s/rcpt, permit_mynetworks, reject" % TMP,
        "-o", "transport_maps = texthash:%s/transport" % TMP,
        "-o", "bounce_queue_lifetime = 0",
        "-o", "maximal_queue_lifetime = 1h"))
    tap.ok(smarthost > 0, "Postfix smarthost with STARTTLS on port %d"
           % smarthost)

    # --- webhook receiver -----------------------------------------------------
    hooks = []


    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            hooks.append((self.headers.get("Authorization"), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass


    hook_srv = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook_srv.serve_forever, daemon=True).start()
    hook_url = "http://127.0.0.1:%d/sealpost" % hook_srv.server_address[1]

    os.makedirs(os.path.join(TMP, "d"))
    d = st.Daemon({
        "relay": {"host": "127.0.0.1", "port": str(smarthost),
                  "tls": "starttls", "ca_file": cert, "tls_name": "localhost",
                  "pool_size": "2", "connect_timeout": "5s",
                  "command_timeout": "10s", "data_timeout": "10s"},
        "queue": {"retry_first": "1s", "retry_max": "2s",
                  "lifetime_routine": "14s", "warn_routine": "3s",
                  "lifetime_urgent": "1h", "warn_urgent": "0s"},
    }, tmpdir=os.path.join(TMP, "d"))


    def post(p, patient, subject="Your results", text=None, att=None,
             priority="routine"):
        body = {"patient": patient, "author": p["clinician"],
                "subject": subject,
                "text": text or ("Dear Jo,\nYour test is normal. %s\n" % CANARY),
                "priority": priority}
        if att is not None:
            body["attachments"] = [{"filename": "résultat.pdf",
                                    "content_type": "application/pdf",
                                    "data": base64.b64encode(att).decode()}]
        bodyfile = os.path.join(TMP, "body.json")
        with open(bodyfile, "w") as f:
            json.dump(body, f)
        r = subprocess.run(
            ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}",
             "http://127.0.0.1:%d/v1/letters" % d.http_port,
             "-H", "Authorization: Bearer " + p["token"],
             "-H", "Content-Type: application/json",
             "--data-binary", "@" + bodyfile],
            stdout=subprocess.PIPE, text=True, timeout=60)
        out, _, code = r.stdout.rpartition("\n")
        if code != "202":
            return None
        return json.loads(out)["id"]


    def letter(p, lid):
        r = subprocess.run(
            ["curl", "-sS", "http://127.0.0.1:%d/v1/letters/%d" % (d.http_port,
                                                                   lid),
             "-H", "Authorization: Bearer " + p["token"]],
            stdout=subprocess.PIPE, text=True, timeout=30)
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {}


    def dstate(p, lid):
        j = letter(p, lid)
        ds = j.get("deliveries") or [{}]
        return ds[0].get("state")


    def wait_state(p, lid, states, timeout=20):
        return wait_for(lambda: dstate(p, lid) in states and dstate(p, lid),
                        timeout)


    def patient(p, name, email_addr, verified=True, consent=True):
        args = ["patient", "add", "--practice", p["practice"], "--name", name]
        if email_addr:
            args += ["--email", email_addr]
            if verified:
                args.append("--verified")
            if consent:
                args.append("--consent")
        return int(d.ctl(*args))
    p = d.setup_practice(domain="riverside.example",
                         name="Riverside Surgery",
                         patient_email="jo@patient.test")
    d.ctl("practice", "set", p["practice"], "--failsafe",
          "alerts@riverside.example", "--address",
          "1 River Lane\\nRiverton RV1 1AA", "--phone", "01234 567890")
    client_id = 1
    out = d.ctl_run("client", "callback", client_id, hook_url)
    hook_token = out.stdout.strip()
    tap.ok(out.returncode == 0 and len(hook_token) >= 40,
           "client callback set: a bearer token is printed once")
    # --- 0. no smarthost yet: the letter waits, then goes when one is set
    d.config["relay"]["host"] = ""
    d.write_config()
    d.start()
    pw = patient(p, "Wai", "wait@patient.test")
    lid0 = post(p, pw)
    j0 = {}

    def waiting():
        jj = letter(p, lid0)
        j0.update(jj)
        dl0 = (jj.get("deliveries") or [{}])[0]
        return dl0.get("state") == "deferred"
    tap.ok(wait_for(waiting, 10), "no smarthost: the delivery waits")
    dl0 = (j0.get("deliveries") or [{}])[0]
    tap.ok("no smarthost" in (dl0.get("last_error") or "") and
           dl0.get("attempts") == 0 and j0.get("state") == "accepted",
           "no smarthost: it says so, counts no attempt, no failsafe "
           "(%s, %s)" % (dl0.get("last_error"), dl0.get("attempts")))
    tap.is_eq(d.stop(), 0, "stopped to configure the smarthost")
    d.config["relay"]["host"] = "127.0.0.1"
    d.write_config()
    d.start()
    tap.is_eq(wait_state(p, lid0, ("sent",), 15), "sent",
              "with a smarthost configured it goes at once")
    tap.ok("waited for a smarthost" in d.log_text(),
           "the start says the waiting deliveries are due")

    # --- 1. a letter arrives intact --------------------------------------
    att = os.urandom(3000) + b"\r\n.\r\n" + os.urandom(100)
    subject = "Résultats — your blood test ✓"
    lid = post(p, p["patient"], subject=subject, att=att)
    tap.ok(lid is not None, "letter accepted (202)")
    tap.is_eq(wait_state(p, lid, ("sent", "failed", "deferred")), "sent",
              "delivery state: sent")
    got = wait_for(lambda: to_rcpt("jo@patient.test"), 10)
    tap.ok(len(got) == 1, "exactly one message reached the patient's "
           "mailbox (%d)" % len(got))
    if got:
        env, msg, raw = got[0]
        j = letter(p, lid)
        dl = j["deliveries"][0]
        tap.is_eq(str(msg["Subject"]), subject,
                  "subject arrives (RFC 2047 decoded)")
        tap.ok(str(msg["From"]).startswith("Riverside Surgery") and
               "letters@riverside.example" in str(msg["From"]),
               "From: the practice")
        rt = str(msg["Reply-To"])
        tap.ok(re.search(r"reply\+[a-z2-7]{28,56}@riverside\.example", rt)
               is not None, "Reply-To: reply+<token>@practice domain")
        tap.ok(re.fullmatch(r"bounce\+[a-z2-7]{28,56}@riverside\.example",
                            env.get("mail", "")) is not None,
               "envelope sender: bounce+<token> (VERP)")
        tap.is_eq(str(msg["Message-ID"]), dl.get("message_id"),
                  "Message-ID equals the delivery's in the API")
        tap.is_eq(dl.get("smtp_code"), 250, "API: smtp_code 250")
        body = msg.get_body(preferencelist=("plain",)).get_content()
        tap.ok(CANARY in body and "not for emergencies" in body,
               "text arrives with the safety-net line")
        parts = [x for x in msg.iter_attachments()]
        tap.ok(len(parts) == 1 and parts[0].get_content() == att,
               "attachment arrives byte for byte")
        tap.is_eq(parts[0].get_filename() if parts else None,
                  "résultat.pdf", "attachment name (RFC 2231)")
        tap.is_eq(str(msg["Auto-Submitted"]), "auto-generated",
                  "Auto-Submitted: auto-generated")
    cb = wait_for(lambda: [h for h in hooks
                           if b'"state":"sent"' in h[1].replace(b" ", b"")],
                  10)
    tap.ok(bool(cb) and cb[0][0] == "Bearer " + hook_token,
           "webhook: state sent posted with the client's bearer token")
    tap.ok(all(CANARY.encode() not in h[1] for h in hooks),
           "webhook payloads carry no content")

    def alerts_for(lid, kind):
        out = []
        for env, msg, raw in to_rcpt("alerts@riverside.example"):
            if ("L%d " % lid) in str(msg["Subject"]) and \
                    ("(%s)" % kind) in str(msg["Subject"]):
                out.append((env, msg, raw))
        return out

    def failsafe(lid, kind, what):
        j = letter(p, lid)
        tap.is_eq(j.get("state"), "paper", "%s: letter state paper" % what)
        tap.ok(bool(j.get("paper_reason")), "%s: paper reason given (%s)"
               % (what, j.get("paper_reason")))
        pl = d.ctl("paper", "list")
        tap.ok(re.search(r"^%d\s" % lid, pl, re.M) is not None,
               "%s: in the paper queue" % what)
        al = wait_for(lambda: alerts_for(lid, kind), 15)
        tap.ok(len(al) == 1, "%s: one alert mail to the practice (%d)"
               % (what, len(al)))
        if al:
            env, msg, raw = al[0]
            tap.ok(CANARY.encode() not in raw and
                   b"blood" not in raw.lower(),
                   "%s: the alert has no clinical content" % what)
            tap.is_eq(env.get("mail"), "", "%s: alert sent with MAIL "
                      "FROM:<>" % what)

    # --- 2. no address, unverified, no consent: no SMTP, paper -----------
    for name, addr, ver, con, why in (
            ("NoMail", None, False, False, "no email"),
            ("Unverified", "unver@patient.test", False, True, "unverified"),
            ("NoConsent", "nocon@patient.test", True, False, "no consent")):
        pid = patient(p, name, addr, ver, con)
        lid2 = post(p, pid)
        tap.is_eq(wait_state(p, lid2, ("failed",)), "failed",
                  "%s: delivery failed without SMTP" % why)
        failsafe(lid2, "failed", why)
        if addr:
            tap.is_eq(len(to_rcpt(addr)), 0, "%s: nothing was sent" % why)

    # --- 3. 550 from the smarthost -----------------------------------------
    pid = patient(p, "Perm", "perm@patient.test")
    lid3 = post(p, pid)
    tap.is_eq(wait_state(p, lid3, ("failed", "sent")), "failed",
              "550: delivery failed")
    tap.is_eq(letter(p, lid3)["deliveries"][0].get("smtp_code"), 550,
              "550: smtp_code recorded")
    failsafe(lid3, "failed", "550")

    # --- 4. 451: deferred and retried, delay warning, expiry -------------
    pid = patient(p, "Slow", "slow@patient.test")
    lid4 = post(p, pid)
    tap.is_eq(wait_state(p, lid4, ("deferred",)), "deferred",
              "451: deferred")
    n = wait_for(lambda: letter(p, lid4)["deliveries"][0]["attempts"] >= 3,
                 12)
    tap.ok(n, "451: retried with backoff (attempts %d)"
           % letter(p, lid4)["deliveries"][0]["attempts"])
    tap.ok(bool(wait_for(lambda: alerts_for(lid4, "delayed"), 15)),
           "delay warning mailed to the practice")
    tap.is_eq(wait_state(p, lid4, ("expired",), 30), "expired",
              "lifetime over: expired")
    failsafe(lid4, "expired", "expiry")

    # --- 5. misrouting guard: shared address -------------------------------
    pa = patient(p, "Ann", "family@patient.test")
    patient(p, "Ben", "family@patient.test")
    lid5 = post(p, pa)
    tap.is_eq(wait_state(p, lid5, ("held", "sent")), "held",
              "shared address without a proxy: held")
    tap.is_eq(len(to_rcpt("family@patient.test")), 0,
              "held: nothing sent")
    tap.ok(bool(wait_for(lambda: alerts_for(lid5, "held"), 15)),
           "held: the practice is told")
    tap.ok("release" in d.ctl("letter", "release", lid5),
           "letter release")
    tap.is_eq(wait_state(p, lid5, ("sent",)), "sent",
              "released: sent")
    tap.is_eq(len(wait_for(lambda: to_rcpt("family@patient.test"), 10)), 1,
              "released: delivered once")

    # --- 6. misrouting guard: address changed after submission ------------
    pc = patient(p, "Cal", "old@patient.test")
    lid6 = post(p, pc)
    tap.is_eq(wait_state(p, lid6, ("deferred",)), "deferred",
              "changed address: first attempt deferred (451)")
    d.ctl("patient", "set", pc, "--email", "new@patient.test",
          "--verified", "yes")
    tap.is_eq(wait_state(p, lid6, ("held",)), "held",
              "address changed since submission: held")
    d.ctl("letter", "release", lid6)
    tap.is_eq(wait_state(p, lid6, ("sent",)), "sent",
              "released to the new address: sent")
    tap.is_eq(len(wait_for(lambda: to_rcpt("new@patient.test"), 10)), 1,
              "delivered to the new address")

    # --- 7. a real Postfix bounce through the VERP address ---------------
    pb = patient(p, "Bea", "bea@bounce.test")
    lid7 = post(p, pb)
    tap.is_eq(wait_state(p, lid7, ("sent",)), "sent",
              "bounce: the smarthost accepted the letter (sent)")
    mid = letter(p, lid7)["deliveries"][0]["message_id"]
    dsn = wait_for(lambda: [c for c in captured()
                            if c[0].get("rcpt", "").startswith("bounce+")
                            and mid.encode() in c[2]], 20)
    tap.ok(bool(dsn), "Postfix wrote a bounce to the VERP address")
    if dsn:
        verp = dsn[0][0]["rcpt"]
        bfile = os.path.join(TMP, "bounce.eml")
        with open(bfile, "wb") as f:
            f.write(dsn[0][2])
        bad = verp[:7] + ("a" if verp[7] != "a" else "b") + verp[8:]
        r = d.ctl_run("bounce", "-r", bad, bfile)
        tap.ok(r.returncode != 0 and "bad_token" in r.stdout,
               "a bounce with a flipped token is refused")
        tap.is_eq(dstate(p, lid7), "sent", "... and changes nothing")
        r = d.ctl_run("bounce", "-r", verp, bfile)
        tap.ok(r.returncode == 0 and '"applied"' in r.stdout,
               "the bounce is applied (%s)" % r.stdout.strip())
        tap.is_eq(dstate(p, lid7), "failed", "bounce: delivery failed")
        failsafe(lid7, "bounced", "bounce")
        r = d.ctl_run("bounce", "-r", verp, bfile)
        tap.ok(r.returncode == 0 and '"noted"' in r.stdout,
               "the same bounce again is only noted")
        with open(bfile, "wb") as f:
            f.write(b"From: x@y.test\r\nSubject: hello\r\n\r\nhi\r\n")
        r = d.ctl_run("bounce", "-r", verp, bfile)
        tap.ok(r.returncode != 0 and "not_report" in r.stdout,
               "a message that is not a report is refused")

    # --- 8. content policy "notify": no content in the mail, letter to paper
    d.ctl("practice", "set", p["practice"], "--policy", "notify")
    lid8 = post(p, p["patient"], subject="Private " + CANARY)
    tap.is_eq(wait_state(p, lid8, ("sent",)), "sent",
              "notify policy: the notification is sent")
    mid8 = letter(p, lid8)["deliveries"][0].get("message_id")
    note = [c for c in to_rcpt("jo@patient.test")
            if str(c[1]["Message-ID"]) == mid8]
    tap.ok(len(note) == 1 and CANARY.encode() not in note[0][2] and
           b"Riverside Surgery" in note[0][2],
           "notify policy: the mail names the practice, holds no content")
    j = letter(p, lid8)
    tap.ok(j.get("state") == "paper" and
           "notify" in (j.get("paper_reason") or ""),
           "notify policy: the letter goes to paper (%s)"
           % j.get("paper_reason"))
    d.ctl("practice", "set", p["practice"], "--policy", "full")

    # --- 9. the printable letter ---------------------------------------------
    if st.have("pdftotext"):
        pdf = os.path.join(TMP, "paper.pdf")
        r = d.ctl_run("paper", "print", lid3, "-o", pdf)
        tap.ok(r.returncode == 0 and os.path.exists(pdf) and
               (os.stat(pdf).st_mode & 0o077) == 0,
               "paper print writes a 0600 PDF (%s)" % r.stderr.strip())
        txt = subprocess.run(["pdftotext", "-layout", pdf, "-"],
                             stdout=subprocess.PIPE, text=True).stdout
        tap.ok("Riverside Surgery" in txt and "1 River Lane" in txt and
               CANARY in txt and re.search(r"L%d-[A-Z2-7]{4}-[A-Z2-7]{4}"
                                           % lid3, txt) is not None and
               "reply@riverside.example" in txt,
               "the PDF has the practice header, the letter, the reply "
               "code and address")
        r = d.ctl_run("paper", "print", lid, "-o", pdf + "2")
        tap.ok(r.returncode != 0 and "not in the paper queue" in r.stderr,
               "a letter not in the paper queue is not printed")
        tap.ok("done" in d.ctl("paper", "done", lid3) and
               re.search(r"^%d\s" % lid3, d.ctl("paper", "list"), re.M)
               is None, "paper done: the letter leaves the open queue")
        tap.ok(re.search(r"^%d\s.*done" % lid3, d.ctl("paper", "list", "-a"),
                         re.M) is not None, "paper list -a still shows it")
    else:
        tap.skip("pdftotext (poppler-utils) is not installed")

    # --- status and logs ---------------------------------------------------
    stj = json.loads(d.ctl("status"))
    q = stj.get("queue", {})
    tap.ok(q.get("sent", 0) == 5 and q.get("failed", 0) == 5 and
           q.get("expired", 0) == 1 and q.get("paper_open", 0) == 6,
           "status counts the queue (%s)" % json.dumps(q))
    r = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}",
                        "http://127.0.0.1:%d/metrics" % d.http_port],
                       stdout=subprocess.PIPE, text=True, timeout=30)
    mtext, _, mcode = r.stdout.rpartition("\n")
    tap.ok(mcode == "200" and
           'sealpost_deliveries{state="sent"} 5' in mtext and
           'sealpost_deliveries{state="expired"} 1' in mtext and
           "sealpost_paper_open 6" in mtext and
           "sealpost_oldest_undelivered_seconds 0" in mtext and
           CANARY not in mtext, "/metrics: Prometheus counts, no content")
    tap.ok(CANARY not in d.log_text(), "the log holds no letter content")
    r = d.ctl_run("audit", "verify")
    tap.ok(r.returncode == 0, "audit chain verifies after all this")
    tap.ok(d.running(), "daemon still running")
    tap.is_eq(d.stop(), 0, "clean stop")
except Exception as e:  # noqa: BLE001
    tap.ok(False, "unexpected error: %s" % e)
    if d is not None:
        tap.diag(d.log_tail(40))
finally:
    if d is not None:
        d.stop()
    if hook_srv is not None:
        hook_srv.shutdown()
    rig("stop", PF, check=False)
    rig("sink-stop", PF, check=False)
    rig("sink-stop", REJ, check=False)
    if not os.environ.get("SEALPOST_TEST_KEEP"):
        if d is not None:
            d.cleanup()
        shutil.rmtree(TMP, ignore_errors=True)
tap.done()
