#!/usr/bin/env python3
"""t_replies - patients' replies in, end to end with real servers
(TESTPLAN T11, T16-T18, T20, T23 at the daemon level; issue 4).

A private Postfix on loopback is the smarthost (STARTTLS, verified) in
front of a capturing smtp-sink: letters go out through it, and so do the
mails replies cause (forward to the clinician, acknowledgement to the
patient, red-flag and quarantine alerts).  A private Dovecot holds the
practice's reply mailbox (implicit TLS with a test CA); sealpostd watches
it with IDLE.  Replies are put there with IMAP APPEND, built from the
real-client messages of the talon corpus with our reply token; forged and
hostile ones go through sealpostd's LMTP listener with Python's LMTP
client.

Checked: the reply token of a real letter files the reply to its thread
with the new text only, sealed, forwarded, acknowledged once per thread;
the message moves to the processed folder; forged replies (flipped
token, another patient's token, expired token, wrong From, display-name
spoof, dmarc=fail, a forged Authentication-Results below the trusted
one) are quarantined with their reason and never filed; automatic mail is
never answered; a red flag alerts the duty address and is acknowledged at
once; the libetpan crasher, deep nesting and a 1.5 MiB header are
quarantined and the daemon lives; a bounce by LMTP sends the letter to
paper; SIGKILL during a burst loses nothing and files nothing twice.
"""

import email
import email.policy
import glob
import json
import os
import re
import shutil
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sealpost_test as st  # noqa: E402

tap = st.Tap()
rig = st.rig
wait_for = st.wait_for
REPLIES = os.path.join(st.SRCDIR, "tests", "data", "replies")
CANARY = "CANARY-reply-7f3a"        # must never reach a log or an alert

if os.geteuid() != 0 or not st.have("postfix") or \
        not os.path.exists("/usr/sbin/smtp-sink"):
    tap.skip("needs root and the Debian postfix package (smarthost and "
             "smtp-sink): contrib/deps.sh test installs it")
    tap.done()
if not st.have_dovecot_rig():
    tap.skip("needs root and dovecot-imapd + dovecot-lmtpd (the reply "
             "mailbox): contrib/deps.sh test installs them")
    tap.done()

TMP = tempfile.mkdtemp(prefix="t_replies-")
os.chmod(TMP, 0o755)
CAP = os.path.join(TMP, "capture")
os.makedirs(CAP)
os.chmod(CAP, 0o777)            # smtp-sink runs as user postfix
PF = os.path.join(TMP, "pf")
DOMAIN = "riverside.example"
JO = "jo@patient.test"
AUTHSERV = "mx.riverside.test"


def captured():
    return st.sink_messages(CAP)


def to_rcpt(addr):
    return [m for m in captured() if m["rcpt"] == addr]


