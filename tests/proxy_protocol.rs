//! Behind a load balancer (`--proxy-protocol`): the PROXY protocol header
//! names the client, and every rule, limit, log line and counter acts on
//! that client. The balancer is played by the test, writing the headers
//! HAProxy writes (tests/haproxy.rs puts a real HAProxy in front).

mod common;

use common::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::mpsc::Receiver;
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_socksd");

struct Logged {
    child: ChildGuard,
    addr: SocketAddr,
    lines: Receiver<String>,
}

fn start_logged(args: &[&str]) -> Logged {
    let (child, addr, lines) = spawn_listening(
        program(BIN)
            .args(["--listen", "127.0.0.1:0", "--threads", "2", "--log-connections", "--proxy-protocol"])
            .args(args),
    );
    Logged { child: ChildGuard(child), addr, lines }
}

fn fields(line: &str) -> HashMap<String, String> {
    line.split(' ').filter_map(|w| w.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl Logged {
    /// The next connection-log line.
    fn next_conn(&self) -> HashMap<String, String> {
        let end = Instant::now() + IO_TIMEOUT;
        loop {
            let l = self.lines.recv_timeout(end.saturating_duration_since(Instant::now())).expect("no conn line");
            if let Some(rest) = l.strip_prefix("socksd: info: conn ") {
                return fields(rest);
            }
        }
    }

    /// SIGUSR1's `stats accepted` and `stats closed` lines, by first word.
    fn stats(&self) -> HashMap<String, HashMap<String, String>> {
        // SAFETY: kill has no memory effects; the pid is our own child's.
        unsafe { libc::kill(self.child.0.id() as libc::pid_t, libc::SIGUSR1) };
        let mut out = HashMap::new();
        let end = Instant::now() + IO_TIMEOUT;
        loop {
            let l = self.lines.recv_timeout(end.saturating_duration_since(Instant::now())).expect("no stats");
            let Some(rest) = l.strip_prefix("socksd: info: stats ") else { continue };
            let key = rest.split([' ', '=']).next().unwrap().to_string();
            out.entry(key).or_insert_with(HashMap::new).extend(fields(rest));
            if rest.starts_with("log_suppressed=") {
                return out;
            }
        }
    }
}

/// `PROXY TCP4|TCP6 ...\r\n` naming `src`.
fn v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let fam = if src.is_ipv4() { "TCP4" } else { "TCP6" };
    format!("PROXY {fam} {} {} {} {}\r\n", src.ip(), dst.ip(), src.port(), dst.port()).into_bytes()
}

/// The binary form, as HAProxy's `send-proxy-v2` writes it (with a TLV).
fn v2(src: Option<SocketAddr>, dst: SocketAddr) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    let mut body = Vec::new();
    let fam = match (src, dst) {
        (None, _) => 0x00,
        (Some(SocketAddr::V4(s)), SocketAddr::V4(d)) => {
            body.extend(s.ip().octets());
            body.extend(d.ip().octets());
            body.extend(s.port().to_be_bytes());
            body.extend(d.port().to_be_bytes());
            0x11
        }
        (Some(SocketAddr::V6(s)), SocketAddr::V6(d)) => {
            body.extend(s.ip().octets());
            body.extend(d.ip().octets());
            body.extend(s.port().to_be_bytes());
            body.extend(d.port().to_be_bytes());
            0x21
        }
        _ => panic!("one family"),
    };
    // PP2_TYPE_UNIQUE_ID, as `proxy-v2-options unique-id` adds.
    body.extend([0x05, 0x00, 0x03, b'a', b'b', b'c']);
    h.push(if src.is_some() { 0x21 } else { 0x20 });
    h.push(fam);
    h.extend((body.len() as u16).to_be_bytes());
    h.extend(body);
    h
}

