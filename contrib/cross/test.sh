#!/bin/sh
# Runs socksd's test suite (unit and integration tests) built for a router
# CPU, under qemu-user:
#
#   contrib/cross/test.sh [TARGET] [-- TEST ARGS...]
#
# TARGET defaults to mips-unknown-linux-musl: big-endian and 32-bit, the
# CPU most unlike the machine the code is written on. The toolchain is
# installed as contrib/cross/build.sh does, plus qemu-user-static. Tests
# that cannot run under emulation say so and pass (README "Routers").
set -eu

cd "$(dirname "$0")/../.."
. contrib/cross/env.sh

t=mips-unknown-linux-musl
case "${1:-}" in
"" | --) ;;
-*)
    echo "test.sh: unknown option $1" >&2
    exit 2
    ;;
*)
    t=$1
    shift
    ;;
esac
[ "${1:-}" != -- ] || shift

cross_install qemu
cross_env "$t"
var=$(echo "$t" | tr 'a-z-' 'A-Z_')
export "CARGO_TARGET_${var}_RUNNER=$PWD/contrib/cross/qemu-run $(cross_qemu "$t")"
# The suite checks behaviour on the target's byte order and word size, not
# the shipped build's code generation (tests/cross.rs runs the shipped
# binaries): the test binaries are built without LTO and in parallel
# codegen units, which takes CI's build of some 30 of them from about 4.5
# minutes to a fraction of it.
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
cross_cargo "$t" release test --no-fail-fast -- "$@"
