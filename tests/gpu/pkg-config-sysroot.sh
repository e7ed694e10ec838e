#!/bin/sh
# pkg-config over the carried Debian 12 sysroot ONLY (tests/gpu/run.sh
# prepare makes it): the system's .pc files are invisible, every -I/-L points
# into the sysroot. CMake gets it as PKG_CONFIG_EXECUTABLE. The sysroot is
# $EQ_SYSROOT, default .gpu/sysroot in the repository root.
here=$(cd "$(dirname "$0")" && pwd)
S=${EQ_SYSROOT:-$here/../../.gpu/sysroot}
L=$S/usr/lib/x86_64-linux-gnu
unset PKG_CONFIG_PATH
export PKG_CONFIG_LIBDIR="$L/pkgconfig:$S/usr/share/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$S"
# Keep -I/usr/include and -L/usr/lib/... (prefixed with the sysroot): they
# must not be filtered out as "system" directories.
export PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
LD_LIBRARY_PATH="$L${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$S/usr/bin/pkgconf" "$@"
