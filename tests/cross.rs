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

/// The size goals (README "Routers"): a static mipsel binary in the router
/// profile fits in 400 KiB, and the x86_64 release build in 544 KiB. Sizes
/// are deterministic for a toolchain, so these are budgets, not timings.
#[test]
fn binaries_fit_their_size_budgets() {
    if emulator().is_some() {
        return;
    }
    let router = binary("mipsel-unknown-linux-musl", "router");
    let required = std::env::var("SOCKSD_CROSS").is_ok_and(|l| l.contains("mipsel-unknown-linux-musl/router"));
    match std::fs::metadata(&router) {
        Ok(m) => assert!(m.len() <= 400 << 10, "{}: {} bytes, over 400 KiB", router.display(), m.len()),
        Err(_) => assert!(!required, "{} missing", router.display()),
    }
    // The host binary the tests run, when `cargo test --release` built it.
    let host = env!("CARGO_BIN_EXE_socksd");
    // Not when the environment replaces the profile (OpenWrt's build does,
    // with CARGO_PROFILE_RELEASE_*): the budget is for Cargo.toml's.
    let own_profile = !std::env::vars().any(|(k, _)| k.starts_with("CARGO_PROFILE_RELEASE_"));
    // Nor with the cargo feature gssapi (about 35 KB more): the budget is
    // the default build's, which routers use.
    let default_features = !cfg!(feature = "gssapi");
    if cfg!(all(target_arch = "x86_64", target_env = "gnu"))
        && host.contains("/release/")
        && own_profile
        && default_features
    {
        let n = std::fs::metadata(host).unwrap().len();
        assert!(n <= 544 << 10, "{host}: {n} bytes, over 544 KiB");
    }
}
