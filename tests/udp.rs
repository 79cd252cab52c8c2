//! UDP ASSOCIATE: round trips to IPv4, IPv6 and named targets, the source
//! checks, fragments, NAT flags, teardown, and PySocks as a real client.

mod common;

use common::*;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A UDP echo target that counts what it receives.
fn udp_echo(bind: &str) -> (SocketAddr, Arc<AtomicUsize>) {
    let s = UdpSocket::bind(bind).unwrap();
    let a = s.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        let mut b = [0u8; 65536];
        while let Ok((n, from)) = s.recv_from(&mut b) {
            c.fetch_add(1, Ordering::SeqCst);
            let _ = s.send_to(&b[..n], from);
        }
    });
    (a, count)
}

fn udp_client() -> UdpSocket {
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    u
}

/// RSV RSV FRAG + ATYP ADDR PORT + DATA.
fn dgram(frag: u8, dst: &[u8], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, frag];
    v.extend_from_slice(dst);
    v.extend_from_slice(data);
    v
}

/// Sends `data` to `dst` through the relay and returns the reply's source
/// (from its header) and payload.
fn round_trip(u: &UdpSocket, relay: SocketAddr, dst: &[u8], data: &[u8]) -> (SocketAddr, Vec<u8>) {
    u.send_to(&dgram(0, dst, data), relay).unwrap();
    let mut b = [0u8; 65536];
    let (n, from) = u.recv_from(&mut b).unwrap();
    assert_eq!(from, relay, "replies come from the relay address");
    assert_eq!(b[..3], [0, 0, 0]);
    let (src, off) = match b[3] {
        1 => (SocketAddr::from(([b[4], b[5], b[6], b[7]], u16::from_be_bytes([b[8], b[9]]))), 10),
        4 => {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&b[4..20]);
            (SocketAddr::from((ip, u16::from_be_bytes([b[20], b[21]]))), 22)
        }
        t => panic!("ATYP {t}"),
    };
    (src, b[off..n].to_vec())
}

