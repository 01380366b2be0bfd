#!/usr/bin/env python3
"""t_reply_mails - the mails a patient's reply causes, sent by sealpostd
through a real smarthost (issue 4, queue.c and replymail.c).

The intake that commits replies is another module: until it exists the
replies are committed straight through the store API by tests/reply_insert
(the same store_replies_commit() call, the document sealed the same way),
while sealpostd runs.  A private Postfix on loopback with STARTTLS is the
smarthost, relaying to a capturing smtp-sink; an access map answers 550 or
451 for chosen addresses.

Checked at the sink: the forward to the clinician (subject with ids only
and [URGENT], Auto-Submitted, the sender check, the new text, the
patient's attachment and the original message byte for byte, envelope
sender the failsafe address); the ack to the patient (null envelope
sender, In-Reply-To/References the patient's Message-ID, auto-replied,
the safety net, no content); the red-flag alert to the duty address and
the quarantine alert to the team address (ids only); the contact reply
for a reply that could not be filed.  In the log: a 5xx forward failed,
a 4xx one deferred and tried again; a mail left "sending" (as a crash
leaves it) recovered and sent at the next start; no content in the log.
The append kind (IMAP APPEND into the practice's folder) against a private
Dovecot, through tests/queue_run (the daemon does not pass the [imap]
server to the queue yet).
"""

import email
import email.policy
import os
import re
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sealpost_test as st  # noqa: E402

tap = st.Tap()
rig = st.rig
wait_for = st.wait_for
CANARY = "CANARY-reply-7c2d"           # content: only in the forward

if not st.have_postfix_rig():
    tap.skip("needs root and the Debian postfix package (smarthost and "
             "smtp-sink): contrib/deps.sh test installs it")
    tap.done()

TMP = tempfile.mkdtemp(prefix="t_reply_mails-")
os.chmod(TMP, 0o755)
CAP = os.path.join(TMP, "capture")
os.makedirs(CAP)
os.chmod(CAP, 0o777)            # smtp-sink runs as user postfix
PF = os.path.join(TMP, "pf")

RAW = (b"From: Jo <jo@patient.test>\r\n"
       b"To: reply+abc@riverside.example\r\n"
       b"Subject: Re: Your results " + CANARY.encode() + b"\r\n"
       b"Message-ID: <patient.1@patient.test>\r\n"
       b"Content-Type: text/plain; charset=utf-8\r\n"
       b"\r\n"
       b"I have chest pain since yesterday " + CANARY.encode() + b"\r\n"
       b"> quoted history\r\n"
       b"caf\xc3\xa9 and a long line " + b"x" * 900 + b"\r\n")
ATT = bytes(range(256)) * 4 + CANARY.encode()


def captured():
    return st.sink_messages(CAP)


def to_rcpt(addr, subject_part=""):
    return [m for m in captured() if m["rcpt"] == addr and
            subject_part in m["subject"]]


