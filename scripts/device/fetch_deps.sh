#!/usr/bin/env bash
# Run HERE (not on the GPU machine) before a device call: gathers what the GPU machine lacks
# into .device-deps/ (git-ignored; name it in the device call's `carry`):
#   pcre2/     Debian's libpcre2-dev unpacked (headers; the runtime library is there already)
#   utf8proc/  Debian's libutf8proc-dev and libutf8proc2 unpacked (absent there)
#   gloo/      Debian's libgloo-dev unpacked (the headers ProcessGroupGloo.hpp includes)
#   shared/  the fixtures and data the tests read (../shared does not travel)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
deps=$root/.device-deps
mkdir -p "$deps"
if [ ! -f "$deps/pcre2/usr/include/pcre2.h" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download libpcre2-dev >/dev/null)
  dpkg-deb -x "$tmp"/libpcre2-dev_*.deb "$deps/pcre2"
  rm -rf "$tmp"
fi
if [ ! -f "$deps/utf8proc/usr/include/utf8proc.h" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download libutf8proc-dev libutf8proc2 >/dev/null)
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$deps/utf8proc"; done
  rm -rf "$tmp"
fi
if [ ! -f "$deps/gloo/usr/include/gloo/config.h" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download libgloo-dev >/dev/null)
  dpkg-deb -x "$tmp"/libgloo-dev_*.deb "$deps/gloo"
  rm -rf "$tmp"
fi
shared=${HALO_SHARED:-$root/../shared}
mkdir -p "$deps/shared"
cp -r "$shared/fixtures" "$shared/data" "$deps/shared/"
chmod -R u+w "$deps/shared"
du -sh "$deps"