/// Waits (bounded) until the server's drop counter passes `before`.
fn wait_dropped(srv: &socksd::Server, before: u64) {
    let end = Instant::now() + IO_TIMEOUT;
    while srv.udp_dropped() <= before {
        assert!(Instant::now() < end, "datagram was not dropped");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn round_trips_ipv4_ipv6_and_names_in_one_association() {
    let (_srv, proxy) = start(config());
    let (e4, _) = udp_echo("127.0.0.1:0");
    let (e6, _) = udp_echo("[::1]:0");
    let (ctl, rep, relay) = s5_associate(proxy, &addr_bytes("0.0.0.0:0".parse().unwrap()));
    assert_eq!(rep, 0);
    assert_eq!(relay.ip().to_string(), "127.0.0.1", "BND is reachable, never 0.0.0.0");
    let u = udp_client();
    for i in 0..3 {
        let (src, data) = round_trip(&u, relay, &addr_bytes(e4), format!("v4 {i}").as_bytes());
        assert_eq!((src, data), (e4, format!("v4 {i}").into_bytes()), "header names the true source");
        let (src, data) = round_trip(&u, relay, &addr_bytes(e6), b"over v6");
        assert_eq!((src, data.as_slice()), (e6, &b"over v6"[..]));
        let (src, data) = round_trip(&u, relay, &domain_bytes("localhost", e4.port()), b"by name");
        assert_eq!((src.port(), data.as_slice()), (e4.port(), &b"by name"[..]));
        assert!(src.ip().is_loopback());
    }
    // A large datagram survives intact.
    let big = pattern(3, 60_000);
    assert_eq!(round_trip(&u, relay, &addr_bytes(e4), &big).1, big);
    drop(ctl);
}

#[test]
fn drops_other_sources_and_fragments() {
    let (srv, proxy) = start(config());
    let (e4, count) = udp_echo("127.0.0.1:0");
    let (_ctl, _, relay) = s5_associate(proxy, &addr_bytes("0.0.0.0:0".parse().unwrap()));
    let u = udp_client();
    round_trip(&u, relay, &addr_bytes(e4), b"learn my port");
    let seen = count.load(Ordering::SeqCst);

    // Same IP, another port: not the client any more.
    let other = udp_client();
    let before = srv.udp_dropped();
    other.send_to(&dgram(0, &addr_bytes(e4), b"intruder"), relay).unwrap();
    wait_dropped(&srv, before);
    // FRAG != 0: no reassembly, dropped.
    let before = srv.udp_dropped();
    u.send_to(&dgram(1, &addr_bytes(e4), b"fragment"), relay).unwrap();
    wait_dropped(&srv, before);
    // Too short to hold a header.
    let before = srv.udp_dropped();
    u.send_to(&[0, 0, 0, 1, 127], relay).unwrap();
    wait_dropped(&srv, before);
    assert_eq!(count.load(Ordering::SeqCst), seen, "nothing dropped reached the target");
    // The client is still served.
    assert_eq!(round_trip(&u, relay, &addr_bytes(e4), b"still here").1, b"still here");
}

#[test]
fn request_naming_the_target_or_itself_still_works() {
    let (srv, proxy) = start(config());
    // Some clients put the target in DST.ADDR: never reject for it. (The
    // target is on another loopback address than the client, as it would
    // be on a network; a DST equal to the client's own IP pins the port.)
    let (far, _) = udp_echo("127.0.0.2:0");
    let (_c1, rep, relay) = s5_associate(proxy, &addr_bytes(far));
    assert_eq!(rep, 0);
    let u = udp_client();
    assert_eq!(round_trip(&u, relay, &addr_bytes(far), b"t").1, b"t");
    let (e4, _) = udp_echo("127.0.0.1:0");
    // Naming its own IP and port pins the port: another port is dropped.
    let u = udp_client();
    let (_c2, rep, relay) = s5_associate(proxy, &addr_bytes(u.local_addr().unwrap()));
    assert_eq!(rep, 0);
    let other = udp_client();
    let before = srv.udp_dropped();
    other.send_to(&dgram(0, &addr_bytes(e4), b"x"), relay).unwrap();
    wait_dropped(&srv, before);
    assert_eq!(round_trip(&u, relay, &addr_bytes(e4), b"pinned").1, b"pinned");
}

#[test]
fn association_ends_with_its_control_connection() {
    let (_srv, proxy) = start(config());
    let (e4, _) = udp_echo("127.0.0.1:0");
    let (ctl, _, relay) = s5_associate(proxy, &addr_bytes("0.0.0.0:0".parse().unwrap()));
    let u = udp_client();
    round_trip(&u, relay, &addr_bytes(e4), b"alive");
    drop(ctl);
    // A connected UDP socket sees the ICMP port-unreachable once the relay
    // socket is closed.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.connect(relay).unwrap();
    probe.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let end = Instant::now() + IO_TIMEOUT;
    loop {
        assert!(Instant::now() < end, "relay port still open");
        let _ = probe.send(&dgram(0, &addr_bytes(e4), b"?"));
        match probe.recv(&mut [0u8; 64]) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
            _ => {}
        }
    }
}

#[test]
fn nat_flags_advertise_and_port_range() {
    // Find two free consecutive ports for the range.
    let lo = (42000..60000u16)
        .step_by(7)
        .find(|&p| UdpSocket::bind(("127.0.0.1", p)).is_ok() && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok())
        .unwrap();
    let mut cfg = config();
    cfg.udp_advertise = Some("127.0.0.9".parse().unwrap());
    cfg.udp_ports = Some((lo, lo + 1));
    // One client (127.0.0.1) takes the whole range here: no per-client share.
    cfg.udp_ports_per_ip = Some(0);
    let (_srv, proxy) = start(cfg);
    let any = addr_bytes("0.0.0.0:0".parse().unwrap());
    let (_a, rep_a, bnd_a) = s5_associate(proxy, &any);
    let (_b, rep_b, bnd_b) = s5_associate(proxy, &any);
    assert_eq!((rep_a, rep_b), (0, 0));
    for b in [bnd_a, bnd_b] {
        assert_eq!(b.ip().to_string(), "127.0.0.9", "advertised address in BND");
        assert!((lo..=lo + 1).contains(&b.port()), "port {} outside {lo}-{}", b.port(), lo + 1);
    }
    assert_ne!(bnd_a.port(), bnd_b.port());
    let (mut c, rep_c, _) = s5_associate(proxy, &any);
    assert_eq!(rep_c, 0x01, "exhausted range is a failure reply, not a hang");
    assert!(closed_without_data(&mut c));
    // The relay really is on the local address, at the advertised port.
    let (e4, _) = udp_echo("127.0.0.1:0");
    let u = udp_client();
    let relay = SocketAddr::new("127.0.0.1".parse().unwrap(), bnd_a.port());
    assert_eq!(round_trip(&u, relay, &addr_bytes(e4), b"nat").1, b"nat");
}

#[test]
fn no_udp_flag_refuses() {
    let mut cfg = config();
    cfg.no_udp = true;
    let (_srv, proxy) = start(cfg);
    let (mut c, rep, _) = s5_associate(proxy, &addr_bytes("0.0.0.0:0".parse().unwrap()));
    assert_eq!(rep, 0x07);
    assert!(closed_without_data(&mut c));
}

/// PySocks' UDP client, a real third-party implementation; skipped with a
/// message where Python or PySocks is missing (`.ci/run` installs it).
#[test]
fn pysocks_udp_client() {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import socks"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: python3 with PySocks is not available (pip install PySocks)");
        return;
    }
    let (_srv, proxy) = start(config());
    let (e4, _) = udp_echo("127.0.0.1:0");
    let script = format!(
        "import socket, socks\n\
         s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.set_proxy(socks.SOCKS5, '127.0.0.1', {})\n\
         s.settimeout(10)\n\
         for i in range(3):\n\
         \x20   s.sendto(b'dns-ish query %d' % i, ('127.0.0.1', {}))\n\
         \x20   data, src = s.recvfrom(2048)\n\
         \x20   assert data == b'dns-ish query %d' % i, data\n\
         \x20   assert src == ('127.0.0.1', {}), src\n\
         print('ok')\n",
        proxy.port(),
        e4.port(),
        e4.port()
    );
    let out = std::process::Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
