#!/usr/bin/python3
"""smtp_script.py - a scripted SMTP server on loopback (aiosmtpd), for the
failures Postfix cannot produce on demand (TESTPLAN.md section 1).

    smtp_script.py --record FILE [--port P] [--cert C --key K] [--implicit]
        [--no-starttls] [--auth USER:PASSWORD] [--auth-mechs PLAIN,LOGIN]
        [--save-dir DIR] [--rcpt-reply ADDR=REPLY]... [--rcpt-452-at N]
        [--stall-at EVENT[:N]] [--reply421-at EVENT[:N]]
        [--drop-at EVENT[:N]] [--starttls-inject] [--drop-after-messages N]
        [--max-tls VERSION]
    smtp_script.py --multi FILE

Prints the port it listens on (127.0.0.1; --port 0 or none picks one) as
one line on stdout once it accepts connections, then serves until killed.
With --multi, FILE holds one server per line, "NAME OPTIONS..." (the
options above, shell-quoted; each its own --record), all run by this one
process (one interpreter start for a whole test suite); it prints
"NAME PORT" per server, then "READY".

EVENT is GREETING, HANDSHAKE (TLS never answered: implicit mode, or after
the 220 to STARTTLS), DOT (after the message, before its reply) or a
command verb (EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, NOOP, RSET, QUIT).
N counts that event over the server's life, from 1 (default 1):
  --stall-at     never answer (the client must time out or cancel)
  --reply421-at  answer "421 4.3.2 ..." and close
  --drop-at      close the connection without a reply ("--drop-at DOT" is
                 "dropped after DATA": the message may have been taken)

With --cert/--key STARTTLS is offered (unless --no-starttls) and required
before MAIL/AUTH; --implicit speaks TLS from the first byte instead;
--max-tls 1.0|1.1|1.2 caps the protocol version (an outdated server).
--auth accepts that user and requires AUTH before MAIL (without it,
aiosmtpd still offers AUTH after TLS and refuses every login);
--auth-mechs limits the mechanisms offered ("" or "NONE": none).  --rcpt-reply gives one
address a fixed reply ("x@y=550 5.1.1 no such user"); --rcpt-452-at N
answers the N-th RCPT "452 4.5.3 Too many recipients".
--starttls-inject sends "250 injected" in the same packet as the 220 to
STARTTLS (CVE-2020-15953).  --drop-after-messages N closes the connection
right after the reply to the N-th message (an idle session the server
dropped).

--record FILE gets one line per event, flushed at once:
  CONNECT, SNI <name or ->, TLS (handshake done), <VERB> <argument> (for
  AUTH only the mechanism), AUTHRESULT <mech> ok|fail, MESSAGE <n> <bytes>,
  STALL <event>, 421 <event>, DROP <event>, CLOSE.
Passwords and AUTH data are never recorded.  --save-dir DIR keeps each
message as DIR/msg-<n>.eml, bytes as received after dot-unstuffing.
"""

import argparse
import asyncio
import collections
import os
import shlex
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult

STALL_SECONDS = 3600


class Script:
    """The command-line script plus the shared counters and record."""

    def __init__(self, args):
        self.args = args
        self.counts = collections.Counter()
        self.messages = 0
        self.rcpts = 0
        self.actions = {}
        for kind, specs in (("stall", args.stall_at),
                            ("421", args.reply421_at),
                            ("drop", args.drop_at)):
            for spec in specs or ():
                ev, _, n = spec.partition(":")
                self.actions[(ev.upper(), int(n or 1))] = kind
        self.rcpt_replies = {}
        for spec in args.rcpt_reply or ():
            addr, _, reply = spec.partition("=")
            self.rcpt_replies[addr.lower()] = reply
        self.rec = open(args.record, "a", buffering=1, encoding="utf-8",
                        errors="backslashreplace")

    def record(self, line):
        self.rec.write(line.replace("\r", "\\r").replace("\n", "\\n") + "\n")
        self.rec.flush()

    def event(self, ev):
        """Count an event; the action scripted for this occurrence."""
        self.counts[ev] += 1
        return self.actions.get((ev, self.counts[ev]))