/// Connects as the balancer (from `from`), sends `header`, then a SOCKS5
/// CONNECT to `dst`: the stream and the reply code, or `None` when the
/// proxy closed instead.
fn via(proxy: SocketAddr, from: &str, header: &[u8], dst: SocketAddr) -> Option<(TcpStream, u8)> {
    let mut s = connect_from(from, proxy);
    s.set_nodelay(true).unwrap();
    let mut msg = header.to_vec();
    msg.extend([5, 1, 0]);
    msg.extend(s5_request(1, &addr_bytes(dst)));
    // Written in pieces: the header may arrive split anywhere.
    for piece in msg.chunks(7) {
        if s.write_all(piece).is_err() {
            return None;
        }
    }
    let mut m = [0u8; 2];
    if s.read_exact(&mut m).is_err() {
        return None;
    }
    assert_eq!(m, [5, 0]);
    let (rep, _) = read_s5_reply(&mut s).ok()?;
    Some((s, rep))
}

#[test]
fn the_header_names_the_client_in_v1_and_v2() {
    let log = start_logged(&["--proxy-protocol-from", "127.0.0.1"]);
    let echo = echo_server("127.0.0.1:0");
    let cases: [(&str, SocketAddr); 4] = [
        ("v1 IPv4", "192.0.2.7:40112".parse().unwrap()),
        ("v1 IPv6", "[2001:db8::7]:40113".parse().unwrap()),
        ("v2 IPv4", "192.0.2.8:40114".parse().unwrap()),
        ("v2 IPv6", "[2001:db8::8]:40115".parse().unwrap()),
    ];
    // Counting an IPv6 client asks the kernel for this host's prefixes.
    let v6 = !skip_without_getifaddrs("the_header_names_the_client_in_v1_and_v2 (IPv6 cases)");
    for (i, (what, client)) in cases.iter().enumerate() {
        if client.is_ipv6() && !v6 {
            continue;
        }
        let front: SocketAddr =
            if client.is_ipv4() { "198.51.100.1:1080" } else { "[2001:db8::1]:1080" }.parse().unwrap();
        let header = if i < 2 { v1(*client, front) } else { v2(Some(*client), front) };
        let (mut s, rep) = via(log.addr, "127.0.0.1:0", &header, echo).unwrap_or_else(|| panic!("{what}: closed"));
        assert_eq!(rep, 0, "{what}");
        echo_check(&mut s, &pattern(i as u64, 70_000));
        drop(s);
        let line = log.next_conn();
        assert_eq!(line["client"], client.to_string(), "{what}: the log names the client");
        assert_eq!(line["end"], "eof", "{what}");
        assert_eq!(line["up"], "70000", "{what}");
    }
}

#[test]
fn allow_and_the_per_client_limit_act_on_the_named_client() {
    let log =
        start_logged(&["--proxy-protocol-from", "127.0.0.0/8", "--allow", "192.0.2.0/24", "--max-conns-per-ip", "1"]);
    let echo = echo_server("127.0.0.1:0");
    let front: SocketAddr = "198.51.100.1:1080".parse().unwrap();
    let named = |c: &str| v2(Some(c.parse().unwrap()), front);
    // The balancer (127.0.0.1) is not in --allow: the client it names is.
    assert!(via(log.addr, "127.0.0.1:0", &named("203.0.113.9:5000"), echo).is_none(), "outside --allow");
    let line = log.next_conn();
    assert_eq!((line["client"].as_str(), line["end"].as_str()), ("203.0.113.9:5000", "not_in_allow"));

    let (mut a, rep) = via(log.addr, "127.0.0.1:0", &named("192.0.2.7:5001"), echo).expect("first of 192.0.2.7");
    assert_eq!(rep, 0);
    // One balancer, many clients: the limit is per client, not per balancer.
    assert!(via(log.addr, "127.0.0.1:0", &named("192.0.2.7:5002"), echo).is_none(), "over --max-conns-per-ip");
    let line = log.next_conn();
    assert_eq!((line["client"].as_str(), line["end"].as_str()), ("192.0.2.7:5002", "over_per_ip"));
    let (mut b, rep) = via(log.addr, "127.0.0.1:0", &named("192.0.2.8:5003"), echo).expect("another client");
    assert_eq!(rep, 0);
    echo_check(&mut a, b"still here");
    echo_check(&mut b, b"and here");
    let s = log.stats();
    // Closed after the header, not at accept: the balancer is welcome.
    // (Counters at zero are left out of the line.)
    assert_eq!(s["accepted"].get("not_in_allow"), None);
    assert_eq!(s["accepted"].get("over_per_ip"), None);
    assert_eq!(s["closed"]["not_in_allow"], "1");
    assert_eq!(s["closed"]["over_per_ip"], "1");
    drop((a, b));
}

