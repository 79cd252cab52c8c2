//! The router binaries that contrib/cross/build.sh made, each run under
//! qemu-user: curl through socks4, socks4a, socks5 and socks5h, a BIND and
//! a UDP ASSOCIATE round trip.
//!
//! Which binaries: `SOCKSD_CROSS="TRIPLE[/PROFILE] ..."` names them, and a
//! missing one fails the test (CI sets it). Unset, every
//! target/TRIPLE/{release,router}/socksd that exists is tried, and a
//! machine with none skips with a message.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;

const PROFILES: [&str; 2] = ["release", "router"];

/// The qemu-user program for a triple.
fn qemu(triple: &str) -> &'static str {
    match triple.split('-').next().unwrap() {
        "mips" => "qemu-mips-static",
        "mipsel" => "qemu-mipsel-static",
        "armv7" => "qemu-arm-static",
        "aarch64" => "qemu-aarch64-static",
        "x86_64" => "qemu-x86_64-static",
        other => panic!("no qemu for {other}"),
    }
}

fn binary(triple: &str, profile: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target").join(triple).join(profile).join("socksd")
}

/// The binaries of `triple` to smoke-test, or None to skip.
fn wanted(triple: &str) -> Option<Vec<PathBuf>> {
    if emulator().is_some() {
        eprintln!("SKIP: the cross binaries are tested from the build machine, not from under qemu");
        return None;
    }
    match std::env::var("SOCKSD_CROSS") {
        Ok(list) => {
            let mut out = Vec::new();
            for item in list.split_whitespace() {
                let (t, profile) = item.split_once('/').unwrap_or((item, "release"));
                if t == triple {
                    let b = binary(t, profile);
                    assert!(b.exists(), "{} missing: run contrib/cross/build.sh first", b.display());
                    out.push(b);
                }
            }
            (!out.is_empty()).then_some(out)
        }
        Err(_) => {
            let out: Vec<_> = PROFILES.iter().map(|p| binary(triple, p)).filter(|b| b.exists()).collect();
            if out.is_empty() {
                eprintln!("SKIP: no {triple} binary; contrib/cross/build.sh {triple} makes one");
                return None;
            }
            Some(out)
        }
    }
}

/// Starts the binary under qemu on a free loopback port.
fn start_emulated(triple: &str, bin: &PathBuf) -> (ChildGuard, SocketAddr) {
    serve(std::process::Command::new(qemu(triple)).arg(bin).args(["--listen", "127.0.0.1:0", "--threads", "1"]))
}

fn smoke(triple: &str) {
    let Some(bins) = wanted(triple) else { return };
    if !have_curl() {
        panic!("curl is needed for the cross smoke test");
    }
    let body = pattern(91, 256 << 10);
    let web = http_server(body.clone());
    for bin in bins {
        let what = bin.display().to_string();
        let (_child, proxy) = start_emulated(triple, &bin);
        let by_ip = format!("http://127.0.0.1:{}/f", web.port());
        let by_name = format!("http://localhost:{}/f", web.port());
        for (scheme, url) in [("socks4", &by_ip), ("socks4a", &by_name), ("socks5", &by_ip), ("socks5h", &by_name)] {
            let (code, got) = curl(&format!("{scheme}://{proxy}"), url);
            assert_eq!((code, got == body), (0, true), "{what}: curl {scheme}");
        }
        bind_round_trip(proxy, &what);
        udp_round_trip(proxy, &what);
    }
}

/// SOCKS5 BIND: both replies, then data each way (RFC 1928 §4).
fn bind_round_trip(proxy: SocketAddr, what: &str) {
    let mut c = connect(proxy);
    c.write_all(&[5, 1, 0]).unwrap();
    let mut m = [0u8; 2];
    c.read_exact(&mut m).unwrap();
    c.write_all(&s5_request(2, &addr_bytes("127.0.0.1:0".parse().unwrap()))).unwrap();
    let (rep, bnd) = read_s5_reply(&mut c).unwrap();
    assert_eq!(rep, 0, "{what}: BIND first reply");
    let mut peer = connect(bnd);
    let (rep2, seen) = read_s5_reply(&mut c).unwrap();
    assert_eq!((rep2, seen), (0, peer.local_addr().unwrap()), "{what}: BIND second reply");
    peer.write_all(b"peer->client").unwrap();
    let mut b = [0u8; 12];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"peer->client", "{what}");
    c.write_all(b"client->peer").unwrap();
    peer.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"client->peer", "{what}");
}

