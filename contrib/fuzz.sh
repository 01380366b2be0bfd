#!/usr/bin/env bash
# contrib/fuzz.sh - fuzz sealpost's parsers with libFuzzer (TESTPLAN T10).
#
#   contrib/fuzz.sh [SECONDS] [TARGET...]
#
# Builds each fuzz/<target>.c (all of them, or the named ones) with
# clang -fsanitize=fuzzer,address,undefined, linked against sealpost's
# sources compiled by clang with the same sanitizers in a work directory
# (never the gcc build), and against libetpan 1.9.4 rebuilt from the Debian
# source package with the sanitizers and coverage too, so that libFuzzer
# sees inside libetpan and ASan catches its overflows.  When that source
# cannot be fetched the system libetpan is used, uninstrumented (said so).
#
# Then each target runs SECONDS (default 60), one after the other (the
# machines have two cores), over a working copy of fuzz/corpus/<target>/
# with fuzz/<target>.dict, max_len from fuzz/<target>.options, -timeout=1
# and -rss_limit_mb=512.  A crash, leak, timeout or OOM stops that target:
# its reproducer is minimised and named at the end.  Add it to
# fuzz/corpus/<target>/ once fixed (every crash becomes a regression seed);
# new corpus entries the fuzzer found stay in the work directory.
#
# ASan's quarantine is cut to 64 MB (ASAN_OPTIONS, unless set) so that the
# 512 MB RSS limit measures the target, not the quarantine.
#
# Environment: SEALPOST_FUZZ_WORK (default /tmp/sealpost-fuzz).  As root,
# a missing clang or libFuzzer runtime is installed with apt-get (Debian
# packages clang and libclang-rt-14-dev).  Not part of the test suite.
# Exit status: 0 when no target found anything.
set -u
srcdir=$(cd "$(dirname "$0")/.." && pwd)
work=${SEALPOST_FUZZ_WORK:-/tmp/sealpost-fuzz}
secs=60
case ${1:-} in
[0-9]*) secs=$1; shift ;;
-h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for c in "$srcdir"/fuzz/*.c; do
		t=$(basename "$c" .c)
		case $t in replay|fuzz_doc) ;; *) targets+=("$t") ;; esac
	done
fi
for t in "${targets[@]}"; do
	[ -f "$srcdir/fuzz/$t.c" ] || { echo "fuzz.sh: no target $t" >&2; exit 2; }
done

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS_LIB="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $SAN"
jobs=2
log() { echo "fuzz.sh: $*" >&2; }
die() { log "$*"; exit 2; }
mkdir -p "$work" || die "cannot create $work"

# --- clang and libFuzzer ------------------------------------------------
have_libfuzzer() {
	printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n)'\
'{ return 0; }\n' >"$work/probe.c"
	clang -fsanitize=fuzzer "$work/probe.c" -o "$work/probe" \
	    >/dev/null 2>&1
}
if ! command -v clang >/dev/null 2>&1 || ! have_libfuzzer; then
	[ "$(id -u)" -eq 0 ] || die "clang with libFuzzer is missing: " \
	    "apt-get install clang libclang-rt-14-dev"
	log "installing clang and libclang-rt-14-dev with apt-get"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q clang \
	    libclang-rt-14-dev >&2 || die "apt-get install failed"
	have_libfuzzer || die "clang cannot link -fsanitize=fuzzer"
fi

# --- libetpan, instrumented ---------------------------------------------
# Fetched with apt-get source through a private list (the system's apt
# configuration is left alone); the orig tarball alone will do: Debian's
# patches to 1.9.4 are STARTTLS and IMAP fixes, not MIME, and the IMAP
# fix the imap_response target needs is applied here (fix_cve_2022_4121).
# With GnuTLS, as Debian builds it (fetch.c and tls.c use its TLS layer).
etpan_lib=$work/libetpan/src/.libs/libetpan.a
# Debian's libetpan, which sealpost runs with, has the fix for
# CVE-2022-4121 (freeing '* STATUS "RUU" ()' dereferences NULL); upstream
# 1.9.4 has not, and every imap_response run would stop on it.
fix_cve_2022_4121() {
	local f=$1/src/low-level/imap/mailimap_types.c
	grep -q 'if (info->st_info_list != NULL) {' "$f" && return 0
	sed -i '/^mailimap_mailbox_data_status_free(/,/^}/{
s/^  clist_foreach(info->st_info_list,/  if (info->st_info_list != NULL) {\n  clist_foreach(info->st_info_list,/
s/^  clist_free(info->st_info_list);/  clist_free(info->st_info_list);\n  }/
}' "$f" && grep -q 'if (info->st_info_list != NULL) {' "$f"
}
build_libetpan() {
	local apt=$work/apt ver opts dir
	ver=$(dpkg-query -W -f='${Version}' libetpan20 2>/dev/null) || return 1
	mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" \
	    "$apt/src" || return 1
	echo "deb-src http://deb.debian.org/debian bookworm main" \
	    >"$apt/sources.list"
	opts=(-o "Dir::Etc::SourceList=$apt/sources.list"
	    -o "Dir::Etc::SourceParts=/dev/null"
	    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache")
	if ! ls "$apt"/src/libetpan_*.orig.tar.* >/dev/null 2>&1; then
		apt-get "${opts[@]}" -q update >&2 || return 1
		(cd "$apt/src" && apt-get "${opts[@]}" -q source \
		    --download-only "libetpan=$ver" >&2)
	fi
	rm -rf "$work/libetpan"
	if ls "$apt"/src/libetpan_*.debian.tar.* >/dev/null 2>&1; then
		dpkg-source -x "$apt"/src/libetpan_*.dsc "$work/libetpan" \
		    >&2 || return 1
	else
		ls "$apt"/src/libetpan_*.orig.tar.* >/dev/null 2>&1 || return 1
		log "libetpan: Debian patches unavailable, upstream 1.9.4"
		mkdir -p "$work/libetpan" && tar -xf \
		    "$(ls "$apt"/src/libetpan_*.orig.tar.* | head -1)" \
		    -C "$work/libetpan" --strip-components=1 || return 1
		fix_cve_2022_4121 "$work/libetpan" || return 1
	fi
	dir=$work/libetpan
	log "libetpan: building with clang and the sanitizers (minutes)"
	(cd "$dir" && CC=clang CFLAGS="$CFLAGS_LIB" ./configure -q \
	    --disable-shared --enable-static --without-openssl \
	    --with-gnutls --without-sasl --without-curl --without-expat \
	    --disable-db --disable-lockfile --without-zlib \
	    >"$work/libetpan-configure.log" 2>&1 &&
	    make -j"$jobs" >"$work/libetpan-make.log" 2>&1) || return 1
	[ -f "$etpan_lib" ]
}
# An earlier build without GnuTLS (imap_response cannot link) is redone.
if [ -f "$etpan_lib" ] && ! nm "$etpan_lib" 2>/dev/null |
    grep -q ' D mailstream_ssl_driver$'; then
	log "libetpan: the instrumented build has no GnuTLS: building again"
	rm -f "$etpan_lib"
fi
if [ ! -f "$etpan_lib" ] && ! build_libetpan; then
	log "libetpan: no instrumented build (see $work/libetpan-*.log):" \
	    "fuzzing against the system library, without coverage inside it"
	rm -f "$etpan_lib"
fi

# --- sealpost's sources, with clang ----------------------------------------
bdir=$work/build
mkdir -p "$bdir"
if [ ! -f "$bdir/Makefile" ]; then
	log "configuring sealpost with clang in $bdir"
	(cd "$bdir" && CC=clang CFLAGS="$CFLAGS_LIB" "$srcdir/configure" -q \
	    >"$work/configure.log" 2>&1) || die "configure failed: $work/configure.log"
fi
make -C "$bdir" -j"$jobs" src/libsealpost.a >"$work/make.log" 2>&1 ||
    die "building src/libsealpost.a failed: $work/make.log"
libs=$(printf 'print-libs:\n\t@echo $(ALL_LIBS)\n' |
    make -s -C "$bdir" -f Makefile -f - print-libs | tail -1) ||
    die "no ALL_LIBS"
if [ -f "$etpan_lib" ]; then
	libs=$(echo " $libs " | sed -e 's/ -letpan / /')
	libs="$etpan_lib $libs"
fi

# --- the targets --------------------------------------------------------
mkdir -p "$work/bin"
for t in "${targets[@]}"; do
	extra=()
	grep -q fuzz_doc_roundtrip "$srcdir/fuzz/$t.c" &&
	    extra=("$srcdir/fuzz/fuzz_doc.c")
	# shellcheck disable=SC2086
	clang -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer $SAN \
	    -I"$bdir" -I"$srcdir/src" -I"$srcdir/fuzz" \
	    "$srcdir/fuzz/$t.c" "${extra[@]}" "$bdir/src/libsealpost.a" \
	    $libs -o "$work/bin/$t" >"$work/bin/$t.log" 2>&1 ||
	    die "linking $t failed: $work/bin/$t.log"
done

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:quarantine_size_mb=64}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
summary=()
found=0
for t in "${targets[@]}"; do
	corpus=$work/corpus/$t
	art=$work/artifacts/$t
	mkdir -p "$corpus" "$art"
	cp -n "$srcdir/fuzz/corpus/$t"/* "$corpus"/ 2>/dev/null
	maxlen=$(sed -n 's/^max_len *= *//p' "$srcdir/fuzz/$t.options" \
	    2>/dev/null)
	args=(-timeout=1 -rss_limit_mb=512 -max_total_time="$secs"
	    -print_final_stats=1 -artifact_prefix="$art/")
	[ -n "$maxlen" ] && args+=(-max_len="$maxlen")
	[ -f "$srcdir/fuzz/$t.dict" ] && args+=(-dict="$srcdir/fuzz/$t.dict")
	log "$t: ${secs}s over $(ls "$corpus" | wc -l) inputs"
	before=$(ls "$art" | wc -l)
	"$work/bin/$t" "${args[@]}" "$corpus" >"$work/$t.log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' \
	    "$work/$t.log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t.log" |
	    tail -1)
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/$t.log" | tail -1)
	cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$work/$t.log" | tail -1)
	result=ok
	if [ "$rc" -ne 0 ] || [ "$(ls "$art" | wc -l)" -ne "$before" ]; then
		found=$((found + 1))
		result="FOUND (exit $rc)"
		for a in $(ls -t "$art" | grep -v '^minimized-' | head -1); do
			"$work/bin/$t" -minimize_crash=1 -runs=20000 \
			    -max_total_time=60 -timeout=1 \
			    -exact_artifact_path="$art/minimized-$a" \
			    "$art/$a" >"$work/$t.minimize.log" 2>&1
			result="$result: $art/$a"
			[ -f "$art/minimized-$a" ] &&
			    result="$result (minimised: minimized-$a)"
		done
		grep -m1 -E 'ERROR: |invariant failed|SUMMARY' "$work/$t.log" |
		    sed 's/^/    /' >&2
	fi
	summary+=("$(printf '%-15s %5ss %10s execs %7s/s  %-22s rss %4sMB  %s inputs  %s' \
	    "$t" "$secs" "${execs:-?}" "${rate:-?}" "${cov:-}" "${rss:-?}" \
	    "$(ls "$corpus" | wc -l)" "$result")")
done

echo
echo "libetpan: $([ -f "$etpan_lib" ] && echo "instrumented ($etpan_lib)" ||
    echo "system library, not instrumented")"
printf '%s\n' "${summary[@]}"
echo "logs: $work/<target>.log; corpora: $work/corpus; artifacts: $work/artifacts"
[ "$found" -eq 0 ]
