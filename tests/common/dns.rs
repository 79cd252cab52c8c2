//! A DNS server of the tests' own, on 127.0.0.1:53 inside a test's
//! private network namespace (`common::sandboxed`), made the system
//! resolver there by bind-mounting a resolv.conf over /etc/resolv.conf.
//! It answers the names it is given (A and AAAA records, each perhaps
//! late) and never answers any other name.

use std::net::{IpAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

/// What one name resolves to. An empty list answers "no such record"
/// (NOERROR, no answer) at once.
#[derive(Clone, Debug, Default)]
pub struct Name {
    pub name: &'static str,
    pub a: Vec<IpAddr>,
    pub aaaa: Vec<IpAddr>,
    /// The AAAA answer comes this late.
    pub aaaa_delay: Duration,
}

/// The question name of a DNS query, lower-cased, its type, and where the
/// question ends.
pub fn question(q: &[u8]) -> Option<(String, u16, usize)> {
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

/// The answer to `query` (its question ending at `end`) with `ips`.
fn answer(query: &[u8], end: usize, ips: &[IpAddr]) -> Vec<u8> {
    let mut r = query[..end].to_vec();
    r[2] = 0x81; // response, recursion desired
    r[3] = 0x80; // recursion available, NOERROR
    r[6..12].copy_from_slice(&[0, ips.len() as u8, 0, 0, 0, 0]);
    for ip in ips {
        // The question's name (a pointer to offset 12), type, class IN, TTL 60.
        let (t, data) = match ip {
            IpAddr::V4(v4) => (1u8, v4.octets().to_vec()),
            IpAddr::V6(v6) => (28u8, v6.octets().to_vec()),
        };
        r.extend_from_slice(&[0xc0, 12, 0, t, 0, 1, 0, 0, 0, 60, 0, data.len() as u8]);
        r.extend_from_slice(&data);
    }
    r
}

/// Starts the server (in the test's own namespace only: port 53) and
/// makes it the resolver for this namespace's mount view.
pub fn serve(names: Vec<Name>, resolv_options: &str) {
    let conf = std::env::temp_dir().join(format!("socksd-resolv-{}", std::process::id()));
    std::fs::write(&conf, format!("nameserver 127.0.0.1\noptions {resolv_options}\n")).unwrap();
    super::sh(&format!("mount --bind {} /etc/resolv.conf", conf.display()));
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:53").expect("port 53 in the test's own namespace"));
    std::thread::spawn(move || {
        let mut b = [0u8; 512];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut b) else { continue };
            let Some((name, qtype, end)) = question(&b[..n]) else { continue };
            let Some(entry) = names.iter().find(|e| e.name == name) else { continue };
            let (ips, delay) = match qtype {
                1 => (&entry.a, Duration::ZERO),
                28 => (&entry.aaaa, entry.aaaa_delay),
                _ => continue,
            };
            let reply = answer(&b[..n], end, ips);
            let sock = sock.clone();
            // A late answer is sent from a thread of its own, so that the
            // other queries are answered meanwhile.
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let _ = sock.send_to(&reply, from);
            });
        }
    });
}
