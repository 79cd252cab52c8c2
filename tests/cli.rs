//! The `socksd` binary as a user runs it: flags, exit codes, the startup
//! log line, signals.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_socksd");

/// Runs the binary to completion; a binary that goes on serving when it
/// should have exited fails the test instead of hanging it.
fn run(args: &[&str]) -> std::process::Output {
    let mut child = common::program(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + common::IO_TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("socksd {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn bad_flags_exit_2_with_one_line() {
    for args in [
        &["--bogus"][..],
        &["--threads", "0"],
        &["--listen", "localhost"],
        &["--buffer-size", "12"],
        &["--connect-timeout", "soon"],
        &["--user", "no-password"],
        &["extra-argument"],
        &["--users-file", "/nonexistent/users"],
        &["--outgoing", "not-an-ip"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("socksd: "), "{err}");
        // Under procd, which tags the line "socksd[PID]" itself: the
        // name once, the level as the log's lines give it.
        let out = run(&[args, &["--log-procd"]].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?} --log-procd");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("error: ") && !err.contains("socksd:"), "{args:?} --log-procd: {err}");
    }
}

#[test]
fn help_and_version_exit_0() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("--listen") && help.contains("--idle-timeout"));
    let out = run(&["-V"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("socksd "));
}

#[test]
fn listen_failure_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["--listen", &addr]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr).unwrap().contains(&addr));
}

/// A running binary with its stderr read line by line.
struct Proc {
    child: Child,
    lines: Receiver<String>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let mut child = common::program(BIN)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = common::stderr_lines(&mut child);
        Proc { child, lines }
    }

    /// Waits for a log line containing `needle`; returns it.
    fn wait_for(&self, needle: &str) -> String {
        let end = Instant::now() + common::IO_TIMEOUT;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(e) => panic!("no log line with {needle:?}: {e}"),
            }
        }
    }

    /// Every log line up to and including the first containing `needle`.
    fn lines_until(&self, needle: &str) -> Vec<String> {
        let end = Instant::now() + common::IO_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let done = l.contains(needle);
                    seen.push(l);
                    if done {
                        return seen;
                    }
                }
                Err(e) => panic!("no log line with {needle:?} in {seen:?}: {e}"),
            }
        }
    }

    fn listening(&self) -> SocketAddr {
        let l = self.wait_for("listening on ");
        l.rsplit(' ').next().unwrap().parse().unwrap()
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill has no memory effects; the pid is our own child's.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0);
    }

    fn wait_exit(&mut self) -> Option<i32> {
        let end = Instant::now() + common::IO_TIMEOUT;
        while Instant::now() < end {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child.kill().unwrap();
        panic!("socksd did not exit");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serves_and_stops_cleanly_on_sigterm_and_sigint() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut p = Proc::spawn(&["--listen", "127.0.0.1:0", "--threads", "2"]);
        let proxy = p.listening();
        let echo = common::echo_server("127.0.0.1:0");
        let (mut s, rep, _) = common::s5_connect(proxy, &common::addr_bytes(echo));
        assert_eq!(rep, 0);
        common::echo_check(&mut s, b"via the binary");
        p.signal(sig);
        assert_eq!(p.wait_exit(), Some(0));
    }
}

#[test]
fn warns_about_open_proxy() {
    let p = Proc::spawn(&["--listen", "0.0.0.0:0"]);
    p.wait_for("open proxy");
    // Issue 26, item 4: users, or clients from loopback alone, make no
    // open proxy.
    for args in [&["--user", "a:b"][..], &["--allow", "127.0.0.0/8", "--allow", "::1"]] {
        let p = Proc::spawn(&[&["--listen", "0.0.0.0:0"][..], args].concat());
        p.listening();
        p.signal(libc::SIGTERM);
        assert!(p.lines.iter().all(|l| !l.contains("open proxy")), "{args:?}");
    }
}

