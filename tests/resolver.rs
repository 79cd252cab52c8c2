//! Name resolution under abuse: one client's unanswerable names must not
//! delay another client's lookups, and lookups for connections that are
//! gone are not made. A fake DNS server of the test's own answers some
//! names and never answers others; it is made the resolver inside private
//! network and mount namespaces (see `common::sandboxed`), never by
//! editing the host's files.

mod common;

use common::*;
use std::collections::HashSet;
use std::io::Write;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The question name of a DNS query, lower-cased, and its type.
fn question(q: &[u8]) -> Option<(String, u16, usize)> {
    let mut i = 12;
    let mut name = String::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(&String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    Some((name, qtype, i + 4))
}

/// A DNS server on 127.0.0.1:53 that answers `ok*` names with 127.0.0.1
/// (and no IPv6 address) and never answers anything else. Returns the
/// names it was asked about.
fn fake_dns() -> Arc<Mutex<HashSet<String>>> {
    let sock = UdpSocket::bind("127.0.0.1:53").expect("port 53 in the test's own namespace");
    let asked = Arc::new(Mutex::new(HashSet::new()));
    let seen = asked.clone();
    std::thread::spawn(move || {
        let mut b = [0u8; 512];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut b) else { continue };
            let Some((name, qtype, end)) = question(&b[..n]) else { continue };
            seen.lock().unwrap().insert(name.clone());
            if !name.starts_with("ok") {
                continue; // a name whose DNS never answers
            }
            let mut r = b[..end].to_vec();
            r[2] = 0x81; // response, recursion desired
            r[3] = 0x80; // recursion available, NOERROR
            r[6..12].copy_from_slice(&[0, (qtype == 1) as u8, 0, 0, 0, 0]);
            if qtype == 1 {
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
            }
            let _ = sock.send_to(&r, from);
        }
    });
    asked
}

/// SOCKS5 greeting and CONNECT to `name` in one write, from `src`.
fn ask(src: &str, proxy: std::net::SocketAddr, name: &str, port: u16) -> std::net::TcpStream {
    let mut s = connect_from(src, proxy);
    let mut req = vec![5, 1, 0];
    req.extend(s5_request(1, &domain_bytes(name, port)));
    s.write_all(&req).unwrap();
    s
}

#[test]
fn a_flood_of_unanswerable_names_leaves_other_clients_served() {
    if !sandboxed("a_flood_of_unanswerable_names_leaves_other_clients_served") {
        return;
    }
    let conf = std::env::temp_dir().join(format!("socksd-resolv-{}", std::process::id()));
    std::fs::write(&conf, "nameserver 127.0.0.1\noptions timeout:5 attempts:2\n").unwrap();
    sh(&format!("mount --bind {} /etc/resolv.conf", conf.display()));
    let asked = fake_dns();
    let mut cfg = config();
    // Long enough that only a prompt answer or a freed slot can pass.
    cfg.connect_timeout = Duration::from_secs(60);
    let (srv, proxy) = start(cfg);
    let echo = echo_server("127.0.0.1:0");

    // Client A: 300 connect-and-close requests for names that never
    // resolve, and 20 more it keeps open.
    for i in 0..300 {
        drop(ask("127.0.0.1:0", proxy, &format!("stuck-{i}.example"), 80));
    }
    let open: Vec<_> = (0..20).map(|i| ask("127.0.0.1:0", proxy, &format!("stuck-open-{i}.example"), 80)).collect();

    // Client B, from another address: served at once, every time.
    for j in 0..5 {
        let t = Instant::now();
        let mut s = connect_from("127.0.0.2:0", proxy);
        s.write_all(&[5, 1, 0]).unwrap();
        let mut m = [0u8; 2];
        std::io::Read::read_exact(&mut s, &mut m).unwrap();
        s.write_all(&s5_request(1, &domain_bytes(&format!("ok-{j}.example"), echo.port()))).unwrap();
        let (rep, _) = read_s5_reply(&mut s).unwrap();
        assert_eq!(rep, 0, "client B's lookup {j} during the flood");
        echo_check(&mut s, b"served");
        println!("client B lookup {j}: {:?}", t.elapsed());
    }

    // The closed connections' lookups were taken out of the queue: what is
    // left are the open ones beyond the client's running share (two
    // lookups each: a CONNECT asks for IPv6 and IPv4 at once).
    let end = Instant::now() + IO_TIMEOUT;
    while srv.resolver_queued() > 2 * open.len() {
        assert!(Instant::now() < end, "{} lookups still queued for gone connections", srv.resolver_queued());
        std::thread::sleep(Duration::from_millis(5));
    }
    // Closing the open ones frees their slots at once, mid-lookup.
    drop(open);
    wait_idle(&srv);
    assert_eq!(srv.resolver_queued(), 0);
    let stuck = asked.lock().unwrap().iter().filter(|n| n.starts_with("stuck")).count();
    println!("unanswerable names sent to DNS: {stuck} of 320 requested");
    assert!(stuck <= 64, "lookups ran for connections long gone: {stuck}");
}
