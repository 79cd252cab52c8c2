//! Where a client may go: unspecified addresses, `--deny-dest self`, the
//! rules applied to BIND peers and UDP reply sources, and the outgoing
//! interface on every outward socket.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// SOCKS5 CONNECT by address: the reply code.
fn rep_ip(proxy: SocketAddr, to: SocketAddr) -> u8 {
    s5_connect(proxy, &addr_bytes(to)).1
}

fn rep_name(proxy: SocketAddr, name: &str, port: u16) -> u8 {
    s5_connect(proxy, &domain_bytes(name, port)).1
}

fn s4_rep(proxy: SocketAddr, to: SocketAddr, name: Option<&str>) -> u8 {
    let mut s = connect(proxy);
    s.write_all(&s4_request(1, to, b"", name)).unwrap();
    read_s4_reply(&mut s).unwrap()[1]
}

/// On Linux 0.0.0.0 and :: reach the host's own services. With the old
/// router recipe (loopback denied), every spelling of them must be refused.
#[test]
fn unspecified_destinations_are_refused() {
    let mut cfg = config();
    cfg.acl.deny_dest = vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()];
    let (srv, proxy) = start(cfg);
    let v4 = banner_server("127.0.0.1:0", b"loopback-only service");
    let v6 = banner_server("[::1]:0", b"loopback-only service");
    let p4 = v4.port();
    for to in [format!("0.0.0.0:{p4}"), format!("0.1.2.3:{p4}"), format!("[::ffff:0.0.0.0]:{p4}")] {
        assert_eq!(rep_ip(proxy, sa(&to)), 0x02, "{to}");
    }
    assert_eq!(rep_ip(proxy, SocketAddr::new("::".parse().unwrap(), v6.port())), 0x02, "[::]");
    for name in ["0", "0.0.0.0"] {
        assert_eq!(rep_name(proxy, name, p4), 0x02, "name {name}");
    }
    assert_eq!(rep_name(proxy, "::", v6.port()), 0x02, "name ::");
    assert_eq!(s4_rep(proxy, sa(&format!("0.0.0.0:{p4}")), None), 0x5B, "SOCKS4 DSTIP 0.0.0.0");
    assert_eq!(s4_rep(proxy, sa(&format!("0.0.0.1:{p4}")), Some("0.0.0.0")), 0x5B, "SOCKS4a name 0.0.0.0");

    // A UDP datagram to 0.0.0.0:P never reaches the service on 127.0.0.1:P.
    let svc = UdpSocket::bind("127.0.0.1:0").unwrap();
    svc.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let (_ctl, rep, relay) = s5_associate(proxy, &addr_bytes(sa("0.0.0.0:0")));
    assert_eq!(rep, 0);
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let before = srv.udp_dropped();
    let d = udp_request(
        SocketAddr::new("0.0.0.0".parse().unwrap(), svc.local_addr().unwrap().port()),
        b"to the host itself",
    );
    u.send_to(&d, relay).unwrap();
    let end = Instant::now() + IO_TIMEOUT;
    while srv.udp_dropped() == before {
        assert!(Instant::now() < end, "datagram to 0.0.0.0 not dropped");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(svc.recv(&mut [0u8; 64]).is_err(), "nothing reached the service");
}

