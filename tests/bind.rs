//! BIND, SOCKS5 and SOCKS4: two replies, the peer check, the timeout, and
//! an FTP-style active-mode flow.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Greeting + BIND request; returns the control stream and the first reply.
fn s5_bind(proxy: SocketAddr, dst: SocketAddr) -> (TcpStream, u8, SocketAddr) {
    let mut s = connect(proxy);
    s.write_all(&[5, 1, 0]).unwrap();
    let mut m = [0u8; 2];
    s.read_exact(&mut m).unwrap();
    s.write_all(&s5_request(2, &addr_bytes(dst))).unwrap();
    let (rep, bnd) = read_s5_reply(&mut s).unwrap();
    (s, rep, bnd)
}

fn s4_addr(r: &[u8; 8]) -> SocketAddr {
    SocketAddr::from(([r[4], r[5], r[6], r[7]], u16::from_be_bytes([r[2], r[3]])))
}

#[test]
fn socks5_bind_two_replies_and_data_both_ways() {
    let (_srv, proxy) = start(config());
    let (mut c, rep, bnd) = s5_bind(proxy, "127.0.0.1:0".parse().unwrap());
    assert_eq!(rep, 0);
    assert_eq!(bnd.ip().to_string(), "127.0.0.1", "listens where the client came in");
    assert_ne!(bnd.port(), 0);
    let mut peer = connect(bnd);
    let (rep2, peer_seen) = read_s5_reply(&mut c).unwrap();
    assert_eq!(rep2, 0);
    assert_eq!(peer_seen, peer.local_addr().unwrap(), "second reply names the peer");
    peer.write_all(b"from the peer").unwrap();
    let mut b = [0u8; 13];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"from the peer");
    c.write_all(b"from the client").unwrap();
    let mut b = [0u8; 15];
    peer.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"from the client");
    // Exactly one connection: the listener is gone.
    let again = TcpStream::connect(bnd);
    assert!(again.is_err(), "listener closed after its one peer");
}

#[test]
fn socks4_bind_two_replies_and_data() {
    let (_srv, proxy) = start(config());
    let mut c = connect(proxy);
    c.write_all(&s4_request(2, "127.0.0.1:21".parse().unwrap(), b"ftp", None)).unwrap();
    let r1 = read_s4_reply(&mut c).unwrap();
    assert_eq!(r1[..2], [0, 0x5A]);
    let bnd = s4_addr(&r1);
    assert_eq!(bnd.ip().to_string(), "127.0.0.1");
    let mut peer = connect(bnd);
    let r2 = read_s4_reply(&mut c).unwrap();
    assert_eq!(r2[..2], [0, 0x5A]);
    assert_eq!(s4_addr(&r2), peer.local_addr().unwrap());
    echo_relay_check(&mut c, &mut peer);
}

fn echo_relay_check(c: &mut TcpStream, peer: &mut TcpStream) {
    let data = pattern(9, 200_000);
    peer.write_all(&data).unwrap();
    let mut got = vec![0u8; data.len()];
    c.read_exact(&mut got).unwrap();
    assert!(got == data);
    c.write_all(b"ack").unwrap();
    let mut b = [0u8; 3];
    peer.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ack");
}

#[test]
fn bind_checks_the_peer_address() {
    let (_srv, proxy) = start(config());
    // Expecting 127.0.0.2; a peer from 127.0.0.1 is refused (0x02) ...
    let (mut c, rep, bnd) = s5_bind(proxy, "127.0.0.2:0".parse().unwrap());
    assert_eq!(rep, 0);
    let _wrong = connect_from("127.0.0.1:0", bnd);
    assert_eq!(read_s5_reply(&mut c).unwrap().0, 0x02);
    assert!(closed_without_data(&mut c));
    // ... one from 127.0.0.2 is let in.
    let (mut c, _, bnd) = s5_bind(proxy, "127.0.0.2:0".parse().unwrap());
    let mut right = connect_from("127.0.0.2:0", bnd);
    let (rep2, seen) = read_s5_reply(&mut c).unwrap();
    assert_eq!((rep2, seen), (0, right.local_addr().unwrap()));
    echo_relay_check(&mut c, &mut right);
    // SOCKS4: 0x5B and close.
    let mut c = connect(proxy);
    c.write_all(&s4_request(2, "127.0.0.2:21".parse().unwrap(), b"", None)).unwrap();
    let bnd = s4_addr(&read_s4_reply(&mut c).unwrap());
    let _wrong = connect_from("127.0.0.1:0", bnd);
    assert_eq!(read_s4_reply(&mut c).unwrap()[1], 0x5B);
    assert!(closed_without_data(&mut c));
}

