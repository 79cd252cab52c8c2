#!/bin/sh
# Makes OpenWrt packages (.ipk, for opkg on OpenWrt 24.10) of socksd
# without OpenWrt's SDK, from the static binaries contrib/cross/build.sh
# makes:
#
#   contrib/openwrt/ipk.sh [--profile router|release] [--out DIR] [TRIPLE...]
#
# TRIPLE is a Rust triple (default: all five CPU families); the binary is
# target/TRIPLE/PROFILE/socksd (default profile: router, the size build).
# One .ipk per OpenWrt architecture name of the family (ARCHES below), all
# with the same files: a static binary needs nothing of the router but
# its CPU family. Output: DIR/socksd_VERSION-rRELEASE_ARCH.ipk (default
# DIR: target/ipk), one path per line on stdout.
#
# What goes in is what the feed Makefile (contrib/openwrt/socksd/Makefile)
# says, read from it: the version and release, the files and their modes
# (Package/socksd/install), the conffiles, the user (USERID) and the
# description; its postinst and prerm, if any. The maintainer scripts
# around them are the ones OpenWrt generates for every package
# (default_postinst, default_prerm). The packages are
# reproducible: file times are SOURCE_DATE_EPOCH (default: the last
# commit's time), owners are root, gzip stores no name or time.
set -eu

cd "$(dirname "$0")/../.."
PKGDIR=contrib/openwrt/socksd
MK=$PKGDIR/Makefile

# The OpenWrt 24.10 architecture names (DISTRIB_ARCH, `opkg
# print-architecture`) of the common devices of each CPU family. Each
# family's binary runs on all of them: Rust's baseline for the triple is
# MIPS32r2 soft-float, ARMv7 with VFPv3-D16, ARMv8-A, x86-64.
arches() {
    case "$1" in
    # ath79 (most Atheros/QCA routers), lantiq xrx200, realtek rtl839x/930x;
    # realtek rtl838x switches
    mips-unknown-linux-musl) echo mips_24kc mips_4kec ;;
    # ramips mt7621, mt7620, mt76x8; bcm47xx MIPS 74K
    mipsel-unknown-linux-musl) echo mipsel_24kc mipsel_74kc ;;
    # ipq40xx, mediatek mt7623, sunxi A7, bcm2709; mvebu Armada 38x;
    # imx6; ipq806x
    armv7-unknown-linux-musleabihf) echo arm_cortex-a7_neon-vfpv4 arm_cortex-a9_vfpv3-d16 arm_cortex-a9_neon arm_cortex-a15_neon-vfpv4 ;;
    # mediatek filogic and mt7622, ipq807x, bcm2710; bcm2711 and mvebu
    # Armada 7k/8k; bcm2712; armsr, rockchip, layerscape
    aarch64-unknown-linux-musl) echo aarch64_cortex-a53 aarch64_cortex-a72 aarch64_cortex-a76 aarch64_generic ;;
    x86_64-unknown-linux-musl) echo x86_64 ;;
    *)
        echo "ipk.sh: unknown target $1" >&2
        return 1
        ;;
    esac
}
ALL="mips-unknown-linux-musl mipsel-unknown-linux-musl armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl x86_64-unknown-linux-musl"

profile=router
out=target/ipk
targets=""
while [ $# -gt 0 ]; do
    case "$1" in
    --profile)
        profile=${2:?--profile needs router or release}
        shift
        ;;
    --out)
        out=${2:?--out needs a directory}
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    -*)
        echo "ipk.sh: unknown option $1" >&2
        exit 2
        ;;
    *) targets="$targets $1" ;;
    esac
    shift
done
[ -n "$targets" ] || targets=$ALL
case "$profile" in router | release) ;; *)
    echo "ipk.sh: --profile is router or release, not $profile" >&2
    exit 2
    ;;
esac

# var NAME: a plain NAME:=VALUE of the Makefile.
var() { sed -n "s/^$1:=//p" "$MK" | head -n 1; }
# block NAME: the lines of "define Package/socksd/NAME" (NAME may be empty).
block() { awk -v h="define Package/socksd$1" '$0 == h {f = 1; next} f && /^endef/ {exit} f' "$MK"; }
# field NAME: "  NAME:=VALUE" inside "define Package/socksd".
field() { block "" | sed -n "s/^[[:space:]]*$1:=//p" | head -n 1; }

name=$(var PKG_NAME)
version=$(var PKG_VERSION)
release=$(var PKG_RELEASE)
[ -n "$name" ] && [ -n "$version" ] && [ -n "$release" ] || {
    echo "ipk.sh: PKG_NAME, PKG_VERSION or PKG_RELEASE missing in $MK" >&2
    exit 1
}
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

