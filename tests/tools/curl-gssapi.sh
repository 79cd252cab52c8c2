#!/bin/sh
# A curl whose SOCKS5 GSS-API client can finish the method, for
# tests/gssapi.rs: curl before 8.17 cannot (README, "GSS-API"), and
# Debian 12 ships 7.88. The source is the curl Debian unstable packages,
# fetched by apt from Debian's signed source index (apt checks its hash),
# built with GSS-API and little else. Prints the binary's path; builds
# once into target/curl-gssapi/ (or $1), in about a minute on two cores.
# Needs gcc, make, libkrb5-dev.
set -eu
cd "$(dirname "$0")/../.."
out=${1:-target/curl-gssapi}
if [ -x "$out/curl" ] && "$out/curl" --version | grep -q GSS-API; then
    echo "$(cd "$out" && pwd)/curl"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
# Debian's mirrors may hold an index a step ahead of the pool: try the
# suites that carry curl 8.17 or later in turn; a file apt leaves in place
# passed its hash check against the signed index.
for suite in forky sid trixie-backports; do
    mkdir -p "$work/$suite/lists/partial" "$work/$suite/parts"
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$suite" >"$work/$suite/parts/curl.sources"
    a="apt-get -q -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=$work/$suite/parts"
    a="$a -o Dir::State::Lists=$work/$suite/lists -o Dir::Cache=$work/$suite/cache -o APT::Sandbox::User=root"
    echo "curl-gssapi: fetching curl's source from Debian $suite" >&2
    $a update >/dev/null 2>&1 || continue
    (cd "$work/src" && $a source --download-only curl >/dev/null 2>&1) || true
    ls "$work"/src/curl_*.orig.tar.* >/dev/null 2>&1 && break
done
# Else the one these tests were last run with, by its hash in Debian's index.
if ! ls "$work"/src/curl_*.orig.tar.* >/dev/null 2>&1; then
    f=curl_8.21.0.orig.tar.gz
    curl -fsS -m 120 -o "$work/src/$f" "http://deb.debian.org/debian/pool/main/c/curl/$f"
    echo "d9b327997999045a24cda50f3983e69e51c516bd8be6ef9842fc7f99135e33bb  $work/src/$f" | sha256sum -c - >/dev/null
fi
tar xf "$(ls "$work"/src/curl_*.orig.tar.* | grep -v "\.asc$" | head -1)" -C "$work"
cd "$work"/curl-*/
echo "curl-gssapi: building $(basename "$PWD") with GSS-API" >&2
./configure -q --disable-shared --with-gssapi --without-ssl --without-libpsl \
    --without-zlib --without-brotli --without-zstd --without-nghttp2 --without-libidn2 \
    --without-libssh2 --disable-ldap --disable-ldaps --disable-manual \
    --disable-docs --disable-ntlm --disable-ftp --disable-file --disable-dict --disable-gopher \
    --disable-imap --disable-mqtt --disable-pop3 --disable-rtsp --disable-smb --disable-smtp \
    --disable-telnet --disable-tftp --disable-websockets >/dev/null
make -s -j"$(nproc)" >/dev/null 2>&1
cd - >/dev/null
mkdir -p "$out"
cp "$work"/curl-*/src/curl "$out/curl"
"$out/curl" --version | grep -q GSS-API
echo "$(cd "$out" && pwd)/curl"
