#!/usr/bin/env bash
# t_age_interop.sh - sealpost-agetool against Debian's age 1.1.1.
#
# Keys made by either tool are read by the other.  For plaintexts of 0, 1,
# 65535, 65536, 65537, 131072 bytes and 1 MiB, to 1 and 3 recipients,
# binary and armored: sealpost-agetool output decrypts with `age -d` (every
# recipient's identity), and `age -r` output decrypts with
# sealpost-agetool; the plaintext is compared with cmp.  Then a file sealed
# for one key of each tool is tampered with (one byte in the stanza, the
# MAC, the nonce, each chunk; truncation at the chunk boundary; a trailing
# byte): both tools must refuse it, sealpost-agetool with the right class
# and without creating its output file.  Skipped with the reason when age
# is not installed (Debian package age).  TAP output.
set -u

builddir=${SEALPOST_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
tool=$builddir/src/sealpost-agetool
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

if ! command -v age >/dev/null 2>&1 ||
    ! command -v age-keygen >/dev/null 2>&1; then
	skip "all: age is not installed (apt-get install age)"
	finish
fi
if [ ! -x "$tool" ]; then
	notok "sealpost-agetool not built at $tool"
	finish
fi
diag "$(age --version 2>&1 | head -1 | sed 's/^/age /')"

tmp=$(mktemp -d /tmp/t_age_interop.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# --- keys -------------------------------------------------------------------
for i in 1 2 3; do
	age-keygen -o "$tmp/ak$i" 2>/dev/null
	"$tool" keygen -o "$tmp/sk$i" 2>/dev/null
done
check "sealpost-agetool keygen writes a 0600 age identity file" \
    test "$(stat -c %a "$tmp/sk1")" = 600 -a \
    "$(grep -c '^AGE-SECRET-KEY-1' "$tmp/sk1")" = 1
check "sealpost-agetool keygen refuses to overwrite" \
    bash -c "! '$tool' keygen -o '$tmp/sk1' 2>/dev/null"
AR=() SR=()
for i in 1 2 3; do
	AR+=("$(age-keygen -y "$tmp/ak$i")")
	SR+=("$(age-keygen -y "$tmp/sk$i")")
done
check "age-keygen -y reads sealpost identities (= our # public key line)" \
    test "${SR[0]}" = "$(sed -n 's/^# public key: //p' "$tmp/sk1")"
check "sealpost-agetool recipient reads age-keygen identities" \
    test "$("$tool" recipient "$tmp/ak2")" = "${AR[1]}"
check "sealpost-agetool recipient agrees with age-keygen -y on its own keys" \
    test "$("$tool" recipient "$tmp/sk3")" = "${SR[2]}"

# --- round trips ------------------------------------------------------------
# One TAP line per size x recipients x armor x direction.
sizes="0 1 65535 65536 65537 131072 1048576"
for size in $sizes; do
	head -c "$size" /dev/urandom >"$tmp/in"
	for nrec in 1 3; do
		for armor in "" "-a"; do
			kind=$([ -n "$armor" ] && echo armored || echo binary)
			what="$size bytes, $nrec recipient(s), $kind"

			# sealpost -> age: every recipient can open it.
			args=()
			for ((i = 0; i < nrec; i++)); do args+=(-r "${AR[i]}"); done
			good=1
			"$tool" encrypt $armor "${args[@]}" -o "$tmp/ct" "$tmp/in" ||
			    good=0
			if [ -n "$armor" ] && [ "$good" = 1 ] &&
			    [ "$(head -1 "$tmp/ct")" != \
			    "-----BEGIN AGE ENCRYPTED FILE-----" ]; then
				good=0
			fi
			# (stdout, not -o: age 1.1.1 creates no -o file
			# for an empty plaintext)
			for ((i = 1; i <= nrec && good; i++)); do
				rm -f "$tmp/out"
				age -d -i "$tmp/ak$i" "$tmp/ct" >"$tmp/out" &&
				    cmp -s "$tmp/out" "$tmp/in" || good=0
			done
			check "sealpost -> age -d: $what" test "$good" = 1

			# age -> sealpost: every recipient can open it.
			args=()
			for ((i = 0; i < nrec; i++)); do args+=(-r "${SR[i]}"); done
			good=1
			age $armor "${args[@]}" -o "$tmp/ct" "$tmp/in" || good=0
			for ((i = 1; i <= nrec && good; i++)); do
				rm -f "$tmp/out"
				"$tool" decrypt -i "$tmp/sk$i" -o "$tmp/out" \
				    "$tmp/ct" && cmp -s "$tmp/out" "$tmp/in" ||
				    good=0
			done
			check "age -r -> sealpost decrypt: $what" test "$good" = 1
		done
	done
done

# Identity files with several keys and comments, stdin and stdout.
head -c 5000 /dev/urandom >"$tmp/in"
cat "$tmp/sk1" "$tmp/sk2" >"$tmp/sk12"
age -r "${SR[1]}" <"$tmp/in" >"$tmp/ct"
check "sealpost decrypt: two-key identity file, stdin to stdout" \
    bash -c "'$tool' decrypt -i '$tmp/sk12' <'$tmp/ct' | cmp -s - '$tmp/in'"
printf '# ours\n%s\n\n%s\n' "${AR[0]}" "${AR[2]}" >"$tmp/rcpts"
"$tool" encrypt -R "$tmp/rcpts" -o "$tmp/ct" "$tmp/in"
check "sealpost encrypt -R recipients file -> age -d" \
    bash -c "age -d -i '$tmp/ak3' '$tmp/ct' | cmp -s - '$tmp/in'"
check "sealpost decrypt: wrong identity refused" \
    bash -c "! '$tool' decrypt -i '$tmp/sk3' '$tmp/ct' >/dev/null 2>&1"

# --- tampering --------------------------------------------------------------
# A file both tools can open: one age key and one sealpost key.
head -c 65537 /dev/urandom >"$tmp/in"
"$tool" encrypt -r "${AR[0]}" -r "${SR[0]}" -o "$tmp/good" "$tmp/in"
check "tamper baseline: both tools open the untouched file" bash -c "
    age -d -i '$tmp/ak1' '$tmp/good' | cmp -s - '$tmp/in' &&
    '$tool' decrypt -i '$tmp/sk1' '$tmp/good' | cmp -s - '$tmp/in'"

size=$(stat -c %s "$tmp/good")
mac=$(grep -abo -- '--- ' "$tmp/good" | head -1 | cut -d: -f1)
hlen=$((mac + 4 + 43 + 1))	# payload (nonce) offset

# flip OFFSET: xor one byte of a copy of the good file with 0x01
flip() {
	python3 -c 'import sys
p, o = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p + "/good", "rb").read())
b[o] ^= 1
open(p + "/bad", "wb").write(b)' "$tmp" "$1"
}
# cut LENGTH / grow: a truncated or extended copy
cut() { head -c "$1" "$tmp/good" >"$tmp/bad"; }
grow() { { cat "$tmp/good"; printf x; } >"$tmp/bad"; }

