#!/usr/bin/env python3
"""t_mime_expected - our MIME parse against other parsers' expected output.

Two corpora under ../shared/corpora/mime beside the source tree
(SEALPOST_MIME_CORPUS overrides; the test skips when they are absent)
come with expected parses:

  stalwart   stalwart_mail_parser/resources/eml/*/NNN.eml, with NNN.json
             (the parse of the message with every CR dropped) and
             NNN.crlf.json (after every LF was made CRLF).  Run twice:
             "stalwart-lf" and "stalwart-crlf" (the daemon's view: SMTP
             and LMTP deliver CRLF), the input converted the same way.
  mime4j     james_mime4j/core/src/test/resources/*/X.msg with
             X_decoded.xml (the structure, raw header fields) and
             X_decoded_<path>.txt|.bin (each leaf's decoded content, in
             its own charset).  The message bytes as they are.

tests/mime_dump parses every message through the parse sandbox (the
program is its own child, as sealpostd -P) and prints our letter as JSON.

The mapping.  Both expected forms are reduced to an ordered list of
leaves, depth first, not descending into an attached message (which, like
ours, is one leaf).  A leaf has a media type (no Content-Type: text/plain,
message/rfc822 inside multipart/digest), a disposition, a filename
(Content-Disposition filename, else Content-Type name; RFC 2231 and 2047
decoded) and its decoded content.  Our letter model is then applied to
the leaves: the first text/plain and the first text/html leaf that is not
an attached message, has no "attachment" disposition and no filename is
the text or HTML body; every other leaf with non-empty content is an
attachment.  Compared, per message:

  subject      the top Subject, decoded (stalwart: its decoded header;
               mime4j: the raw field through the test's RFC 2047 decoder),
               unfolded, white space at either end dropped.
  text         the text body: CRLF and CR become LF, trailing white space
               of each line and trailing empty lines dropped.  stalwart
               gives decoded UTF-8; mime4j's bytes are decoded with the
               part's charset the way we do (ISO-8859-1 and US-ASCII or
               unknown as windows-1252 when not UTF-8).  No text body
               expected: our text must be "" or absent.
  html         whether there is an HTML body.
  attachments  the filenames in order.  An expected filename is cleaned as
               ours are (last path component, controls to "_", spaces at
               either end and trailing dots dropped); an expected leaf
               without one must get our generated attachment-N.<ext>.

A message we reject fails every field, unless we reject it as "no_body"
and the expected letter is empty too (no subject, text, HTML, attachment).  Intended differences are listed in
tests/data/mime-expected-policy.md ("- `corpus/path` field,...: why"):
those fields are not counted, but must still differ, so that a stale entry
is noticed and removed.  Every failing field is a diag line; the test
points are: no message crashed, each per-corpus per-field pass rate is at
least its THRESHOLDS entry (the measured rate rounded down), and every
policy entry still applies.
"""

import base64
import codecs
import email.parser
import glob
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sealpost_test as st  # noqa: E402

CORPUS = os.environ.get("SEALPOST_MIME_CORPUS",
                        os.path.join(st.SRCDIR, "..", "shared", "corpora",
                                     "mime"))

FIELDS = ("subject", "text", "html", "attachments")

# Measured pass rates rounded down to a whole percent, per corpus and
# field ("all": every field of the message matched).
THRESHOLDS = {
    "stalwart-lf": {"subject": 98, "text": 86, "html": 94,
                    "attachments": 78, "all": 77},
    "stalwart-crlf": {"subject": 98, "text": 84, "html": 94,
                      "attachments": 78, "all": 75},
    "mime4j": {"subject": 98, "text": 80, "html": 98, "attachments": 90,
               "all": 75},
}

GENERATED = re.compile(r"^attachment-[0-9]+\.(bin|txt|html|eml)$")


class Leaf:
    """One leaf of an expected structure."""

    def __init__(self, ctype, disposition, filename, is_message, text,
                 empty):
        self.ctype = ctype              # "type/subtype", lower case
        self.disposition = disposition  # "attachment", "inline" or None
        self.filename = filename        # decoded str or None
        self.is_message = is_message
        self.text = text                # decoded str for text leaves
        self.empty = empty


def letter_of(subject, leaves):
    """Our letter model over an expected leaf list."""
    text = html = None
    atts = []
    for l in leaves:
        if (not l.is_message and l.disposition != "attachment" and
                l.filename is None and
                l.ctype in ("text/plain", "text/html")):
            if l.ctype == "text/plain" and text is None:
                text = l.text if l.text is not None else ""
                continue
            if l.ctype == "text/html" and html is None:
                html = l.text if l.text is not None else ""
                continue
        if l.empty:
            continue
        atts.append(clean_filename(l.filename))
    return {"subject": subject, "text": text, "html": html,
            "attachments": atts}


