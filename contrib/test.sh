#!/bin/sh
# contrib/test.sh - the one command that sets up and runs the whole suite
# on a fresh Debian 12 machine: installs the packages (as root), builds a
# normal tree (-Werror) and a sanitizer tree (ASan+UBSan), runs every test
# against the normal build and the unit tests again under the sanitizers.
# Ends with the line "N passed, N failed, N skipped".
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/contrib/deps.sh" test
"$top/contrib/build.sh" "$top/build" --enable-werror
"$top/contrib/build.sh" "$top/build-asan" --enable-werror --enable-asan
exec "$top/tests/run" --builddir="$top/build" --asan-builddir="$top/build-asan" "$@"