def headers_replaced(raw, new):
    """raw (bytes) with its From/To/Cc/Message-ID/... fields removed and
    the `new' header lines (list of str) put on top."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    drop = {b"from", b"to", b"cc", b"message-id", b"delivered-to",
            b"return-path", b"authentication-results", b"sender",
            b"reply-to", b"in-reply-to", b"references", b"x-original-to"}
    keep, skipping = [], False
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                keep.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        skipping = name in drop
        if not skipping:
            keep.append(line)
    top = [h.encode() for h in new]
    return b"\r\n".join(top + keep) + b"\r\n\r\n" + \
        body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def reply(frm, to, text, extra=(), msgid=None, subject="Re: your results"):
    """A plain reply as a phone client writes it: new text, quote."""
    msgid = msgid or "<%s@patient.test>" % os.urandom(8).hex()
    lines = ["From: Jo Patient <%s>" % frm if "<" not in frm else
             "From: %s" % frm, "To: %s" % to, "Subject: %s" % subject,
             "Message-ID: %s" % msgid,
             "Date: Wed, 25 Nov 2026 10:00:00 +0000",
             "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8"] + list(extra)
    body = (text + "\n\nOn Tue, 24 Nov 2026 at 09:00, Riverside Surgery "
            "<letters@riverside.example> wrote:\n> Dear Jo,\n> Your test "
            "is normal. Chest pain clinic follow-up not needed.\n")
    return ("\r\n".join(lines) + "\r\n\r\n" +
            body.replace("\n", "\r\n")).encode(), msgid


def api_get(d, path, token):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (d.http_port,
                                                            path),
                                 headers={"Authorization": "Bearer " +
                                          token})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, None


def db_rows(d, sql, args=()):
    con = sqlite3.connect(d.config["daemon"]["database"], timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def reply_by_msgid(d, msgid):
    r = db_rows(d, "SELECT id, state, reason, sender, letter_id, urgent "
                "FROM replies WHERE message_id = ?", (msgid,))
    return r


def lmtp_send(d, rcpts, raw, mail_from="jo@patient.test"):
    """Deliver raw to rcpts over LMTP: {rcpt: (code, text)} (the
    per-recipient answers after DATA), or the refusal for all."""
    c = smtplib.LMTP("127.0.0.1", d.lmtp_port, timeout=60)
    try:
        c.ehlo_or_helo_if_needed()
        try:
            refused = c.sendmail(mail_from, rcpts, raw)
        except smtplib.SMTPRecipientsRefused as e:
            return {r: (code, txt) for r, (code, txt) in
                    e.recipients.items()}
        except smtplib.SMTPDataError as e:
            return {r: (e.smtp_code, e.smtp_error) for r in rcpts}
        out = {r: (250, b"") for r in rcpts}
        out.update({r: v for r, v in refused.items()})
        return out
    finally:
        try:
            c.quit()
        except smtplib.SMTPException:
            pass


d = None
dv = None
dvctx = None
try:
    # --- the smarthost and the mailbox ----------------------------------
    cert, key = st.make_self_signed(TMP, "localhost")
    sink_port = st.free_port()
    rig("sink-start", PF, sink_port, "-d", os.path.join(CAP, "%H%M%S."))
    smarthost = int(rig("start", PF, "--tls", cert, key,
                        "-o", "smtpd_tls_security_level = encrypt"))
    dvctx = st.dovecot()
    dv = dvctx.__enter__()
    tap.ok(smarthost > 0 and dv.imaps > 0,
           "Postfix smarthost on %d, Dovecot IMAPS on %d" % (smarthost,
                                                             dv.imaps))
    os.makedirs(os.path.join(TMP, "d"))
    pwfile = os.path.join(TMP, "d", "imap.password")
    with open(pwfile, "w") as f:
        f.write(dv.password + "\n")
    os.chmod(pwfile, 0o400)
    lmtp_port = st.free_port()
    d = st.Daemon({
        "relay": {"host": "127.0.0.1", "port": str(smarthost),
                  "tls": "starttls", "ca_file": cert, "tls_name": "localhost",
                  "pool_size": "2", "connect_timeout": "5s"},
        "queue": {"retry_first": "1s", "retry_max": "2s"},
        "imap": {"host": "127.0.0.1", "port": str(dv.imaps),
                 "tls": "implicit", "tls_name": "localhost", "ca_file": dv.ca,
                 "username": dv.user, "password_file": pwfile,
                 "idle": "yes", "poll_interval": "2s",
                 "practice": DOMAIN},
        "lmtp": {"listen": "127.0.0.1:%d" % lmtp_port},
        "replies": {"authserv_id": AUTHSERV, "ack_window": "1d"},
    }, tmpdir=os.path.join(TMP, "d"))
    d.lmtp_port = lmtp_port
    p = d.setup_practice(domain=DOMAIN, name="Riverside Surgery",
                         patient_email=JO)
    d.ctl("practice", "set", p["practice"], "--failsafe",
          "alerts@" + DOMAIN, "--team-email", "team@" + DOMAIN,
          "--duty-email", "duty@" + DOMAIN, "--phone", "01234 567890")
    sam = int(d.ctl("patient", "add", "--practice", p["practice"], "--name",
                    "Sam", "--email", "sam@patient.test", "--verified",
                    "--consent"))
    d.start()

    # --- a real letter, so a real reply address ---------------------------
    def post(patient, text):
        s, lid = st.api_post_letter(d, p["token"], {
            "patient": patient, "author": p["clinician"],
            "subject": "Your results", "text": text})
        return lid if s == 202 else None

    lid = post(p["patient"], "Dear Jo,\nYour test is normal.\n")
    got = wait_for(lambda: to_rcpt(JO), 20)
    tap.ok(lid is not None and got, "the letter reached the patient")
    letter_msg = got[0]["msg"] if got else None
    reply_to = str(letter_msg["Reply-To"]) if got else ""
    m = re.search(r"reply\+[a-z2-7]+@" + re.escape(DOMAIN), reply_to)
    TOKEN_ADDR = m.group(0) if m else "reply+none@" + DOMAIN
    BOUNCE_ADDR = got[0]["mail"] if got else ""
    LETTER_MSGID = str(letter_msg["Message-ID"]) if got else ""
    tap.ok(m is not None, "its Reply-To is a token address")

    # --- 1. real clients' replies by IMAP ---------------------------------
    names = sorted(os.path.basename(x)[:-4] for x in glob.glob(
        os.path.join(REPLIES, "*.eml")))
    sent = {}
    mbox = dv.login()
    for name in names:
        with open(os.path.join(REPLIES, name + ".eml"), "rb") as f:
            raw = f.read()
        msgid = "<%s-%s@patient.test>" % (name, os.urandom(4).hex())
        raw = headers_replaced(raw, ["From: Jo Patient <%s>" % JO,
                                     "To: <%s>" % TOKEN_ADDR,
                                     "Message-ID: " + msgid])
        mbox.append("INBOX", None, None, raw)
        sent[name] = msgid
    tap.ok(len(names) >= 12, "%d real-client replies appended to the "
           "mailbox" % len(names))

    def all_taken():
        return dv.folder_count("INBOX") == 0 and \
            dv.folder_count("sealpost-processed") >= len(names)
    tap.ok(wait_for(all_taken, 60), "each left INBOX for the processed "
           "folder (%d there)" % dv.folder_count("sealpost-processed"))
    s, j = api_get(d, "/v1/replies?limit=500", p["token"])
    feed = {r.get("id"): r for r in (j or {}).get("replies", [])}
    ok_n, bad = 0, []
    for name in names:
        rows = reply_by_msgid(d, sent[name])
        if len(rows) != 1 or rows[0][1] != "filed" or rows[0][4] != lid:
            bad.append("%s: %r" % (name, rows))
            continue
        text = (feed.get(rows[0][0]) or {}).get("new_text", "")
        exp_path = os.path.join(REPLIES, name + ".expected")
        if not os.path.exists(exp_path):
            exp_path = os.path.join(REPLIES, name + "_reply_text")
        with open(exp_path, encoding="utf-8") as f:
            first = f.read().strip().splitlines()[0].strip()
        if first in text and "wrote:" not in text and \
                not re.search(r"(?m)^>", text):
            ok_n += 1
        else:
            bad.append("%s: %r" % (name, text[:80]))
    tap.ok(not bad, "every real-client reply filed to the letter's thread "
           "with its new text and no quoted history (%d/%d)" %
           (ok_n, len(names)))
    for b in bad[:5]:
        tap.diag(b)

    # forwarded to the clinician, acknowledged once to the patient
    fwd = wait_for(lambda: len(to_rcpt(p["clinician_email"])) >= len(names)
                   and to_rcpt(p["clinician_email"]), 30) or []
    tap.is_eq(len(fwd), len(names), "one forward per reply reached the "
              "clinician's work address")
    acks = wait_for(lambda: [x for x in to_rcpt(JO)
                             if "auto-replied" in
                             str(x["msg"]["Auto-Submitted"] or "")], 30) or []
    time.sleep(2)
    acks = [x for x in to_rcpt(JO)
            if "auto-replied" in str(x["msg"]["Auto-Submitted"] or "")]
    tap.is_eq(len(acks), 1, "exactly one acknowledgement for the thread, "
              "however many replies (ack_window 1d)")
    if acks:
        body = acks[0]["msg"].get_body(preferencelist=("plain",))
        body = body.get_content() if body else ""
        tap.ok("999" in body and "111" in body,
               "the acknowledgement carries the safety-net text")
        tap.is_eq(acks[0]["mail"], "", "the acknowledgement is sent from "
                  "the null sender")

    # --- 2. forged and odd replies by LMTP --------------------------------
    def one(to, frm=JO, extra=(), text="Thank you, doctor. " + CANARY,
            subject="Re: your results"):
        raw, msgid = reply(frm, to, text, extra, subject=subject)
        # the envelope sender plays no part in the decision: a plain one
        # (Python's smtplib passes odd From values through unparsed)
        res = lmtp_send(d, [to], raw, mail_from=JO)
        rows = reply_by_msgid(d, msgid)
        return res.get(to, (0, b""))[0], rows[0] if rows else None

    code, row = one(TOKEN_ADDR, extra=[
        "Authentication-Results: %s; dmarc=pass header.from=patient.test"
        % AUTHSERV])
    tap.ok(code == 250 and row and row[1] == "filed" and
           row[3] == "verified", "LMTP: trusted dmarc=pass -> filed, "
           "sender verified (%r %r)" % (code, row))
    code, row = one(TOKEN_ADDR, extra=[
        "Authentication-Results: %s; dmarc=none" % AUTHSERV,
        "Authentication-Results: %s; dmarc=pass header.from=patient.test"
        % AUTHSERV])
    tap.ok(code == 250 and row and row[1] == "filed" and
           row[3] == "unverified", "a forged A-R below the trusted one is "
           "ignored: filed unverified (%r)" % (row,))
    code, row = one(TOKEN_ADDR, extra=[
        "Authentication-Results: %s; dmarc=fail header.from=patient.test"
        % AUTHSERV])
    tap.ok(row and row[1] == "quarantined" and row[2] == "dmarc_fail",
           "dmarc=fail -> quarantined dmarc_fail (%r)" % (row,))
    code, row = one(TOKEN_ADDR, extra=[
        "Authentication-Results: spf=pass; dkim=pass header.d=patient.test;"
        " dmarc=pass action=none header.from=patient.test; compauth=pass"])
    tap.ok(row and row[1] == "filed" and row[3] == "unverified",
           "a Microsoft 365-style A-R without an id is not trusted")

    flipped = TOKEN_ADDR[:12] + ("a" if TOKEN_ADDR[12] != "a" else "b") + \
        TOKEN_ADDR[13:]
    code, row = one(flipped)
    tap.ok(code == 250 and row and row[1] == "quarantined" and
           row[2] == "bad_token" and row[4] is None,
           "one token character flipped -> quarantined bad_token, no "
           "thread (%r)" % (row,))
    key = d.config["daemon"]["master_key_file"]

    def tok(kind, thread, rcpt, expires):
        return subprocess.run([os.path.join(st.builddir(), "tests",
                                            "token_tool"), key, kind,
                               str(thread),
                               str(rcpt), str(expires)],
                              stdout=subprocess.PIPE, text=True,
                              check=True).stdout.strip() + "@" + DOMAIN
    other = tok("reply", lid, sam, int(time.time()) + 86400 * 30)
    code, row = one(other, frm="sam@patient.test")
    tap.ok(row and row[1] == "quarantined" and row[2] == "unknown_thread",
           "another patient's token for this letter -> quarantined "
           "unknown_thread, never filed (%r)" % (row,))
    expired = tok("reply", lid, p["patient"], int(time.time()) - 86400 * 3)
    code, row = one(expired)
    tap.ok(row and row[1] == "quarantined" and row[2] == "expired_token",
           "an expired token -> quarantined expired_token (%r)" % (row,))
    contact = wait_for(lambda: [x for x in to_rcpt(JO)
                                if "01234 567890" in x["raw"].decode(
                                    "utf-8", "replace") and
                                "auto-replied" in
                                str(x["msg"]["Auto-Submitted"] or "")], 20)
    tap.ok(contact, "the expired token gets a polite answer with the "
           "practice's phone number")
    code, row = one(TOKEN_ADDR, frm="mallory@evil.test")
    tap.ok(row and row[1] == "quarantined" and row[2] == "from_mismatch",
           "From is not the patient's -> from_mismatch (%r)" % (row,))
    code, row = one(TOKEN_ADDR, frm='"%s" <mallory@evil.test>' % JO)
    tap.ok(row and row[1] == "quarantined" and row[2] == "from_mismatch",
           "display-name spoof -> from_mismatch (%r)" % (row,))
    code, row = one(TOKEN_ADDR, frm="JO@patient.test")
    tap.ok(row and row[1] == "quarantined" and row[2] == "from_mismatch",
           "the local part in another case -> from_mismatch (%r)" % (row,))
    code, row = one(TOKEN_ADDR, frm="%s, sam@patient.test" % JO)
    tap.ok(row and row[1] == "quarantined" and row[2] == "from_unusable",
           "two From addresses -> from_unusable (%r)" % (row,))
    code, row = one("reply@" + DOMAIN)
    tap.ok(row and row[1] == "quarantined" and row[2] == "no_token",
           "no token at all -> no_token (%r)" % (row,))
    code, row = one("reply@" + DOMAIN, extra=["In-Reply-To: " +
                                              LETTER_MSGID])
    tap.ok(row and row[1] == "quarantined" and
           row[2] == "references_only" and row[4] == lid,
           "References only -> quarantined with its thread, lower trust")
    r = lmtp_send(d, ["reply+x@unknown.example"],
                  reply(JO, "reply+x@unknown.example", "hi")[0])
    tap.is_eq(r.get("reply+x@unknown.example", (0,))[0], 550,
              "LMTP: an address of no practice of ours -> 550")

    # loops: automatic mail is filed but never answered
    def answers():
        return len([x for x in to_rcpt(JO) if "auto-replied" in
                    str(x["msg"]["Auto-Submitted"] or "")])
    n_letters = len([x for x in to_rcpt(JO) if x["msg"]["Reply-To"]])
    lid2 = post(p["patient"], "Second letter.\n")
    tap.ok(lid2 is not None and wait_for(
        lambda: len([x for x in to_rcpt(JO) if x["msg"]["Reply-To"]]) >
        n_letters, 20), "a second letter went out")
    l2 = [x for x in to_rcpt(JO) if x["msg"]["Reply-To"]][-1]
    TOKEN2 = re.search(r"reply\+[a-z2-7]+@" + re.escape(DOMAIN),
                       str(l2["msg"]["Reply-To"])).group(0)
    time.sleep(2)
    n_before = answers()
    code, row = one(TOKEN2, extra=["Auto-Submitted: auto-replied"])
    tap.ok(row and row[1] == "filed", "an auto-reply is filed")
    code, row = one(TOKEN2, extra=["Precedence: bulk"])
    tap.ok(row and row[1] == "filed", "bulk mail is filed")
    time.sleep(3)
    n2 = answers()
    tap.is_eq(n2, n_before, "no acknowledgement to Auto-Submitted or "
              "Precedence: bulk mail, though the thread had none yet")

    # red flag: urgent, duty alerted, acknowledged at once
    n_duty = len(to_rcpt("duty@" + DOMAIN))
    code, row = one(TOKEN_ADDR, text="I have crushing chest pain since "
                    "this morning. " + CANARY)
    tap.ok(row and row[1] == "filed" and row[5] == 1,
           "a red-flag phrase marks the reply urgent (%r)" % (row,))
    tap.ok(wait_for(lambda: len(to_rcpt("duty@" + DOMAIN)) > n_duty, 20),
           "the duty address is alerted")
    duty = to_rcpt("duty@" + DOMAIN)
    tap.ok(duty and CANARY not in duty[-1]["raw"].decode("utf-8", "replace")
           and "chest" not in duty[-1]["raw"].decode("utf-8", "replace"),
           "the duty alert carries ids, not the patient's words")
    tap.ok(wait_for(lambda: answers() > n2, 20),
           "and the patient gets the safety net at once, inside the window")

    # --- 3. hostile messages: quarantined, the daemon lives ---------------
    crash = ("From: %s\r\nTo: %s\r\nSubject: x\r\nMessage-ID: <crash@p.t>\r\n"
             "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
             "boundary=\"\\\"\"\r\n\r\n--\"\r\nContent-Type: text/plain\r\n"
             "\r\nhello\r\n--\"--\r\n" % (JO, TOKEN_ADDR)).encode()
    r = lmtp_send(d, [TOKEN_ADDR], crash)
    row = reply_by_msgid(d, "<crash@p.t>")
    tap.ok(r[TOKEN_ADDR][0] == 250 and row and row[0][1] == "quarantined"
           and d.running(), "the libetpan boundary crasher is quarantined "
           "(%s), the daemon lives" % (row[0][2] if row else None))
    nest = "".join("Content-Type: multipart/mixed; boundary=b%d\r\n\r\n"
                   "--b%d\r\n" % (i, i) for i in range(10000))
    deep = ("From: %s\r\nTo: %s\r\nSubject: deep\r\nMessage-ID: <deep@p.t>"
            "\r\nMIME-Version: 1.0\r\n" % (JO, TOKEN_ADDR) + nest +
            "\r\nx\r\n").encode()
    t0 = time.time()
    r = lmtp_send(d, [TOKEN_ADDR], deep)
    row = reply_by_msgid(d, "<deep@p.t>")
    tap.ok(row and row[0][1] == "quarantined" and time.time() - t0 < 10 and
           d.running(), "a 10,000-level nested message is quarantined "
           "(%s) in %.1fs" % (row[0][2] if row else None, time.time() - t0))
    big_hdr = ("From: %s\r\nTo: %s\r\nSubject: big\r\nMessage-ID: "
               "<bighdr@p.t>\r\n" % (JO, TOKEN_ADDR) +
               "".join("X-Filler-%d: %s\r\n" % (i, "a" * 70)
                       for i in range(20000)) + "\r\nbody\r\n").encode()
    r = lmtp_send(d, [TOKEN_ADDR], big_hdr)
    tap.ok(r[TOKEN_ADDR][0] == 552 and d.running(),
           "LMTP: a %.1f MiB header is refused 552 with a reason (%r)" %
           (len(big_hdr) / 1048576, r[TOKEN_ADDR]))
    mbox.append("INBOX", None, None, big_hdr)

    def unusable():
        return db_rows(d, "SELECT id, state, reason FROM replies WHERE "
                       "reason = 'header_unusable'")
    tap.ok(wait_for(lambda: unusable() and dv.folder_count("INBOX") == 0,
                    60), "IMAP: the same message is taken in and leaves "
           "the mailbox")
    row = unusable()
    tap.ok(len(row) == 1 and row[0][1] == "quarantined" and d.running(),
           "and is quarantined header_unusable, sealed whole for staff "
           "(%r)" % (row,))

    # --- 4. a bounce by LMTP: the letter goes to paper ---------------------
    dsn = ("From: MAILER-DAEMON@mx.patient.test\r\nTo: %s\r\n"
           "Subject: Undelivered Mail Returned to Sender\r\n"
           "Message-ID: <dsn1@mx.patient.test>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/report; report-type=delivery-status; "
           "boundary=\"R\"\r\n\r\n--R\r\nContent-Type: text/plain\r\n\r\n"
           "Your message could not be delivered.\r\n--R\r\n"
           "Content-Type: message/delivery-status\r\n\r\n"
           "Reporting-MTA: dns; mx.patient.test\r\n\r\n"
           "Final-Recipient: rfc822; %s\r\nAction: failed\r\n"
           "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user"
           "\r\n\r\n--R\r\nContent-Type: text/rfc822-headers\r\n\r\n"
           "Message-ID: %s\r\n\r\n--R--\r\n" % (BOUNCE_ADDR, JO,
                                                LETTER_MSGID)).encode()
    r = lmtp_send(d, [BOUNCE_ADDR], dsn, mail_from="")
    tap.is_eq(r.get(BOUNCE_ADDR, (0,))[0], 250,
              "LMTP: the bounce is taken (250 after it is applied)")
    j = st.api_letter(d, p["token"], lid)
    tap.ok(j.get("state") == "paper" and
           (j.get("deliveries") or [{}])[0].get("state") == "failed",
           "the bounced letter went to paper (%s)" % j.get("state"))

    # --- 5. SIGKILL during a burst: nothing lost, nothing twice -----------
    tap.is_eq(d.stop(), 0, "stopped cleanly")
    burst = {}
    for i in range(40):
        raw, msgid = reply(JO, TOKEN2, "Burst reply %d. %s" % (i, CANARY))
        burst[msgid] = raw
        mbox.append("INBOX", None, None, raw)
    t0 = time.time()
    d.start()
    wait_for(lambda: dv.folder_count("INBOX") <= 30, 30, step=0.05)
    d.stop(sig=9)
    tap.ok(dv.folder_count("INBOX") > 0, "SIGKILL in the middle of the "
           "burst (%d left in INBOX)" % dv.folder_count("INBOX"))
    d.start()
    tap.ok(wait_for(lambda: dv.folder_count("INBOX") == 0, 60),
           "after the restart the mailbox is drained")
    counts = [len(reply_by_msgid(d, mid)) for mid in burst]
    tap.ok(all(c == 1 for c in counts), "every reply of the burst filed "
           "exactly once (%d of %d, max %d)" % (
               sum(1 for c in counts if c == 1), len(burst), max(counts)))
    raw0 = next(iter(burst.values()))
    mbox.append("INBOX", None, None, raw0)
    tap.ok(wait_for(lambda: dv.folder_count("INBOX") == 0, 30) and
           len(reply_by_msgid(d, next(iter(burst)))) == 1,
           "the same message fetched again: moved, recognised, not filed "
           "twice")
    tap.ok("audit chain ok" in d.ctl("audit", "verify") or
           d.ctl_run("audit", "verify").returncode == 0, "audit verifies")
    tap.ok(d.ctl_run("db", "check").returncode == 0, "db check ok")

    # --- 6. status and metrics show the replies ---------------------------
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % d.http_port,
                                timeout=10) as r:
        metrics = r.read().decode()
    mq = re.search(r'^sealpost_replies\{state="quarantined"\} (\d+)$',
                   metrics, re.M)
    nq = len(db_rows(d, "SELECT id FROM replies WHERE state = "
                     "'quarantined'"))
    tap.ok(mq is not None and int(mq.group(1)) == nq and nq > 0,
           "/metrics: the quarantined replies (%s, store %d)" %
           (mq.group(1) if mq else None, nq))
    tap.ok(re.search(r"^sealpost_quarantine_oldest_age_seconds \d+$",
                     metrics, re.M) is not None,
           "/metrics: the age of the oldest quarantined reply")
    rj = json.loads(d.ctl("status")).get("replies", {})
    tap.ok(rj.get("quarantined") == nq and rj.get("filed", 0) > 0 and
           (rj.get("imap") or {}).get("connected") is True and
           (rj.get("imap") or {}).get("moved", 0) > 0,
           "sealpostctl status: reply counts and the IMAP worker (%r)" %
           ({k: rj.get(k) for k in ("filed", "quarantined")},))

    # --- 7. nothing clinical in the log -----------------------------------
    tap.ok(CANARY not in d.log_text(), "no reply content in the log")
    mbox.logout()
except Exception as e:           # noqa: BLE001 - report, do not hide
    import traceback
    tap.ok(False, "unexpected error: %r" % e)
    tap.diag(traceback.format_exc())
    if d is not None:
        tap.diag(d.log_tail(40))
finally:
    if d is not None:
        d.stop()
    if dvctx is not None:
        dvctx.__exit__(None, None, None)
    rig("stop", PF, check=False)
    rig("sink-stop", PF, check=False)
    if not os.environ.get("SEALPOST_TEST_KEEP"):
        if d is not None:
            d.cleanup()
        shutil.rmtree(TMP, ignore_errors=True)
tap.done()
