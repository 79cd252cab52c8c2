//! Resources a client can hold: slots freed the moment a client leaves,
//! per-client caps, descriptors counted for what connections really hold,
//! and keepalive for peers that vanish.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// BIND, read the first reply, close: 200 times. Every slot must be free
/// at once, not after --bind-timeout (60 s).
#[test]
fn closing_during_bind_wait_frees_the_slot_at_once() {
    let (srv, proxy) = start(config());
    for _ in 0..200 {
        let mut s = connect(proxy);
        s.write_all(&[5, 1, 0]).unwrap();
        let mut m = [0u8; 2];
        s.read_exact(&mut m).unwrap();
        s.write_all(&s5_request(2, &addr_bytes(sa("127.0.0.1:0")))).unwrap();
        assert_eq!(read_s5_reply(&mut s).unwrap().0, 0);
    }
    wait_idle(&srv);
    // SOCKS4 BIND too, and a reset instead of a FIN.
    for _ in 0..50 {
        let mut s = connect(proxy);
        s.write_all(&s4_request(2, sa("127.0.0.1:0"), b"", None)).unwrap();
        assert_eq!(read_s4_reply(&mut s).unwrap()[1], 0x5A);
        socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
    }
    wait_idle(&srv);
}

/// A FIN after pipelined data is a half-close, not a goodbye: the request
/// is still served and the data relayed.
#[test]
fn fin_after_pipelined_data_is_still_served() {
    let (_srv, proxy) = start(config());
    let counter = target("127.0.0.1:0", |mut s| {
        let n = read_to_end(&mut s).len();
        s.write_all(n.to_string().as_bytes()).unwrap();
    });
    let mut s = connect(proxy);
    let mut req = vec![5, 1, 0];
    req.extend(s5_request(1, &addr_bytes(counter)));
    req.extend_from_slice(b"pipelined");
    s.write_all(&req).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut m = [0u8; 2];
    s.read_exact(&mut m).unwrap();
    assert_eq!(read_s5_reply(&mut s).unwrap().0, 0);
    assert_eq!(read_to_end(&mut s), b"9");
}

/// A connect that never completes (a route into a void with a fixed
/// neighbour entry, so no ARP failure ends it, in a private network
/// namespace): closing the client frees the slot at once.
#[test]
fn closing_during_connect_frees_the_slot_at_once() {
    if !sandboxed("closing_during_connect_frees_the_slot_at_once") {
        return;
    }
    sh("ip link add void0 type veth peer name void1 && ip link set void0 up && ip link set void1 up \
        && ip addr add 10.98.0.1/24 dev void0 && ip route add 10.99.0.0/16 dev void0 \
        && ip neigh add 10.99.0.1 lladdr 02:00:00:00:00:01 dev void0 nud permanent");
    let mut cfg = config();
    cfg.connect_timeout = Duration::from_secs(60);
    let (srv, proxy) = start(cfg);
    for _ in 0..50 {
        let mut s = connect(proxy);
        let mut req = vec![5, 1, 0];
        req.extend(s5_request(1, &addr_bytes(sa("10.99.0.1:80"))));
        s.write_all(&req).unwrap();
        let mut m = [0u8; 2];
        s.read_exact(&mut m).unwrap();
    }
    wait_idle(&srv);
}

#[test]
fn max_conns_per_ip_caps_one_client_not_others() {
    let mut cfg = config();
    cfg.max_conns_per_ip = Some(2);
    let (_srv, proxy) = start(cfg);
    let echo = echo_server("127.0.0.1:0");
    let (_a, ra, _) = s5_connect(proxy, &addr_bytes(echo));
    let (_b, rb, _) = s5_connect(proxy, &addr_bytes(echo));
    assert_eq!((ra, rb), (0, 0));
    let mut c = connect(proxy);
    let _ = c.write_all(&[5, 1, 0]);
    assert!(closed_without_data(&mut c), "third from the same client closed");
    let mut other = connect_from("127.0.0.2:0", proxy);
    other.write_all(&[5, 1, 0]).unwrap();
    let mut m = [0u8; 2];
    other.read_exact(&mut m).unwrap();
    assert_eq!(m, [5, 0], "another client is served");
}

/// One client may hold only its share of a --udp-ports range (default: a
/// quarter, here one port of four); others still get ports.
#[test]
fn udp_ports_are_shared_between_clients() {
    let lo =
        (43000..60000u16).step_by(11).find(|&p| (0..4).all(|i| UdpSocket::bind(("127.0.0.1", p + i)).is_ok())).unwrap();
    let mut cfg = config();
    cfg.udp_ports = Some((lo, lo + 3));
    let (_srv, proxy) = start(cfg);
    let any = addr_bytes(sa("0.0.0.0:0"));
    let (_a, ra, _) = s5_associate(proxy, &any);
    let (_b, rb, _) = s5_associate(proxy, &any);
    assert_eq!((ra, rb), (0, 0x01), "second port for the same client refused");
    for src in ["127.0.0.2:0", "127.0.0.3:0", "127.0.0.4:0"] {
        let mut s = connect_from(src, proxy);
        s.write_all(&[5, 1, 0]).unwrap();
        let mut m = [0u8; 2];
        s.read_exact(&mut m).unwrap();
        s.write_all(&s5_request(3, &any)).unwrap();
        assert_eq!(read_s5_reply(&mut s).unwrap().0, 0, "{src} gets its port");
        std::mem::forget(s); // hold it for the rest of the test
    }
}

