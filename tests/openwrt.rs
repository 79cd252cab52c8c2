//! The OpenWrt package: the init script passes `sh -n`, and its UCI ->
//! flags mapping, run against a stand-in for UCI and procd
//! (tests/openwrt/harness.sh), yields command lines that `socksd --check`
//! accepts, one per enabled section.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_socksd");
const INIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/openwrt/socksd/files/socksd.init");
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/openwrt/socksd/files/socksd.config");
const HARNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openwrt/harness.sh");

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("socksd-openwrt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the init script on `config`; returns (instance, argv after the program).
fn instances(config: &Path, out: &Path) -> Vec<(String, Vec<String>)> {
    let st =
        Command::new("sh").args([HARNESS, INIT, config.to_str().unwrap(), out.to_str().unwrap()]).status().unwrap();
    assert!(st.success(), "harness failed");
    let mut v: Vec<(String, Vec<String>)> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let text = std::fs::read_to_string(e.path()).unwrap();
            let mut args: Vec<String> = text.lines().map(String::from).collect();
            assert_eq!(args.remove(0), "/usr/bin/socksd");
            (e.file_name().into_string().unwrap(), args)
        })
        .collect();
    v.sort();
    v
}

fn check(args: &[String]) {
    let out = common::program(BIN).arg("--check").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "socksd --check {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));
}

#[test]
fn init_script_is_valid_shell() {
    for f in [INIT, HARNESS] {
        let st = Command::new("sh").args(["-n", f]).status().unwrap();
        assert!(st.success(), "sh -n {f}");
    }
}

#[test]
fn uci_options_map_one_to_one_onto_accepted_flags() {
    let dir = tmpdir("map");
    let users = dir.join("users");
    std::fs::write(&users, "bob:pw\n").unwrap();
    let config = dir.join("socksd");
    std::fs::write(
        &config,
        format!(
            "config socksd 'main'\n\
             \toption enabled '1'\n\
             \tlist listen '192.168.1.1:1080'\n\
             \tlist listen '[::1]:1080'\n\
             \toption threads '2'\n\
             \tlist user 'alice:s3cret'\n\
             \toption users_file '{}'\n\
             \toption auth_once '1'\n\
             \tlist allow '192.168.1.0/24'\n\
             \tlist deny_dest '127.0.0.0/8'\n\
             \tlist deny_dest 'self'\n\
             \tlist allow_dest '0.0.0.0/0'\n\
             \toption no_socks4 'yes'\n\
             \toption no_bind '0'\n\
             \toption no_udp 'off'\n\
             \toption outgoing '127.0.0.1'\n\
             \toption outgoing_iface 'lo'\n\
             \toption max_conns '512'\n\
             \toption max_conns_per_ip '32'\n\
             \toption handshake_timeout '5'\n\
             \toption connect_timeout '7.5'\n\
             \toption idle_timeout '600'\n\
             \toption bind_timeout '30'\n\
             \toption keepalive '45'\n\
             \toption udp_advertise '203.0.113.7'\n\
             \toption udp_ports '40000-40099'\n\
             \toption udp_ports_per_ip '10'\n\
             \toption udp_full_cone '1'\n\
             \toption buffer_size '32768'\n\
             \toption splice '0'\n\
             \toption verbosity '2'\n\
             \n\
             config socksd 'guest'\n\
             \toption enabled '1'\n\
             \tlist listen '10.0.0.1:1081'\n\
             \toption verbosity '-1'\n\
             \n\
             config socksd 'off'\n\
             \toption enabled '0'\n\
             \tlist listen '10.0.0.1:1082'\n",
            users.display()
        ),
    )
    .unwrap();
    let got = instances(&config, &dir.join("out"));
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["guest", "main"], "disabled sections start nothing");
    let main = &got[1].1;
    let want: Vec<String> = [
        "--listen",
        "192.168.1.1:1080",
        "--listen",
        "[::1]:1080",
        "--user",
        "alice:s3cret",
        "--allow",
        "192.168.1.0/24",
        "--allow-dest",
        "0.0.0.0/0",
        "--deny-dest",
        "127.0.0.0/8",
        "--deny-dest",
        "self",
        "--threads",
        "2",
        "--users-file",
        users.to_str().unwrap(),
        "--outgoing",
        "127.0.0.1",
        "--outgoing-iface",
        "lo",
        "--max-conns",
        "512",
        "--max-conns-per-ip",
        "32",
        "--handshake-timeout",
        "5",
        "--connect-timeout",
        "7.5",
        "--idle-timeout",
        "600",
        "--bind-timeout",
        "30",
        "--keepalive",
        "45",
        "--udp-advertise",
        "203.0.113.7",
        "--udp-ports",
        "40000-40099",
        "--udp-ports-per-ip",
        "10",
        "--buffer-size",
        "32768",
        "--auth-once",
        "--no-socks4",
        "--udp-full-cone",
        "--no-splice",
        "-v",
        "-v",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(main, &want);
    assert_eq!(got[0].1, ["--listen", "10.0.0.1:1081", "-q"]);
    for (_, args) in &got {
        check(args);
    }
    // A bad value in UCI is caught by --check with a one-line message.
    let bad = common::program(BIN).args(["--check", "--listen", "192.168.1.1"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shipped_config_is_accepted_once_enabled() {
    let dir = tmpdir("shipped");
    let text = std::fs::read_to_string(SHIPPED).unwrap().replace("option enabled '0'", "option enabled '1'");
    let config = dir.join("socksd");
    std::fs::write(&config, text).unwrap();
    let got = instances(&config, &dir.join("out"));
    assert_eq!(got.len(), 1);
    assert!(got[0].1.windows(2).any(|w| w == ["--deny-dest", "self"]), "the router itself is denied");
    check(&got[0].1);
    std::fs::remove_dir_all(&dir).unwrap();
}
