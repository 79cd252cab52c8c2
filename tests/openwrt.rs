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
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name().into_string().unwrap();
            !(name.ends_with(".params") || name.ends_with(".data") || name == "events")
        })
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

/// The flags are accepted: `--check` passes, or fails only on what this
/// machine is not (the router's addresses), never on a flag (exit 2).
fn check(args: &[String]) {
    let out = common::program(BIN).arg("--check").args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let elsewhere = out.status.code() == Some(1) && err.contains("not an address of this host");
    assert!(
        elsewhere || out.status.success(),
        "socksd --check {args:?}: {}{err}",
        String::from_utf8_lossy(&out.stdout),
    );
    assert!(elsewhere || String::from_utf8_lossy(&out.stdout).contains("configuration OK"));
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
             \toption bulk_threads '1'\n\
             \toption busy_poll '0'\n\
             \tlist user 'alice:s3cret'\n\
             \toption users_file '{}'\n\
             \toption auth_once '1'\n\
             \tlist allow '192.168.1.0/24'\n\
             \tlist deny_dest '127.0.0.0/8'\n\
             \tlist deny_dest 'self'\n\
             \tlist allow_dest '0.0.0.0/0'\n\
             \tlist nat64_prefix '2001:db8:64::/96'\n\
             \tlist upstream 'socks5://u:p%20w@10.0.0.9:9050 for .onion'\n\
             \tlist upstream 'direct'\n\
             \tlist proxy_protocol_from '10.0.0.0/24'\n\
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
        "--nat64-prefix",
        "2001:db8:64::/96",
        "--upstream",
        "socks5://u:p%20w@10.0.0.9:9050 for .onion",
        "--upstream",
        "direct",
        "--proxy-protocol",
        "--proxy-protocol-from",
        "10.0.0.0/24",
        "--threads",
        "2",
        "--bulk-threads",
        "1",
        "--busy-poll",
        "0",
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
        "--log-procd",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(main, &want);
    assert_eq!(got[0].1, ["--listen", "10.0.0.1:1081", "-q", "--log-procd"]);
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
    let out = dir.join("out");
    harness(
        &config,
        &out,
        "start",
        &[
            ("NET_lan_IPV4", "127.0.0.1"),
            ("NET_lan_IPV6", "::1"),
            ("NET_lan_SUBNETS", "127.0.0.1/8"),
            ("NET_lan_SUBNETS6", "::1/128"),
        ],
    );
    let args: Vec<String> = main_args(&out);
    assert!(args.windows(2).any(|w| w == ["--listen", "127.0.0.1:1080"]), "listens on the LAN's address: {args:?}");
    assert!(args.windows(2).any(|w| w == ["--listen", "[::1]:1080"]), "and its IPv6 address: {args:?}");
    // Both families of LAN clients are served (no IPv4-only allow list).
    assert!(args.windows(2).any(|w| w == ["--allow", "::1/128"]), "{args:?}");
    assert!(args.windows(2).any(|w| w == ["--deny-dest", "self"]), "the router itself is denied");
    check(&args);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let config = dir.join("socksd");
    std::fs::write(&config, format!("config socksd 'main'\n\toption enabled '1'\n{body}")).unwrap();
    config
}

