//! Upstream chaining (`--upstream`) against real upstreams on loopback:
//! another socksd (SOCKS5 with RFC 1929 credentials, and SOCKS4a), Dante
//! (`dante-server`, SOCKS5) and tinyproxy (HTTP CONNECT with Basic
//! credentials). curl reaches each target through socksd and the chosen
//! upstream, byte for byte, and the upstream's own log shows the request.
//!
//! Dante and tinyproxy are Debian packages `.ci/run` installs; without
//! them the tests say SKIP outside CI and fail under CI.

mod common;

use common::*;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_socksd");

/// A socksd with the connection log; its lines as they come.
struct Logged {
    _child: ChildGuard,
    addr: SocketAddr,
    lines: Receiver<String>,
}

fn socksd(args: &[&str]) -> Logged {
    let (child, addr, lines) = spawn_listening(
        program(BIN).args(["--listen", "127.0.0.1:0", "--threads", "1", "--log-connections"]).args(args),
    );
    Logged { _child: ChildGuard(child), addr, lines }
}

impl Logged {
    /// The next connection-log line.
    fn conn(&self) -> String {
        let end = Instant::now() + IO_TIMEOUT;
        loop {
            let l = self.lines.recv_timeout(end.saturating_duration_since(Instant::now())).expect("no conn line");
            if l.starts_with("socksd: info: conn ") {
                return l;
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits (bounded) until something accepts on `addr`: the readiness
/// signal of a server started in the background.
fn wait_listening(addr: SocketAddr) {
    let end = Instant::now() + IO_TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < end, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn temp_dir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("socksd-upstream-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Dante on loopback, logging each connect to `dir/danted.log`.
fn danted(dir: &Path) -> Option<(ChildGuard, SocketAddr)> {
    let bin = ["/usr/sbin/danted", "/usr/sbin/sockd"].into_iter().find(|p| Path::new(p).exists())?;
    let port = free_port();
    let conf = dir.join("danted.conf");
    std::fs::write(
        &conf,
        format!(
            "logoutput: {}\ninternal: 127.0.0.1 port = {port}\nexternal: 127.0.0.1\n\
             socksmethod: none\nclientmethod: none\nuser.privileged: root\nuser.unprivileged: nobody\n\
             client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}\n\
             socks pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 log: connect }}\n",
            dir.join("danted.log").display()
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .args(["-f", conf.to_str()?, "-p", dir.join("pid").to_str()?])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let guard = ChildGuard(child);
    wait_listening(addr);
    Some((guard, addr))
}

/// tinyproxy on loopback with Basic credentials, its log in `dir`.
fn tinyproxy(dir: &Path) -> Option<(ChildGuard, SocketAddr)> {
    let bin = ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"].into_iter().find(|p| Path::new(p).exists())?;
    let port = free_port();
    let conf = dir.join("tinyproxy.conf");
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 60\nLogLevel Connect\nMaxClients 100\nAllow 127.0.0.1\nBasicAuth bob secret\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("tinyproxy.log")).unwrap();
    let child = Command::new(bin).args(["-d", "-c"]).arg(&conf).stdout(log).stderr(Stdio::null()).spawn().ok()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let guard = ChildGuard(child);
    wait_listening(addr);
    Some((guard, addr))
}

/// Polls (bounded) until `path` holds `needle`: a log written by another
/// program in its own time.
fn log_shows(path: &Path, needle: &str) -> bool {
    let end = Instant::now() + IO_TIMEOUT;
    loop {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// curl through `proxy` (SOCKS5, names resolved by the proxy) to `url`.
fn fetch(proxy: SocketAddr, url: &str) -> (i32, Vec<u8>) {
    curl(&format!("socks5h://{proxy}"), url)
}

#[test]
fn each_upstream_kind_by_its_rule() {
    if !have_curl() {
        cannot_run("each_upstream_kind_by_its_rule", "curl is not installed");
        return;
    }
    let dir = temp_dir("kinds");
    let Some((_dante, dante)) = danted(&dir) else {
        cannot_run("each_upstream_kind_by_its_rule", "danted is not installed (apt-get install dante-server)");
        return;
    };
    let Some((_tiny, tiny)) = tinyproxy(&dir) else {
        cannot_run("each_upstream_kind_by_its_rule", "tinyproxy is not installed (apt-get install tinyproxy)");
        return;
    };
    let body = pattern(7, 300_000);
    // One web server per route, on its own loopback address.
    let web = |ip: &str| {
        let a = http_server(body.clone());
        // http_server binds 127.0.0.1; the rules below route by address,
        // so each route gets a forwarder on an address of its own.
        forward(ip, a)
    };
    let (direct_web, dante_web, tiny_web) = (web("127.0.0.1"), web("127.0.0.2"), web("127.0.0.3"));
    let s5 = socksd(&["--user", "alice:pw"]);
    let s4 = socksd(&[]);
    let s4_web = http_server(body.clone());
    let rules = [
        format!("socks4a://carol@{} for :{}", s4.addr, s4_web.port()),
        format!("socks5://alice:pw@{} for localhost,.localhost", s5.addr),
        format!("socks5://{dante} for 127.0.0.2"),
        format!("http://bob:secret@{tiny} for 127.0.0.3/32"),
    ];
    let mut args = Vec::new();
    for r in &rules {
        args.extend(["--upstream", r.as_str()]);
    }
    let front = socksd(&args);

    // Directly: no rule matches.
    let (rc, got) = fetch(front.addr, &format!("http://{direct_web}/"));
    assert_eq!((rc, got == body), (0, true), "direct");
    let l = front.conn();
    assert!(!l.contains(" via="), "{l}");

    // SOCKS5 with credentials, the name passed on unresolved.
    let (rc, got) = fetch(front.addr, &format!("http://localhost:{}/", direct_web.port()));
    assert_eq!((rc, got == body), (0, true), "through socksd (SOCKS5)");
    let l = front.conn();
    assert!(l.contains(&format!(" via=socks5://{}", s5.addr)), "{l}");
    let l = s5.conn();
    assert!(l.contains("user=alice") && l.contains(&format!("dest=localhost:{}", direct_web.port())), "{l}");

    // SOCKS4a, by port, with a user id.
    let (rc, got) = fetch(front.addr, &format!("http://localhost:{}/", s4_web.port()));
    assert_eq!((rc, got == body), (0, true), "through socksd (SOCKS4a)");
    assert!(front.conn().contains(&format!(" via=socks4a://{}", s4.addr)));
    let l = s4.conn();
    assert!(l.contains("proto=4a") && l.contains(&format!("dest=localhost:{}", s4_web.port())), "{l}");

    // Dante, by network.
    let (rc, got) = fetch(front.addr, &format!("http://{dante_web}/"));
    assert_eq!((rc, got == body), (0, true), "through Dante");
    assert!(front.conn().contains(&format!(" via=socks5://{dante}")));
    assert!(
        log_shows(&dir.join("danted.log"), &format!("127.0.0.2.{}", dante_web.port())),
        "Dante's log shows the connect"
    );

    // tinyproxy, HTTP CONNECT with Basic credentials.
    let (rc, got) = fetch(front.addr, &format!("http://{tiny_web}/"));
    assert_eq!((rc, got == body), (0, true), "through tinyproxy");
    assert!(front.conn().contains(&format!(" via=http://{tiny}")));
    assert!(
        log_shows(&dir.join("tinyproxy.log"), &format!("CONNECT {tiny_web} HTTP/1.1")),
        "tinyproxy's log shows the CONNECT"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A TCP forwarder on `ip` (port 0) to `to`, so that one web server can be
/// reached at several addresses.
fn forward(ip: &str, to: SocketAddr) -> SocketAddr {
    target(&format!("{ip}:0"), move |client| {
        let Ok(server) = TcpStream::connect(to) else { return };
        let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let t = std::thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut s2);
            let _ = s2.shutdown(std::net::Shutdown::Write);
        });
        let (mut c, mut s) = (client, server);
        let _ = std::io::copy(&mut s, &mut c);
        let _ = c.shutdown(std::net::Shutdown::Write);
        let _ = t.join();
    })
}

/// What the client is told when the chain fails, and that the rules come
/// before the route.
#[test]
fn failures_map_to_replies_and_rules_come_first() {
    let up = socksd(&["--user", "alice:pw"]);
    let closed = free_port();
    let gone = free_port();
    let front = socksd(&[
        "--deny-dest",
        "*:25",
        "--upstream",
        &format!("socks5://alice:wrong@{} for .bad-password", up.addr),
        "--upstream",
        &format!("socks5://127.0.0.1:{gone} for .gone"),
        "--upstream",
        &format!("socks5://alice:pw@{} for localhost,*", up.addr),
    ]);
    let ask = |dst: &[u8]| s5_connect(front.addr, dst).1;
    // The upstream's own answer passes through: nothing listens there.
    assert_eq!(ask(&domain_bytes("localhost", closed)), refused_reply(), "the upstream's 0x05");
    // (0x01 under qemu on MIPS: see refused_reply.)
    let code = format!("reply=0x{:02x}", refused_reply());
    assert!(front.conn().contains(&code));
    assert!(up.conn().contains(&code));
    // The upstream refuses our credentials; an upstream that is down.
    assert_eq!(ask(&domain_bytes("x.bad-password", 80)), 0x01);
    assert!(front.conn().contains("reply=0x01"));
    assert!(up.conn().contains("end=auth_failed"));
    assert_eq!(ask(&domain_bytes("x.gone", 80)), 0x01, "upstream out of reach");
    let l = front.conn();
    assert!(l.contains(&format!("via=socks5://127.0.0.1:{gone}")) && l.contains("reply=0x01"), "{l}");
    // --deny-dest before the route: the upstream is never asked.
    assert_eq!(ask(&domain_bytes("localhost", 25)), 0x02, "a name's port rule");
    assert!(front.conn().contains("reply=0x02"));
    assert_eq!(ask(&addr_bytes("127.0.0.1:25".parse().unwrap())), 0x02, "an address's rule");
    assert!(front.conn().contains("reply=0x02"));
    // Data the destination sends at once arrives right behind the reply.
    let banner = banner_server("127.0.0.1:0", b"220 hello\r\n");
    let (mut s, rep, _) = s5_connect(front.addr, &addr_bytes(banner));
    assert_eq!(rep, 0);
    let mut got = [0u8; 11];
    std::io::Read::read_exact(&mut s, &mut got).unwrap();
    assert_eq!(&got, b"220 hello\r\n");
}

#[test]
fn bad_upstream_flags_are_one_line_errors() {
    for (spec, want) in [
        ("ftp://10.0.0.1:21", "unknown scheme 'ftp'"),
        ("socks5://proxy.example:1080", "is not IP:PORT"),
        ("socks5://10.0.0.1:1080 to .onion", "expected UPSTREAM [for MATCH,MATCH,...]"),
        ("socks5://10.0.0.1:1080 for a/b", "is not *, a network"),
    ] {
        let out = program(BIN).args(["--upstream", spec, "--check"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{spec}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want) && err.lines().count() == 1, "{spec}: {err}");
    }
}
