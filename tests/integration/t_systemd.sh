#!/usr/bin/env bash
# t_systemd.sh - the systemd integration (TESTPLAN T13): the unit generated
# from systemd/sealpostd.service.in passes `systemd-analyze verify' without a
# single message and `systemd-analyze security --offline=true --threshold=20'
# (exposure <= 2.0); its settings agree with the daemon's code (exit status,
# credential name, directories, file descriptor limit, system calls the
# parse sandbox needs); the gates themselves fail on a broken or unhardened
# unit; the sysusers.d and tmpfiles.d files make the user and directories
# with the right owners and modes in a scratch root; and /proc mounted as
# ProtectProc=invisible + ProcSubset=pid still lets a process re-execute
# /proc/self/exe, as the daemon does for its parse sandbox.
#
# Needs systemd-analyze (skipped with the reason otherwise).  Runs without
# systemd as PID 1.  TAP output.
set -u

srcdir=${SEALPOST_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${SEALPOST_BUILDDIR:-$srcdir}
n=0
failed=0

ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); failed=1; echo "not ok $n - $*"; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $*"; }
diag() { printf '%s\n' "$@" | sed 's/^/# /'; }
check() {	# check "description" command...
	local what=$1; shift
	if "$@"; then ok "$what"; else notok "$what"; fi
}
finish() { echo "1..$n"; exit "$failed"; }