# both_refuse "what" PATTERN: age and sealpost fail; our error matches.
both_refuse() {
	local what=$1 pat=$2 aerr serr
	rm -f "$tmp/out"
	if age -d -i "$tmp/ak1" -o "$tmp/out.age" "$tmp/bad" \
	    >/dev/null 2>"$tmp/aerr"; then
		notok "tamper $what: age -d accepted it"
		return
	fi
	if "$tool" decrypt -i "$tmp/sk1" -o "$tmp/out" "$tmp/bad" \
	    2>"$tmp/serr"; then
		notok "tamper $what: sealpost-agetool accepted it"
		return
	fi
	serr=$(cat "$tmp/serr")
	aerr=$(head -1 "$tmp/aerr")
	if [ -e "$tmp/out" ]; then
		notok "tamper $what: sealpost-agetool wrote output"
	elif ! grep -qE -- "$pat" "$tmp/serr"; then
		notok "tamper $what: sealpost said \"$serr\", want /$pat/"
	else
		ok "tamper $what: both refuse (age: ${aerr#age: }; ours: ${serr#*error: })"
	fi
}

flip 30;			both_refuse "first stanza share" "header"
flip $((mac - 10));		both_refuse "second stanza body" "no identity|header:"
flip $((mac + 6));		both_refuse "MAC" "header"
flip $((hlen + 3));		both_refuse "nonce" "^.*payload:"
flip $((hlen + 16 + 100));	both_refuse "first chunk" "payload:"
flip $((hlen + 16 + 65552 - 1));	both_refuse "first chunk tag" "payload:"
flip $((size - 5));		both_refuse "last chunk" "payload:"
cut $((hlen + 16 + 65552));	both_refuse "truncated at the chunk boundary" \
				    "payload: truncated"
cut $((size - 1));		both_refuse "truncated last chunk" "payload:"
cut $((hlen + 8));		both_refuse "truncated in the nonce" "nonce"
grow;				both_refuse "one trailing byte" "payload:"

finish