/// `--deny-dest self` keeps clients off every address of the host, over
/// IPv4 and IPv6: loopback, the unspecified addresses, LAN and WAN
/// addresses (on a veth pair in a private network namespace), and an
/// address added after the server started.
#[test]
fn deny_dest_self_covers_every_address_of_the_host() {
    if !sandboxed("deny_dest_self_covers_every_address_of_the_host") {
        return;
    }
    sh("ip link add lan0 type veth peer name wan0 && ip link set lan0 up && ip link set wan0 up \
        && ip addr add 192.168.1.1/24 dev lan0 && ip addr add fd00::2/64 dev lan0 nodad \
        && ip addr add 198.51.100.7/24 dev wan0 && ip addr add 2001:db8::7/64 dev wan0 nodad");
    let mut cfg = config();
    cfg.acl.deny_self = true;
    let (_srv, proxy) = start(cfg);
    let (_open, open_proxy) = start(config());
    let addrs = ["127.0.0.1", "127.0.0.2", "::1", "192.168.1.1", "fd00::2", "198.51.100.7", "2001:db8::7"];
    let check = |ip: &str| {
        let svc = banner_server(&SocketAddr::new(ip.parse().unwrap(), 0).to_string(), b"router service");
        // The service is there: without the rule it is reached ...
        let (mut s, rep, _) = s5_connect(open_proxy, &addr_bytes(svc));
        assert_eq!(rep, 0, "{ip} reachable without the rule");
        let mut b = [0u8; 14];
        s.read_exact(&mut b).unwrap();
        // ... and with it refused, however it is spelled.
        assert_eq!(rep_ip(proxy, svc), 0x02, "{ip}");
        assert_eq!(rep_name(proxy, ip, svc.port()), 0x02, "{ip} as a name");
        if let std::net::IpAddr::V4(v4) = svc.ip() {
            let mapped = SocketAddr::new(std::net::IpAddr::V6(v4.to_ipv6_mapped()), svc.port());
            assert_eq!(rep_ip(proxy, mapped), 0x02, "{mapped}");
            assert_eq!(s4_rep(proxy, svc, None), 0x5B, "{ip} by SOCKS4");
        }
        svc.port()
    };
    let mut p = 0;
    for ip in addrs {
        p = check(ip);
    }
    assert_eq!(rep_name(proxy, "localhost", p), 0x02);
    for u in ["0.0.0.0", "::"] {
        assert_eq!(rep_ip(proxy, SocketAddr::new(u.parse().unwrap(), p)), 0x02, "{u}");
    }
    // A WAN address that changes (a reconnect): covered without a restart.
    sh("ip addr add 203.0.113.9/24 dev wan0 && ip addr add 2001:db8:1::9/64 dev wan0 nodad");
    for ip in ["203.0.113.9", "2001:db8:1::9"] {
        check(ip);
    }
    // UDP too.
    let svc = UdpSocket::bind("192.168.1.1:0").unwrap();
    svc.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let (_ctl, rep, relay) = s5_associate(proxy, &addr_bytes(sa("0.0.0.0:0")));
    assert_eq!(rep, 0);
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let d = udp_request(svc.local_addr().unwrap(), b"x");
    u.send_to(&d, relay).unwrap();
    assert!(svc.recv(&mut [0u8; 16]).is_err(), "UDP to the LAN address was relayed");
}

/// Reads BIND's first reply; returns REP and BND.
fn s5_bind(proxy: SocketAddr, expect: SocketAddr) -> (std::net::TcpStream, u8, SocketAddr) {
    let mut s = connect(proxy);
    s.write_all(&[5, 1, 0]).unwrap();
    let mut m = [0u8; 2];
    s.read_exact(&mut m).unwrap();
    s.write_all(&s5_request(2, &addr_bytes(expect))).unwrap();
    let (rep, bnd) = read_s5_reply(&mut s).unwrap();
    (s, rep, bnd)
}

#[test]
fn bind_applies_the_destination_rules() {
    let mut cfg = config();
    cfg.acl.deny_dest = vec!["127.0.0.2/32".parse().unwrap()];
    let (_srv, proxy) = start(cfg);
    // Expecting a denied peer: refused at once.
    assert_eq!(s5_bind(proxy, sa("127.0.0.2:0")).1, 0x02);
    // Expecting anybody, then a denied peer connects: refused.
    let (mut s, rep, bnd) = s5_bind(proxy, sa("0.0.0.0:0"));
    assert_eq!(rep, 0);
    let _peer = connect_from("127.0.0.2:0", bnd);
    assert_eq!(read_s5_reply(&mut s).unwrap().0, 0x02, "peer from a denied network");
    // An allowed peer is relayed.
    let (mut s, rep, bnd) = s5_bind(proxy, sa("0.0.0.0:0"));
    assert_eq!(rep, 0);
    let mut peer = connect_from("127.0.0.3:0", bnd);
    assert_eq!(read_s5_reply(&mut s).unwrap().0, 0);
    peer.write_all(b"allowed").unwrap();
    let mut b = [0u8; 7];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"allowed");
}