tmp=$(mktemp -d /tmp/t_systemd.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# The values the daemon's code uses, so the unit is checked against them.
ex_config=$(sed -n 's/^#define[[:space:]]*CONFIG_EX_CONFIG[[:space:]]*\([0-9]*\).*/\1/p' \
    "$srcdir/src/config.h")
credential=$(sed -n 's/^#define[[:space:]]*KEYRING_CREDENTIAL[[:space:]]*"\([^"]*\)".*/\1/p' \
    "$srcdir/src/keyring.c")
db_default=$(grep -A1 'STR("daemon", "database"' "$srcdir/src/config.c" |
    sed -n 's/.*"database", "\([^"]*\)".*/\1/p')
sock_default=$(grep -A1 'STR("daemon", "control_socket"' "$srcdir/src/config.c" |
    sed -n 's/.*"control_socket", "\([^"]*\)".*/\1/p')
shutdown_default=$(grep 'DUR("daemon", "shutdown_timeout"' "$srcdir/src/config.c" |
    sed -n 's/.*"shutdown_timeout", "\([0-9]*\)s".*/\1/p')

# --- the unit ---------------------------------------------------------------
# Prefer the one `make' generated; otherwise generate it as Makefile.am does
# for --prefix=/usr --sysconfdir=/etc --localstatedir=/var.
if [ -f "$builddir/systemd/sealpostd.service" ]; then
	unit_from="$builddir/systemd/sealpostd.service"
	cp "$unit_from" "$tmp/generated.service"
else
	unit_from="sed over systemd/sealpostd.service.in"
	sed -e 's|@sbindir[@]|/usr/sbin|g' -e 's|@sysconfdir[@]|/etc|g' \
	    -e 's|@localstatedir[@]|/var|g' \
	    "$srcdir/systemd/sealpostd.service.in" > "$tmp/generated.service"
fi
diag "unit: $unit_from"
unit=$tmp/generated.service

check "the unit has no unsubstituted @variable@" \
    eval '! grep -n "@[a-z]*@" "$unit"'

# The last value of a key in [Service] (systemd's rule for most keys).
key() { sed -n "s/^$1=//p" "$unit" | tail -1; }

check "Type=notify with NotifyAccess=main (sd_notify from the main process)" \
    test "$(key Type)" = notify -a "$(key NotifyAccess)" = main
check "ExecStart runs sealpostd -f on the installed sealpost.conf" \
    eval 'key ExecStart | grep -Eq "^/[^ ]*/sbin/sealpostd -f /[^ ]*/sealpost/sealpost\.conf$"'
check "ExecReload sends SIGHUP to the main process" \
    test "$(key ExecReload)" = '/bin/kill -HUP $MAINPID'
check "RestartPreventExitStatus is the daemon's EX_CONFIG ($ex_config)" \
    eval '[ -n "$ex_config" ] && [ "$(key Restart)" = on-failure ] &&
    [ "$(key RestartPreventExitStatus)" = "$ex_config" ]'
check "WatchdogSec is set (the loop sends WATCHDOG=1)" \
    eval 'grep -q "WATCHDOG=1" "$srcdir/src/sealpostd.c" &&
    [ -n "$(key WatchdogSec)" ]'
stop=$(key TimeoutStopSec | sed -n 's/^\([0-9]*\)s\{0,1\}$/\1/p')
check "TimeoutStopSec (${stop:-?}s) exceeds the default shutdown_timeout (${shutdown_default:-?}s)" \
    eval '[ -n "$stop" ] && [ -n "$shutdown_default" ] &&
    [ "$stop" -gt "$shutdown_default" ]'
check "a static User=/Group=sealpost, not DynamicUser" \
    eval '[ "$(key User)" = sealpost ] && [ "$(key Group)" = sealpost ] &&
    ! grep -q "^DynamicUser=yes" "$unit"'
check "StateDirectory holds the default database ($db_default)" \
    eval '[ -n "$db_default" ] &&
    [ "/var/lib/$(key StateDirectory)" = "$(dirname "$db_default")" ] &&
    [ "$(key StateDirectoryMode)" = 0700 ]'
check "RuntimeDirectory holds the default control socket ($sock_default)" \
    eval '[ -n "$sock_default" ] &&
    [ "/run/$(key RuntimeDirectory)" = "$(dirname "$sock_default")" ] &&
    [ "$(key RuntimeDirectoryMode)" = 0750 ]'
check "LoadCredential names the credential the keyring reads ($credential)" \
    eval '[ -n "$credential" ] &&
    key LoadCredential | grep -q "^$credential:/"'
check "LimitNOFILE keeps descriptors below FD_SETSIZE (libetpan select())" \
    eval '[ -n "$(key LimitNOFILE)" ] && [ "$(key LimitNOFILE)" -le 1024 ]'
check "UMask=0077 and no capabilities" \
    eval '[ "$(key UMask)" = 0077 ] &&
    grep -qx "CapabilityBoundingSet=" "$unit" &&
    grep -qx "AmbientCapabilities=" "$unit"'

# The parse sandbox child calls setrlimit (glibc: prlimit64), prctl
# (NO_NEW_PRIVS, SECCOMP), seccomp(2), and the workers fork/clone + execve.
# Resolve the filter the unit sets with systemd's own group tables.
if command -v systemd-analyze >/dev/null 2>&1; then
	allow= deny=
	while IFS= read -r line; do
		case $line in
		'~'*) deny="$deny ${line#\~}" ;;
		*) allow="$allow $line" ;;
		esac
	done < <(sed -n 's/^SystemCallFilter=//p' "$unit")
	# A group lists its calls and its nested groups: expand recursively.
	expand() {
		local w
		for w in $*; do
			case $w in
			@*)
				grep -qx -- "$w" "$tmp/seen" 2>/dev/null && continue
				echo "$w" >> "$tmp/seen"
				expand $(systemd-analyze syscall-filter "$w" \
				    2>/dev/null | sed -n '2,$s/^ *\([@a-z_0-9-]\{1,\}\)$/\1/p')
				;;
			*) echo "$w" ;;
			esac
		done
	}
	: > "$tmp/seen"
	expand $allow | sort -u > "$tmp/allow"
	: > "$tmp/seen"
	expand $deny | sort -u > "$tmp/deny"
	diag "system call filter: $(wc -l < "$tmp/allow") allowed, $(wc -l < "$tmp/deny") denied"
	missing=
	for sc in setrlimit prlimit64 prctl seccomp execve clone clone3 \
	    fork vfork wait4 kill pipe2 dup2; do
		if ! grep -qx "$sc" "$tmp/allow" || grep -qx "$sc" "$tmp/deny"
		then
			missing="$missing $sc"
		fi
	done
	check "the system call filter allows what the parse sandbox needs${missing:+ (denied:$missing)}" \
	    eval '[ -s "$tmp/allow" ] && [ -z "$missing" ]'