async def act(script, server, ev, action):
    """Carry out a scripted action at an event: True if it took over."""
    if action is None:
        return False
    if action == "stall":
        script.record("STALL " + ev)
        await asyncio.sleep(STALL_SECONDS)
    elif action == "421":
        script.record("421 " + ev)
        await server.push("421 4.3.2 Service shutting down (scripted)")
        server.transport.close()
        await asyncio.sleep(STALL_SECONDS)
    elif action == "drop":
        script.record("DROP " + ev)
        server.transport.abort()
        await asyncio.sleep(STALL_SECONDS)
    return True


class Handler:
    def __init__(self, script):
        self.script = script

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        s = self.script
        s.rcpts += 1
        reply = s.rcpt_replies.get(address.lower())
        if reply:
            return reply
        if s.args.rcpt_452_at and s.rcpts == s.args.rcpt_452_at:
            return "452 4.5.3 Too many recipients (scripted)"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        s = self.script
        if await act(s, server, "DOT", s.event("DOT")):
            return "250 never sent"
        s.messages += 1
        data = envelope.original_content or b""
        s.record("MESSAGE %d %d" % (s.messages, len(data)))
        if s.args.save_dir:
            path = os.path.join(s.args.save_dir, "msg-%d.eml" % s.messages)
            with open(path, "wb") as f:
                f.write(data)
        if (s.args.drop_after_messages and
                s.messages >= s.args.drop_after_messages):
            asyncio.get_event_loop().call_later(0.05, server.transport.close)
        return "250 2.0.0 OK queued as M%d" % s.messages

    def handle_STARTTLS(self, server, session, envelope):
        self.script.record("TLS")
        return True


class ScriptSMTP(SMTP):
    """aiosmtpd's server with every command recorded and scriptable."""

    def __init__(self, handler, script, **kw):
        super().__init__(handler, **kw)
        self.script = script
        for name, meth in list(self._smtp_methods.items()):
            self._smtp_methods[name] = self._wrap(name, meth)

    def _wrap(self, name, meth):
        async def wrapped(arg):
            s = self.script
            if name == "AUTH":
                s.record("AUTH " + (arg or "").split(" ")[0])
            else:
                s.record(name + ("" if arg is None else " " + arg))
            if await act(s, self, name, s.event(name)):
                return
            await meth(arg)
        return wrapped

    def connection_made(self, transport):
        if self.transport is None:
            self.script.record("CONNECT")
            if self.script.args.implicit:
                self.script.record("TLS")
        super().connection_made(transport)

    def connection_lost(self, error):
        self.script.record("CLOSE")
        super().connection_lost(error)

    async def _handle_client(self):
        s = self.script
        if await act(s, self, "GREETING", s.event("GREETING")):
            return
        await super()._handle_client()

    async def smtp_STARTTLS(self, arg):
        s = self.script
        if self.tls_context and not arg:
            if s.event("HANDSHAKE") == "stall":
                s.record("STALL HANDSHAKE")
                await self.push("220 Ready to start TLS")
                await asyncio.sleep(STALL_SECONDS)
                return
            if s.args.starttls_inject:
                orig = self.push

                async def push_once(status):
                    self.push = orig
                    await orig(status + "\r\n250 2.0.0 injected")
                self.push = push_once
        await super().smtp_STARTTLS(arg)


class Silent(asyncio.Protocol):
    """Implicit TLS that never answers the ClientHello."""

    def __init__(self, script):
        self.script = script

    def connection_made(self, transport):
        self.script.record("CONNECT")
        self.script.record("STALL HANDSHAKE")
        self.transport = transport

    def connection_lost(self, exc):
        self.script.record("CLOSE")


