#!/usr/bin/env bash
# t_manpages.sh - man/sealpostd.8 and man/sealpostctl.8 against the code.
#
# Each page passes `mandoc -Tlint' at the warning level (style notes, such
# as references to pages not installed yet, are shown as diagnostics).
# sealpostctl.8 shows, as rendered text, the exact usage string of every
# entry of cmds[] in src/sealpostctl.c, and names every option letter and
# long option (src/sealpostctl.c, src/ctl_*.c) and exit status of the
# program.  sealpostd.8 has an item for every
# getopt letter, signal, exit status, sd_notify state and environment
# variable of the daemon.  Skipped with the reason when mandoc is absent
# (Debian package mandoc).  TAP output.
set -u

srcdir=${SEALPOST_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
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

d8=$srcdir/man/sealpostd.8
c8=$srcdir/man/sealpostctl.8
dsrc=$srcdir/src/sealpostd.c
csrc=$srcdir/src/sealpostctl.c
cqsrc=$srcdir/src/ctl_queue.c
crsrc=$srcdir/src/ctl_reply.c
cth=$srcdir/src/ctl.h

if ! command -v mandoc >/dev/null 2>&1; then
	skip "all: mandoc is not installed (apt-get install mandoc)"
	finish
fi

tmp=$(mktemp -d /tmp/t_manpages.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# --- lint -------------------------------------------------------------------
for page in "$d8" "$c8"; do
	name=$(basename "$page")
	out=$(mandoc -Tlint -W warning "$page" 2>&1)
	rc=$?
	# Lint messages name the file; mandoc's note about an outdated
	# mandoc.db of the system is not about the page.
	msgs=$(printf '%s\n' "$out" | grep -F "$page:")
	[ -n "$msgs" ] && diag "$msgs"
	check "$name: mandoc -Tlint finds no warning or error" \
	    eval '[ "$rc" -eq 0 ] && [ -z "$msgs" ]'
	style=$(mandoc -Tlint "$page" 2>&1 | grep -F "$page:" | grep STYLE)
	[ -n "$style" ] && diag "style notes:" "$style"
done

# Rendered text, unwrapped (wide), without overstrike, tabs expanded.
render() { mandoc -Tascii -O width=300 "$1" 2>/dev/null | col -bx; }
render "$c8" > "$tmp/c8.txt"
render "$d8" > "$tmp/d8.txt"
check "both pages render" test -s "$tmp/c8.txt" -a -s "$tmp/d8.txt"

# The items of the section named $2 (".Sh $2") of page $1: the first word
# after ".It" and its macro, e.g. "78" or "Dv SIGHUP".
section() {
	awk -v want="$2" '
	    /^\.Sh / { insec = (substr($0, 5) == want); next }
	    insec' "$1"
}

# --- sealpostctl: the commands ----------------------------------------------
# cmds[] entries, one per line: the string literals after the function
# name, joined as C joins adjacent literals.
awk '/^static const struct cmd cmds\[\] = \{/ { on = 1; next }
    on && /^\};/ { on = 0 }
    on { printf "%s ", $0 }' "$csrc" |
    sed 's/},/}\n/g' |
    sed -n 's/.*cmd_[a-z_0-9]*,[[:space:]]*//p' |
    sed -e 's/"[[:space:]]*"//g' -e 's/^[[:space:]]*"//' \
	-e 's/"[[:space:]]*}.*$//' > "$tmp/usages"
ncmds=$(grep -c . "$tmp/usages")
nfuncs=$(( $(grep -c '^static int[[:space:]]*cmd_[a-z_]*(struct ctl' "$csrc") + \
    $(grep -c '^int[[:space:]]*cmd_[a-z_]*(struct ctl' "$cth") ))
check "found the usage of every command in cmds[] ($ncmds of $nfuncs)" \
    eval '[ "$ncmds" -gt 0 ] && [ "$ncmds" -eq "$nfuncs" ]'

# A command's item head in the page, as rendered, is exactly its usage.
while IFS= read -r usage; do
	check "sealpostctl.8 shows: $usage" \
	    eval 'awk -v u="$usage" "{ sub(/^ +/, \"\") }
	        \$0 == u || index(\$0, u \"  \") == 1 { f = 1 }
	        END { exit !f }" "$tmp/c8.txt"'
done < "$tmp/usages"

# Every long option of the add commands, and every getopt letter.
longopts=$(sed -n 's/^[[:space:]]*{ "\([a-z-]*\)", [a-z_]*_argument.*/\1/p' "$csrc" "$cqsrc" "$crsrc")
missing=
for o in $longopts; do
	grep -Eq "Fl -$o( |$)" "$c8" || missing="$missing --$o"
done
check "sealpostctl.8 names every long option ($(echo $longopts | wc -w))${missing:+: missing$missing}" \
    eval '[ -n "$longopts" ] && [ -z "$missing" ]'
letters=$(sed -n 's/.*getopt(argc, argv, "\([^"]*\)").*/\1/p' "$csrc" "$cqsrc" "$crsrc" |
    tr -d '+:\n' | fold -w1 | sort -u)
missing=
for c in $letters; do
	grep -Eq "Fl $c( |$)" "$c8" || missing="$missing -$c"
done
check "sealpostctl.8 names every option letter ($(echo $letters | tr -d ' '))${missing:+: missing$missing}" \
    eval '[ -n "$letters" ] && [ -z "$missing" ]'

# Exit statuses: every literal the program returns or exits with, and
# EX_CONFIG, is an item of EXIT STATUS; and the page lists no other.
ex_config=$(sed -n 's/^#define[[:space:]]*CONFIG_EX_CONFIG[[:space:]]*\([0-9]*\).*/\1/p' \
    "$srcdir/src/config.h")
codes() {	# codes SOURCE: the exit statuses it can produce
	{
		grep -oE '(^|[^a-z_])(return|exit\(|_exit\() *[0-9]+' "$1" |
		    grep -oE '[0-9]+$'
		grep -q 'CONFIG_EX_CONFIG' "$1" && echo "$ex_config"
		grep -q 'log_fatal' "$1" && echo 1	# log.c: exit(1)
	} | sort -un
}
documented() { section "$1" "EXIT STATUS" | sed -n 's/^\.It \([0-9]*\)$/\1/p' | sort -un; }
for pair in "sealpostctl:$csrc:$c8" "sealpostd:$dsrc:$d8"; do
	IFS=: read -r prog src page <<< "$pair"
	have=$(codes "$src" | tr '\n' ' ')
	doc=$(documented "$page" | tr '\n' ' ')
	check "$prog.8 EXIT STATUS lists exactly the statuses of $prog.c ($(echo $have))" \
	    eval '[ -n "$have" ] && [ "$have" = "$doc" ]'
	[ "$have" = "$doc" ] || diag "code: $have" "page: $doc"
done

# --- sealpostd ---------------------------------------------------------------
letters=$(sed -n 's/.*getopt(argc, argv, "\([^"]*\)").*/\1/p' "$dsrc" |
    tr -d '+:\n' | fold -w1 | sort -u)
[ -n "$letters" ] || notok "no getopt string found in src/sealpostd.c"
for c in $letters; do
	check "sealpostd.8 has an item for -$c" \
	    grep -Eq "^\.It Fl $c( |$)" "$d8"
done
# The internal sandbox option is named (and marked internal) in the text.
if grep -q '"-P"' "$dsrc"; then
	check "sealpostd.8 explains the internal -P (parse sandbox child)" \
	    grep -Eq "^\.Fl P( |$)" "$d8"
fi

sigs=$(sed -n 's/.*signums\[\] *= *{\([^}]*\)}.*/\1/p' "$dsrc" | tr -d ' ,' |
    sed 's/SIG/ SIG/g')
[ -n "$sigs" ] || notok "no signums[] found in src/sealpostd.c"
for s in $sigs; do
	check "sealpostd.8 SIGNALS has $s" \
	    eval 'section "$d8" SIGNALS | grep -Eq "^\.It Dv $s$"'
done

states=$(grep -oE 'notify\("[A-Z]+=1"\)' "$dsrc" | grep -oE '[A-Z]+=1' | sort -u)
missing=
for s in $states; do
	grep -Eq "Li $s( |$)" "$d8" || missing="$missing $s"
done
check "sealpostd.8 names every sd_notify state ($(echo $states))${missing:+: missing$missing}" \
    eval '[ -n "$states" ] && [ -z "$missing" ]'

envs=$( { grep -ohE 'getenv\("[A-Z_]+"\)' "$dsrc" "$srcdir/src/keyring.c"
	grep -q sd_notify "$dsrc" && echo 'getenv("NOTIFY_SOCKET")'
	grep -q sd_watchdog_enabled "$dsrc" && echo 'getenv("WATCHDOG_USEC")'
    } | grep -oE '[A-Z_]{2,}' | grep -v '^getenv$' | sort -u)
missing=
for e in $envs; do
	section "$d8" ENVIRONMENT | grep -Eq "^\.It Ev $e$" ||
	    missing="$missing $e"
done
check "sealpostd.8 ENVIRONMENT has $(echo $envs)${missing:+: missing$missing}" \
    eval '[ -n "$envs" ] && [ -z "$missing" ]'
check "sealpostctl.8 ENVIRONMENT has CREDENTIALS_DIRECTORY" \
    eval 'section "$c8" ENVIRONMENT | grep -Eq "^\.It Ev CREDENTIALS_DIRECTORY$"'

# The default configuration path the programs use is the one documented.
for pair in "sealpostd:$dsrc:$d8" "sealpostctl:$csrc:$c8"; do
	IFS=: read -r prog src page <<< "$pair"
	path=$(sed -n 's/^#define[[:space:]]*DEFAULT_CONFIG[[:space:]]*SYSCONFDIR "\([^"]*\)".*/\/etc\1/p' "$src")
	check "$prog.8 documents the default configuration ${path:-?}" \
	    eval '[ -n "$path" ] && grep -q "^\.Pa $path" "$page"'
done

finish