else
	skip "system call filter: systemd-analyze is not installed"
fi

# --- systemd-analyze verify and security --------------------------------------
if ! command -v systemd-analyze >/dev/null 2>&1; then
	for t in "verify" "verify catches a bad key" "security threshold" \
	    "security catches an unhardened unit"; do
		skip "$t: systemd-analyze is not installed (apt-get install systemd)"
	done
else
	diag "$(systemd-analyze --version | head -1)"
	mkdir -p "$tmp/v" "$tmp/man/man5" "$tmp/man/man8"
	# ExecStart must name an executable file: the built daemon, or a
	# stand-in when this tree's daemon did not build.
	daemon=$builddir/src/sealpostd
	if [ ! -x "$daemon" ]; then
		daemon=$tmp/sealpostd
		printf '#!/bin/sh\nexit 0\n' > "$daemon"
		chmod 755 "$daemon"
		diag "no built src/sealpostd: verify runs against a stand-in"
	fi
	sed "s|^ExecStart=[^ ]*sealpostd |ExecStart=$daemon |" "$unit" \
	    > "$tmp/v/sealpostd.service"
	# Documentation= must resolve: point man(1) at this tree's pages.
	for p in "$srcdir"/man/*.[0-9]; do
		sec=${p##*.}
		mkdir -p "$tmp/man/man$sec"
		ln -s "$p" "$tmp/man/man$sec/"
	done
	manopt=
	if ! command -v man >/dev/null 2>&1; then
		manopt=--man=no
		diag "man(1) not installed: Documentation= is not checked"
	fi
	verify() {	# verify UNIT: rc 0 and not one message
		local out rc
		out=$(cd "$tmp" && MANPATH=$tmp/man systemd-analyze verify \
		    $manopt "$1" 2>&1)
		rc=$?
		[ -n "$out" ] && diag "$out"
		[ "$rc" -eq 0 ] && [ -z "$out" ]
	}
	check "systemd-analyze verify: no message" verify "$tmp/v/sealpostd.service"

	# The gate must be able to fail: a misspelt key only warns (exit 0),
	# and the check above treats any message as a failure.
	mkdir -p "$tmp/bad"
	sed 's/^ProtectSystem=strict/ProtectSytem=strict/' \
	    "$tmp/v/sealpostd.service" > "$tmp/bad/sealpostd.service"
	if verify "$tmp/bad/sealpostd.service" >/dev/null 2>&1; then
		notok "verify catches a misspelt key"
	else
		ok "verify catches a misspelt key"
	fi

	sec_out=$(systemd-analyze security --offline=true --threshold=20 \
	    "$tmp/v/sealpostd.service" 2>&1)
	sec_rc=$?
	score=$(printf '%s\n' "$sec_out" |
	    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	diag "exposure: ${score:-unknown} (threshold 2.0)"
	printf '%s\n' "$sec_out" | grep '✗' | sed 's/  */ /g' | while read -r l
	do diag "  $l"; done
	check "systemd-analyze security --offline=true --threshold=20 passes" \
	    eval '[ "$sec_rc" -eq 0 ] && [ -n "$score" ] &&
	    awk -v s="$score" "BEGIN { exit !(s <= 2.0) }"'

	# And it must fail for a unit without the sandboxing block.
	mkdir -p "$tmp/weak"
	sed '/^# --- sandboxing/,/^\[Install\]/{/^\[Install\]/!d}' \
	    "$tmp/v/sealpostd.service" > "$tmp/weak/sealpostd.service"
	weak=$(systemd-analyze security --offline=true --threshold=20 \
	    "$tmp/weak/sealpostd.service" 2>&1)
	weak_rc=$?
	weak_score=$(printf '%s\n' "$weak" |
	    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	diag "the same unit without its sandboxing: ${weak_score:-unknown}"
	check "the security gate fails an unhardened unit" \
	    eval '[ "$weak_rc" -ne 0 ] && [ -n "$weak_score" ]'
fi

# --- sysusers.d and tmpfiles.d in a scratch root -------------------------------
root=$tmp/root
mkdir -p "$root/etc"
if ! command -v systemd-sysusers >/dev/null 2>&1; then
	skip "sysusers: systemd-sysusers is not installed"
	skip "tmpfiles: needs the user from sysusers"
elif [ "$(id -u)" -ne 0 ]; then
	skip "sysusers: needs root to write a scratch root's files"
	skip "tmpfiles: needs root to chown in a scratch root"
else
	systemd-sysusers --root="$root" \
	    "$srcdir/systemd/sealpostd.sysusers" >"$tmp/sysusers.log" 2>&1
	rc=$?
	pw=$(grep '^sealpost:' "$root/etc/passwd" 2>/dev/null)
	diag "passwd: ${pw:-none}"
	check "sysusers makes the sealpost system user, home /var/lib/sealpost, no login" \
	    eval '[ "$rc" -eq 0 ] && [ -n "$pw" ] &&
	    [ "$(echo "$pw" | cut -d: -f6)" = /var/lib/sealpost ] &&
	    echo "$pw" | cut -d: -f7 | grep -q nologin &&
	    [ "$(echo "$pw" | cut -d: -f3)" -lt 1000 ] &&
	    grep -q "^sealpost:" "$root/etc/group"'
	uid=$(echo "$pw" | cut -d: -f3)
	gid=$(grep '^sealpost:' "$root/etc/group" | cut -d: -f3)
	systemd-tmpfiles --root="$root" --create \
	    "$srcdir/systemd/sealpostd.tmpfiles" >"$tmp/tmpfiles.log" 2>&1
	rc=$?
	st_var=$(stat -c '%a %u %g' "$root/var/lib/sealpost" 2>/dev/null)
	st_etc=$(stat -c '%a %u %g' "$root/etc/sealpost" 2>/dev/null)
	diag "/var/lib/sealpost: ${st_var:-missing}; /etc/sealpost: ${st_etc:-missing}"
	check "tmpfiles: /var/lib/sealpost 0700 sealpost, /etc/sealpost 0750 root:sealpost" \
	    eval '[ "$rc" -eq 0 ] && [ -n "$uid" ] &&
	    [ "$st_var" = "700 $uid $gid" ] && [ "$st_etc" = "750 0 $gid" ]'
fi

# --- /proc as ProtectProc=invisible + ProcSubset=pid ----------------------------
# systemd mounts the service's /proc with hidepid=invisible,subset=pid.  The
# daemon starts each parse sandbox child by executing /proc/self/exe: that
# must still work there, while /proc/sys is gone (so the options applied).
if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null 2>&1; then
	skip "/proc/self/exe under subset=pid: needs root and unshare(1)"
else
	out=$(unshare --mount --pid --fork sh -c '
	    mount -t proc -o hidepid=invisible,subset=pid proc /proc || exit 9
	    [ -e /proc/sys ] && { echo "/proc/sys visible"; exit 8; }
	    /proc/self/exe -c "echo reexec=\$(readlink /proc/self/exe)"' 2>&1)
	rc=$?
	# unshare(1) itself failing (e.g. in a chroot, where the root's mount
	# propagation cannot be changed) says nothing about the unit.
	if [ "$rc" -eq 9 ] || printf '%s' "$out" |
	    grep -qE 'unshare failed|^unshare: '; then
		skip "/proc/self/exe under subset=pid: no mount/pid namespace here ($out)"
	else
		diag "$out"
		check "/proc/self/exe re-executes under hidepid=invisible,subset=pid" \
		    eval '[ "$rc" -eq 0 ] && printf "%s" "$out" | grep -q "^reexec=/"'
	fi
fi

finish
