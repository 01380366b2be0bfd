#!/usr/bin/env bash
# t_fuzz_replay.sh - replay every fuzz target's seed corpus (T10, T11).
#
# Each fuzz/<target>.c is built with fuzz/replay.c into
# $SEALPOST_BUILDDIR/fuzz/replay_<target> (make check-programs); this runs it
# over $SEALPOST_SRCDIR/fuzz/corpus/<target>/, the hand-written seeds, the
# hostile inputs and every crash the fuzzers ever found.  A crash, a broken
# invariant or an input slower than the limit is a failure.  When
# SEALPOST_ASAN_BUILDDIR names a sanitizer build (tests/run --asan-builddir),
# its replay programs run too, with leak detection.
set -u
here=$(cd "$(dirname "$0")" && pwd)
srcdir=${SEALPOST_SRCDIR:-$(cd "$here/../.." && pwd)}
builddir=${SEALPOST_BUILDDIR:-$srcdir}
asandir=${SEALPOST_ASAN_BUILDDIR:-}
corpus=$srcdir/fuzz/corpus
n=0
failed=0

ok() {		# $1 status (0 = ok), $2 description
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
	fi
}

skip() {	# $1 description, $2 reason
	n=$((n + 1))
	echo "ok $n - $1 # SKIP $2"
}

# Run one replay program over one corpus; $1 name prefix ("" or "asan:"),
# $2 program, $3 corpus.
replay() {
	local out rc line
	out=$(timeout -k 5 600 "$2" "$3" 2>&1)
	rc=$?
	line=$(printf '%s\n' "$out" | grep -E '^(not )?ok 1 - ' | head -1)
	line=${line#ok 1 - }
	line=${line#not ok 1 - }
	if [ "$rc" -eq 0 ] && [ -n "$line" ]; then
		ok 0 "$1$line"
	else
		ok 1 "$1$(basename "$3"): exit status $rc${line:+ ($line)}"
		printf '%s\n' "$out" | tail -25 | sed 's/^/# /'
	fi
}

targets=()
for c in "$srcdir"/fuzz/*.c; do
	t=$(basename "$c" .c)
	case $t in replay|fuzz_doc) continue ;; esac
	targets+=("$t")
done

# Every target has a seed corpus, and every corpus a target.
missing=""
for t in "${targets[@]}"; do
	[ -n "$(ls -A "$corpus/$t" 2>/dev/null)" ] || missing="$missing $t"
done
for d in "$corpus"/*/; do
	t=$(basename "$d")
	[ -f "$srcdir/fuzz/$t.c" ] || missing="$missing corpus:$t"
done
ok "$([ -z "$missing" ] && [ ${#targets[@]} -gt 0 ]; echo $?)" \
    "${#targets[@]} fuzz targets, each with a seed corpus${missing:+ (missing:$missing)}"

# The harness can fail: an empty corpus is a "not ok", not a pass.
probe=$builddir/fuzz/replay_${targets[0]:-none}
if [ -x "$probe" ]; then
	empty=$(mktemp -d)
	"$probe" "$empty" >/dev/null 2>&1
	rc=$?
	rmdir "$empty"
	ok "$([ "$rc" -ne 0 ]; echo $?)" "replay fails on an empty corpus"
else
	skip "replay fails on an empty corpus" "$probe not built"
fi

for t in "${targets[@]}"; do
	prog=$builddir/fuzz/replay_$t
	if [ -x "$prog" ]; then
		SEALPOST_FUZZ_TIMEOUT_MS=${SEALPOST_FUZZ_TIMEOUT_MS:-1000} \
		    replay "" "$prog" "$corpus/$t"
	else
		skip "$t" "$prog not built (make check-programs)"
	fi
done

if [ -n "$asandir" ]; then
	for t in "${targets[@]}"; do
		prog=$asandir/fuzz/replay_$t
		if [ -x "$prog" ]; then
			ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
			UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
			SEALPOST_FUZZ_TIMEOUT_MS=${SEALPOST_FUZZ_ASAN_TIMEOUT_MS:-10000} \
			    replay "asan:" "$prog" "$corpus/$t"
		else
			skip "asan:$t" "$prog not built"
		fi
	done
fi

echo "1..$n"
[ "$failed" -eq 0 ]
