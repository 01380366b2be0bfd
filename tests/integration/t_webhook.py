#!/usr/bin/env python3
"""t_webhook - webhook_post() against real HTTP and HTTPS servers.

tests/webhook_post (tests/webhook_post.c) posts one callback through
src/webhook.c and prints the status or "-1 reason".  Python's http.server
plays the clinical system on loopback: plain HTTP, and HTTPS with
certificates from a test CA made here with openssl (one for "localhost",
one for the wrong name, one from a CA the client does not trust).  Every
request and every accepted connection is recorded, so "refused without
connecting" and "redirect not followed" are checked on the server side.
"""

import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sealpost_test as st  # noqa: E402

SLOW = 4            # seconds the /slow handler sleeps
TIMEOUT = 1         # the driver's timeout against /slow
SLACK = 2.5         # start-up and teardown allowance on top of TIMEOUT
BIG_SENT = 256 * 1024      # /big sends this much of a longer body, stalls


class Recorder:
    """What a server saw: connections accepted, requests read."""

    def __init__(self):
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = []

    def reset(self):
        with self.lock:
            self.connections = 0
            self.requests = []

    def snapshot(self):
        with self.lock:
            return self.connections, list(self.requests)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def record(self, body):
        with self.server.rec.lock:
            self.server.rec.requests.append({
                "method": self.command, "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "header_count": {k.lower(): len(self.headers.get_all(k))
                                 for k in self.headers.keys()},
                "body": body})

    def answer(self, code, body=b"", extra=()):
        self.send_response(code)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass    # the client stopped reading (the /big cap)

    def do_GET(self):
        self.record(b"")
        self.answer(200, b"a GET reached the server\n")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n) if n > 0 else b""
        self.record(body)
        path = self.path
        if path == "/ok":
            self.answer(200, b'{"ok":true}')
        elif path == "/accepted":
            self.answer(202)
        elif path == "/fail":
            self.answer(500, b"internal error\n")
        elif path == "/missing":
            self.answer(404, b"no such hook\n")
        elif path == "/redirect":
            self.answer(302, b"", [("Location", "/target")])
        elif path == "/slow":
            time.sleep(SLOW)
            self.answer(200)
        elif path == "/big":
            # Announce 10 MiB, send 256 KiB, then stall: only a client
            # that stops reading at its cap returns before its timeout.
            self.send_response(200)
            self.send_header("Content-Length", str(10 * 1024 * 1024))
            self.end_headers()
            try:
                self.wfile.write(b"x" * BIG_SENT)
                self.wfile.flush()
            except OSError:
                pass
            time.sleep(SLOW)
            self.close_connection = True
        else:
            self.answer(200)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, ctx=None):
        self.rec = Recorder()
        super().__init__(addr, Handler)
        if ctx is not None:
            # The handshake runs in the request thread, not in accept().
            self.socket = ctx.wrap_socket(self.socket, server_side=True,
                                          do_handshake_on_connect=False)

    def process_request(self, request, client_address):
        with self.rec.lock:
            self.rec.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request, client_address):
        pass    # failed handshakes are expected here


def start(ctx=None, host="127.0.0.1"):
    srv = Server((host, 0), ctx)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_ca(d, name):
    """A CA key and self-signed certificate: (crt, key)."""
    key, crt = name + ".key", name + ".crt"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
            "-days", "2", "-subj", "/CN=sealpost test " + name,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return os.path.join(d, crt), os.path.join(d, key)


def make_leaf(d, name, dns, ca):
    """A server certificate for DNS name `dns', signed by ca: (crt, key)."""
    key, csr, crt = name + ".key", name + ".csr", name + ".crt"
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:%s\n" % dns)
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=" + dns, cwd=d)
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1],
            "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", crt,
            cwd=d)
    return os.path.join(d, crt), os.path.join(d, key)


def server_ctx(leaf):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(leaf[0], leaf[1])
    return ctx


