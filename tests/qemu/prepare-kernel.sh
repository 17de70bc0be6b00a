#!/usr/bin/env bash
# Fetch Debian's stock kernel (the package linux-image-amd64 depends on) for the QEMU xfrm
# interop test (tests/xfrm_qemu.rs): vmlinuz plus its module tree, indexed with depmod.
# Usage: tests/qemu/prepare-kernel.sh [DIR]   (default /var/cache/vxswitch/qemu-kernel)
# Idempotent: does nothing when DIR already holds a prepared kernel.
set -euo pipefail
dir=${1:-${VXSWITCH_QEMU_KERNEL:-/var/cache/vxswitch/qemu-kernel}}
if [ -f "$dir/vmlinuz" ] && [ -f "$dir/release" ]; then
  exit 0
fi
dep() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
pkg=$(dep)
if [ -z "$pkg" ]; then
  apt-get update -qq
  pkg=$(dep)
fi
[ -n "$pkg" ] || { echo "no linux-image-<version>-amd64 behind linux-image-amd64 (apt-get update?)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download "$pkg" >/dev/null 2>&1)
mkdir -p "$tmp/x"
dpkg -x "$tmp"/*.deb "$tmp/x"
release=$(ls "$tmp/x/lib/modules")
depmod -b "$tmp/x" "$release"
rm -rf "$dir"
mkdir -p "$dir/lib"
mv "$tmp/x/lib/modules" "$dir/lib/modules"
cp "$tmp/x/boot/vmlinuz-$release" "$dir/vmlinuz"
echo "$release" > "$dir/release"
echo "prepared $pkg ($release) in $dir"