# stage BINARY DIR: runs Package/socksd/install into DIR, as OpenWrt's
# macros do ($(INSTALL_BIN) 0755, $(INSTALL_CONF) 0600, $(INSTALL_DATA)
# 0644, $(INSTALL_DIR) a 0755 directory); $(PKG_INSTALL_DIR)/bin/socksd is
# the binary. Any other line is an error, not a guess.
stage() {
    block /install | while read -r macro a b rest; do
        [ -n "$macro" ] || continue
        [ -z "$rest" ] || {
            echo "ipk.sh: cannot read this install line of $MK: $macro $a $b $rest" >&2
            exit 1
        }
        src=$a
        case "$src" in
        '$(PKG_INSTALL_DIR)/bin/socksd') src=$1 ;;
        ./files/*) src=$PKGDIR/${src#./} ;;
        esac
        case "$macro" in
        '$(INSTALL_DIR)') install -d -m0755 "$2${a#\$(1)}" ;;
        '$(INSTALL_BIN)') install -m0755 "$src" "$2${b#\$(1)}" ;;
        '$(INSTALL_CONF)') install -m0600 "$src" "$2${b#\$(1)}" ;;
        '$(INSTALL_DATA)') install -m0644 "$src" "$2${b#\$(1)}" ;;
        *)
            echo "ipk.sh: unknown install macro in $MK: $macro" >&2
            exit 1
            ;;
        esac
    done
}

# control ARCH DIR: the control file, conffiles and scripts, as OpenWrt's
# package-pack.mk and ipkg-build write them.
control() {
    desc=$(block /description | sed -e 's/^[[:space:]]*//' -e '/^$/d' | tr '\n' ' ' | sed 's/ $//')
    {
        echo "Package: $name"
        echo "Version: $version-r$release"
        echo "Depends: libc"
        echo "Source: feeds/socksd/socksd"
        echo "SourceName: $name"
        echo "License: $(var PKG_LICENSE)"
        echo "LicenseFiles: $(var PKG_LICENSE_FILES)"
        echo "Section: $(field SECTION)"
        echo "SourceDateEpoch: $epoch"
        echo "URL: $(field URL)"
        echo "Maintainer: $(var PKG_MAINTAINER)"
        echo "Require-User: $(field USERID)"
        echo "Architecture: $1"
        echo "Installed-Size: $(du -sb --exclude=./CONTROL "$2" | cut -f1)"
        echo "Description: $desc"
    } >"$2/CONTROL/control"
    block /conffiles | sed -e 's/^[[:space:]]*//' -e '/^$/d' >"$2/CONTROL/conffiles"
    cat >"$2/CONTROL/postinst" <<'EOF'
#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
EOF
    cat >"$2/CONTROL/prerm" <<'EOF'
#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
EOF
    # The package's own scripts, which default_postinst and default_prerm
    # run (make's $$ is the shell's $).
    for script in postinst prerm; do
        body=$(block /$script)
        [ -z "$body" ] || printf '%s\n' "$body" | sed 's/\$\$/$/g' >"$2/CONTROL/$script-pkg"
    done
    chmod 0755 "$2"/CONTROL/post* "$2"/CONTROL/pre*
}

# tarc ARGS: tar with nothing of this machine in it (owners, times, order).
tarc() { tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name --mtime="@$epoch" "$@"; }

# pack DIR FILE: an .ipk as ipkg-build makes it (a gzip'd tar of
# debian-binary, data.tar.gz and control.tar.gz), byte for byte the same
# from the same inputs.
pack() {
    t=$(mktemp -d)
    echo 2.0 >"$t/debian-binary"
    (cd "$1" && tarc --exclude=./CONTROL -cf - .) | gzip -9n >"$t/data.tar.gz"
    (cd "$1/CONTROL" && tarc -cf - .) | gzip -9n >"$t/control.tar.gz"
    (cd "$t" && tarc -cf - ./debian-binary ./data.tar.gz ./control.tar.gz) | gzip -9n >"$2"
    rm -rf "$t"
}

mkdir -p "$out"
for t in $targets; do
    list=$(arches "$t")
    bin=target/$t/$profile/socksd
    [ -f "$bin" ] || {
        echo "ipk.sh: $bin missing: run contrib/cross/build.sh $([ "$profile" = router ] && echo '--router ')$t first" >&2
        exit 1
    }
    for arch in $list; do
        s=$(mktemp -d)
        chmod 0755 "$s"
        mkdir "$s/CONTROL"
        stage "$bin" "$s"
        control "$arch" "$s"
        f=$out/${name}_$version-r${release}_$arch.ipk
        pack "$s" "$f"
        rm -rf "$s"
        echo "$f"
    done
done
