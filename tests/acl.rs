//! Access control on real connections: --allow, --allow-dest, --deny-dest,
//! --auth-once.

mod common;

use common::*;
use socksd::auth::User;
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};

fn cidr(s: &str) -> socksd::acl::Cidr {
    s.parse().unwrap()
}

#[test]
fn allow_limits_clients_before_any_reply() {
    let mut cfg = config();
    cfg.acl.allow = vec![cidr("127.0.0.2/32")];
    let (_srv, proxy) = start(cfg);
    let echo = echo_server("127.0.0.1:0");
    let mut outsider = connect_from("127.0.0.1:0", proxy);
    let _ = outsider.write_all(&[5, 1, 0]);
    assert!(closed_without_data(&mut outsider), "closed before any reply");
    let mut ok = connect_from("127.0.0.2:0", proxy);
    ok.write_all(&[5, 1, 0]).unwrap();
    let mut m = [0u8; 2];
    ok.read_exact(&mut m).unwrap();
    assert_eq!(m, [5, 0]);
    ok.write_all(&s5_request(1, &addr_bytes(echo))).unwrap();
    assert_eq!(read_s5_reply(&mut ok).unwrap().0, 0);
    echo_check(&mut ok, b"allowed");
}

#[test]
fn deny_dest_checked_on_every_address_after_resolution() {
    let mut cfg = config();
    cfg.acl.deny_dest = vec![cidr("127.0.0.0/8").into(), cidr("::1").into()];
    let (_srv, proxy) = start(cfg);
    let echo = echo_server("127.0.0.1:0");
    let rep = |dst: &[u8]| s5_connect(proxy, dst).1;
    assert_eq!(rep(&addr_bytes(echo)), 0x02, "by IP");
    assert_eq!(rep(&domain_bytes("localhost", echo.port())), 0x02, "by name, after resolution");
    assert_eq!(rep(&domain_bytes("127.0.0.1", echo.port())), 0x02, "IP literal as a name");
    let mapped: SocketAddr = format!("[::ffff:127.0.0.1]:{}", echo.port()).parse().unwrap();
    assert_eq!(rep(&addr_bytes(mapped)), 0x02, "IPv4-mapped spelling");
    assert_eq!(rep(&addr_bytes(SocketAddr::new("::1".parse().unwrap(), echo.port()))), 0x02);
    let mut s = connect(proxy);
    s.write_all(&s4_request(1, echo, b"", None)).unwrap();
    assert_eq!(read_s4_reply(&mut s).unwrap()[1], 0x5B, "SOCKS4 gets 0x5B");
}

#[test]
fn allow_dest_admits_only_its_networks() {
    let mut cfg = config();
    cfg.acl.allow_dest = vec![cidr("127.0.0.2/32").into()];
    let (srv, proxy) = start(cfg);
    let near = echo_server("127.0.0.1:0");
    let far = echo_server("127.0.0.2:0");
    assert_eq!(s5_connect(proxy, &addr_bytes(near)).1, 0x02);
    let (mut s, rep, _) = s5_connect(proxy, &addr_bytes(far));
    assert_eq!(rep, 0);
    echo_check(&mut s, b"allowed destination");
    // UDP datagrams to a refused destination are dropped and counted.
    let (_ctl, rep, relay) = s5_associate(proxy, &addr_bytes("0.0.0.0:0".parse().unwrap()));
    assert_eq!(rep, 0);
    let target = UdpSocket::bind("127.0.0.1:0").unwrap();
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let before = srv.udp_dropped();
    let mut d = vec![0, 0, 0];
    d.extend(addr_bytes(target.local_addr().unwrap()));
    d.extend_from_slice(b"blocked");
    u.send_to(&d, relay).unwrap();
    let end = std::time::Instant::now() + IO_TIMEOUT;
    while srv.udp_dropped() == before {
        assert!(std::time::Instant::now() < end);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    target.set_nonblocking(true).unwrap();
    assert!(target.recv(&mut [0u8; 16]).is_err(), "nothing reached the refused target");
}

#[test]
fn auth_once_lets_a_known_ip_skip_the_password() {
    let mut cfg = config();
    cfg.users = vec![User::parse("alice:pw").unwrap()];
    cfg.auth_once = true;
    let (_srv, proxy) = start(cfg);
    let echo = echo_server("127.0.0.1:0");
    let no_auth_only = |src: &str| {
        let mut s = connect_from(src, proxy);
        s.write_all(&[5, 1, 0]).unwrap();
        let mut m = [0u8; 2];
        s.read_exact(&mut m).unwrap();
        (s, m[1])
    };
    // Before authenticating: no-auth is not acceptable.
    assert_eq!(no_auth_only("127.0.0.1:0").1, 0xFF);
    let (mut s, st) = s5_login(proxy, "alice", "pw");
    assert_eq!(st, 0);
    s.write_all(&s5_request(1, &addr_bytes(echo))).unwrap();
    assert_eq!(read_s5_reply(&mut s).unwrap().0, 0);
    // Now the same IP may use no-auth (a browser, say) ...
    let (mut b, m) = no_auth_only("127.0.0.1:0");
    assert_eq!(m, 0);
    b.write_all(&s5_request(1, &addr_bytes(echo))).unwrap();
    assert_eq!(read_s5_reply(&mut b).unwrap().0, 0);
    echo_check(&mut b, b"browser");
    // ... but another IP may not, and a failed login teaches nothing.
    assert_eq!(no_auth_only("127.0.0.3:0").1, 0xFF);
}

/// Issue 26, item 6: destination rules by port, for both families and
/// for names after resolution ("no mail through my proxy").
#[test]
fn deny_dest_by_port() {
    let echo = echo_server("127.0.0.1:0");
    let other = echo_server("127.0.0.1:0");
    let mut cfg = config();
    cfg.acl.deny_dest = vec![format!("*:{}", echo.port()).parse().unwrap()];
    let (_srv, proxy) = start(cfg);
    let rep = |dst: &[u8]| s5_connect(proxy, dst).1;
    assert_eq!(rep(&addr_bytes(echo)), 0x02, "by IP");
    assert_eq!(rep(&domain_bytes("localhost", echo.port())), 0x02, "by name");
    let v6: SocketAddr = format!("[::1]:{}", echo.port()).parse().unwrap();
    assert_eq!(rep(&addr_bytes(v6)), 0x02, "IPv6");
    let (mut s, r, _) = s5_connect(proxy, &addr_bytes(other));
    assert_eq!(r, 0, "another port");
    echo_check(&mut s, b"allowed");
    // A range, IPv4 only.
    let mut cfg = config();
    let lo = echo.port().min(other.port());
    cfg.acl.deny_dest = vec![format!("127.0.0.0/8:{lo}-{}", lo).parse().unwrap()];
    let (_srv, proxy) = start(cfg);
    let low = if echo.port() == lo { echo } else { other };
    assert_eq!(s5_connect(proxy, &addr_bytes(low)).1, 0x02);
    // Flags spell them so.
    for rule in ["0.0.0.0/0:25", "*:1-1023", "[::/0]:25"] {
        assert!(socksd::config::parse_args(&["--deny-dest", rule]).is_ok(), "{rule}");
    }
    assert!(socksd::config::parse_args(&["--deny-dest", "::/0:25"]).is_err(), "IPv6 with a port needs brackets");
}
