//! The connection log (`--log-connections`), SIGUSR1's counters, and
//! logging that never stalls a relay, tried on the real binary as a user
//! would: each command, a wrong password, a refused port, a scan.

mod common;

use common::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Stdio;
use std::sync::mpsc::Receiver;
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_socksd");

/// The server and the lines of its stderr, as they come.
struct Logged {
    child: ChildGuard,
    addr: SocketAddr,
    lines: Receiver<String>,
}

fn start_logged(args: &[&str]) -> Logged {
    let mut child = program(BIN)
        .args(["--listen", "127.0.0.1:0", "--threads", "2", "--log-connections"])
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut child);
    let end = Instant::now() + IO_TIMEOUT;
    let addr = loop {
        let l = lines.recv_timeout(end.saturating_duration_since(Instant::now())).expect("socksd did not start");
        if let Some(a) = l.strip_prefix("socksd: info: listening on ") {
            break a.parse().unwrap();
        }
    };
    Logged { child: ChildGuard(child), addr, lines }
}

/// A `key=value` line as a map (`conn` or `stats ...` words dropped).
fn fields(line: &str) -> HashMap<String, String> {
    line.split(' ').filter_map(|w| w.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl Logged {
    /// The next connection-log line, waiting for it (bounded).
    fn next_conn(&self) -> HashMap<String, String> {
        let end = Instant::now() + IO_TIMEOUT;
        loop {
            let l = self.lines.recv_timeout(end.saturating_duration_since(Instant::now())).expect("no conn line");
            if let Some(rest) = l.strip_prefix("socksd: info: conn ") {
                return fields(rest);
            }
        }
    }

    /// SIGUSR1, then the counter lines until the last one, keyed by their
    /// first word; "conn_lines" counts the connection-log lines passed on
    /// the way.
    fn stats(&self) -> HashMap<String, HashMap<String, String>> {
        // SAFETY: kill has no memory effects; the pid is our own child's.
        unsafe { libc::kill(self.child.0.id() as libc::pid_t, libc::SIGUSR1) };
        let mut out = HashMap::new();
        let mut conn_lines = 0;
        let end = Instant::now() + IO_TIMEOUT;
        loop {
            let l = self.lines.recv_timeout(end.saturating_duration_since(Instant::now())).expect("no stats");
            conn_lines += l.contains(" conn ") as usize;
            let Some(rest) = l.strip_prefix("socksd: info: stats ") else { continue };
            let key = rest.split([' ', '=']).next().unwrap().to_string();
            out.entry(key).or_insert_with(HashMap::new).extend(fields(rest));
            if rest.starts_with("log_suppressed=") {
                out.insert("conn_lines".into(), HashMap::from([("n".to_string(), conn_lines.to_string())]));
                return out;
            }
        }
    }
}

fn assert_fields(f: &HashMap<String, String>, want: &[(&str, &str)]) {
    for (k, v) in want {
        assert_eq!(f.get(*k).map(String::as_str), Some(*v), "{k} in {f:?}");
    }
}

#[test]
fn every_command_and_refusal_leaves_one_line_and_the_counters_agree() {
    let log = start_logged(&[]);
    let echo = echo_server("127.0.0.1:0");

    // CONNECT by name, 5 bytes each way.
    let (mut s, rep, _) = s5_connect(log.addr, &domain_bytes("localhost", echo.port()));
    assert_eq!(rep, 0);
    echo_check(&mut s, b"hello");
    drop(s);
    let f = log.next_conn();
    assert_fields(
        &f,
        &[("cmd", "connect"), ("reply", "0x00"), ("up", "5"), ("down", "5"), ("end", "eof"), ("user", "-")],
    );
    assert_eq!(f["dest"], format!("localhost:{}", echo.port()));
    assert!(f["addr"].ends_with(&format!(":{}", echo.port())), "{f:?}");
    assert!(f["client"].starts_with("127.0.0.1:") && f["id"].parse::<u64>().is_ok() && f.contains_key("ms"));

    // SOCKS4 CONNECT by address.
    let mut s = connect(log.addr);
    s.write_all(&s4_request(1, echo, b"me", None)).unwrap();
    assert_eq!(read_s4_reply(&mut s).unwrap()[1], 0x5A);
    echo_check(&mut s, b"abc");
    drop(s);
    assert_fields(
        &log.next_conn(),
        &[("cmd", "connect"), ("proto", "4"), ("reply", "0x5a"), ("up", "3"), ("down", "3")],
    );

    // A refused port.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (s, rep, _) = s5_connect(log.addr, &addr_bytes(closed));
    assert_eq!(rep, refused_reply());
    drop(s);
    let f = log.next_conn();
    assert_fields(&f, &[("cmd", "connect"), ("addr", "-"), ("end", "refused")]);
    assert_eq!(f["reply"], format!("0x{:02x}", refused_reply()));

    // BIND: the peer connects, sends 4 bytes, and both close.
    let mut s = connect(log.addr);
    s.write_all(&[5, 1, 0]).unwrap();
    s.read_exact(&mut [0u8; 2]).unwrap();
    s.write_all(&s5_request(2, &addr_bytes("127.0.0.1:0".parse().unwrap()))).unwrap();
    let (rep, bnd) = read_s5_reply(&mut s).unwrap();
    assert_eq!(rep, 0);
    let mut peer = TcpStream::connect(bnd).unwrap();
    let (rep, _) = read_s5_reply(&mut s).unwrap();
    assert_eq!(rep, 0);
    peer.write_all(b"ping").unwrap();
    s.read_exact(&mut [0u8; 4]).unwrap();
    drop(peer);
    drop(s);
    let f = log.next_conn();
    assert_fields(&f, &[("cmd", "bind"), ("reply", "0x00"), ("down", "4"), ("up", "0")]);
    assert_eq!(f["addr"], peer_addr_text(&f));

    // UDP: one datagram each way.
    let target = UdpSocket::bind("127.0.0.1:0").unwrap();
    target.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let (ctl, rep, relay) = s5_associate(log.addr, &addr_bytes(client.local_addr().unwrap()));
    assert_eq!(rep, 0);
    client.send_to(&udp_request(target.local_addr().unwrap(), b"12345678"), relay).unwrap();
    let mut b = [0u8; 64];
    let (n, from) = target.recv_from(&mut b).unwrap();
    assert_eq!(&b[..n], b"12345678");
    target.send_to(b"abc", from).unwrap();
    client.recv_from(&mut b).unwrap();
    drop(ctl);
    let f = log.next_conn();
    assert_fields(
        &f,
        &[("cmd", "udp"), ("reply", "0x00"), ("dgrams_up", "1"), ("dgrams_down", "1"), ("up", "8"), ("down", "3")],
    );
    assert_fields(&f, &[("dropped", "0"), ("end", "eof")]);

    // Not SOCKS at all (a scan, an HTTP client on the wrong port).
    let mut s = connect(log.addr);
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(closed_without_data(&mut s));
    assert_fields(&log.next_conn(), &[("end", "not_socks"), ("cmd", "-")]);

    let st = log.stats();
    assert_fields(&st["accepted"], &[("accepted", "6")]);
    assert_fields(&st["closed"], &[("eof", "4"), ("refused", "1"), ("not_socks", "1")]);
    assert_fields(&st["open"], &[("total", "0")]);
    assert_fields(&st["bytes"], &[("up", "8"), ("down", "12")]);
    assert_fields(&st["udp"], &[("dgrams_up", "1"), ("dgrams_down", "1"), ("dropped", "0")]);
    assert!(st.contains_key("uptime_s"), "{st:?}");
}

/// The BIND line's addr is the peer's address, which the test does not
/// know in advance beyond its host.
fn peer_addr_text(f: &HashMap<String, String>) -> String {
    assert!(f["addr"].starts_with("127.0.0.1:"), "{f:?}");
    f["addr"].clone()
}

#[test]
fn users_and_wrong_passwords_are_logged_and_counted() {
    let log = start_logged(&["--user", "alice:pw"]);
    let echo = echo_server("127.0.0.1:0");
    let (mut s, ok) = s5_login(log.addr, "alice", "pw");
    assert_eq!(ok, 0);
    s.write_all(&s5_request(1, &addr_bytes(echo))).unwrap();
    assert_eq!(read_s5_reply(&mut s).unwrap().0, 0);
    echo_check(&mut s, b"0123456789");
    drop(s);
    assert_fields(&log.next_conn(), &[("user", "alice"), ("up", "10"), ("down", "10"), ("end", "eof")]);

    let (s, ok) = s5_login(log.addr, "alice", "wrong");
    assert_ne!(ok, 0);
    drop(s);
    assert_fields(&log.next_conn(), &[("end", "auth_failed"), ("user", "alice")]);

    let st = log.stats();
    assert_fields(&st["user"], &[("name", "alice"), ("conns", "1"), ("up", "10"), ("down", "10")]);
    assert_fields(&st["closed"], &[("auth_failed", "1"), ("eof", "1")]);
}

/// A flood of refusals does not flood the log: past a burst, lines are
/// counted instead, and the count is told.
#[test]
fn refusal_lines_are_rate_limited() {
    let log = start_logged(&["--user", "alice:pw"]);
    for _ in 0..200 {
        let (s, ok) = s5_login(log.addr, "alice", "wrong");
        assert_ne!(ok, 0);
        drop(s);
    }
    // The last clients' closes may still be on their way to the reactor:
    // ask again until all 200 are counted (bounded).
    let end = Instant::now() + IO_TIMEOUT;
    let mut conn_lines = 0;
    let st = loop {
        let st = log.stats();
        conn_lines += st["conn_lines"]["n"].parse::<usize>().unwrap();
        if st["closed"].get("auth_failed").map(String::as_str) == Some("200") || Instant::now() > end {
            break st;
        }
    };
    assert_fields(&st["closed"], &[("auth_failed", "200")]);
    let suppressed: u64 = st["log_suppressed"]["log_suppressed"].parse().unwrap();
    assert!(suppressed >= 100, "{st:?}");
    while let Ok(l) = log.lines.try_recv() {
        conn_lines += l.contains(" conn ") as usize;
    }
    assert!(conn_lines < 100, "{conn_lines} lines for 200 refusals");
}

/// Logging never stalls a relay: with stderr a pipe that nobody reads
/// (a paused terminal, a stuck log daemon), -vv and the connection log
/// still let an established relay move a bulk transfer and its ping-pongs
/// complete, while new connections keep being served; the lines that did
/// not fit were dropped and counted.
#[test]
fn a_log_reader_that_stops_never_stalls_the_relay() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = program(BIN)
        .args(["--listen", &listen, "--threads", "1", "-vv", "--log-connections"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Held, never read: the pipe (64 KiB) fills within a few hundred lines.
    let mut stderr = child.stderr.take().unwrap();
    let _guard = ChildGuard(child);
    let proxy: SocketAddr = listen.parse().unwrap();
    let end = Instant::now() + IO_TIMEOUT;
    while TcpStream::connect(proxy).is_err() {
        assert!(Instant::now() < end, "socksd did not start");
        std::thread::yield_now();
    }
    let echo = echo_server("127.0.0.1:0");
    let (mut relay, rep, _) = s5_connect(proxy, &addr_bytes(echo));
    assert_eq!(rep, 0);
    // Enough connections, each a dozen trace lines, to fill the pipe many
    // times over.
    for _ in 0..600 {
        let (s, rep, _) = s5_connect(proxy, &addr_bytes(echo));
        assert_eq!(rep, 0);
        drop(s);
    }
    // The relay still echoes (reads time out after IO_TIMEOUT if stalled).
    for i in 0..500u32 {
        echo_check(&mut relay, &i.to_be_bytes());
    }
    let data = pattern(7, 4 << 20);
    let mut writer = relay.try_clone().unwrap();
    let sent = data.clone();
    let w = std::thread::spawn(move || writer.write_all(&sent).unwrap());
    let mut back = vec![0u8; data.len()];
    relay.read_exact(&mut back).unwrap();
    w.join().unwrap();
    assert!(back == data, "bulk data intact");
    // A new client is still served.
    let (mut s, rep, _) = s5_connect(proxy, &addr_bytes(echo));
    assert_eq!(rep, 0);
    echo_check(&mut s, b"still here");
    // Now read: the log says how many lines it had to drop.
    drop(s);
    drop(relay);
    let mut text = Vec::new();
    let mut buf = [0u8; 65536];
    let end = Instant::now() + IO_TIMEOUT;
    while !String::from_utf8_lossy(&text).contains("log lines dropped") {
        assert!(Instant::now() < end, "no drop count in the log");
        let n = stderr.read(&mut buf).unwrap();
        assert!(n > 0, "stderr closed without a drop count");
        text.extend_from_slice(&buf[..n]);
    }
}

/// Ids are unique in the process, whichever thread took the connection,
/// and `-vv` is socksd's own trace (each state change), not mio's.
#[test]
fn ids_are_unique_across_threads_and_vv_traces_states() {
    let log = start_logged(&["-vv"]);
    let echo = echo_server("127.0.0.1:0");
    let mut ids = std::collections::HashSet::new();
    let mut trace = Vec::new();
    for i in 0..40u8 {
        let (mut s, rep, _) = s5_connect(log.addr, &addr_bytes(echo));
        assert_eq!(rep, 0);
        echo_check(&mut s, &[i]);
        drop(s);
        let end = Instant::now() + IO_TIMEOUT;
        loop {
            let l = log.lines.recv_timeout(end.saturating_duration_since(Instant::now())).expect("no conn line");
            if let Some(rest) = l.strip_prefix("socksd: info: conn ") {
                assert!(ids.insert(fields(rest)["id"].clone()), "id seen twice: {rest}");
                break;
            }
            trace.push(l);
        }
    }
    assert!(
        trace.iter().any(|l| l.starts_with("socksd: trace: #") && l.ends_with("Connecting -> Relaying")),
        "{trace:?}"
    );
    assert!(!trace.iter().any(|l| l.contains("registering event source")), "mio's trace at -vv");
}

/// Issue 26, item 3: the log says when (--log-time), which protocol, what
/// a refused request asked and what it was told in its own protocol's
/// code, who an --auth-once address is, and a failed login in one line.
#[test]
fn the_log_says_when_how_and_who() {
    let log = start_logged(&["--user", "alice:pw", "--auth-once"]);
    let echo = echo_server("127.0.0.1:0");
    // SOCKS4 and 4a are refused with users configured: 0x5b, and what was asked.
    let mut s = connect(log.addr);
    s.write_all(&s4_request(1, echo, b"me", None)).unwrap();
    assert_eq!(read_s4_reply(&mut s).unwrap()[1], 0x5B);
    drop(s);
    let f = log.next_conn();
    assert_fields(&f, &[("proto", "4"), ("reply", "0x5b"), ("cmd", "connect"), ("end", "not_allowed")]);
    assert_eq!(f["dest"], echo.to_string());
    let mut s = connect(log.addr);
    s.write_all(&s4_request(1, echo, b"me", Some("localhost"))).unwrap();
    assert_eq!(read_s4_reply(&mut s).unwrap()[1], 0x5B);
    drop(s);
    let f = log.next_conn();
    assert_fields(&f, &[("proto", "4a"), ("reply", "0x5b"), ("cmd", "connect")]);
    assert_eq!(f["dest"], format!("localhost:{}", echo.port()));
    // A failed login: one line, with the name tried.
    let (s, st) = s5_login(log.addr, "mallory", "guess");
    assert_ne!(st, 0);
    drop(s);
    assert_fields(&log.next_conn(), &[("proto", "5"), ("user", "mallory"), ("end", "auth_failed")]);
    // Logged in once; then let in without a password, and named.
    let (s, st) = s5_login(log.addr, "alice", "pw");
    assert_eq!(st, 0);
    drop(s);
    assert_fields(&log.next_conn(), &[("user", "alice")]);
    let (mut s, rep, _) = s5_connect(log.addr, &addr_bytes(echo));
    assert_eq!(rep, 0);
    echo_check(&mut s, b"trusted");
    drop(s);
    assert_fields(&log.next_conn(), &[("user", "alice"), ("proto", "5"), ("reply", "0x00"), ("end", "eof")]);
    // The counters: a code refused by reply is there; none is "none".
    let st = log.stats();
    let lines = st["conn_lines"]["n"].clone();
    assert!(!log.lines.try_iter().any(|l| l.contains("authentication failed for user")), "one event, one line");
    assert_eq!(lines, "0", "no conn line left unread");
    let fresh = start_logged(&[]);
    let st = fresh.stats();
    assert!(st["refused"].is_empty(), "{st:?}");
}

/// --log-time: every line starts with the time, UTC, to the millisecond;
/// the start-up line names the version and the threads.
#[test]
fn log_time_and_the_start_up_line() {
    let mut child = program(BIN)
        .args(["--listen", "127.0.0.1:0", "--threads", "2", "--bulk-threads", "1", "--log-time"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut child);
    let _guard = ChildGuard(child);
    let first = lines.recv_timeout(IO_TIMEOUT).unwrap();
    let (time, rest) = first.split_once(' ').unwrap();
    let b = time.as_bytes();
    assert!(time.len() == 24 && b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && time.ends_with('Z'), "{first}");
    assert!(time.starts_with("20") && time[..4].parse::<u32>().unwrap() >= 2026, "{first}");
    let version = concat!("socksd: info: socksd ", env!("CARGO_PKG_VERSION"), ": 2 reactor threads, 1 bulk threads");
    assert!(rest.starts_with(version), "{rest}");
}
