#!/usr/bin/env python3
"""t_mime_build - another parser agrees with sealpost's outbound messages.

tests/test_mime_build --dump SHAPE prints a message built by mime_build()
(src/mime_build.c); Python's email package (policy=default, its strict,
RFC 5322/6532 parser) reads it here: the decoded Subject and display names,
the MIME structure, the bodies, the RFC 2231 filenames and the attachment
bytes must be what the C side put in, with no defects reported.  The
expected values are the inputs written in tests/test_mime_build.c
(shape_doc(), dump()).
"""

import datetime
import email
import email.policy
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sealpost_test as st  # noqa: E402

SUBJECT = "Your blood test results \u2013 R\u00e9sultats \U0001fa78"
TEXT = ("Dear Zo\u00eb,\n\nYour results are normal.  No action is needed.\n"
        "From the practice team.\n")
HTML = "<p>Dear Zo\u00eb,</p>\n<p>Your results are <b>normal</b>.</p>\n"
PDF = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << >> endobj\n"
       b"trailer << >>\n%%EOF\n")
FROM_NAME = "Riverside Surgery \u2013 Dr. O'Brien"
TO_NAME = "Zo\u00eb M\u00fcller"


def build(shape):
    """The raw message of one shape, or None."""
    exe = os.path.join(st.builddir(), "tests", "test_mime_build")
    if not os.access(exe, os.X_OK):
        return None
    r = subprocess.run([exe, "--dump", shape], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60, check=False)
    if r.returncode != 0:
        sys.stdout.write("# dump %s failed: %s\n" % (shape, r.stderr))
        return b""
    return r.stdout


def lines_ok(raw):
    """CRLF only, every line <= 78 octets, CRLF at the end."""
    if not raw.endswith(b"\r\n"):
        return False
    for line in raw[:-2].split(b"\r\n"):
        if b"\r" in line or b"\n" in line or len(line) > 78:
            return False
    return True


def all_defects(msg):
    """Every defect Python noted, in the message and its parts.

    One is expected and left out: a Content-Disposition with filename*
    and the ASCII filename= fallback is "duplicate parameter name;
    duplicate ignored" to Python, which then takes filename*, the first
    one, as intended (the fallback is for readers without RFC 2231).
    """
    out = []
    for part in msg.walk():
        out.extend(part.defects)
        raw = dict((n.lower(), str(v)) for n, v in part.raw_items())
        for name, value in part.items():
            for d in getattr(value, "defects", ()):
                if (name.lower() == "content-disposition" and
                        "filename*" in raw.get(name.lower(), "") and
                        "duplicate parameter name" in str(d)):
                    continue
                out.append(d)
    return out


def text_of(part):
    """A text part's content with LF line ends."""
    return part.get_content().replace("\r\n", "\n")


def check_common(tap, shape, raw, msg):
    tap.ok(lines_ok(raw), "%s: CRLF lines of at most 78 octets" % shape)
    defects = all_defects(msg)
    if not tap.ok(not defects, "%s: Python reports no defect" % shape):
        tap.diag("  %r" % defects)
    frm = msg["from"].addresses
    tap.is_eq((len(frm), frm[0].display_name, frm[0].addr_spec),
              (1, FROM_NAME, "letters@riverside.example"),
              "%s: From display name decoded" % shape)
    to = msg["to"].addresses
    tap.is_eq((len(to), to[0].display_name, to[0].addr_spec),
              (1, TO_NAME, "zoe@patient.example"),
              "%s: To display name decoded" % shape)
    tap.is_eq(msg["reply-to"].addresses[0].addr_spec,
              "reply+abcdefgh234567@reply.riverside.example",
              "%s: Reply-To" % shape)
    tap.is_eq(msg["date"].datetime,
              datetime.datetime(2023, 11, 14, 22, 13, 20,
                                tzinfo=datetime.timezone.utc),
              "%s: Date" % shape)
    tap.ok(re.fullmatch(r"<[a-z2-7]{26}@riverside\.example>",
                        str(msg["message-id"])) is not None,
           "%s: Message-ID from the From domain" % shape)
    tap.is_eq((str(msg["auto-submitted"]), str(msg["x-sealpost-letter"])),
              ("auto-generated", "42"), "%s: extra headers" % shape)
    tap.is_eq(str(msg["mime-version"]), "1.0", "%s: MIME-Version" % shape)


def main():
    tap = st.Tap()
    shapes = ("text", "alt", "mixed", "notice")
    raws = {}
    for shape in shapes:
        raws[shape] = build(shape)
        if raws[shape] is None:
            tap.skip("tests/test_mime_build is not built")
            tap.done()
    for shape in shapes:
        raw = raws[shape]
        if not tap.ok(raw, "%s: built" % shape):
            continue
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        check_common(tap, shape, raw, msg)

        if shape == "notice":
            tap.is_eq(str(msg["subject"]),
                      "A letter is waiting \u2013 Riverside",
                      "notice: subject decoded")
            tap.is_eq(msg.get_content_type(), "text/plain",
                      "notice: text/plain")
            tap.is_eq(text_of(msg), "A letter is waiting for you.\n",
                      "notice: text")
            continue
        tap.is_eq(str(msg["subject"]), SUBJECT, "%s: subject decoded "
                  "(emoji included)" % shape)
        if shape == "text":
            tap.is_eq((msg.get_content_type(), msg.get_content_charset()),
                      ("text/plain", "utf-8"), "text: text/plain utf-8")
            tap.is_eq(msg["content-transfer-encoding"].cte,
                      "quoted-printable", "text: quoted-printable")
            tap.is_eq(text_of(msg), TEXT, "text: body")
            continue

        body = msg
        if shape == "mixed":
            tap.is_eq(msg.get_content_type(), "multipart/mixed",
                      "mixed: multipart/mixed")
            parts = list(msg.iter_parts())
            tap.is_eq([p.get_content_type() for p in parts],
                      ["multipart/alternative", "application/pdf",
                       "application/octet-stream"],
                      "mixed: body, then the attachments")
            atts = list(msg.iter_attachments())
            tap.is_eq([a.get_filename() for a in atts],
                      ["results.pdf", "R\u00e9sultat M\u00fcller.bin"],
                      "mixed: filenames (RFC 2231 one decoded)")
            tap.is_eq([a.get_content_disposition() for a in atts],
                      ["attachment", "attachment"],
                      "mixed: attachment dispositions")
            tap.is_eq([a.get_content() for a in atts],
                      [PDF, bytes(range(256))],
                      "mixed: attachment bytes identical")
            tap.is_eq([a["content-transfer-encoding"].cte for a in atts],
                      ["base64", "base64"], "mixed: attachments in base64")
            body = parts[0]
        tap.is_eq(body.get_content_type(), "multipart/alternative",
                  "%s: multipart/alternative" % shape)
        alt = list(body.iter_parts())
        tap.is_eq([p.get_content_type() for p in alt],
                  ["text/plain", "text/html"],
                  "%s: plain text first, then HTML" % shape)
        if len(alt) == 2:
            tap.is_eq(text_of(alt[0]), TEXT, "%s: text body" % shape)
            tap.is_eq(text_of(alt[1]), HTML, "%s: HTML body" % shape)
            tap.is_eq(msg.get_body(("html", "plain")).get_content_type(),
                      "text/html", "%s: get_body prefers HTML" % shape)
    tap.done()


if __name__ == "__main__":
    main()