/// UDP ASSOCIATE: a datagram to an echo service and its reply, with the
/// reply's header naming the service (RFC 1928 §7).
fn udp_round_trip(proxy: SocketAddr, what: &str) {
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut b = [0u8; 2048];
        if let Ok((n, from)) = echo.recv_from(&mut b) {
            let _ = echo.send_to(&b[..n], from);
        }
    });
    let (_ctl, rep, relay) = s5_associate(proxy, &addr_bytes("0.0.0.0:0".parse().unwrap()));
    assert_eq!(rep, 0, "{what}: UDP ASSOCIATE reply");
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    u.send_to(&udp_request(echo_addr, b"datagram"), relay).unwrap();
    let mut b = [0u8; 2048];
    let (n, from) = u.recv_from(&mut b).unwrap();
    assert_eq!(from, relay, "{what}: reply from the relay");
    assert_eq!(b[..n].to_vec(), udp_request(echo_addr, b"datagram"), "{what}: UDP reply");
}

#[test]
fn mips_big_endian() {
    smoke("mips-unknown-linux-musl");
}

#[test]
fn mipsel() {
    smoke("mipsel-unknown-linux-musl");
}

#[test]
fn armv7() {
    smoke("armv7-unknown-linux-musleabihf");
}

#[test]
fn aarch64() {
    smoke("aarch64-unknown-linux-musl");
}

#[test]
fn x86_64_musl() {
    smoke("x86_64-unknown-linux-musl");
}

/// The size budgets (README "Routers"), for the pinned toolchain
/// (contrib/cross/env.sh): the mipsel router binary in 376 KiB, and in
/// 150 KiB once xz-compressed as firmware images and feeds store it; the
/// x86_64 release build in 544 KiB. Sizes are deterministic for a
/// toolchain, so these are budgets, not timings. The host's own build is
/// not held to one: its toolchain is whatever the machine has.
#[test]
fn binaries_fit_their_size_budgets() {
    if emulator().is_some() {
        return;
    }
    let required = |b: &str| std::env::var("SOCKSD_CROSS").is_ok_and(|l| l.split_whitespace().any(|x| x == b));
    for (triple, profile, raw, xz) in [
        ("mipsel-unknown-linux-musl", "router", 376 << 10, Some(150 << 10)),
        ("x86_64-unknown-linux-musl", "release", 544 << 10, None),
    ] {
        let bin = binary(triple, profile);
        let Ok(m) = std::fs::metadata(&bin) else {
            assert!(!required(&format!("{triple}/{profile}")), "{} missing", bin.display());
            eprintln!("SKIP: {} not built", bin.display());
            continue;
        };
        assert!(m.len() <= raw, "{}: {} bytes, over {} KiB", bin.display(), m.len(), raw >> 10);
        if let Some(limit) = xz {
            let out = std::process::Command::new("xz").args(["-9e", "-c"]).arg(&bin).output().expect("xz");
            let n = out.stdout.len() as u64;
            assert!(
                out.status.success() && n <= limit,
                "{}: {n} bytes with xz -9e, over {} KiB",
                bin.display(),
                limit >> 10
            );
        }
    }
}

/// The README's size table is contrib/cross/sizes.sh's output for the
/// binaries built here, not typed: a build that changed size, or a
/// toolchain that is not the pinned one, shows up as a difference.
#[test]
fn readme_size_table_is_the_builds() {
    if emulator().is_some() {
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("sh").arg("contrib/cross/sizes.sh").current_dir(root).output().unwrap();
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(std::env::var("SOCKSD_CROSS").is_err(), "contrib/cross/sizes.sh failed: {why}");
        eprintln!("SKIP: no size table without every build: {}", why.trim());
        return;
    }
    let table = String::from_utf8(out.stdout).unwrap();
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let begin = "<!-- sizes: contrib/cross/sizes.sh --write -->\n";
    let a = readme.find(begin).expect("README size table marker") + begin.len();
    let b = readme.find("<!-- end of sizes -->").expect("README size table end");
    assert_eq!(&readme[a..b], table, "README.md's size table is stale: run contrib/cross/sizes.sh --write");
}