#[test]
fn only_the_balancer_may_connect_and_it_must_send_a_header() {
    let log = start_logged(&["--proxy-protocol-from", "127.0.0.1/32"]);
    let echo = echo_server("127.0.0.1:0");
    // Not the balancer, though its header is valid.
    let header = v1("192.0.2.7:1".parse().unwrap(), "198.51.100.1:1080".parse().unwrap());
    assert!(via(log.addr, "127.0.0.2:0", &header, echo).is_none(), "not from --proxy-protocol-from");
    let line = log.next_conn();
    assert_eq!(line["id"], "-");
    assert_eq!(line["end"], "not_a_balancer");
    assert!(line["client"].starts_with("127.0.0.2:"), "{line:?}");
    // The balancer, without a header: a client must never be taken for it.
    assert!(via(log.addr, "127.0.0.1:0", &[], echo).is_none(), "no header");
    let line = log.next_conn();
    assert_eq!(line["end"], "bad_proxy_header");
    // A broken one.
    assert!(via(log.addr, "127.0.0.1:0", b"PROXY TCP4 192.0.2.7 nonsense\r\n", echo).is_none());
    assert_eq!(log.next_conn()["end"], "bad_proxy_header");
    // A health check (LOCAL) may go on as the balancer itself.
    let (mut s, rep) = via(log.addr, "127.0.0.1:0", &v2(None, "198.51.100.1:1080".parse().unwrap()), echo).unwrap();
    assert_eq!(rep, 0);
    echo_check(&mut s, b"check");
    drop(s);
    let line = log.next_conn();
    assert!(line["client"].starts_with("127.0.0.1:"), "{line:?}");
    let s = log.stats();
    assert_eq!(s["accepted"]["not_a_balancer"], "1");
    assert_eq!(s["closed"]["bad_proxy_header"], "2");
}

/// UDP ASSOCIATE behind a balancer: datagrams come from the client itself,
/// not through the balancer, to the address `--udp-advertise` gives.
#[test]
fn udp_is_relayed_for_the_named_client() {
    let log = start_logged(&["--proxy-protocol-from", "127.0.0.1", "--udp-advertise", "127.0.0.1"]);
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut b = [0u8; 2048];
        while let Ok((n, from)) = echo.recv_from(&mut b) {
            let _ = echo.send_to(&b[..n], from);
        }
    });
    // The client lives at 127.0.0.3 and reaches the relay directly.
    let client = UdpSocket::bind("127.0.0.3:0").unwrap();
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut s = connect_from("127.0.0.1:0", log.addr);
    let front: SocketAddr = "127.0.0.1:1080".parse().unwrap();
    let mut msg = v2(Some(SocketAddr::new("127.0.0.3".parse().unwrap(), 40000)), front);
    msg.extend([5, 1, 0]);
    msg.extend(s5_request(3, &addr_bytes(client.local_addr().unwrap())));
    s.write_all(&msg).unwrap();
    let mut m = [0u8; 2];
    s.read_exact(&mut m).unwrap();
    let (rep, relay) = read_s5_reply(&mut s).unwrap();
    assert_eq!(rep, 0);
    assert_eq!(relay.ip().to_string(), "127.0.0.1", "the advertised address");
    client.send_to(&udp_request(echo_addr, b"ping"), relay).unwrap();
    let mut b = [0u8; 512];
    let (n, _) = client.recv_from(&mut b).unwrap();
    assert!(b[..n].ends_with(b"ping"), "the echo came back");
    drop(s);
    let line = log.next_conn();
    assert_eq!(line["client"], "127.0.0.3:40000");
    assert_eq!(line["dgrams_up"], "1");
}

#[test]
fn the_flags_come_together() {
    for (args, want) in [
        (&["--proxy-protocol"][..], "--proxy-protocol needs --proxy-protocol-from"),
        (&["--proxy-protocol-from", "10.0.0.1"][..], "--proxy-protocol-from is only meaningful with --proxy-protocol"),
        (&["--proxy-protocol", "--proxy-protocol-from", "10.0.0.0/33"][..], "invalid value for --proxy-protocol-from"),
    ] {
        let out = program(BIN).args(args).arg("--check").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
