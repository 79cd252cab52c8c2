#!/bin/sh
# Builds static socksd binaries for the routers' CPUs.
#
#   contrib/cross/build.sh [--router] [TARGET...]
#
# TARGET is a Rust triple; without one, all five OpenWrt CPU families:
#   mips-unknown-linux-musl          32-bit MIPS, big-endian (ath79)
#   mipsel-unknown-linux-musl        32-bit MIPS, little-endian (ramips, MT7621)
#   armv7-unknown-linux-musleabihf   ARMv7 (ipq40xx)
#   aarch64-unknown-linux-musl       AArch64 (filogic, mediatek)
#   x86_64-unknown-linux-musl        x86_64 (x86/64)
# Output: target/TRIPLE/release/socksd, or target/TRIPLE/router/socksd with
# --router (the size profile: std built for size, panics abort at once and
# print nothing).
#
# What it needs, installed here when missing (Debian, as root):
#   - a Rust that can build std for a tier-2/3 target: Debian's rustc-web,
#     cargo-web and rust-web-src (/usr/bin/cargo, with the library source;
#     rustup's toolchain cannot add targets on every machine);
#   - a C toolchain with musl for every target: zig, from PyPI's ziglang;
#   - llvm-strip, for what the linker leaves (MIPS .pdr: 70 KB);
#   - qemu-user-static, to run the results (contrib/cross/test.sh).
set -eu

cd "$(dirname "$0")/../.."
. contrib/cross/env.sh

profile=release
targets=""
for a in "$@"; do
    case "$a" in
    --router) profile=router ;;
    -h | --help)
        sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    -*)
        echo "build.sh: unknown option $a" >&2
        exit 2
        ;;
    *) targets="$targets $a" ;;
    esac
done
[ -n "$targets" ] || targets=$ALL

cross_install

for t in $targets; do
    cross_env "$t"
    echo "== $t ($profile)" >&2
    cross_cargo "$t" "$profile" build --bin socksd
    out="target/$t/$profile/socksd"
    # The linker's --strip-all keeps sections it does not call debug
    # information (.pdr on MIPS) and .comment; nothing at run time reads them.
    llvm-strip --strip-all -R .pdr -R .comment -R .mdebug.abi32 -R .gnu.attributes "$out"
    printf '%s\t%s\t%s bytes\n' "$t" "$profile" "$(wc -c <"$out")"
done
