#!/bin/sh
# The README's size table (README "Routers"), from the binaries
# contrib/cross/build.sh made with the pinned toolchain (env.sh): every
# build CI makes (env.sh's BUILDS), raw and compressed the way firmware
# images and package feeds compress, and the .ipk of each router build.
#
#   contrib/cross/sizes.sh           prints the table
#   contrib/cross/sizes.sh --write   puts it in README.md, between the
#                                    "sizes" markers
#
# tests/cross.rs fails when README.md and this script's output differ.
# Packages are made with SOURCE_DATE_EPOCH=0, so their size does not move
# with the commit time. It installs nothing.
set -eu

cd "$(dirname "$0")/../.."
. contrib/cross/env.sh

table() {
    zig=$(python3 -c 'import ziglang, os; print(os.path.dirname(ziglang.__file__) + "/zig")')
    echo "Built by \`contrib/cross/build.sh\` with $(/usr/bin/rustc --version | cut -d' ' -f1-2) (Debian rustc-web $(cross_deb_version rustc-web)) and zig $("$zig" version); written by \`contrib/cross/sizes.sh\`."
    echo
    echo "| Rust target | profile | bytes | gzip -9 | xz -9e | .ipk |"
    echo "|---|---|--:|--:|--:|--:|"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    for b in $BUILDS; do
        t=${b%/*}
        p=${b#*/}
        bin=target/$t/$p/socksd
        if [ ! -f "$bin" ]; then
            echo "sizes.sh: $bin missing: run contrib/cross/build.sh$([ "$p" = router ] && echo ' --router') $t" >&2
            exit 1
        fi
        ipk=-
        if [ "$p" = router ]; then
            f=$(SOURCE_DATE_EPOCH=0 contrib/openwrt/ipk.sh --profile router --out "$tmp/$t" "$t" | head -n 1)
            ipk=$(wc -c <"$f")
        fi
        printf '| %s | %s | %s | %s | %s | %s |\n' "$t" "$p" "$(wc -c <"$bin")" \
            "$(gzip -9 -n -c "$bin" | wc -c)" "$(xz -9e -c "$bin" | wc -c)" "$ipk"
    done
}

case "${1:-}" in
"") table ;;
--write)
    t=$(table)
    python3 - "$t" <<'PY'
import re, sys
readme = open("README.md").read()
begin, end = "<!-- sizes: contrib/cross/sizes.sh --write -->\n", "<!-- end of sizes -->\n"
a, b = readme.index(begin) + len(begin), readme.index(end)
open("README.md", "w").write(readme[:a] + sys.argv[1] + "\n" + readme[b:])
PY
    ;;
*)
    echo "sizes.sh: unknown option $1 (--write, or nothing)" >&2
    exit 2
    ;;
esac
