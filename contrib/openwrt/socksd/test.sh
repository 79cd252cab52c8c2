#!/bin/sh
# The packages feed's CI runs this on the target after installing the
# package: $1 is the package name, $2 its version (PKG_VERSION, perhaps
# with -rN). The binary must be the packaged version and accept the
# shipped defaults' kind of command line.
case "$1" in
socksd)
	socksd --version | grep -F "socksd ${2%%-*}" &&
		socksd --check --listen 127.0.0.1:1080 --deny-dest self --max-conns-per-ip 64
	;;
esac
