"""t_daemon - the daemon as a sysadmin meets it.

  - -V prints the version; -n checks the config and prints non-defaults,
    -nn every setting;
  - a missing file, an unknown option, a bad value: exit 78 (EX_CONFIG)
    and a message naming file, line and option;
  - a master key readable by group or others: refused, exit 78;
  - under a (fake) systemd: READY=1, RELOADING=1 then READY=1 on SIGHUP,
    STOPPING=1 on SIGTERM, through NOTIFY_SOCKET;
  - SIGHUP applies live options, names those that need a restart, and a
    broken file on reload keeps the running configuration;
  - SIGTERM stops within the shutdown timeout with exit 0;
  - admin actions (sealpostctl letter show) are audited.
"""

import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sealpost_test as st  # noqa: E402

tap = st.Tap()
sealpostd = st.prog("sealpostd")


def run(args, env=None, timeout=30):
    return subprocess.run([sealpostd] + args, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          timeout=timeout, env=env)


r = run(["-V"])
tap.ok(r.returncode == 0 and r.stdout.startswith("sealpostd "),
       "-V prints the version")

with st.Daemon() as d:
    # --- -n ------------------------------------------------------------
    r = run(["-n", "-f", d.conf])
    tap.ok(r.returncode == 0 and "daemon.database = " in r.stdout and
           "http.timeout" not in r.stdout,
           "-n prints the settings that differ from the defaults")
    r = run(["-nn", "-f", d.conf])
    tap.ok(r.returncode == 0 and "http.timeout = " in r.stdout and
           "limits.max_letter_size = " in r.stdout,
           "-nn prints every setting")

    # --- configuration errors --------------------------------------------
    missing = os.path.join(d.dir, "nope.conf")
    r = run(["-f", missing])
    tap.ok(r.returncode == 78 and missing in r.stderr,
           "missing config file: exit 78 naming the file")
    bad = os.path.join(d.dir, "bad.conf")
    cases = [
        ("[daemon]\nlog = stderr\nbogus = 1\n", ":3:", "bogus"),
        ("[http]\ntimeout = forever\n", ":2:", "timeout"),
        ("[smtp]\nmax_recipients = 0\n", ":2:", "max_recipients"),
        ("[nosuch]\n", ":1:", "nosuch"),
    ]
    for text, line, opt in cases:
        with open(bad, "w") as f:
            f.write(text)
        r = run(["-f", bad])
        tap.ok(r.returncode == 78 and bad + line in r.stderr and
               opt in r.stderr,
               "config error %s: exit 78 with file%s and the option"
               % (opt, line))
        if r.returncode != 78:
            tap.diag(r.stderr)

    # --- master key permissions ------------------------------------------
    key = d.config["daemon"]["master_key_file"]
    os.chmod(key, 0o440)
    r = run(["-f", d.conf], timeout=30)
    tap.ok(r.returncode == 78 and "chmod" in r.stderr,
           "group-readable master key: refused with exit 78 and the fix")
    os.chmod(key, 0o400)

    # --- a fake systemd: NOTIFY_SOCKET ------------------------------------
    p = d.setup_practice()
    nsock_path = os.path.join(d.dir, "notify.sock")
    nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    nsock.bind(nsock_path)
    nsock.settimeout(0.2)
    msgs = []

    def drain_notify(want, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                msgs.append(nsock.recv(4096).decode())
            except socket.timeout:
                pass
            if any(want in m for m in msgs):
                return True
        return False

    os.environ["NOTIFY_SOCKET"] = nsock_path
    try:
        d.start()
    finally:
        del os.environ["NOTIFY_SOCKET"]
    tap.ok(drain_notify("READY=1"), "sd_notify READY=1 at start")

    # --- SIGHUP: live options applied, restart-only ones named ------------
    d.config["http"]["timeout"] = "45s"
    d.config["daemon"]["seal_workers"] = "3"
    d.write_config()
    msgs.clear()
    d.proc.send_signal(signal.SIGHUP)
    tap.ok(drain_notify("RELOADING=1"), "sd_notify RELOADING=1 on SIGHUP")
    tap.ok(drain_notify("READY=1"), "sd_notify READY=1 after the reload")
    time.sleep(0.2)
    log = d.log_text()
    tap.ok("option=http.timeout" in log and "changed" in log,
           "reload applies http.timeout live")
    tap.ok("option=daemon.seal_workers" in log and "needs a restart" in log,
           "reload names seal_workers as needing a restart")

    with open(d.conf, "a") as f:
        f.write("[http]\nnonsense = 1\n")
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while time.time() < deadline and "keeping the running one" not in \
            d.log_text():
        time.sleep(0.05)
    tap.ok("keeping the running one" in d.log_text() and d.running(),
           "a broken file on reload is refused and the daemon runs on")
    d.write_config()    # sealpostctl reads the same file
    r = d.ctl_run("status")
    tap.ok(r.returncode == 0 and '"state":"running"' in r.stdout,
           "status still answers after the refused reload")

    # --- an admin view is audited ------------------------------------------
    r = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
         "http://127.0.0.1:%d/v1/letters" % d.http_port,
         "-H", "Authorization: Bearer " + p["token"],
         "-H", "Content-Type: application/json",
         "-d", '{"patient": %d, "author": %d, "subject": "s", "text": "t"}'
         % (p["patient"], p["clinician"])],
        stdout=subprocess.PIPE, text=True, timeout=30)
    tap.is_eq(r.stdout, "202", "a letter for the audit check")
    import sqlite3
    db = d.config["daemon"]["database"]

    def audit_rows(action):
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
        try:
            return con.execute("select count(*) from audit where action = ?",
                               (action,)).fetchone()[0]
        finally:
            con.close()
    tap.is_eq(audit_rows("letter.submit"), 1, "the submission is audited")
    d.ctl("letter", "show", "1")
    tap.is_eq(audit_rows("letter.view"), 1, "letter show is audited")
    tap.ok(d.ctl_run("audit", "verify").returncode == 0,
           "the audit chain verifies")

    # --- SIGTERM: bounded, clean -------------------------------------------
    msgs.clear()
    t0 = time.time()
    rc = d.stop(signal.SIGTERM)
    took = time.time() - t0
    tap.ok(rc == 0 and took < 10, "SIGTERM: exit 0 in %.2fs" % took)
    tap.ok(drain_notify("STOPPING=1", timeout=2), "sd_notify STOPPING=1")
    tap.ok(not os.path.exists(d.config["daemon"]["control_socket"]),
           "the control socket is removed on a clean stop")
    nsock.close()

tap.done()