/// Issue 26, item 1: a listen address that cannot be bound says why:
/// not an address of this host, a port that needs privilege, in use.
#[test]
fn start_up_errors_say_what_is_true() {
    let out = run(&["--listen", "192.0.2.1:1080"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("listen on 192.0.2.1:1080: not an address of this host"), "{err}");
    assert!(!err.contains("in use") && !err.contains("--reuse-port"), "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = String::from_utf8(run(&["--listen", &addr]).stderr).unwrap();
    assert!(err.contains("address in use by another process"), "{err}");

    // A privileged port, as an unprivileged user.
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--"]);
        if let Some(e) = common::emulator() {
            c.arg(e);
        }
        c.arg(BIN);
        c
    } else {
        common::program(BIN)
    };
    let out = cmd.args(["--listen", "127.0.0.1:80"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("ports below 1024 need root or the CAP_NET_BIND_SERVICE capability"), "{err}");
}

/// Issue 26, item 2: --check tries what it can without serving (the
/// listen and outgoing addresses), failing as a start would, and prints
/// every setting it would run with, defaults included.
#[test]
fn check_tries_what_it_can_and_prints_every_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["--check", "--listen", &addr]);
    assert_eq!(out.status.code(), Some(1), "an address another process holds");
    assert!(String::from_utf8(out.stderr).unwrap().contains("address in use by another process"));
    let out = run(&["--check", "--listen", "127.0.0.1:0", "--outgoing", "192.0.2.1"]);
    assert_eq!(out.status.code(), Some(1), "an --outgoing that is not here");
    assert!(String::from_utf8(out.stderr).unwrap().contains("--outgoing 192.0.2.1: not an address of this host"));
    let out = run(&["--check", "--listen", "127.0.0.1:0", "--max-conns", "5", "--deny-dest", "*:25"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "configuration OK",
        "--listen 127.0.0.1:0",
        "--max-conns 5\n",
        "--max-conns-per-ip 5 (default)",
        "--connect-timeout 10\n",
        "--deny-dest *:25",
        "--allow all",
        "--busy-poll ",
        "--idle-timeout 0 (never)",
        "users: 0 (no authentication)",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
}

/// Issue 26, item 5: clients the caps turn away are logged
/// (rate-limited), and a cap nobody set leaves one client room: with
/// --max-conns 5 a client has all 5, not half.
#[test]
fn caps_say_whom_they_turn_away_and_leave_a_client_room() {
    let p = Proc::spawn(&["--listen", "127.0.0.1:0", "--max-conns", "5"]);
    let proxy = p.listening();
    let held: Vec<_> = (0..5)
        .map(|_| {
            let mut s = common::connect(proxy);
            s.write_all(&[5, 1, 0]).unwrap();
            let mut m = [0u8; 2];
            std::io::Read::read_exact(&mut s, &mut m).unwrap();
            assert_eq!(m, [5, 0]);
            s
        })
        .collect();
    let mut sixth = common::connect(proxy);
    let _ = sixth.write_all(&[5, 1, 0]);
    assert!(common::closed_without_data(&mut sixth));
    // Its sixth: the per-client cap (here --max-conns itself) says so.
    p.wait_for("closed at accept: over_per_ip (it holds 5 connections, --max-conns-per-ip");
    drop(held);
    let p = Proc::spawn(&["--listen", "127.0.0.1:0", "--max-conns-per-ip", "1"]);
    let proxy = p.listening();
    let mut first = common::connect(proxy);
    first.write_all(&[5, 1, 0]).unwrap();
    std::io::Read::read_exact(&mut first, &mut [0u8; 2]).unwrap();
    let mut second = common::connect(proxy);
    let _ = second.write_all(&[5, 1, 0]);
    assert!(common::closed_without_data(&mut second));
    p.wait_for("closed at accept: over_per_ip (it holds 1 connections, --max-conns-per-ip");
}

/// Issue 26, item 7: the flags of microsocks, Dante and 3proxy that
/// users bring along name the socksd way.
#[test]
fn other_servers_flags_name_the_socksd_way() {
    for (args, want) in [
        (&["-u", "alice", "-P", "secret"][..], "'-P': socksd takes the password with the user, -u NAME:PASSWORD"),
        (&["-i", "0.0.0.0", "-p", "1080"], "'-i': socksd listens with -l ADDR:PORT"),
        (&["-p", "1080"], "'-p': the port goes in -l ADDR:PORT"),
        (&["-1"], "-1': that is --auth-once here"),
        (&["-w", "10.0.0.1"], "that is --allow CIDR here"),
        (&["-f", "/etc/sockd.conf"], "socksd has no configuration file"),
        (&["/etc/3proxy/3proxy.cfg"], "there is no configuration file"),
        (&["-u", "alice"], "microsocks' -u NAME -P PASSWORD is -u NAME:PASSWORD here"),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(want) && err.lines().count() == 1, "{args:?}: {err}");
    }
}

#[test]
fn sighup_rereads_users_file() {
    let path = std::env::temp_dir().join(format!("socksd-cli-users-{}", std::process::id()));
    std::fs::write(&path, "# users\nalice:one\n").unwrap();
    let p = Proc::spawn(&["--listen", "127.0.0.1:0", "--users-file", path.to_str().unwrap(), "-u", "root:flag"]);
    let proxy = p.listening();
    assert_eq!(common::s5_login(proxy, "alice", "one").1, 0);
    // An established session is untouched by the reload.
    let echo = common::echo_server("127.0.0.1:0");
    let (mut held, st) = common::s5_login(proxy, "alice", "one");
    assert_eq!(st, 0);
    held.write_all(&common::s5_request(1, &common::addr_bytes(echo))).unwrap();
    assert_eq!(common::read_s5_reply(&mut held).unwrap().0, 0);

    std::fs::write(&path, "alice:two\n").unwrap();
    p.signal(libc::SIGHUP);
    p.wait_for("2 users loaded");
    assert_ne!(common::s5_login(proxy, "alice", "one").1, 0);
    assert_eq!(common::s5_login(proxy, "alice", "two").1, 0);
    assert_eq!(common::s5_login(proxy, "root", "flag").1, 0, "flag users kept");

    // A file without a good line: what it no longer holds is revoked,
    // the --user one stays.
    std::fs::write(&path, "broken line\n").unwrap();
    p.signal(libc::SIGHUP);
    p.wait_for("the reload failed: 1 previous users stay active, revoked now: alice");
    assert_ne!(common::s5_login(proxy, "alice", "two").1, 0);
    assert_eq!(common::s5_login(proxy, "root", "flag").1, 0);
    common::echo_check(&mut held, b"still here");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn passwords_never_logged() {
    let p = Proc::spawn(&["--listen", "127.0.0.1:0", "-vv", "--user", "alice:Sekr1tPass"]);
    let proxy = p.listening();
    let echo = common::echo_server("127.0.0.1:0");
    let (mut s, st) = common::s5_login(proxy, "alice", "Sekr1tPass");
    assert_eq!(st, 0);
    s.write_all(&common::s5_request(1, &common::addr_bytes(echo))).unwrap();
    assert_eq!(common::read_s5_reply(&mut s).unwrap().0, 0);
    assert_ne!(common::s5_login(proxy, "alice", "WrongPass99").1, 0);
    drop(s);
    p.signal(libc::SIGTERM);
    let log: Vec<String> = p.lines.iter().collect();
    assert!(log.iter().any(|l| l.contains("authentication failed")), "{log:?}");
    assert!(log.iter().all(|l| !l.contains("Sekr1tPass") && !l.contains("WrongPass99")), "{log:?}");
}

/// A users file with no users, or a name twice, is an error: at start, for
/// --check, and on SIGHUP (where the old users stay). A file caught empty
/// mid-rewrite must not turn authentication off.
#[test]
fn users_file_with_no_users_or_duplicates_is_refused() {
    let path = std::env::temp_dir().join(format!("socksd-cli-empty-{}", std::process::id()));
    let p = path.to_str().unwrap();
    for (text, extra) in [
        ("", &[][..]),
        ("# only comments\n\n", &[]),
        ("dup:old\ndup:new\n", &[]),
        ("alice:one\n", &["--user", "alice:two"]),
    ] {
        std::fs::write(&path, text).unwrap();
        for check in [false, true] {
            let mut args = vec!["--listen", "127.0.0.1:0", "--users-file", p];
            args.extend_from_slice(extra);
            if check {
                args.push("--check");
            }
            let out = run(&args);
            assert_eq!(out.status.code(), Some(2), "{text:?} {extra:?} check={check}");
        }
    }
    std::fs::write(&path, "alice:one\n").unwrap();
    let proc = Proc::spawn(&["--listen", "127.0.0.1:0", "--users-file", p]);
    let proxy = proc.listening();
    for text in ["", "# all users removed by mistake\n", "dup:a\ndup:b\n"] {
        std::fs::write(&path, text).unwrap();
        proc.signal(libc::SIGHUP);
        proc.wait_for("the reload failed: all 1 previous users stay active");
        // Authentication is still required, and the old user still works.
        let mut s = common::connect(proxy);
        s.write_all(&[5, 1, 0]).unwrap();
        let mut m = [0u8; 2];
        std::io::Read::read_exact(&mut s, &mut m).unwrap();
        assert_eq!(m, [5, 0xFF], "after {text:?}: no-auth refused");
        assert_eq!(common::s5_login(proxy, "alice", "one").1, 0);
    }
    std::fs::remove_file(&path).unwrap();
}

/// Review 2, item 6: a reload that fails on a bad line still revokes the
/// user the operator removed (and a changed password's old one), forgets
/// the --auth-once addresses, and says what stays; a file that would
/// leave nobody keeps everybody (authentication never turns off).
#[test]
fn a_failed_reload_still_revokes_and_says_what_stays() {
    let path = std::env::temp_dir().join(format!("socksd-cli-revoke-{}", std::process::id()));
    std::fs::write(&path, "alice:one\nbob:two\n").unwrap();
    let p = Proc::spawn(&["--listen", "127.0.0.1:0", "--users-file", path.to_str().unwrap(), "--auth-once"]);
    let proxy = p.listening();
    assert_eq!(common::s5_login(proxy, "bob", "two").1, 0);
    let no_auth = || {
        let mut s = common::connect(proxy);
        s.write_all(&[5, 1, 0]).unwrap();
        let mut m = [0u8; 2];
        std::io::Read::read_exact(&mut s, &mut m).unwrap();
        m[1]
    };
    assert_eq!(no_auth(), 0, "--auth-once: the address may skip the password");
    // bob removed, and a typo on another line.
    std::fs::write(&path, "alice:one\ncarol nopassword\n").unwrap();
    p.signal(libc::SIGHUP);
    let line = p.wait_for("the reload failed");
    assert!(line.contains(":2: expected NAME:PASSWORD"), "where: {line}");
    assert!(line.contains("1 previous users stay active, revoked now: bob"), "{line}");
    assert!(line.contains("--auth-once addresses forgotten"), "{line}");
    assert_eq!(no_auth(), 0xFF, "the address must log in again");
    assert_ne!(common::s5_login(proxy, "bob", "two").1, 0, "the removed user is out");
    assert_eq!(common::s5_login(proxy, "alice", "one").1, 0, "the others stay");
    std::fs::remove_file(&path).unwrap();
}

/// SIGHUP forgets --auth-once addresses whether or not there is a users
/// file, as the man page says.
#[test]
fn sighup_forgets_auth_once_without_users_file() {
    let p = Proc::spawn(&["--listen", "127.0.0.1:0", "-u", "alice:pw", "--auth-once"]);
    let proxy = p.listening();
    let no_auth = || {
        let mut s = common::connect(proxy);
        s.write_all(&[5, 1, 0]).unwrap();
        let mut m = [0u8; 2];
        std::io::Read::read_exact(&mut s, &mut m).unwrap();
        m[1]
    };
    assert_eq!(common::s5_login(proxy, "alice", "pw").1, 0);
    assert_eq!(no_auth(), 0, "known address may skip the password");
    p.signal(libc::SIGHUP);
    p.wait_for("forgotten");
    assert_eq!(no_auth(), 0xFF, "forgotten on SIGHUP");
}

/// A port another process serves is refused (exit 1), unless every
/// instance opted in with --reuse-port; a duplicate --listen is a flag
/// error.
#[test]
fn second_instance_on_the_same_address_fails() {
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let addr = free();
    let first = Proc::spawn(&["--listen", &addr]);
    first.listening();
    let out = run(&["--listen", &addr, "--user", "alice:secret"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("address in use") && err.contains(&addr), "{err}");
    let out = run(&["--listen", &addr, "--reuse-port"]);
    assert_eq!(out.status.code(), Some(1), "opting in alone does not join an instance that did not");

    let addr = free();
    let first = Proc::spawn(&["--listen", &addr, "--reuse-port"]);
    first.listening();
    let out = run(&["--listen", &addr]);
    assert_eq!(out.status.code(), Some(1), "an exclusive instance cannot join shared ones");
    let second = Proc::spawn(&["--listen", &addr, "--reuse-port"]);
    assert_eq!(second.listening().to_string(), addr, "both opted in: they share the port");

    let out = run(&["-l", "127.0.0.1:0", "-l", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("given twice"));
}

/// Review 2, item 5: the exclusive claim covers overlapping addresses: a
/// `--reuse-port` instance on 127.0.0.1:P beside an exclusive one on
/// 0.0.0.0:P (which it would take loopback clients from) fails, and the
/// reverse; exclusive instances on two addresses of one port coexist.
#[test]
fn the_claim_covers_overlapping_addresses() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let any = format!("0.0.0.0:{port}");
    let lo = format!("127.0.0.1:{port}");
    let wide = Proc::spawn(&["--listen", &any]);
    wide.listening();
    let out = run(&["--listen", &lo, "--reuse-port"]);
    assert_eq!(out.status.code(), Some(1), "a --reuse-port instance inside an exclusive wildcard");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&format!("serves {any}, which overlaps it")), "{err}");
    drop(wide);

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (lo, lo2, any) = (format!("127.0.0.1:{port}"), format!("127.0.0.2:{port}"), format!("0.0.0.0:{port}"));
    let narrow = Proc::spawn(&["--listen", &lo]);
    narrow.listening();
    let out = run(&["--listen", &any, "--reuse-port"]);
    assert_eq!(out.status.code(), Some(1), "a --reuse-port wildcard over an exclusive address");
    let other = Proc::spawn(&["--listen", &lo2]);
    assert_eq!(other.listening().to_string(), lo2, "another address of the port: no overlap");
}

/// Review 2, item 4: the claim's name (an abstract socket, which any
/// local user can bind) taken by another user does not stop socksd, even
/// on a port that user could not listen on. The squatter is this test
/// again, run as nobody.
#[test]
fn another_users_socket_on_the_claim_name_does_not_stop_socksd() {
    const TEST: &str = "another_users_socket_on_the_claim_name_does_not_stop_socksd";
    if let Ok(name) = std::env::var("SOCKSD_SQUAT") {
        return squat(&name);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        common::cannot_run(TEST, "needs root to run a squatter as another user");
        return;
    }
    if common::skip_under_emulation(TEST, "it runs the test binary again as another user") {
        return;
    }
    for kind in ["stream", "datagram"] {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let mut squatter = common::ChildGuard(
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
                .env("SOCKSD_SQUAT", format!("{kind} socksd/{addr}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut out = String::new();
        let mut r = std::io::BufReader::new(squatter.0.stdout.as_mut().unwrap());
        while !out.contains("bound") {
            out.clear();
            assert!(std::io::BufRead::read_line(&mut r, &mut out).unwrap() > 0, "the squatter ended");
        }
        let p = Proc::spawn(&["--listen", &addr]);
        let start = p.lines_until("listening on ");
        assert!(start.last().unwrap().ends_with(&addr), "{kind}: socksd starts: {start:?}");
        // A stream socket is what a claim is: socksd goes on without one,
        // and says so. (Abstract names are per socket type: a datagram
        // socket of the name is no obstacle at all.)
        let said = start.iter().any(|l| l.contains("another user holds socksd's claim name"));
        assert_eq!(said, kind == "stream", "{start:?}");
    }
}

/// The squatter: as nobody, binds the abstract name `name` ("KIND NAME"),
/// says so, and holds it until its stdin closes.
fn squat(spec: &str) {
    use std::os::linux::net::SocketAddrExt;
    let (kind, name) = spec.split_once(' ').unwrap();
    // SAFETY: setgid and setuid change only this process's credentials.
    assert!(unsafe { libc::setgid(65534) == 0 && libc::setuid(65534) == 0 });
    let ua = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _held: Box<dyn std::any::Any> = if kind == "stream" {
        Box::new(std::os::unix::net::UnixListener::bind_addr(&ua).unwrap())
    } else {
        Box::new(std::os::unix::net::UnixDatagram::bind_addr(&ua).unwrap())
    };
    println!("bound");
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut rest);
}

/// CR/LF and escape sequences in a requested name or a user name cannot
/// forge log lines or reach the reader's terminal.
#[test]
fn client_controlled_user_names_are_escaped_in_the_log() {
    let p = Proc::spawn(&["--listen", "127.0.0.1:0", "-vv", "--user", "alice:pw"]);
    let proxy = p.listening();
    assert_ne!(common::s5_login(proxy, "x\nsocksd: warn: forged", "pw").1, 0);
    let log = p.lines_until("authentication failed");
    assert!(log.iter().all(|l| !l.starts_with("socksd: warn: forged")), "{log:?}");
    assert!(log.iter().any(|l| l.contains("x\\x0asocksd: warn: forged")), "{log:?}");
}

#[test]
fn escaped_requested_name_in_debug_log() {
    let p = Proc::spawn(&["--listen", "127.0.0.1:0", "-vv", "--connect-timeout", "1"]);
    let proxy = p.listening();
    let evil = "evil.example\r\nsocksd: info: forged line\x1b[2J";
    let (_s, rep, _) = common::s5_connect(proxy, &common::domain_bytes(evil, 80));
    assert_ne!(rep, 0);
    let log = p.lines_until("refused");
    assert!(log.iter().all(|l| !l.starts_with("socksd: info: forged") && !l.contains('\x1b')), "{log:?}");
    assert!(log.iter().any(|l| l.contains("evil.example\\x0d\\x0asocksd: info: forged line\\x1b[2J")), "{log:?}");
}

/// Every flag error: one line, "socksd: ", socksd's own words, and the
/// pointer to --help; a value that is really a flag is called out.
#[test]
fn flag_errors_share_one_style() {
    for (args, says) in [
        (&["--bogus"][..], "unknown option '--bogus'"),
        (&["-Z"], "unknown option '-Z'"),
        (&["--listen"], "--listen needs a value"),
        (&["--listen", "--check"], "--listen needs a value, not the flag '--check'"),
        (&["-l", "-v"], "--listen needs a value, not the flag '-v'"),
        (&["--threads", "1", "--threads", "2"], "--threads given more than once"),
        (&["--check", "--outgoing-iface", "nosuchif0"], "no interface named 'nosuchif0'"),
        (&["--outgoing-iface", "nosuchif0"], "no interface named 'nosuchif0'"),
        (&["--allow-dest", "self"], "only meaningful with --deny-dest"),
        (&["--keepalive", "0.5"], "--keepalive"),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        let line = err.trim_end();
        assert!(line.starts_with("socksd: ") && line.ends_with(" (see socksd --help)"), "{args:?}: {err}");
        assert!(line.contains(says), "{args:?}: {err}");
    }
    let help = String::from_utf8(run(&["--help"]).stdout).unwrap();
    assert!(help.contains("1024 to 1048576"), "--buffer-size range in --help");
}

/// --log-procd: procd files stdout at level info and stderr at err and
/// tags lines itself, so info goes to stdout and warnings to stderr,
/// without the "socksd:" prefix; without the flag, a terminal user sees
/// everything on stderr, prefixed.
#[test]
fn log_procd_splits_levels_between_stdout_and_stderr() {
    use std::io::Read;
    for procd in [true, false] {
        let mut args = vec!["--listen", "0.0.0.0:0", "--threads", "1"];
        if procd {
            args.push("--log-procd");
        }
        let mut child = common::program(BIN)
            .args(&args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let mut err_text = String::new();
        let mut buf = [0u8; 4096];
        let end = Instant::now() + common::IO_TIMEOUT;
        // Stop once the open-proxy warning and the startup lines are out.
        while !(err_text.contains("open proxy") && (procd || err_text.contains("listening on"))) {
            assert!(Instant::now() < end, "no warning: {err_text}");
            let n = err.read(&mut buf).unwrap();
            assert!(n > 0, "stderr closed: {err_text}");
            err_text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        // SAFETY: kill has no memory effects; the pid is our own child's.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        child.wait().unwrap();
        let out_text = reader.join().unwrap();
        if procd {
            assert!(out_text.lines().any(|l| l.starts_with("info: listening on ")), "stdout: {out_text}");
            assert!(err_text.lines().any(|l| l.starts_with("warn: ") && l.contains("open proxy")), "{err_text}");
            assert!(!err_text.contains("info:") && !out_text.contains("warn:"), "{out_text} / {err_text}");
            assert!(!out_text.contains("socksd:") && !err_text.contains("socksd:"), "no prefix");
        } else {
            assert_eq!(out_text, "", "nothing on stdout");
            assert!(err_text.lines().any(|l| l.starts_with("socksd: info: listening on ")), "{err_text}");
            assert!(err_text.lines().any(|l| l.starts_with("socksd: warn: ")), "{err_text}");
        }
    }
}

/// The GSS-API flags: a build without the cargo feature names the feature
/// in its one-line error; a build with it checks their values.
#[test]
fn gssapi_flags_exit_2_with_one_line() {
    let cases: &[(&[&str], &str)] = if cfg!(feature = "gssapi") {
        &[
            (&["--gssapi-keytab", "/k"], "--gssapi-keytab needs --gssapi"),
            (&["--gssapi", "--gssapi-protection", "secret"], "unknown protection level"),
            (&["--gssapi", "--gssapi-protection", ""], "--gssapi-protection"),
            (&["--gssapi", "--gssapi-service", "rcmd@host"], "--gssapi-service"),
            (&["--gssapi", "--gssapi-allow", "@"], "--gssapi-allow"),
            (&["--gssapi", "--gssapi-allow", "a b"], "--gssapi-allow"),
            (&["--gssapi", "--gssapi-keytab"], "--gssapi-keytab needs a value"),
        ]
    } else {
        &[
            (&["--gssapi"], "built without GSS-API (cargo feature gssapi)"),
            (&["--gssapi-keytab", "/k"], "built without GSS-API"),
            (&["--gssapi-protection=none"], "built without GSS-API"),
        ]
    };
    for (args, says) in cases {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("socksd: ") && err.contains(says), "{args:?}: {err}");
    }
    if cfg!(feature = "gssapi") {
        // A keytab that is not there is a bad flag, before serving and
        // for --check alike: exit 2, named.
        for check in [&[][..], &["--check"]] {
            let mut args = vec!["--listen", "127.0.0.1:0", "--gssapi", "--gssapi-keytab", "/nonexistent/socksd.keytab"];
            args.extend_from_slice(check);
            let out = run(&args);
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            let err = String::from_utf8(out.stderr).unwrap();
            assert!(err.contains("/nonexistent/socksd.keytab") && err.lines().count() == 1, "{err}");
        }
    }
}