/// A client on IPv4 expecting an IPv6 peer: the listener goes on an IPv6
/// address of the same interface, never on the wildcard `::`.
#[test]
fn bind_never_listens_on_a_wildcard_address() {
    if skip_without_getifaddrs("bind_never_listens_on_a_wildcard_address") {
        return;
    }
    let (_srv, proxy) = start(config());
    let (_s, rep, bnd) = s5_bind(proxy, sa("[::1]:0"));
    assert_eq!(rep, 0);
    assert_eq!(bnd.ip().to_string(), "::1", "IPv6 address of the client's interface, not a wildcard");
    let mut cfg = config();
    cfg.listen = vec![sa("[::1]:0")];
    let (_srv6, proxy6) = start(cfg);
    let (_s, rep, bnd) = s5_bind(proxy6, sa("127.0.0.1:0"));
    assert_eq!(rep, 0);
    assert_eq!(bnd.ip().to_string(), "127.0.0.1");
}

/// `--outgoing-iface` binds UDP out sockets and BIND listeners to the
/// interface too: bound to an interface that cannot reach loopback, a
/// datagram to a loopback target does not arrive, and a peer on loopback
/// cannot reach the BIND listener (as a CONNECT cannot reach it either).
#[test]
fn outgoing_iface_applies_to_udp_and_bind() {
    if !sandboxed("outgoing_iface_applies_to_udp_and_bind") {
        return;
    }
    sh("ip link add vpn0 type veth peer name vpn1 && ip link set vpn0 up && ip link set vpn1 up \
        && ip addr add 10.8.0.2/24 dev vpn0");
    let mut cfg = config();
    cfg.outgoing_iface = Some("vpn0".into());
    let (_srv, proxy) = start(cfg);
    let echo = echo_server("127.0.0.1:0");
    assert_ne!(rep_ip(proxy, echo), 0, "premise: TCP through vpn0 cannot reach loopback");
    let target = UdpSocket::bind("127.0.0.1:0").unwrap();
    target.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let (_ctl, rep, relay) = s5_associate(proxy, &addr_bytes(sa("0.0.0.0:0")));
    assert_eq!(rep, 0);
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let d = udp_request(target.local_addr().unwrap(), b"around the vpn");
    u.send_to(&d, relay).unwrap();
    assert!(target.recv(&mut [0u8; 64]).is_err(), "UDP left around the pinned interface");
    let (_s, rep, bnd) = s5_bind(proxy, sa("0.0.0.0:0"));
    assert_eq!(rep, 0);
    let peer = std::net::TcpStream::connect_timeout(&bnd, Duration::from_millis(500));
    assert!(peer.is_err(), "BIND listener took a peer from outside the pinned interface");
}

/// Replies into an association: never from a denied source, and by
/// default only from addresses the client has sent to.
#[test]
fn udp_replies_only_from_allowed_sources_the_client_sent_to() {
    for full_cone in [false, true] {
        let mut cfg = config();
        cfg.acl.deny_dest = vec!["127.0.0.3/32".parse().unwrap()];
        cfg.udp_full_cone = full_cone;
        let (_srv, proxy) = start(cfg);
        let (_ctl, rep, relay) = s5_associate(proxy, &addr_bytes(sa("0.0.0.0:0")));
        assert_eq!(rep, 0);
        let target = UdpSocket::bind("127.0.0.1:0").unwrap();
        target.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
        let d = udp_request(target.local_addr().unwrap(), b"hello");
        u.send_to(&d, relay).unwrap();
        let mut b = [0u8; 64];
        let (_, out) = target.recv_from(&mut b).unwrap();
        // From a denied address: never.
        UdpSocket::bind("127.0.0.3:0").unwrap().send_to(b"injected", out).unwrap();
        assert!(u.recv(&mut b).is_err(), "full_cone={full_cone}: reply from a denied source relayed");
        // From an allowed address the client never sent to: only full cone.
        UdpSocket::bind("127.0.0.4:0").unwrap().send_to(b"stranger", out).unwrap();
        let got = u.recv(&mut b);
        assert_eq!(got.is_ok(), full_cone, "full_cone={full_cone}: stranger's datagram");
        // From the target: always.
        target.send_to(b"answer", out).unwrap();
        let n = u.recv(&mut b).unwrap();
        assert!(b[..n].ends_with(b"answer"));
    }
}
