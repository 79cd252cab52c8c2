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

#[test]
fn readme_run_command_serves_as_written() {
    if common::skip_under_emulation(
        "readme_run_command_serves_as_written",
        "it runs the host's cargo, nothing of the target",
    ) {
        return;
    }
    let cmd = run_command();
    let listen = cmd.split_whitespace().skip_while(|w| *w != "--listen").nth(1).expect("--listen ADDR").to_string();
    if std::net::TcpListener::bind(&listen).is_err() {
        eprintln!("SKIP: {listen} is in use on this machine; cannot run `{cmd}` as written");
        return;
    }
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
