#!/bin/sh
# contrib/deps.sh - install the Debian 12 packages sealpost needs to build,
# run and test.  As root it runs apt-get; otherwise it prints the command.
# Usage: contrib/deps.sh [build|test|bench]   (default: test; test is a
# superset of build and includes Postfix for tests/rig/postfix.sh and
# contrib/bench.sh, installed with no system configuration: nothing listens
# on port 25; bench is the same set)
set -eu
what=${1:-test}

build_pkgs="ca-certificates gcc make autoconf automake pkg-config
 libevent-dev libsqlite3-dev libsodium-dev libetpan-dev libjansson-dev
 libinih-dev libgnutls28-dev libssl-dev libsystemd-dev zlib1g-dev
 libsasl2-modules openssl sqlite3 curl"
test_pkgs="$build_pkgs python3 age swaks mandoc bsdextrautils systemd
 procps psmisc coreutils iproute2 util-linux"
bench_pkgs="$test_pkgs postfix"
# Libraries of single modules: libcurl (webhook.c, GnuTLS flavour), cairo
# and pango (paper.c) with the fonts the printed letter uses, SASL headers
# (relay.c installs the mutex callbacks libetpan never sets).
build_pkgs="$build_pkgs libcurl4-gnutls-dev libcairo2-dev libpango1.0-dev
 fonts-dejavu-core libsasl2-dev"
# Tests: poppler-utils reads the PDFs back; Postfix is the smarthost and
# smtp-sink the mailbox of the letters-out tests; aiosmtpd scripts the
# failures Postfix cannot produce on demand.
test_pkgs="$test_pkgs libcurl4-gnutls-dev libcairo2-dev libpango1.0-dev
 fonts-dejavu-core poppler-utils postfix libsasl2-dev
 python3-aiosmtpd"
# IMAP intake tests: a private Dovecot (tests/rig/dovecot.sh), IMAP and LMTP.
test_pkgs="$test_pkgs dovecot-imapd dovecot-lmtpd"
bench_pkgs="$test_pkgs"

case $what in
build) pkgs=$build_pkgs ;;
test) pkgs=$test_pkgs ;;
bench) pkgs=$bench_pkgs ;;
*) echo "usage: contrib/deps.sh [build|test|bench]" >&2; exit 2 ;;
esac
pkgs=$(echo $pkgs)

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
	    missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "sealpost needs these Debian packages; run as root:" >&2
	case $missing in *" postfix"*) echo "  echo 'postfix postfix/main_mailer_type" \
	    "select No configuration' | debconf-set-selections" >&2 ;; esac
	echo "  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
case $missing in *" postfix"*)
	echo "postfix postfix/main_mailer_type select No configuration" |
	    debconf-set-selections ;;
esac
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
# The tests run their own Dovecot (tests/rig/dovecot.sh); the system
# instance the package starts would offer IMAP logins with the machine's
# accounts on ports 143 and 993.  Leave it stopped and disabled.
case $missing in *" dovecot-"*)
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now dovecot.service dovecot.socket \
		    >/dev/null 2>&1 || true
	fi
	;;
esac
