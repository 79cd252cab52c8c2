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
