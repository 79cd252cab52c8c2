//! Scale-out (README "Scale-out behind a load balancer"): a real HAProxy
//! (`mode tcp`, `send-proxy-v2`, SOCKS-speaking health checks) in front
//! of three socksd instances, in network namespaces of the test's own.
//! Clients from several addresses relay through it byte for byte; the
//! per-client limit and `--allow` act on the real client, and the log
//! names it; one instance is killed mid-run, and new connections keep
//! going through the others while established relays there are untouched.
//!
//! HAProxy is a Debian package; `.ci/run` installs it. Without it the test
//! says SKIP outside CI and fails under CI.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_socksd");
const HAPROXY: &str = "/usr/sbin/haproxy";

/// One socksd behind the balancer: its process, address, and log lines.
struct Instance {
    child: Child,
    addr: SocketAddr,
    /// Its outgoing address, which its CONNECT replies carry as BND:
    /// how a client tells which instance serves it.
    out: IpAddr,
    lines: Receiver<String>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn instance(i: u8) -> Instance {
    let out: IpAddr = format!("127.0.0.{}", 20 + i).parse().unwrap();
    let (child, addr, lines) = spawn_listening(
        program(BIN)
            .args(["--listen", &format!("{out}:0"), "--threads", "1", "--log-connections"])
            .args(["--proxy-protocol", "--proxy-protocol-from", "127.0.0.1"])
            .args(["--allow", "127.0.0.8/29", "--max-conns-per-ip", "3", "--outgoing", &out.to_string()]),
    );
    Instance { child, addr, out, lines }
}

/// The status HAProxy's stats socket gives each server ("UP", "DOWN", ...).
fn statuses(sock: &std::path::Path) -> Vec<String> {
    let Ok(mut s) = UnixStream::connect(sock) else { return Vec::new() };
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    if s.write_all(b"show stat\n").is_err() {
        return Vec::new();
    }
    let mut csv = String::new();
    let _ = s.read_to_string(&mut csv);
    let mut lines = csv.lines();
    let Some(head) = lines.next() else { return Vec::new() };
    let Some(col) = head.trim_start_matches("# ").split(',').position(|c| c == "status") else { return Vec::new() };
    lines.filter(|l| l.starts_with("socksd,s")).map(|l| l.split(',').nth(col).unwrap_or("").to_string()).collect()
}

/// Waits (bounded) until HAProxy reports `want`.
fn wait_for(sock: &std::path::Path, want: &[&str]) {
    let end = Instant::now() + IO_TIMEOUT;
    loop {
        let now = statuses(sock);
        if now.iter().map(String::as_str).eq(want.iter().copied()) {
            return;
        }
        assert!(Instant::now() < end, "HAProxy reports {now:?}, not {want:?}");
        // The stats socket is the readiness signal; this only paces asking.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A SOCKS5 CONNECT to `dst` through the balancer from `client`: the
/// stream and the instance's BND address, or `None` if it was closed.
fn relay(front: SocketAddr, client: &str, dst: SocketAddr) -> Option<(TcpStream, IpAddr)> {
    let mut s = connect_from(&format!("{client}:0"), front);
    s.set_nodelay(true).unwrap();
    let mut msg = vec![5, 1, 0];
    msg.extend(s5_request(1, &addr_bytes(dst)));
    s.write_all(&msg).ok()?;
    let mut m = [0u8; 2];
    s.read_exact(&mut m).ok()?;
    let (rep, bnd) = read_s5_reply(&mut s).ok()?;
    (rep == 0).then_some((s, bnd.ip()))
}

/// The next connection-log line of any instance that satisfies `f`.
fn conn_line(all: &[Instance], f: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + IO_TIMEOUT;
    loop {
        for i in all {
            while let Ok(l) = i.lines.try_recv() {
                if l.starts_with("socksd: info: conn ") && f(&l) {
                    return l;
                }
            }
        }
        assert!(Instant::now() < end, "no such connection-log line");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn three_instances_behind_haproxy() {
    if !std::path::Path::new(HAPROXY).exists() {
        cannot_run("three_instances_behind_haproxy", "haproxy is not installed (apt-get install haproxy)");
        return;
    }
    // HAProxy is the host's; the instances' CPU is covered by the other
    // suites, and three emulated servers under load only cost CI time.
    if skip_under_emulation("three_instances_behind_haproxy", "HAProxy integration, not a CPU matter") {
        return;
    }
    if !sandboxed("three_instances_behind_haproxy") {
        return;
    }
    let echo = echo_server("127.0.0.1:0");
    let mut all: Vec<Instance> = (1..=3).map(instance).collect();
    let dir = std::env::temp_dir().join(format!("socksd-haproxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("stats.sock");
    let front = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let servers: String = all.iter().enumerate().map(|(i, s)| format!("    server s{} {}\n", i + 1, s.addr)).collect();
    // As the README's recipe, with quick health checks for the test.
    let cfg = format!(
        "global\n    maxconn 2000\n    stats socket {} mode 600 level admin\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n\
         \x20   retries 3\n    option redispatch 1\n\
         frontend socks\n    bind {front}\n    default_backend socksd\n\
         backend socksd\n    balance source\n\
         \x20   option tcp-check\n    tcp-check connect send-proxy\n    tcp-check send-binary 050100\n    tcp-check expect binary 0500\n\
         \x20   default-server send-proxy-v2 check-send-proxy check inter 100ms fall 1 rise 1 observe layer4 error-limit 1 on-error mark-down\n{servers}",
        sock.display()
    );
    std::fs::write(dir.join("haproxy.cfg"), &cfg).unwrap();
    let _haproxy = ChildGuard(
        Command::new(HAPROXY)
            .args(["-q", "-db", "-f"])
            .arg(dir.join("haproxy.cfg"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&sock, &["UP", "UP", "UP"]);

    // Byte for byte, from three client addresses; the log names each.
    for (n, c) in ["127.0.0.11", "127.0.0.12", "127.0.0.13"].iter().enumerate() {
        let (mut s, _) = relay(front, c, echo).unwrap_or_else(|| panic!("{c}: closed"));
        echo_check(&mut s, &pattern(n as u64, 100_000));
        drop(s);
        let l = conn_line(&all, |l| l.contains(&format!("client={c}:")));
        assert!(l.contains("up=100000") && l.contains("end=eof"), "{l}");
    }

    // --allow acts on the client, not on the balancer (127.0.0.1).
    assert!(relay(front, "127.0.0.30", echo).is_none(), "outside --allow");
    let l = conn_line(&all, |l| l.contains("client=127.0.0.30:"));
    assert!(l.contains("end=not_in_allow"), "{l}");

    // --max-conns-per-ip 3 per client (`balance source` keeps a client
    // on one instance): a fourth is closed, another client is not.
    let held: Vec<_> = (0..3).map(|_| relay(front, "127.0.0.13", echo).expect("within the limit")).collect();
    assert!(relay(front, "127.0.0.13", echo).is_none(), "a fourth from one client");
    let l = conn_line(&all, |l| l.contains("end=over_per_ip"));
    assert!(l.contains("client=127.0.0.13:"), "{l}");
    let (mut other, _) = relay(front, "127.0.0.12", echo).expect("another client");
    echo_check(&mut other, b"unaffected");
    drop((held, other));

    // Established relays from eight clients, spread over the instances.
    let mut relays: Vec<(TcpStream, IpAddr)> =
        (8..16).map(|i| relay(front, &format!("127.0.0.{i}"), echo).expect("a relay")).collect();
    let victim_out = relays[0].1;
    let victim = all.iter().position(|i| i.out == victim_out).expect("BND names an instance");
    assert!(relays.iter().any(|r| r.1 != victim_out), "all eight clients hashed to one instance");

    // New connections all along, from every client, while one instance dies.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut results = Vec::new();
            let end = Instant::now() + Duration::from_secs(30);
            for n in 0..3000u32 {
                if stop.load(Ordering::Relaxed) || Instant::now() > end {
                    break;
                }
                let started = Instant::now();
                let ok = relay(front, &format!("127.0.0.{}", 8 + n % 8), echo).is_some_and(|(mut s, _)| {
                    let data = pattern(u64::from(n), 1000);
                    s.write_all(&data).is_ok() && {
                        let mut back = vec![0u8; data.len()];
                        s.read_exact(&mut back).is_ok() && back == data
                    }
                });
                results.push((started, ok));
            }
            results
        })
    };
    let killed = Instant::now();
    let _ = all[victim].child.kill();
    let _ = all[victim].child.wait();
    let mut want = vec!["UP"; 3];
    want[victim] = "DOWN";
    wait_for(&sock, &want);
    let down = Instant::now();
    // Some more connections after HAProxy marked it down, then stop.
    let mut after = 0;
    while after < 200 && !load.is_finished() {
        std::thread::sleep(Duration::from_millis(10));
        after += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let results = load.join().unwrap();
    // By when each connection started: one the victim had taken before it
    // died fails, whenever its failure is seen.
    let before_down = results.iter().filter(|(t, ok)| *t < down && !ok).count();
    let after_down: Vec<_> = results.iter().filter(|(t, _)| *t >= down).collect();
    let failed_after = after_down.iter().filter(|(_, ok)| !ok).count();
    println!(
        "new connections: {} in all; failed, started before DOWN ({:?} after the kill): {before_down}; started after DOWN: {failed_after} of {}",
        results.len(),
        down - killed,
        after_down.len()
    );
    assert!(after_down.len() >= 10, "too few connections after DOWN to tell");
    assert_eq!(failed_after, 0, "new connections failed after HAProxy marked the instance down");

    // The relays on the other instances are untouched.
    for (i, (s, out)) in relays.iter_mut().enumerate() {
        if *out != victim_out {
            echo_check(s, &pattern(100 + i as u64, 50_000));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
