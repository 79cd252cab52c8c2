//! The README's two commands, as a new user types them: the run command
//! must start a working server from a fresh checkout (the test command is
//! what CI runs, so it is checked by CI itself).

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The first `cargo run` line of the README's quick start.
fn run_command() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    readme.lines().map(str::trim).find(|l| l.starts_with("cargo run")).expect("a cargo run line").to_string()
}

/// It runs in network and mount namespaces of its own, so that whatever
/// this machine serves on the README's address (the quick start's own
/// server, say) cannot make it skip: a test that cannot run must not look
/// like a pass.
#[test]
fn readme_run_command_serves_as_written() {
    const TEST: &str = "readme_run_command_serves_as_written";
    if common::skip_under_emulation(TEST, "it runs the host's cargo, nothing of the target") {
        return;
    }
    let cmd = run_command();
    let listen = cmd.split_whitespace().skip_while(|w| *w != "--listen").nth(1).expect("--listen ADDR").to_string();
    let probe = std::process::Command::new("unshare").args(["-n", "-m", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        // No namespaces here (not root): as written, on this machine.
        if std::net::TcpListener::bind(&listen).is_err() {
            common::cannot_run(TEST, &format!("{listen} is in use, and no namespace of its own (root) to run in"));
            return;
        }
    } else if !common::sandboxed(TEST) {
        return;
    }
    assert!(std::net::TcpListener::bind(&listen).is_ok(), "{listen} is free in the test's own namespace");
    // Its own process group, so the server cargo starts is stopped with it.
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {cmd}"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let _group = Group(child.id() as libc::pid_t);
    let mut guard = common::ChildGuard(child);
    let stderr = guard.0.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let end = Instant::now() + std::time::Duration::from_secs(300);
    let mut seen = Vec::new();
    let proxy = loop {
        let Some(Ok(l)) = lines.next() else {
            panic!("`{cmd}` ended before listening: {seen:?}");
        };
        if let Some(a) = l.strip_prefix("socksd: info: listening on ") {
            break a.parse::<std::net::SocketAddr>().unwrap();
        }
        seen.push(l);
        assert!(Instant::now() < end, "{seen:?}");
    };
    let echo = common::echo_server("127.0.0.1:0");
    let (mut s, rep, _) = common::s5_connect(proxy, &common::addr_bytes(echo));
    assert_eq!(rep, 0);
    common::echo_check(&mut s, b"README");
}

/// The process group `cargo run` and the server it starts live in; stopped
/// (SIGTERM, which socksd answers with a clean exit) however the test ends.
struct Group(libc::pid_t);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill has no memory effects; the group is the one we made.
        unsafe { libc::kill(-self.0, libc::SIGTERM) };
    }
}
