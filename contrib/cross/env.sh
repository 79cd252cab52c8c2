# Shared by build.sh and test.sh (sourced, POSIX sh): the cross toolchain,
# installed when missing, and the cargo invocation for one target.

# The five OpenWrt CPU families, and the zig that links for them.
ALL="mips-unknown-linux-musl mipsel-unknown-linux-musl armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl x86_64-unknown-linux-musl"

# What CI builds, smoke-tests under qemu (tests/cross.rs) and lists in the
# README's size table (contrib/cross/sizes.sh): every family in the router
# profile, which the packages ship, and x86_64 in the release profile
# (one more build per target costs CI about a minute).
BUILDS="mips-unknown-linux-musl/router mipsel-unknown-linux-musl/router armv7-unknown-linux-musleabihf/router aarch64-unknown-linux-musl/router x86_64-unknown-linux-musl/router x86_64-unknown-linux-musl/release"
ZIG_VERSION=0.17.1
ZIGLANG=ziglang==$ZIG_VERSION

# The Rust the router builds are made with, pinned so that two machines
# build the same bytes (the README's size table and tests/cross.rs's
# budgets are for it): Debian bookworm's rustc-web, cargo-web and
# rust-web-src at this exact version, from bookworm's main archive
# (frozen since bookworm's last point release; the security archive moves
# on and keeps only its newest version, so it cannot be pinned). When the
# version leaves deb.debian.org (bookworm moving to archive.debian.org),
# the install stops with a message saying so; point SOCKSD_RUST_DEB at a
# version the archive has and regenerate the size table
# (contrib/size-table.sh --write), since the sizes change with it.
RUST_DEB=${SOCKSD_RUST_DEB:-1.85.0+dfsg3-1~deb12u3}

# Runs a command as root: directly, or through sudo.
cross_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "cross: need root to run: $*" >&2
        return 1
    fi
}

# apt-get install, refreshing the package lists once if a package is unknown.
cross_apt() {
    echo "cross: installing $* (Debian packages)" >&2
    DEBIAN_FRONTEND=noninteractive cross_root apt-get install -y -q "$@" >/dev/null ||
        { cross_root apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive cross_root apt-get install -y -q "$@" >/dev/null; }
}

# The installed version of a Debian package, or nothing.
cross_deb_version() {
    dpkg-query -W -f '${Version}' "$1" 2>/dev/null || true
}

# The pinned Rust with std's source (Debian's), zig, llvm-strip; qemu with
# "qemu". Prints the versions used.
cross_install() {
    pkgs=""
    for p in rustc-web cargo-web rust-web-src libstd-rust-web-dev; do
        [ "$(cross_deb_version $p)" = "$RUST_DEB" ] || pkgs="$pkgs $p=$RUST_DEB"
    done
    if [ -n "$pkgs" ]; then
        if ! apt-cache show "rustc-web=$RUST_DEB" >/dev/null 2>&1; then
            cross_root apt-get update -q >/dev/null || true
        fi
        if ! apt-cache show "rustc-web=$RUST_DEB" >/dev/null 2>&1; then
            echo "cross: rustc-web $RUST_DEB, the pinned toolchain, is not in the package archive (any more);" >&2
            echo "cross: set SOCKSD_RUST_DEB to one 'apt-cache policy rustc-web' lists and regenerate the size table" >&2
            return 1
        fi
        echo "cross: installing the pinned Rust:$pkgs (Debian packages)" >&2
        # --allow-downgrades: a machine may have a newer rustc-web from the
        # security archive; the pin wins.
        DEBIAN_FRONTEND=noninteractive cross_root apt-get install -y -q --allow-downgrades $pkgs >/dev/null
    fi
    pkgs=""
    command -v llvm-strip >/dev/null || pkgs="$pkgs llvm"
    if [ "${1:-}" = qemu ]; then
        command -v qemu-mips-static >/dev/null || pkgs="$pkgs qemu-user-static"
    fi
    [ -z "$pkgs" ] || cross_apt $pkgs
    if ! ZIG=$(python3 -c 'import ziglang, os; print(os.path.dirname(ziglang.__file__) + "/zig")' 2>/dev/null) ||
        [ "$("$ZIG" version)" != "$ZIG_VERSION" ]; then
        echo "cross: installing $ZIGLANG (PyPI)" >&2
        python3 -m pip install -q "$ZIGLANG" >&2
        ZIG=$(python3 -c 'import ziglang, os; print(os.path.dirname(ziglang.__file__) + "/zig")')
    fi
    export ZIG
    echo "cross: $(/usr/bin/rustc --version) (Debian rustc-web $(cross_deb_version rustc-web)), zig $("$ZIG" version), llvm-strip $(llvm-strip --version | sed -n 's/.*LLVM version //p')" >&2
}