def tls_context(script):
    args = script.args
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.max_tls:
        # An old server: OpenSSL 3 needs security level 0 for TLS < 1.2.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = {
                "1.0": ssl.TLSVersion.TLSv1,
                "1.1": ssl.TLSVersion.TLSv1_1,
                "1.2": ssl.TLSVersion.TLSv1_2}[args.max_tls]

    def sni(sslobj, name, context):
        script.record("SNI " + (name or "-"))
        return None
    ctx.sni_callback = sni
    return ctx


def authenticator_for(script):
    user, _, password = script.args.auth.partition(":")

    def authenticator(server, session, envelope, mechanism, auth_data):
        good = (getattr(auth_data, "login", None) == user.encode() and
                getattr(auth_data, "password", None) == password.encode())
        script.record("AUTHRESULT %s %s" % (mechanism, "ok" if good
                                             else "fail"))
        return AuthResult(success=good, handled=False)
    return authenticator


async def start(script):
    """Listen for one scripted server; returns the asyncio server."""
    args = script.args
    loop = asyncio.get_running_loop()
    ctx = tls_context(script) if args.cert else None
    if args.implicit and ("HANDSHAKE", 1) in script.actions:
        server = await loop.create_server(lambda: Silent(script),
                                          "127.0.0.1", args.port)
    else:
        kw = {"hostname": "script.rig.test", "ident": "smtp_script",
              "data_size_limit": 10 * 1024 * 1024}
        if ctx is not None and not args.implicit and not args.no_starttls:
            kw["tls_context"] = ctx
            kw["require_starttls"] = True
        kw["auth_require_tls"] = not args.implicit
        if args.auth:
            kw["authenticator"] = authenticator_for(script)
            kw["auth_required"] = True
        if args.auth_mechs is not None:
            offered = {m.strip().upper()
                       for m in args.auth_mechs.split(",")}
            kw["auth_exclude_mechanism"] = [
                m for m in ("PLAIN", "LOGIN") if m not in offered]
        handler = Handler(script)

        def factory():
            return ScriptSMTP(handler, script, loop=loop, **kw)
        server = await loop.create_server(
            factory, "127.0.0.1", args.port,
            ssl=ctx if args.implicit else None)
    return server


async def serve(scripts):
    """Start every server, print the ports, serve until killed."""
    servers = []
    for name, script in scripts:
        server = await start(script)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        print(port if name is None else "%s %d" % (name, port), flush=True)
    if scripts and scripts[0][0] is not None:
        print("READY", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--multi")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--record")
    ap.add_argument("--save-dir")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--implicit", action="store_true")
    ap.add_argument("--no-starttls", action="store_true")
    ap.add_argument("--auth")
    ap.add_argument("--auth-mechs")
    ap.add_argument("--rcpt-reply", action="append")
    ap.add_argument("--rcpt-452-at", type=int)
    ap.add_argument("--stall-at", action="append")
    ap.add_argument("--reply421-at", action="append")
    ap.add_argument("--drop-at", action="append")
    ap.add_argument("--starttls-inject", action="store_true")
    ap.add_argument("--drop-after-messages", type=int)
    ap.add_argument("--max-tls", choices=("1.0", "1.1", "1.2"))
    return ap


def check(ap, args):
    if args.record is None:
        ap.error("--record is required")
    if args.implicit and not args.cert:
        ap.error("--implicit needs --cert and --key")
    return args


def main():
    ap = parser()
    args = ap.parse_args()
    scripts = []
    if args.multi:
        with open(args.multi) as f:
            for line in f:
                if not line.strip() or line.startswith("#"):
                    continue
                name, _, rest = line.strip().partition(" ")
                sub = check(ap, ap.parse_args(shlex.split(rest)))
                scripts.append((name, Script(sub)))
    else:
        scripts.append((None, Script(check(ap, args))))
    try:
        asyncio.run(serve(scripts))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