/// Under the connection cap, a client can never push the process into
/// EMFILE: here one client fills every slot but one with UDP associations
/// using both address families (four descriptors each), and the last slot
/// still relays.
#[test]
fn udp_associations_cannot_exhaust_descriptors_under_the_cap() {
    let bin = common::program_sh(env!("CARGO_BIN_EXE_socksd"));
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -n 200 && exec {bin} --listen 127.0.0.1:0 --threads 1 --max-conns-per-ip 0"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let _guard = ChildGuard(child);
    let mut limits = None;
    let mut proxy = None;
    let mut line = String::new();
    while proxy.is_none() {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "no startup lines");
        if let Some(rest) = line.split("up to ").nth(1) {
            limits = rest.split(' ').next().and_then(|n| n.parse::<usize>().ok());
        }
        if let Some(a) = line.trim_end().strip_prefix("socksd: info: listening on ") {
            proxy = a.parse::<SocketAddr>().ok();
        }
    }
    let (proxy, max) = (proxy.unwrap(), limits.expect("limits line"));
    println!("--max-conns derived from ulimit -n 200: {max}");
    let e4 = UdpSocket::bind("127.0.0.1:0").unwrap();
    let e6 = UdpSocket::bind("[::1]:0").unwrap();
    let any = addr_bytes(sa("0.0.0.0:0"));
    let mut held = Vec::new();
    for i in 0..max - 1 {
        let (ctl, rep, relay) = s5_associate(proxy, &any);
        assert_eq!(rep, 0, "association {i} under the cap");
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        for t in [&e4, &e6] {
            let d = udp_request(t.local_addr().unwrap(), b"x");
            u.send_to(&d, relay).unwrap();
        }
        held.push((ctl, u));
    }
    // Every association opened its out sockets: both targets heard from all.
    for t in [&e4, &e6] {
        t.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        for _ in 0..max - 1 {
            t.recv(&mut [0u8; 64]).unwrap();
        }
    }
    let echo = echo_server("127.0.0.1:0");
    let (mut s, rep, _) = s5_connect(proxy, &addr_bytes(echo));
    assert_eq!(rep, 0, "the last slot under the cap still connects");
    echo_check(&mut s, b"still serving");
}

/// The kernel's timer on a socket, from /proc/net/tcp{,6}: 2 is keepalive.
/// The file prints each address as the kernel's 32-bit words, in the
/// kernel's byte order: native on real hardware, the host's (not the
/// program's) under qemu-user with a big-endian guest. Either order is
/// accepted.
fn tcp_timer(local: SocketAddr, remote: SocketAddr) -> Option<u8> {
    let word = |c: [u8; 4], be: bool| format!("{:08X}", if be { u32::from_be_bytes(c) } else { u32::from_le_bytes(c) });
    let hex = |a: SocketAddr, be: bool| match a {
        SocketAddr::V4(v) => format!("{}:{:04X}", word(v.ip().octets(), be), v.port()),
        SocketAddr::V6(v) => {
            let o = v.ip().octets();
            let words: String = o.chunks(4).map(|c| word([c[0], c[1], c[2], c[3]], be)).collect();
            format!("{words}:{:04X}", v.port())
        }
    };
    for be in [false, true] {
        let (l, r) = (hex(local, be), hex(remote, be));
        for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
            for line in std::fs::read_to_string(f).ok()?.lines().skip(1) {
                let cols: Vec<&str> = line.split_whitespace().collect();
                if cols.len() > 5 && cols[1] == l && cols[2] == r {
                    return cols[5].split(':').next()?.parse().ok();
                }
            }
        }
    }
    None
}

/// Client and target sockets carry TCP keepalive, so a peer that vanishes
/// behind a NAT is noticed; --keepalive 0 turns it off.
#[test]
fn keepalive_on_client_and_target_sockets() {
    for (keepalive, want) in [(Some(Duration::from_secs(30)), 2), (None, 0)] {
        let mut cfg = config();
        cfg.keepalive = keepalive;
        let (_srv, proxy) = start(cfg);
        let echo = echo_server("127.0.0.1:0");
        let (mut s, rep, out) = s5_connect(proxy, &addr_bytes(echo));
        assert_eq!(rep, 0);
        echo_check(&mut s, b"idle from now on");
        let client = s.local_addr().unwrap();
        let end = Instant::now() + IO_TIMEOUT;
        // Wait for the delayed ACKs to settle (a retransmit/ack timer may
        // show briefly), then read the idle sockets' timers.
        let (c, t) = loop {
            let c = tcp_timer(proxy, client);
            let t = tcp_timer(out, echo);
            if (c == Some(want) && t == Some(want)) || Instant::now() > end {
                break (c, t);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!((c, t), (Some(want), Some(want)), "keepalive {keepalive:?}: client side, target side");
        drop(s);
        let _ = TcpStream::connect(proxy);
    }
}