#[test]
fn bind_times_out_with_a_failure_reply() {
    let mut cfg = config();
    cfg.bind_timeout = Duration::from_millis(300);
    let (_srv, proxy) = start(cfg);
    let (mut c, rep, bnd) = s5_bind(proxy, "127.0.0.1:0".parse().unwrap());
    assert_eq!(rep, 0);
    assert_ne!(read_s5_reply(&mut c).unwrap().0, 0);
    assert!(closed_without_data(&mut c));
    assert!(TcpStream::connect(bnd).is_err(), "listener closed at the timeout");
    let mut c = connect(proxy);
    c.write_all(&s4_request(2, "127.0.0.1:21".parse().unwrap(), b"", None)).unwrap();
    assert_eq!(read_s4_reply(&mut c).unwrap()[1], 0x5A);
    assert_eq!(read_s4_reply(&mut c).unwrap()[1], 0x5B);
}

#[test]
fn bind_listens_in_the_family_of_the_peer() {
    // Over IPv4 for an IPv6 peer: socksd looks up the interface's IPv6 address.
    if skip_without_getifaddrs("bind_listens_in_the_family_of_the_peer") {
        return;
    }
    let (_srv, proxy) = start(config());
    let (mut c, rep, bnd) = s5_bind(proxy, "[::1]:0".parse().unwrap());
    assert_eq!(rep, 0);
    assert!(bnd.is_ipv6(), "{bnd}");
    let mut peer = connect(SocketAddr::new("::1".parse().unwrap(), bnd.port()));
    let (rep2, seen) = read_s5_reply(&mut c).unwrap();
    assert_eq!((rep2, seen), (0, peer.local_addr().unwrap()));
    echo_relay_check(&mut c, &mut peer);
}

#[test]
fn no_bind_flag_refuses() {
    let mut cfg = config();
    cfg.no_bind = true;
    let (_srv, proxy) = start(cfg);
    let (mut c, rep, _) = s5_bind(proxy, "127.0.0.1:0".parse().unwrap());
    assert_eq!(rep, 0x07);
    assert!(closed_without_data(&mut c));
    let mut c = connect(proxy);
    c.write_all(&s4_request(2, "127.0.0.1:21".parse().unwrap(), b"", None)).unwrap();
    assert_eq!(read_s4_reply(&mut c).unwrap()[1], 0x5B);
}

/// Active-mode FTP in miniature: the client reaches the server through a
/// CONNECT, asks socksd to BIND, tells the server the BND address, and the
/// server connects back to deliver a file.
#[test]
fn ftp_style_active_transfer() {
    let file = pattern(21, 300_000);
    let served = file.clone();
    let ftp = target("127.0.0.1:0", move |s| {
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let addr: SocketAddr = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();
        let mut data = TcpStream::connect(addr).unwrap();
        data.write_all(&served).unwrap();
        drop(data);
        w.write_all(b"226 done\n").unwrap();
    });
    let (_srv, proxy) = start(config());
    let (mut control, rep, _) = s5_connect(proxy, &addr_bytes(ftp));
    assert_eq!(rep, 0);
    let (mut data, rep, bnd) = s5_bind(proxy, ftp);
    assert_eq!(rep, 0);
    control.write_all(format!("PORT {bnd}\n").as_bytes()).unwrap();
    assert_eq!(read_s5_reply(&mut data).unwrap().0, 0);
    assert!(read_to_end(&mut data) == file, "file arrives whole, then EOF");
    let mut done = String::new();
    BufReader::new(control).read_line(&mut done).unwrap();
    assert_eq!(done, "226 done\n");
}