# zig's name for the C target of a Rust triple.
cross_zig_target() {
    case "$1" in
    mips-unknown-linux-musl) echo mips-linux-musleabi ;;
    mipsel-unknown-linux-musl) echo mipsel-linux-musleabi ;;
    armv7-unknown-linux-musleabihf) echo arm-linux-musleabihf ;;
    aarch64-unknown-linux-musl) echo aarch64-linux-musl ;;
    x86_64-unknown-linux-musl) echo x86_64-linux-musl ;;
    *)
        echo "cross: unknown target $1 (known: $ALL)" >&2
        return 1
        ;;
    esac
}

# The qemu-user binary that runs a triple's programs.
cross_qemu() {
    case "$1" in
    mips-*) echo qemu-mips-static ;;
    mipsel-*) echo qemu-mipsel-static ;;
    armv7-*) echo qemu-arm-static ;;
    aarch64-*) echo qemu-aarch64-static ;;
    x86_64-*) echo qemu-x86_64-static ;;
    esac
}

# Writes the linker wrapper for a triple (zig cc for its musl target) and
# points cargo at it.
cross_env() {
    zt=$(cross_zig_target "$1")
    mkdir -p target/cross
    cc="$PWD/target/cross/cc-$1"
    printf '#!/bin/sh\nexec "%s" cc -target %s "$@"\n' "$ZIG" "$zt" >"$cc"
    chmod +x "$cc"
    var=$(echo "$1" | tr 'a-z-' 'A-Z_')
    export "CARGO_TARGET_${var}_LINKER=$cc"
}

# cross_cargo TRIPLE PROFILE SUBCOMMAND [ARGS...]: Debian's cargo, building
# std for the target. Static, with zig's crt and musl.
cross_cargo() {
    t=$1
    p=$2
    shift 2
    sub=$1
    shift
    # Static, with zig's crt and musl. A static musl binary is loaded at a
    # fixed address (ET_EXEC, not static-pie) whatever the code model, so
    # position-independent code buys nothing; non-PIC code saves a router
    # build 49 KB on MIPS, where every call through the GOT costs
    # instructions.
    flags="-C target-feature=+crt-static -C link-self-contained=no -C relocation-model=static"
    # Paths that end up in panic messages are the same on every machine:
    # the sizes must not depend on where cargo keeps its registry.
    flags="$flags --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo --remap-path-prefix=$PWD=/socksd"
    std="std,panic_abort"
    features=""
    if [ "$sub" = test ]; then
        # libtest needs panic=unwind, and cargo builds std once: tests get
        # a profile that unwinds, and a target directory of their own so
        # the shipped binaries' std is not rebuilt back and forth.
        std="std,panic_unwind,test"
        export CARGO_PROFILE_RELEASE_PANIC=unwind CARGO_TARGET_DIR=target/cross-test
    fi
    if [ "$p" = router ]; then
        # Panics abort at once and print nothing: their file and line are
        # dead bytes (1 KB).
        flags="$flags -Zlocation-detail=none"
        # Rust 1.91 made immediate-abort a panic strategy and dropped the
        # std feature that older releases (Debian's 1.85) use.
        if RUSTC_BOOTSTRAP=1 /usr/bin/rustc -Zunstable-options -C panic=immediate-abort --print cfg >/dev/null 2>&1; then
            flags="$flags -Zunstable-options -C panic=immediate-abort"
            features="optimize_for_size"
        else
            features="optimize_for_size,panic_immediate_abort"
        fi
    fi
    PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS="$flags" \
        /usr/bin/cargo "$sub" --profile "$p" --target "$t" -Zbuild-std="$std" \
        ${features:+-Zbuild-std-features="$features"} "$@"
}