def local_address():
    """A non-loopback address of this host, or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))     # no packet is sent
        a = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if a.startswith("127.") or a == "0.0.0.0" else a


def main():
    tap = st.Tap()
    exe = os.path.join(st.builddir(), "tests", "webhook_post")
    if not os.access(exe, os.X_OK):
        tap.bail("%s not built (make check-programs)" % exe)
    if not st.have("openssl"):
        tap.bail("openssl is needed to make the test CA")
    d = tempfile.mkdtemp(prefix="sealpost-webhook-")
    token = "tk-" + secrets.token_urlsafe(32)
    marker = "pt-" + secrets.token_hex(8)   # a stand-in for clinical text
    tokfile = os.path.join(d, "token")
    with open(tokfile, "w") as f:
        f.write(token + "\n")

    def payload(name, pad=0):
        body = ('{"id":"cb-%s","delivery_id":42,"status":"delivered",'
                '"note":"caf\u00e9 \u2713 \\"q\\" %s","pad":"%s"}\n' % (
                    name, marker, "z" * pad)).encode("utf-8")
        path = os.path.join(d, name + ".json")
        with open(path, "wb") as f:
            f.write(body)
        return path, body

    outputs = []

    def post(url, json_path, ca=None, timeout=5, env=None):
        """Run the driver; (status, reason, seconds)."""
        args = [exe, "-u", url, "-t", tokfile, "-j", json_path,
                "-T", str(timeout)]
        if ca:
            args += ["-c", ca]
        t0 = time.monotonic()
        r = subprocess.run(args, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60, env=env)
        dt = time.monotonic() - t0
        out = r.stdout.decode("utf-8", "replace")
        err = r.stderr.decode("utf-8", "replace")
        outputs.append(out + err)
        line = out.strip()
        if r.returncode not in (0, 1) or not line:
            tap.diag("driver exit %d: %s %s" % (r.returncode, out, err))
            return None, line, dt
        head, _, rest = line.partition(" ")
        return int(head), rest, dt

    srv = start()
    base = "http://127.0.0.1:%d" % srv.server_address[1]
    try:
        # -- plain HTTP to loopback ----------------------------------------
        jpath, jbody = payload("one")
        status, why, _ = post(base + "/ok", jpath)
        conns, reqs = srv.rec.snapshot()
        tap.is_eq(status, 200, "200 answer returns 200")
        tap.is_eq(len(reqs), 1, "exactly one request")
        q = reqs[0] if reqs else {"headers": {}, "header_count": {}}
        tap.is_eq(q.get("method"), "POST", "method is POST")
        tap.is_eq(q.get("path"), "/ok", "path as in the URL")
        tap.ok(q.get("body") == jbody, "body arrives byte-identical")
        tap.is_eq(q["headers"].get("authorization"), "Bearer " + token,
                  "Authorization: Bearer <token>, exact")
        tap.is_eq(q["header_count"].get("authorization"), 1,
                  "one Authorization header")
        tap.is_eq(q["headers"].get("content-type"), "application/json",
                  "Content-Type: application/json")
        tap.ok(q["headers"].get("user-agent", "").startswith("sealpost/"),
               "User-Agent sealpost/<version>: %s" %
               q["headers"].get("user-agent"))
        tap.ok("expect" not in q["headers"], "no Expect: 100-continue")

        srv.rec.reset()
        jpath2, jbody2 = payload("two", pad=1536 * 1024)
        status, why, _ = post(base + "/accepted", jpath2)
        _, reqs = srv.rec.snapshot()
        tap.is_eq(status, 202, "a 1.5 MB body posted: 202 returned")
        tap.ok(len(reqs) == 1 and reqs[0]["body"] == jbody2,
               "the 1.5 MB body arrives byte-identical")

        srv.rec.reset()
        status, why, _ = post(base + "/fail", jpath)
        tap.is_eq(status, 500, "500 answer returns 500")
        status, why, _ = post(base + "/missing", jpath)
        tap.is_eq(status, 404, "404 answer returns 404")

        srv.rec.reset()
        status, why, _ = post(base + "/redirect", jpath)
        _, reqs = srv.rec.snapshot()
        tap.is_eq(status, 302, "302 answer returns 302")
        tap.is_eq([r["path"] for r in reqs], ["/redirect"],
                  "redirect not followed: /target never requested")

        srv.rec.reset()
        status, why, dt = post(base + "/big", jpath, timeout=3)
        tap.is_eq(status, 200, "an endless answer body: status returned")
        tap.ok(dt < 2.5, "reading stopped at the cap, not at the 3s "
               "timeout (%.2fs)" % dt)

        srv.rec.reset()
        status, why, dt = post(base + "/slow", jpath, timeout=TIMEOUT)
        tap.ok(status == -1 and why.startswith("timeout"),
               "server slower than the timeout: -1 (%s)" % why)
        tap.ok(dt < TIMEOUT + SLACK, "returned after %.2fs (timeout %ds)" %
               (dt, TIMEOUT))

        # Proxy variables in the environment are ignored.
        proxy = start()
        purl = "http://127.0.0.1:%d" % proxy.server_address[1]
        env = {k: v for k, v in os.environ.items()
               if k.lower() != "no_proxy"}
        for k in ("http_proxy", "https_proxy", "all_proxy", "HTTPS_PROXY",
                  "ALL_PROXY"):
            env[k] = purl
        srv.rec.reset()
        status, why, _ = post(base + "/ok", jpath, env=env)
        pconns, _ = proxy.rec.snapshot()
        _, reqs = srv.rec.snapshot()
        tap.ok(status == 200 and len(reqs) == 1 and pconns == 0,
               "http_proxy/ALL_PROXY ignored: straight to the server "
               "(status %s, proxy connections %d)" % (status, pconns))
        proxy.shutdown()
        proxy.server_close()

        # A bound socket that does not listen: connection refused.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        status, why, _ = post("http://127.0.0.1:%d/ok" % s.getsockname()[1],
                              jpath)
        s.close()
        tap.ok(status == -1 and why.startswith("connect"),
               "closed port: -1 (%s)" % why)

        # -- refused URLs: nothing reaches the server --------------------
        srv.rec.reset()
        hostport = "127.0.0.1:%d" % srv.server_address[1]
        for url, word in (
                (base + "/ok\r\nX-Injected: 1", "CR or LF"),
                (base + "/ok\nX-Injected: 1", "CR or LF"),
                ("http://user:pw@%s/ok" % hostport, "credentials"),
                ("http://user@%s/ok" % hostport, "credentials"),
                ("ftp://%s/ok" % hostport, "scheme"),
                (base + "/o k", "space")):
            status, why, _ = post(url, jpath)
            tap.ok(status == -1 and why.startswith("refused URL") and
                   word in why, "refused (%s): %r: %s" % (word, url, why))
        conns, reqs = srv.rec.snapshot()
        tap.ok(conns == 0 and not reqs,
               "no connection for a refused URL (%d)" % conns)

        addr = local_address()
        if addr is None:
            tap.skip("no non-loopback IPv4 address to listen on")
            tap.skip("no non-loopback IPv4 address to listen on")
        else:
            ext = start(host=addr)
            status, why, _ = post("http://%s:%d/ok" % (
                addr, ext.server_address[1]), jpath)
            tap.ok(status == -1 and "loopback" in why,
                   "http:// to %s refused: %s" % (addr, why))
            conns, _ = ext.rec.snapshot()
            tap.is_eq(conns, 0, "... without connecting")
            ext.shutdown()
            ext.server_close()

        # -- HTTPS ---------------------------------------------------------
        ca = make_ca(d, "ca")
        other_ca = make_ca(d, "otherca")
        good = start(server_ctx(make_leaf(d, "good", "localhost", ca)))
        wrong = start(server_ctx(make_leaf(d, "wrong", "wrong.example", ca)))
        stranger = start(server_ctx(make_leaf(d, "stranger", "localhost",
                                              other_ca)))
        url = "https://localhost:%d/ok" % good.server_address[1]
        status, why, _ = post(url, jpath, ca=ca[0])
        _, reqs = good.rec.snapshot()
        tap.is_eq(status, 200, "HTTPS with the test CA as ca_file: 200")
        tap.ok(len(reqs) == 1 and reqs[0]["body"] == jbody and
               reqs[0]["headers"].get("authorization") == "Bearer " + token,
               "HTTPS: body and token arrive")

        # Certificates refused: -1, and the server gets no request.
        for s, cafile, what in (
                (good, None, "test CA not in the system store"),
                (wrong, ca[0], "certificate for the wrong name"),
                (stranger, ca[0], "certificate from an unknown CA")):
            s.rec.reset()
            status, why, _ = post("https://localhost:%d/ok" %
                                  s.server_address[1], jpath, ca=cafile)
            _, reqs = s.rec.snapshot()
            tap.ok(status == -1 and "certificate" in why,
                   "%s: -1 (%s)" % (what, why))
            tap.is_eq(len(reqs), 0, "... and no request was sent")

        status, why, _ = post(url, jpath, ca=os.path.join(d, "nonexistent"))
        tap.ok(status == -1, "missing ca_file: -1 (%s)" % why)

        for s in (good, wrong, stranger):
            s.shutdown()
            s.server_close()

        # -- secrets -------------------------------------------------------
        everything = "".join(outputs)
        tap.ok(token not in everything and token[3:] not in everything,
               "the token never appears in the driver's output (%d runs)" %
               len(outputs))
        tap.ok(marker not in everything,
               "the payload never appears in the driver's output")
    finally:
        srv.shutdown()
        srv.server_close()
        if os.environ.get("SEALPOST_TEST_KEEP"):
            tap.diag("kept %s" % d)
        else:
            shutil.rmtree(d, ignore_errors=True)
    tap.done()


if __name__ == "__main__":
    main()
