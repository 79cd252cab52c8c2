//! The tool's command line: a version, and measurements printed as plain
//! key=value numbers that scripts can read.

use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_socksd-bench");

#[test]
fn version_and_plain_numbers() {
    let out = Command::new(BENCH).arg("-V").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("socksd-bench "));
    let out = Command::new(BENCH)
        .args(["--mode", "idle", "--conns", "10", "--pid", &std::process::id().to_string()])
        .output()
        .unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.contains("rss_before_kib=") && !line.contains("Some("), "{line}");
}

#[test]
fn bad_flags_are_one_line_and_status_2() {
    let out = Command::new(BENCH).args(["--mode", "nonsense"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("socksd-bench: "), "{err}");
}

/// Item 9 of the operator review: on a process that once held much more
/// memory than now, the idle figure is flagged, not reported as if true.
#[test]
fn idle_on_a_used_process_is_flagged() {
    // 64 MiB touched and given back (a large allocation is its own
    // mapping): this process's peak RSS is now far above its RSS.
    let big = vec![1u8; 64 << 20];
    assert_eq!(std::hint::black_box(&big)[12345], 1);
    drop(big);
    let out = Command::new(BENCH)
        .args(["--mode", "idle", "--conns", "10", "--pid", &std::process::id().to_string()])
        .output()
        .unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(line.contains("trusted=no"), "{line}");
    assert!(err.contains("freshly started proxy"), "{err}");
}

/// A proxy that turns connections away: the error says how far it got.
#[test]
fn idle_says_how_far_it_got() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            drop(s);
        }
    });
    let out =
        Command::new(BENCH).args(["--mode", "idle", "--conns", "5", "--proxy", &proxy.to_string()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("connection 1 of 5 failed (0 were held open)"), "{err}");
}

/// Flags of the one-proxy form are refused in a comparison, not ignored.
#[test]
fn single_proxy_flags_in_a_comparison_are_an_error() {
    let out = Command::new(BENCH).args(["--proxy", "a=127.0.0.1:9", "--user", "u:p"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--proxy NAME=USER:PASS@HOST:PORT") && err.lines().count() == 1, "{err}");
}

/// A bad --proxy spec is one line naming what is wrong.
#[test]
fn bad_proxy_specs_say_why() {
    for (spec, why) in [
        ("a=ftp://127.0.0.1:21", "unknown scheme ftp"),
        ("b=nohost", "is not HOST:PORT"),
        ("c=userwithoutpass@127.0.0.1:1", "USER:PASS"),
    ] {
        let out = Command::new(BENCH).args(["--proxy", spec]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{spec}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(why) && err.lines().count() == 1, "{spec}: {err}");
    }
}
