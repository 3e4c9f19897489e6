#!/bin/sh
# SPDX-License-Identifier: MIT
# Build a client the way an outside user does: from the installed header,
# library and pkg-config file only, with no other .pc file on the search path
# (so a Requires of the library's own dependencies would fail), then run it
# against the installed library.  Usage: installed-client.sh BUILDDIR SOURCE
set -eu
build=$1 src=$2
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT

meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null
pc=$(find "$dest" -name libthpswap.pc)
[ -n "$pc" ] || { echo "no libthpswap.pc installed"; exit 1; }
export PKG_CONFIG_SYSROOT_DIR="$dest" PKG_CONFIG_LIBDIR="${pc%/*}" PKG_CONFIG_PATH=
flags=$(pkg-config --cflags --libs libthpswap) || { cat "$pc"; exit 1; }
${CC:-cc} -std=c99 -Wall -Wextra -pedantic -Werror -o "$dest/minimal" "$src" $flags

# No daemon on this socket: the client must load the library, call it and
# report that thpswapd is not running (exit status 3).
st=0
LD_LIBRARY_PATH="${pc%/pkgconfig/*}" "$dest/minimal" "$dest/no-such.sock" 2>"$dest/err" || st=$?
[ "$st" = 3 ] || { echo "minimal exited $st, expected 3:"; cat "$dest/err"; exit 1; }
echo "built and ran a client against $(pkg-config --modversion libthpswap) installed in a fresh root"
