#!/bin/sh
# contrib/build.sh - configure and build sealpost (and its test programs)
# out of tree.  Usage: contrib/build.sh BUILDDIR [configure options...]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
builddir=$1; shift
cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ] ||
    [ Makefile.am -nt Makefile.in ]; then
	autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi
mkdir -p "$builddir"
cd "$builddir"
if [ ! -f Makefile ] || [ "$top/configure" -nt config.status ]; then
	"$top/configure" -q "$@"
fi
# Two goals in one -j make race (automake's all recurses): one at a time.
if ! { make -j"$(nproc)" all && make -j"$(nproc)" check-programs; } \
    >build.log 2>&1; then
	grep -E 'error|Error' build.log | head -40 >&2
	echo "build failed: see $builddir/build.log" >&2
	exit 1
fi
