//! The `socksd` binary as a user runs it: flags, exit codes, the startup
//! log line, signals.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_socksd");

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).stdin(Stdio::null()).output().unwrap()
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
        let mut child = Command::new(BIN)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
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
    let p = Proc::spawn(&["--listen", "0.0.0.0:0", "--user", "a:b"]);
    p.listening();
    p.signal(libc::SIGTERM);
    assert!(p.lines.iter().all(|l| !l.contains("open proxy")));
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

    std::fs::write(&path, "broken line\n").unwrap();
    p.signal(libc::SIGHUP);
    p.wait_for("keeping the current users");
    assert_eq!(common::s5_login(proxy, "alice", "two").1, 0);
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