def insert(d, *args):
    """Commit a reply with tests/reply_insert; its id."""
    r = subprocess.run([os.path.join(st.builddir(), "tests", "reply_insert"),
                        "-d", d.config["daemon"]["database"]] +
                       [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("reply_insert: %s" % r.stderr)
    return int(r.stdout.strip())


def part_bytes(msg, filename):
    for part in msg.iter_attachments():
        if part.get_filename() == filename:
            return part.get_content() if isinstance(part.get_content(),
                                                    bytes) else \
                part.get_payload(decode=True)
    return None


def body_text(msg):
    b = msg.get_body(preferencelist=("plain",))
    return b.get_content() if b is not None else ""


d = None
try:
    cert, key = st.make_self_signed(TMP, "localhost")
    sink_port = st.free_port()
    rig("sink-start", PF, sink_port, "-d", os.path.join(CAP, "%H%M%S."))
    with open(os.path.join(TMP, "rcpt"), "w") as f:
        f.write("gone@riverside.example 550 5.1.1 mailbox unknown\n"
                "busy@riverside.example 451 4.3.0 try again later\n")
    os.chmod(os.path.join(TMP, "rcpt"), 0o644)
    smarthost = int(rig(
        "start", PF, "--tls", cert, key,
        "-o", "smtpd_tls_security_level = encrypt",
        "-o", "smtpd_recipient_restrictions = check_recipient_access "
              "texthash:%s/rcpt, permit_mynetworks, reject" % TMP))
    tap.ok(smarthost > 0, "Postfix smarthost with STARTTLS on port %d"
           % smarthost)

    os.makedirs(os.path.join(TMP, "d"))
    d = st.Daemon({
        "relay": {"host": "127.0.0.1", "port": str(smarthost),
                  "tls": "starttls", "ca_file": cert, "tls_name": "localhost",
                  "pool_size": "2", "connect_timeout": "5s",
                  "command_timeout": "10s", "data_timeout": "10s"},
        "queue": {"retry_first": "1s", "retry_max": "2s"},
    }, tmpdir=os.path.join(TMP, "d"))
    p = d.setup_practice(domain="riverside.example",
                         name="Riverside Surgery",
                         patient_email="jo@patient.test")
    d.ctl("practice", "set", p["practice"], "--failsafe",
          "alerts@riverside.example", "--address",
          "1 River Lane\\nRiverton RV1 1AA", "--phone", "01234 567890")
    d.start()

    # A letter, so that the reply has a thread.
    status, lid = st.api_post_letter(d, p["token"], {
        "patient": p["patient"], "author": p["clinician"],
        "subject": "Your results", "text": "Dear Jo,\nAll normal.\n"})
    tap.is_eq(status, 202, "a letter is accepted")
    tap.ok(wait_for(lambda: to_rcpt("jo@patient.test", "Your results"), 30),
           "the letter reached the sink")

    rawfile = os.path.join(TMP, "raw.eml")
    with open(rawfile, "wb") as f:
        f.write(RAW)
    attfile = os.path.join(TMP, "att.bin")
    with open(attfile, "wb") as f:
        f.write(ATT)

    # --- 1. a filed, urgent reply: forward, ack, red flag --------------------
    rid = insert(d, "-p", p["practice"], "-r", rawfile, "-l", lid,
                 "-P", p["patient"], "-c", p["clinician"],
                 "-f", "jo@patient.test", "-m", "<patient.1@patient.test>",
                 "-t", "I have chest pain since yesterday " + CANARY,
                 "-j", "Re: Your results " + CANARY, "-a", attfile, "-u",
                 "forward=" + p["clinician_email"],
                 "ack=jo@patient.test",
                 "redflag=duty@riverside.example")
    tap.ok(rid > 0, "reply R%d committed with three mails" % rid)
    fw = wait_for(lambda: to_rcpt(p["clinician_email"], "Reply from"), 30)
    ack = wait_for(lambda: to_rcpt("jo@patient.test", "your reply"), 30)
    rf = wait_for(lambda: to_rcpt("duty@riverside.example"), 30)
    tap.ok(fw and ack and rf, "forward, ack and red flag reached the sink")

    if fw:
        m = fw[0]
        msg = m["msg"]
        tap.is_eq(m["subject"], "Reply from patient P%d on letter L%d "
                  "[URGENT]" % (p["patient"], lid),
                  "forward: subject with ids and [URGENT] only")
        tap.is_eq(str(msg["Auto-Submitted"]), "auto-generated",
                  "forward: Auto-Submitted: auto-generated")
        tap.is_eq(m["mail"], "alerts@riverside.example",
                  "forward: envelope sender the failsafe address")
        tap.ok("letters@riverside.example" in str(msg["From"]),
               "forward: From the practice")
        text = body_text(msg)
        tap.ok("Sender check:   Sender verified by mail provider" in text,
               "forward: the sender check")
        tap.ok("Thread:         letter L%d" % lid in text and
               "Reply:          R%d" % rid in text,
               "forward: thread and reply ids")
        tap.ok("I have chest pain since yesterday " + CANARY in text,
               "forward: the new text")
        tap.ok("Their subject:  Re: Your results " + CANARY in text,
               "forward: the patient's subject in the body")
        head = re.split(rb"\r?\n\r?\n", m["raw"], maxsplit=1)[0]
        tap.ok(b"Subject:" in head and CANARY.encode() not in head and
               b"chest" not in head,
               "forward: no content in the header section")
        tap.ok(part_bytes(msg, "original-message.eml") == RAW,
               "forward: the original attached byte for byte")
        tap.ok(part_bytes(msg, "photo of rash.jpg") == ATT,
               "forward: the patient's attachment byte for byte")
    else:
        for _ in range(11):
            tap.ok(False, "forward: not received")

    if ack:
        m = ack[0]
        msg = m["msg"]
        tap.is_eq(m["subject"], "Re: your reply to Riverside Surgery",
                  "ack: fixed subject")
        tap.is_eq(m["mail"], "", "ack: null envelope sender (RFC 3834)")
        tap.is_eq(str(msg["Auto-Submitted"]), "auto-replied",
                  "ack: Auto-Submitted: auto-replied")
        tap.is_eq(str(msg["In-Reply-To"]), "<patient.1@patient.test>",
                  "ack: In-Reply-To the patient's Message-ID")
        tap.is_eq(str(msg["References"]), "<patient.1@patient.test>",
                  "ack: References the patient's Message-ID")
        text = body_text(msg)
        tap.ok("call 999" in text and "NHS 111" in text and
               "01234 567890" in text, "ack: the safety net and the phone")
        tap.ok(CANARY.encode() not in m["raw"] and
               b"chest" not in m["raw"], "ack: no content")
    else:
        for _ in range(7):
            tap.ok(False, "ack: not received")

    if rf:
        m = rf[0]
        tap.is_eq(m["subject"], "URGENT: a patient's reply on letter L%d "
                  "(reply R%d) contains a red-flag phrase" % (lid, rid),
                  "redflag: subject with ids only")
        tap.ok("forwarded to Dr Patel (C%d)" % p["clinician"] in
               body_text(m["msg"]), "redflag: says where it went")
        tap.ok(CANARY.encode() not in m["raw"] and
               b"chest" not in m["raw"], "redflag: no content")
        tap.is_eq(m["mail"], "alerts@riverside.example",
                  "redflag: envelope sender the failsafe address")
    else:
        for _ in range(4):
            tap.ok(False, "redflag: not received")

    # --- 2. a quarantined reply without a thread: alert and contact -----------
    rid2 = insert(d, "-p", p["practice"], "-r", rawfile,
                  "-f", "stranger@elsewhere.test", "-m", "<s.2@elsewhere.test>",
                  "-S", "quarantined", "-R", "expired_token",
                  "-s", "unverified", "-t", "secret " + CANARY,
                  "quarantine=team@riverside.example",
                  "contact=stranger@elsewhere.test")
    qa = wait_for(lambda: to_rcpt("team@riverside.example"), 30)
    ct = wait_for(lambda: to_rcpt("stranger@elsewhere.test"), 30)
    if qa:
        m = qa[0]
        tap.is_eq(m["subject"], "A reply waits in quarantine: reply R%d, "
                  "reason expired_token" % rid2,
                  "quarantine: subject with id and reason")
        tap.ok("sealpostctl quarantine show R%d" % rid2 in
               body_text(m["msg"]), "quarantine: the command to see it")
        tap.ok(CANARY.encode() not in m["raw"], "quarantine: no content")
    else:
        for _ in range(3):
            tap.ok(False, "quarantine alert: not received")
    if ct:
        m = ct[0]
        text = body_text(m["msg"])
        tap.is_eq(m["mail"], "", "contact: null envelope sender")
        tap.is_eq(str(m["msg"]["Auto-Submitted"]), "auto-replied",
                  "contact: auto-replied")
        tap.ok("01234 567890" in text and "1 River Lane" in text and
               "call 999" in text,
               "contact: phone, postal address, safety net")
        tap.ok(CANARY.encode() not in m["raw"], "contact: no content")
    else:
        for _ in range(4):
            tap.ok(False, "contact: not received")

    # --- 3. 5xx fails, 4xx is retried ----------------------------------------
    rid3 = insert(d, "-p", p["practice"], "-r", rawfile, "-l", lid,
                  "-P", p["patient"], "-c", p["clinician"],
                  "-t", "text " + CANARY,
                  "forward=gone@riverside.example",
                  "forward=busy@riverside.example")
    failed = wait_for(lambda: re.search(
        r"reply-mail=\d+ reply=%d letter=%d forward failed after 1 "
        r"attempt: 550" % (rid3, lid), d.log_text()), 30)
    tap.ok(failed, "a 550 forward failed at once, logged with ids")
    retried = wait_for(lambda: len(re.findall(
        r"reply-mail=\d+ reply=%d forward deferred: 451" % rid3,
        d.log_text())) >= 2, 30)
    tap.ok(retried, "a 451 forward is deferred and tried again")
    tap.ok(not to_rcpt("gone@riverside.example") and
           not to_rcpt("busy@riverside.example"),
           "nothing reached the sink for them")

    # --- 4. a mail left "sending" by a crash goes at the next start ----------
    tap.is_eq(d.stop(), 0, "sealpostd stops cleanly")
    rid4 = insert(d, "-p", p["practice"], "-r", rawfile, "-l", lid,
                  "-P", p["patient"], "-f", "jo@patient.test",
                  "-m", "<patient.4@patient.test>", "ack=late@patient.test")
    db = sqlite3.connect(d.config["daemon"]["database"])
    with db:
        n = db.execute("UPDATE reply_mails SET state = 'sending', "
                       "attempts = 1 WHERE reply_id = ?", (rid4,)).rowcount
    db.close()
    tap.is_eq(n, 1, "a reply mail marked sending, as a crash leaves it")
    d.start()
    tap.ok(wait_for(lambda: to_rcpt("late@patient.test"), 30),
           "after the restart it is recovered and sent")
    tap.ok(re.search(r"1 reply mails were being sent when the daemon "
                     r"stopped", d.log_text()), "the recovery is logged")

    # --- 5. nothing clinical in the log ---------------------------------------
    log = d.log_text()
    tap.ok(CANARY not in log and "chest" not in log,
           "no reply content in the daemon log")
    tap.is_eq(d.stop(), 0, "sealpostd stops cleanly again")

    # --- 6. append: into the practice's folder over IMAP ---------------------
    # sealpostd does not hand the [imap] server to the queue yet:
    # tests/queue_run runs the same queue code with it, the daemon stopped.
    if not st.have_dovecot_rig():
        tap.skip("append: needs root, dovecot-imapd and dovecot-lmtpd "
                 "(contrib/deps.sh test installs them)")
    else:
        with st.dovecot() as dv:
            rid5 = insert(d, "-p", p["practice"], "-r", rawfile, "-l", lid,
                          "-P", p["patient"], "-c", p["clinician"],
                          "-f", "jo@patient.test",
                          "-t", "append text " + CANARY, "-a", attfile,
                          "append=-")
            r = subprocess.run(
                [os.path.join(st.builddir(), "tests", "queue_run"),
                 "-d", d.config["daemon"]["database"],
                 "-k", d.config["daemon"]["master_key_file"],
                 "-H", "127.0.0.1", "-P", str(dv.imaps), "-c", dv.ca,
                 "-u", dv.user, "-p", dv.password, "-F", "Replies",
                 "-n", "1", "-t", "30"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                timeout=90)
            tap.ok(r.returncode == 0 and "sent=1 " in r.stdout and
                   "failed=0" in r.stdout,
                   "append: the queue appended reply R%d (%s)"
                   % (rid5, r.stdout.strip()))
            tap.ok(re.search(r"reply-mail=\d+ reply=%d letter=%d append "
                             r"sent: 250 appended to Replies" % (rid5, lid),
                             r.stderr), "append: logged with ids")
            tap.is_eq(dv.folder_count("Replies"), 1,
                      "append: one message in the folder")
            raw = b""
            try:
                im = dv.login()
                im.select("Replies", readonly=True)
                typ, data = im.fetch("1", "(BODY.PEEK[])")
                raw = data[0][1] if typ == "OK" else b""
                im.logout()
            except Exception as e:          # noqa: BLE001
                tap.diag("imap: %s" % e)
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            tap.is_eq(str(msg["Subject"]), "Reply from patient P%d on letter "
                      "L%d" % (p["patient"], lid),
                      "append: the forward's subject")
            tap.is_eq(str(msg["Auto-Submitted"]), "auto-generated",
                      "append: auto-generated")
            tap.ok(part_bytes(msg, "original-message.eml") == RAW and
                   part_bytes(msg, "photo of rash.jpg") == ATT,
                   "append: the original and the attachment byte for byte")
            tap.ok(CANARY not in r.stderr, "append: no content in the log")
except Exception as e:          # a broken rig or daemon: say so, fail
    tap.ok(False, "unexpected error: %s" % e)
    if d is not None:
        tap.diag(d.log_tail(40))
finally:
    if d is not None:
        d.stop()
    rig("stop", PF, check=False)
    rig("sink-stop", PF, check=False)
    if os.environ.get("SEALPOST_TEST_KEEP"):
        tap.diag("kept %s" % TMP)
    else:
        import shutil
        shutil.rmtree(TMP, ignore_errors=True)
tap.done()