/// `option` (what `uci set` writes) works for every repeatable setting,
/// as `list` does: OpenWrt's config_list_foreach would skip it, and a
/// dropped `user` would silently turn authentication off.
#[test]
fn option_form_of_every_repeatable_setting() {
    let dir = tmpdir("option-form");
    let config = write_config(
        &dir,
        "\toption listen '127.0.0.1:1080'\n\toption user 'alice:secret'\n\toption allow '192.168.1.0/24'\n\
         \toption allow_dest '0.0.0.0/0'\n\toption deny_dest 'self'\n",
    );
    let got = instances(&config, &dir.join("out"));
    let want: Vec<String> = [
        "--listen",
        "127.0.0.1:1080",
        "--user",
        "alice:secret",
        "--allow",
        "192.168.1.0/24",
        "--allow-dest",
        "0.0.0.0/0",
        "--deny-dest",
        "self",
        "--log-procd",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(got[0].1, want);
    check(&got[0].1);
    // Both forms in one file: a list stays a list of all its items.
    let config = write_config(&dir, "\tlist user 'a:1'\n\tlist user 'b:2'\n\toption listen '127.0.0.1:1081'\n");
    let got = instances(&config, &dir.join("out2"));
    assert_eq!(got[0].1, ["--listen", "127.0.0.1:1081", "--user", "a:1", "--user", "b:2", "--log-procd"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// socks4, bind and udp are positive booleans (default on); the old
/// no_* options still work for a release, with a line in the system log.
#[test]
fn positive_booleans_and_the_old_negative_names() {
    let dir = tmpdir("booleans");
    let cases: [(&str, &[&str], bool); 5] = [
        ("", &[], false),
        ("\toption socks4 '0'\n\toption bind '0'\n\toption udp '1'\n", &["--no-socks4", "--no-bind"], false),
        ("\toption udp 'off'\n", &["--no-udp"], false),
        ("\toption no_socks4 '1'\n\toption no_udp '0'\n", &["--no-socks4"], true),
        // The new name wins over the old one.
        ("\toption no_bind '1'\n\toption bind '1'\n", &[], true),
    ];
    for (i, (body, flags, logged)) in cases.iter().enumerate() {
        let out = dir.join(format!("out{i}"));
        let got = instances(&write_config(&dir, body), &out);
        let extra: Vec<&str> = got[0].1.iter().map(String::as_str).filter(|a| a.starts_with("--no-")).collect();
        assert_eq!(&extra, flags, "{body:?}");
        let events = std::fs::read_to_string(out.join("events")).unwrap();
        assert_eq!(events.contains("deprecated"), *logged, "{body:?}: {events}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Each instance runs as the socksd user, with no new privileges, in a
/// jail that mounts only what it reads (read by procd's jail.c and
/// instance.c; here, that the init script asks for it).
#[test]
fn instances_run_unprivileged_in_a_jail() {
    let dir = tmpdir("jail");
    let config = write_config(&dir, "\tlist listen '127.0.0.1:1080'\n\toption users_file '/etc/socksd/users'\n");
    let out = dir.join("out");
    instances(&config, &out);
    let params = std::fs::read_to_string(out.join("main.params")).unwrap();
    for want in [
        "user socksd",
        "group socksd",
        "no_new_privs 1",
        "jail socksd log",
        // The resolver copy kept current (ujail's own mount of
        // /etc/resolv.conf would keep the file as it was at start) ...
        "jail_mount /etc/hosts /var/run/socksd/resolv.conf:/etc/resolv.conf",
        // ... and the users file's directory, so that a reload sees a
        // replaced file.
        "jail_mount /etc/socksd",
    ] {
        assert!(params.lines().any(|l| l == want), "{want:?} in {params}");
    }
    // A users file directly in /etc: the file alone, and a line saying
    // what that costs.
    let config = write_config(&dir, "\tlist listen '127.0.0.1:1080'\n\toption users_file '/etc/socksd.users'\n");
    let out = dir.join("etc");
    let events = harness(&config, &out, "start", &[]);
    let params = std::fs::read_to_string(out.join("main.params")).unwrap();
    assert!(params.lines().any(|l| l == "jail_mount /etc/socksd.users"), "{params}");
    assert!(events.contains("directly in /etc/: the jail mounts it alone"), "{events}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// reload signals the running instances before starting: a SIGHUP sent
/// after start could reach an instance procd has just started.
#[test]
fn reload_signals_before_it_starts() {
    let dir = tmpdir("reload");
    let config = write_config(&dir, "\tlist listen '127.0.0.1:1080'\n");
    let out = dir.join("out");
    let events = harness(&config, &out, "reload", &[]);
    assert_eq!(events.lines().collect::<Vec<_>>(), ["signal socksd * HUP", "start", "dns"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `/etc/init.d/socksd stats` asks every instance for its counters, and
/// `log_connections` turns the connection log on.
#[test]
fn stats_command_and_connection_log_option() {
    let dir = tmpdir("stats");
    let config = write_config(&dir, "\tlist listen '127.0.0.1:1080'\n\toption log_connections '1'\n");
    let out = dir.join("out");
    let events = harness(&config, &out, "stats", &[]);
    assert_eq!(events.lines().collect::<Vec<_>>(), ["signal socksd * USR1"]);
    harness(&config, &out, "start", &[]);
    let args = main_args(&out);
    assert!(args.iter().any(|a| a == "--log-connections"), "{args:?}");
    check(&args);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What the jailed service has: an unprivileged user, no capabilities, no
/// new privileges. socksd starts and relays like that, including
/// --outgoing-iface (SO_BINDTODEVICE needs no privilege since Linux 5.7).
#[test]
fn serves_as_an_unprivileged_user_without_capabilities() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIP: needs root and setpriv (util-linux) to drop to nobody");
        return;
    }
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--no-new-privs",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]);
    if let Some(e) = common::emulator() {
        cmd.arg(e);
    }
    let (_guard, proxy) =
        common::serve(cmd.arg(BIN).args(["--listen", "127.0.0.1:0", "--threads", "1", "--outgoing-iface", "lo"]));
    let echo = common::echo_server("127.0.0.1:0");
    let (mut s, rep, _) = common::s5_connect(proxy, &common::addr_bytes(echo));
    assert_eq!(rep, 0);
    common::echo_check(&mut s, b"relayed by nobody");
}

/// The feed's test.sh: the installed binary is the packaged version and
/// --check passes; a wrong version fails it.
#[test]
fn feed_test_script_checks_version_and_flags() {
    if common::skip_under_emulation("feed_test_script_checks_version_and_flags", "it runs socksd from PATH") {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/openwrt/socksd/test.sh");
    let dir = tmpdir("feedtest");
    std::os::unix::fs::symlink(BIN, dir.join("socksd")).unwrap();
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap());
    let version = env!("CARGO_PKG_VERSION");
    let run = |v: &str| Command::new("sh").args([script, "socksd", v]).env("PATH", &path).output().unwrap();
    let ok = run(&format!("{version}-r1"));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(!run("9.9.9").status.success(), "a wrong version fails");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The "main" instance's arguments after the program, from a harness run.
fn main_args(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("main")).unwrap().lines().skip(1).map(String::from).collect()
}

/// Runs the harness with `action` and interface state in `net`
/// (NET_<iface>_{IPV4,IPV6,DEVICE}, as network.sh would report).
fn harness(config: &Path, out: &Path, action: &str, net: &[(&str, &str)]) -> String {
    let mut cmd = Command::new("sh");
    cmd.args([HARNESS, INIT, config.to_str().unwrap(), out.to_str().unwrap(), action]);
    for (k, v) in net {
        cmd.env(k, v);
    }
    assert!(cmd.status().unwrap().success(), "harness {action}");
    std::fs::read_to_string(out.join("events")).unwrap()
}

/// `option interface 'lan'` listens on the LAN's addresses and
/// `option outgoing_interface 'wan'` sends through the WAN's device, both
/// resolved through network.sh; the service restarts when they change.
#[test]
fn interfaces_by_uci_name() {
    let dir = tmpdir("ifaces");
    let config =
        write_config(&dir, "\toption interface 'lan'\n\toption port '1081'\n\toption outgoing_interface 'wan'\n");
    let up = [
        ("NET_lan_IPV4", "127.0.0.1"),
        ("NET_lan_IPV6", "::1"),
        ("NET_lan_SUBNETS", "127.0.0.1/8"),
        ("NET_lan_SUBNETS6", "::1/128"),
        ("NET_wan_DEVICE", "lo"),
        ("NET_wan_IPV4", "127.0.0.2"),
    ];
    let out = dir.join("up");
    harness(&config, &out, "start", &up);
    let args: Vec<String> = main_args(&out);
    // Without "allow": the clients of the interface's own subnets, both families.
    assert_eq!(
        args,
        [
            "--listen",
            "127.0.0.1:1081",
            "--listen",
            "[::1]:1081",
            "--allow",
            "127.0.0.1/8",
            "--allow",
            "::1/128",
            "--outgoing-iface",
            "lo",
            "--log-procd"
        ]
    );
    check(&args);
    // With "allow", those alone.
    std::fs::create_dir_all(dir.join("a")).unwrap();
    let allowed = write_config(&dir.join("a"), "\toption interface 'lan'\n\tlist allow '10.0.0.0/8'\n");
    let out = dir.join("allow");
    harness(&allowed, &out, "start", &up);
    let args = main_args(&out);
    assert_eq!(args.iter().filter(|a| *a == "--allow").count(), 1, "{args:?}");
    assert!(args.windows(2).any(|w| w == ["--allow", "10.0.0.0/8"]), "{args:?}");
    // LAN down: no instance (the interface trigger starts it), and a line.
    let out = dir.join("landown");
    let events = harness(&config, &out, "start", &up[4..]);
    assert!(!out.join("main").exists(), "no instance while lan is down");
    assert!(events.contains("main: interface lan is down; waiting for it"), "{events}");
    // WAN down: no device, so no restriction, and a line in the log.
    let out = dir.join("down");
    let events = harness(&config, &out, "start", &up[..4]);
    let args: Vec<String> = main_args(&out);
    assert!(!args.iter().any(|a| a == "--outgoing-iface"), "{args:?}");
    assert!(events.contains("interface wan has no device"), "{events}");
    let events = harness(&config, &dir.join("trig"), "triggers", &up);
    assert_eq!(
        events.lines().collect::<Vec<_>>(),
        ["interface_trigger lan", "interface_trigger wan", "raw_trigger interface.* 2000 /etc/init.d/socksd dns"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `option firewall_zone` (opt-in) adds fw4 rules through procd data for
/// the TCP port and the UDP range, and only when users are configured.
#[test]
fn firewall_rules_are_opt_in_and_need_users() {
    let dir = tmpdir("firewall");
    let rules = |body: &str, out: &str| {
        let out = dir.join(out);
        let events = harness(&write_config(&dir, body), &out, "start", &[]);
        (std::fs::read_to_string(out.join("main.data")).unwrap(), events)
    };
    let (data, _) = rules("\toption port '1081'\n", "none");
    assert_eq!(data, "", "no rule unless asked");
    let (data, events) = rules("\toption firewall_zone 'wan'\n", "nousers");
    assert_eq!(data, "", "no rule without users");
    assert!(events.contains("needs users"), "{events}");
    let (data, _) = rules(
        "\toption firewall_zone 'wan'\n\toption port '1081'\n\toption users_file '/etc/socksd.users'\n\
         \toption udp_ports '40000-40099'\n",
        "open",
    );
    let want = "open_data\narray firewall\n\
                object\ntype=rule\nname=socksd-tcp\nsrc=wan\nproto=tcp\ndest_port=1081\ntarget=ACCEPT\nend_object\n\
                object\ntype=rule\nname=socksd-udp\nsrc=wan\nproto=udp\ndest_port=40000-40099\ntarget=ACCEPT\nend_object\n\
                end_array\nclose_data\n";
    assert_eq!(data, want);
    std::fs::remove_dir_all(&dir).unwrap();
}