def clean_filename(name):
    """mime.c's filename_clean(): None if nothing usable is left."""
    if name is None:
        return None
    base = re.split(r"[/\\]", name)[-1].lstrip(" ").rstrip(" .")
    base = "".join("_" if ord(c) < 32 or 127 <= ord(c) <= 0x9f else c
                   for c in base)
    b = base.encode("utf-8")[:200]
    base = b.decode("utf-8", errors="ignore")
    return base or None


def is_empty(letter):
    """Nothing a clinician could read: what we reject as no_body."""
    return (norm_subject(letter["subject"]) == "" and
            norm_text(letter["text"]).strip() == "" and
            norm_text(letter["html"]).strip() == "" and
            not letter["attachments"])


def norm_text(s):
    """Line ends to LF, trailing white space of lines and text dropped."""
    if s is None:
        return ""
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(l.rstrip() for l in s.split("\n")).rstrip("\n")


def norm_subject(s):
    """Unfolded (CR and LF dropped), controls to spaces, trimmed."""
    s = (s or "").replace("\r", "").replace("\n", "")
    s = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in s)
    return s.strip(" ")


def compare(want, got):
    """{field: (equal, want, got)} for one message."""
    out = {}
    out["subject"] = (norm_subject(want["subject"]),
                      norm_subject(got.get("subject")))
    out["text"] = (norm_text(want["text"]), norm_text(got.get("text")))
    out["html"] = (want["html"] is not None, got.get("html") is not None)
    gatts = [a["filename"] for a in got.get("attachments", [])]
    wshow = [w if w is not None else "<generated>"
             for w in want["attachments"]]
    gshow = [g if not GENERATED.match(g) else "<generated>" for g in gatts]
    out["attachments"] = (wshow, gshow)
    return {f: (w == g, w, g) for f, (w, g) in out.items()}


# --- stalwart -----------------------------------------------------------

def sw_headers(part):
    """{name: value} of a stalwart part, the first of each name."""
    h = {}
    for f in part.get("headers", []):
        name = f["name"]
        if isinstance(name, dict):
            name = name.get("other", "").lower()
        h.setdefault(name, f["value"])
    return h


def sw_ctype(value):
    """A stalwart ContentType header value, or None."""
    if isinstance(value, dict) and "ContentType" in value:
        return value["ContentType"]
    return None


def sw_attr(ct, name):
    if ct is None:
        return None
    for a in ct.get("attributes") or []:
        if a["name"].lower() == name:
            return a["value"]
    return None


def sw_leaves(msg):
    """The leaf list of a stalwart Message."""
    parts = msg["parts"]
    leaves = []

    def node(i, in_digest, depth):
        p = parts[i]
        h = sw_headers(p)
        ct = sw_ctype(h.get("content_type"))
        body = p["body"]
        kind = next(iter(body)) if isinstance(body, dict) else body
        if kind == "Multipart":
            digest = ct is not None and \
                (ct.get("c_subtype") or "").lower() == "digest"
            for c in body["Multipart"]:
                node(c, digest, depth + 1)
            return
        if ct is not None:
            ctype = "%s/%s" % ((ct.get("c_type") or "").lower(),
                               (ct.get("c_subtype") or "").lower())
        elif in_digest:
            ctype = "message/rfc822"
        else:
            ctype = "text/plain"
        disp = sw_ctype(h.get("content_disposition"))
        dtype = (disp.get("c_type") or "").lower() if disp else None
        name = sw_attr(disp, "filename")
        if name is None:
            name = sw_attr(ct, "name")
        text = None
        if kind in ("Text", "Html"):
            text = body[kind]
            empty = text == ""
        elif kind in ("Binary", "InlineBinary"):
            data = bytes(body[kind])
            empty = len(data) == 0
            text = decode_like_us(data, sw_attr(ct, "charset"))
        else:
            empty = False
        leaves.append(Leaf(ctype, dtype, name, kind == "Message", text,
                           empty))

    if parts:
        node(0, False, 0)
    return leaves


def sw_expected(json_path):
    with open(json_path, encoding="utf-8") as f:
        msg = json.load(f)
    subject = ""
    if msg["parts"]:
        v = sw_headers(msg["parts"][0]).get("subject")
        if isinstance(v, dict) and "Text" in v:
            subject = v["Text"]
    return letter_of(subject, sw_leaves(msg))


def stalwart_cases():
    root = os.path.join(CORPUS, "stalwart_mail_parser", "resources", "eml")
    cases = []
    for eml in sorted(glob.glob(os.path.join(root, "*", "*.eml"))):
        base = eml[:-4]
        rel = os.path.relpath(base, root)
        if os.path.exists(base + ".json"):
            cases.append(("stalwart-lf", "stalwart/" + rel, eml,
                          base + ".json"))
        if os.path.exists(base + ".crlf.json"):
            cases.append(("stalwart-crlf", "stalwart/" + rel, eml,
                          base + ".crlf.json"))
    return cases


# --- mime4j -------------------------------------------------------------

def decode_like_us(data, charset):
    """Bytes to str the way mime.c converts a text body."""
    cs = (charset or "").strip().lower()
    if cs in ("", "us-ascii", "ascii", "iso-8859-1", "latin1",
              "iso_8859-1"):
        cs = ""
    elif cs:
        try:
            codecs.lookup(cs)
        except LookupError:
            cs = ""
    if cs == "":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("windows-1252", errors="replace")
    return data.decode(cs, errors="replace")


EW = re.compile(r"=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=")


def decode_word(m):
    """One RFC 2047 encoded word, or None if it does not decode."""
    charset = m.group(1).split("*")[0]      # RFC 2231 language dropped
    data = m.group(3)
    try:
        if m.group(2) in "Bb":
            raw = base64.b64decode(data + "=" * (-len(data) % 4))
        else:
            raw = re.sub(rb"=([0-9A-Fa-f]{2})",
                         lambda x: bytes([int(x.group(1), 16)]),
                         data.replace("_", " ").encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    return decode_like_us(raw, charset)


def decode_2047(value):
    """A header value unfolded, its encoded words decoded (white space
    between two adjacent encoded words dropped, RFC 2047 section 6.2).
    Python's email.header is not used: it puts a space between words of
    different charsets."""
    value = re.sub(r"\r?\n(?=[ \t])", "", value)
    out = []
    pos = 0
    prev_ew = False
    for m in EW.finditer(value):
        word = decode_word(m)
        if word is None:
            continue
        gap = value[pos:m.start()]
        if not (prev_ew and gap.strip(" \t") == ""):
            out.append(gap)
        out.append(word)
        pos = m.end()
        prev_ew = True
    out.append(value[pos:])
    return "".join(out)


def m4_header(el):
    """A <header> element as an email.message.Message (headers only)."""
    fields = [f.text.lstrip("\r\n") for f in el.findall("field")
              if f.text]
    text = "".join(f + ("" if f.endswith("\n") else "\n") for f in fields)
    return email.parser.HeaderParser().parsestr(text + "\n")


def m4_filename(h):
    """Filename of a part, RFC 2231 (by Python) then RFC 2047 decoded."""
    name = h.get_filename()
    if name is None:
        return None
    if "=?" in name:
        name = decode_2047(name)
    return name


def m4_leaves(root, base):
    """The leaf list of a mime4j _decoded.xml <message>."""
    leaves = []
    folder = os.path.dirname(base)

    def entity(header_el, content, in_digest):
        h = m4_header(header_el) if header_el is not None else \
            email.parser.HeaderParser().parsestr("\n")
        if in_digest and "content-type" not in h:
            h.set_default_type("message/rfc822")
        ctype = h.get_content_type()
        disp = h.get_content_disposition()
        if content.tag == "multipart":
            digest = ctype == "multipart/digest"
            for bp in content.findall("body-part"):
                child = [c for c in bp if c.tag in
                         ("text-body", "binary-body", "multipart",
                          "message")]
                if child:
                    entity(bp.find("header"), child[0], digest)
            return
        name = m4_filename(h)
        if content.tag == "message":
            # Empty: no header field and no content anywhere inside.
            empty = content.find(".//field") is None and all(
                os.path.getsize(os.path.join(folder, b.get("name"))) == 0
                for b in content.iter()
                if b.tag in ("text-body", "binary-body"))
            leaves.append(Leaf(ctype, disp, name, True, None, empty))
            return
        with open(os.path.join(folder, content.get("name")), "rb") as f:
            data = f.read()
        text = decode_like_us(data, h.get_param("charset"))
        leaves.append(Leaf(ctype, disp, name, False, text, len(data) == 0))

    hdr = root.find("header")
    body = [c for c in root if c.tag in
            ("text-body", "binary-body", "multipart", "message")]
    if body:
        entity(hdr, body[0], False)
    h = m4_header(hdr) if hdr is not None else None
    subject = decode_2047(h["subject"]) if h is not None and \
        h["subject"] is not None else ""
    return subject, leaves


def m4_expected(xml_path):
    root = ET.parse(xml_path).getroot()
    subject, leaves = m4_leaves(root, xml_path)
    return letter_of(subject, leaves)


def mime4j_cases():
    root = os.path.join(CORPUS, "james_mime4j")
    cases = []
    for msg in sorted(glob.glob(os.path.join(root, "**", "*.msg"),
                                recursive=True)):
        xml = msg[:-4] + "_decoded.xml"
        if os.path.exists(xml):
            rel = os.path.relpath(msg[:-4], os.path.join(
                root, "core", "src", "test", "resources"))
            cases.append(("mime4j", "mime4j/" + rel, msg, xml))
    return cases


# --- the run ------------------------------------------------------------

def policy_entries():
    """{(case, field)} from tests/data/mime-expected-policy.md."""
    path = os.path.join(st.SRCDIR, "tests", "data",
                        "mime-expected-policy.md")
    entries = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^- `([^`]+)` ([a-z,]+):", line)
            if m:
                for field in m.group(2).split(","):
                    entries.add((m.group(1), field))
    return entries


def dump(tool, mode, files):
    """Our parse of each file: {path: result}."""
    r = subprocess.run([tool, "-n", mode] + files, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=300)
    out = {}
    for line in r.stdout.decode("utf-8").splitlines():
        o = json.loads(line)
        out[o["file"]] = o
    return r.returncode, r.stderr.decode(errors="replace"), out


def short(v):
    s = repr(v)
    return s if len(s) <= 160 else s[:150] + "...(%d)" % len(s)


def main():
    tap = st.Tap()
    cases = stalwart_cases() + mime4j_cases()
    if not cases:
        tap.skip("MIME corpus with expected outputs not found under %s "
                 "(set SEALPOST_MIME_CORPUS)" % CORPUS)
        tap.done()
    tool = os.path.join(st.builddir(), "tests", "mime_dump")
    if not os.path.exists(tool):
        tap.bail("%s not built (make check-programs)" % tool)
    policy = policy_entries()
    tap.ok(all(f in FIELDS for _, f in policy),
           "policy entries name known fields")
    known = {c[1] for c in cases}
    stale = sorted({c for c, _ in policy if c not in known})
    tap.ok(not stale, "every policy case is in the corpus %s" %
           (stale or ""))

    modes = {"stalwart-lf": "lf", "stalwart-crlf": "crlf", "mime4j": "raw"}
    results = {}
    crashed = []
    for corpus, mode in modes.items():
        files = sorted({c[2] for c in cases if c[0] == corpus})
        if not files:
            continue
        rc, err, res = dump(tool, mode, files)
        if rc != 0:
            tap.diag("mime_dump -n %s exited %d: %s" % (mode, rc,
                                                       err.strip()))
        for f in files:
            o = res.get(f, {"status": "missing"})
            if o["status"] not in ("ok", "rejected"):
                crashed.append("%s %s: %s" % (corpus, f, o))
        results[corpus] = res

    stats = {}
    policy_hit = set()
    for corpus, cid, msgfile, expfile in cases:
        want = sw_expected(expfile) if corpus.startswith("stalwart") \
            else m4_expected(expfile)
        got = results[corpus].get(msgfile, {"status": "missing"})
        s = stats.setdefault(corpus, {f: [0, 0] for f in FIELDS + ("all",)})
        if got["status"] == "rejected" and got.get("code") == "no_body" \
                and is_empty(want):
            cmp = {f: (True, "-", "no_body") for f in FIELDS}
        elif got["status"] != "ok":
            cmp = {f: (False, "-", "%s %s" % (got["status"],
                                              got.get("code")))
                   for f in FIELDS}
        else:
            cmp = compare(want, got)
        allgood = True
        for f in FIELDS:
            good, w, g = cmp[f]
            if (cid, f) in policy:
                if not good:
                    policy_hit.add((cid, f))
                continue
            s[f][1] += 1
            if good:
                s[f][0] += 1
            else:
                allgood = False
                tap.diag("FAIL %s %s %s: want %s, got %s" % (
                    corpus, cid, f, short(w), short(g)))
        s["all"][1] += 1
        if allgood:
            s["all"][0] += 1

    tap.ok(not crashed, "no message crashed or timed out in the sandbox")
    for c in crashed:
        tap.diag("  " + c)
    for corpus, s in stats.items():
        for f in FIELDS + ("all",):
            p, n = s[f]
            rate = 100.0 * p / n if n else 100.0
            tap.ok(rate >= THRESHOLDS[corpus][f],
                   "%s %s: %d/%d = %.1f %% >= %d %%" % (
                       corpus, f, p, n, rate, THRESHOLDS[corpus][f]))
    unused = sorted(policy - policy_hit)
    tap.ok(not unused, "every policy entry still differs (else remove "
           "it) %s" % (["%s %s" % u for u in unused] or ""))
    tap.done()


if __name__ == "__main__":
    main()
