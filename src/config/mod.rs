//! The configuration the server runs with ([`Config`]), made from the
//! command line by [`parse_args`], which checks every value: flags are
//! the only way to configure socksd (routers run it from an init script;
//! there is no config file). The flag table itself is in `flags.rs`.

use crate::acl::{Acl, DestRule};
use crate::auth::{self, User};
use crate::flags::{self, Takes};
use crate::values::{balancers, nat64_prefix, number, port_range, routes, seconds};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[cfg(feature = "gssapi")]
mod gss;
#[cfg(feature = "gssapi")]
use gss::gss_flags;
#[cfg(feature = "gssapi")]
pub use gss::GssConfig;

/// Where socksd listens without `--listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1080";
/// The relay buffer size without `--buffer-size`.
pub const DEFAULT_BUFFER: usize = 16 * 1024;
/// A relay buffer also holds the handshake, whose longest message (SOCKS4a
/// with a 255-byte user id and a 255-byte domain) is 520 bytes.
pub const MIN_BUFFER: usize = 1024;
/// The largest `--buffer-size`.
pub const MAX_BUFFER: usize = 1 << 20;
const MAX_THREADS: usize = 256;
/// TCP keepalive idle seconds without `--keepalive`.
pub const DEFAULT_KEEPALIVE: u64 = 60;
/// The longest `--busy-poll`, in µs: longer than any wake-up it saves.
const MAX_BUSY_POLL_US: usize = 1000;
/// `--busy-poll` without the flag, in µs: longer than the slowest
/// cross-CPU hand-over measured (about 50 µs per wake-up on a 2-CPU VM), so
/// that the reply to what a reactor relayed usually finds it still polling.
pub const DEFAULT_BUSY_POLL_US: u64 = 100;

/// `--busy-poll`'s default: off on one CPU, where a spinning reactor would
/// only hold up the peer that is to answer it.
pub fn default_busy_poll(cpus: usize) -> Duration {
    Duration::from_micros(if cpus > 1 { DEFAULT_BUSY_POLL_US } else { 0 })
}

/// Everything the server needs to run. `Config::default()` is what the
/// binary runs with no flags, except that it listens on port 0 is never
/// implied: tests set `listen` themselves.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--listen`: addresses to serve (port 0 picks one).
    pub listen: Vec<SocketAddr>,
    /// `--threads`: reactor threads.
    pub threads: usize,
    /// `--bulk-threads`: bulk lanes (see lanes.rs); `None` = as many as
    /// `threads`.
    pub bulk_threads: Option<usize>,
    /// `--busy-poll`: how long an accepting reactor keeps polling after
    /// work before it sleeps (see spin.rs); zero = never.
    pub busy_poll: Duration,
    /// Users from --user flags.
    pub users: Vec<User>,
    /// `--users-file`: read at start and on SIGHUP.
    pub users_file: Option<PathBuf>,
    /// Users read from --users-file at start (SIGHUP re-reads the file).
    pub file_users: Vec<User>,
    /// `--no-socks4`.
    pub no_socks4: bool,
    /// `--outgoing`: source address of outgoing connections.
    pub outgoing: Option<IpAddr>,
    /// `--outgoing-iface`: interface outgoing connections are bound to.
    pub outgoing_iface: Option<String>,
    /// `None`: derived from RLIMIT_NOFILE at start.
    pub max_conns: Option<usize>,
    /// `--handshake-timeout`.
    pub handshake_timeout: Duration,
    /// `--connect-timeout`: for all of a target's addresses together.
    pub connect_timeout: Duration,
    /// `None`: relays never idle out.
    pub idle_timeout: Option<Duration>,
    /// `--buffer-size`: bytes per relay buffer.
    pub buffer_size: usize,
    /// Relay through splice(2) and pooled pipes instead of copying.
    pub splice: bool,
    /// `--no-bind`.
    pub no_bind: bool,
    /// `--no-udp`.
    pub no_udp: bool,
    /// How long a BIND listener waits for its one peer.
    pub bind_timeout: Duration,
    /// Address put in UDP ASSOCIATE replies instead of the local one (NAT).
    pub udp_advertise: Option<IpAddr>,
    /// Fixed range for UDP relay ports, inclusive.
    pub udp_ports: Option<(u16, u16)>,
    /// Client and destination rules (--allow, --allow-dest, --deny-dest).
    pub acl: Acl,
    /// A client IP that authenticated once may later skip authentication.
    pub auth_once: bool,
    /// Connections one client (IPv4 address, IPv6 /64) may hold; `None`:
    /// half of `max_conns`; `Some(0)`: no limit.
    pub max_conns_per_ip: Option<usize>,
    /// `--udp-ports` ports one client may hold; `None`: a quarter of the
    /// range (at least one); `Some(0)`: no limit.
    pub udp_ports_per_ip: Option<usize>,
    /// Accept UDP replies from any address, not only from those the client
    /// has sent to.
    pub udp_full_cone: bool,
    /// TCP keepalive idle time on client and outgoing sockets; `None`: off.
    pub keepalive: Option<Duration>,
    /// Share listen ports with other socksd processes started the same way.
    pub reuse_port: bool,
    /// `--upstream`: destinations sent through upstream proxies.
    pub routes: crate::route::Routes,
    /// `--proxy-protocol-from`: the load balancers whose connections start
    /// with a PROXY protocol header; empty: off (no header expected).
    pub proxy_protocol: Vec<crate::acl::Cidr>,
    /// -v minus -q; 0 is the default level (info).
    pub verbosity: i32,
    /// `--log-procd`: info and below to stdout, warnings and errors to
    /// stderr, without the program-name prefix (procd adds it).
    pub log_procd: bool,
    /// `--log-connections`: one line per finished or refused connection.
    pub log_connections: bool,
    /// `--log-time`: every log line starts with the time (UTC).
    pub log_time: bool,
    /// `--gssapi` and its settings.
    #[cfg(feature = "gssapi")]
    pub gssapi: Option<GssConfig>,
}

impl Config {
    /// Bulk lanes to start.
    pub fn lanes(&self) -> usize {
        self.bulk_threads.unwrap_or(self.threads)
    }
}

impl Default for Config {
    fn default() -> Config {
        let cpus = crate::sys::cpus();
        Config {
            listen: vec![DEFAULT_LISTEN.parse().unwrap()],
            threads: cpus,
            bulk_threads: None,
            busy_poll: default_busy_poll(cpus),
            users: Vec::new(),
            users_file: None,
            file_users: Vec::new(),
            no_socks4: false,
            outgoing: None,
            outgoing_iface: None,
            max_conns: None,
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: None,
            buffer_size: DEFAULT_BUFFER,
            splice: cfg!(target_os = "linux"),
            no_bind: false,
            no_udp: false,
            bind_timeout: Duration::from_secs(60),
            udp_advertise: None,
            udp_ports: None,
            acl: Acl::default(),
            auth_once: false,
            max_conns_per_ip: None,
            udp_ports_per_ip: None,
            udp_full_cone: false,
            keepalive: Some(Duration::from_secs(DEFAULT_KEEPALIVE)),
            reuse_port: false,
            proxy_protocol: Vec::new(),
            routes: Default::default(),
            verbosity: 0,
            log_procd: false,
            log_connections: false,
            log_time: false,
            #[cfg(feature = "gssapi")]
            gssapi: None,
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Action {
    /// Serve with this configuration.
    Run(Box<Config>),
    /// `--check`: validate and exit.
    Check(Box<Config>),
    /// Print this help text.
    Help(String),
    /// Print the version.
    Version,
}

pub use crate::values::ArgError;

/// Checks what flags alone cannot: that `--outgoing-iface` names an
/// interface that exists here.
pub fn validate(cfg: &Config) -> Result<(), String> {
    if let Some(iface) = &cfg.outgoing_iface {
        if !crate::sys::interface_exists(iface) {
            return Err(format!("--outgoing-iface: no interface named '{iface}'"));
        }
    }
    Ok(())
}

/// Parses the arguments after the program name.
pub fn parse_args<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<Action, ArgError> {
    let opts = flags::options();
    let m = opts.parse(args).map_err(|e| ArgError(flags::getopts_error(e)))?;
    for f in flags::all().filter(|f| matches!(f.takes, Takes::One | Takes::Many)) {
        for v in m.opt_strs(f.long) {
            if flags::looks_like_flag(&v) {
                return Err(ArgError(format!("--{} needs a value, not the flag '{v}'", f.long)));
            }
        }
    }
    if m.opt_present("h") {
        return Ok(Action::Help(flags::usage()));
    }
    if m.opt_present("V") {
        return Ok(Action::Version);
    }
    if let Some(extra) = m.free.first() {
        return Err(ArgError(format!(
            "unexpected argument '{extra}' (socksd takes flags only: there is no configuration file)"
        )));
    }
    let mut c = Config::default();
    let listen = m.opt_strs("l");
    if !listen.is_empty() {
        c.listen.clear();
        for l in &listen {
            let addr = l
                .parse()
                .map_err(|_| ArgError(format!("invalid value for --listen: '{l}' (ADDR:PORT, IPv6 as [::1]:1080)")))?;
            if c.listen.contains(&addr) {
                return Err(ArgError(format!("--listen {addr} given twice")));
            }
            c.listen.push(addr);
        }
    }
    if let Some(t) = m.opt_str("t") {
        c.threads = number("threads", &t, 1, MAX_THREADS)?;
    }
    if let Some(t) = m.opt_str("bulk-threads") {
        c.bulk_threads = Some(number("bulk-threads", &t, 0, MAX_THREADS)?);
    }
    if let Some(t) = m.opt_str("busy-poll") {
        c.busy_poll = Duration::from_micros(number("busy-poll", &t, 0, MAX_BUSY_POLL_US)? as u64);
    }
    for u in m.opt_strs("u") {
        let user = User::parse(&u).map_err(|e| {
            let hint = if u.contains(':') { "" } else { " (microsocks' -u NAME -P PASSWORD is -u NAME:PASSWORD here)" };
            ArgError(format!("invalid value for --user: {e}{hint}"))
        })?;
        c.users.push(user);
    }
    if let Some(p) = m.opt_str("users-file") {
        let path = PathBuf::from(p);
        let users = auth::load_users_file(&path).map_err(|e| ArgError(format!("--users-file: {e}")))?;
        c.file_users = users;
        c.users_file = Some(path);
    }
    auth::check_unique(&c.users, &c.file_users).map_err(ArgError)?;
    c.no_socks4 = m.opt_present("no-socks4");
    if let Some(b) = m.opt_str("b") {
        let ip = b.parse().map_err(|_| ArgError(format!("invalid value for --outgoing: '{b}' (an IP address)")))?;
        c.outgoing = Some(ip);
    }
    if let Some(i) = m.opt_str("outgoing-iface") {
        if i.is_empty() || i.len() >= libc::IFNAMSIZ || i.contains('\0') || i.contains('/') {
            return Err(ArgError(format!("invalid value for --outgoing-iface: '{i}' (an interface name, e.g. eth0)")));
        }
        c.outgoing_iface = Some(i);
    }
    if let Some(n) = m.opt_str("max-conns") {
        c.max_conns = Some(number("max-conns", &n, 1, 10_000_000)?);
    }
    if let Some(n) = m.opt_str("max-conns-per-ip") {
        c.max_conns_per_ip = Some(number("max-conns-per-ip", &n, 0, 10_000_000)?);
    }
    c.reuse_port = m.opt_present("reuse-port");
    c.routes = routes(&m.opt_strs("upstream"))?;
    c.proxy_protocol = balancers(m.opt_present("proxy-protocol"), &m.opt_strs("proxy-protocol-from"))?;
    if let Some(s) = m.opt_str("keepalive") {
        let d = seconds("keepalive", &s, true)?;
        if !d.is_zero() && d < Duration::from_secs(1) {
            return Err(ArgError(format!("invalid value for --keepalive: '{s}' (whole seconds, at least 1; 0 = off)")));
        }
        c.keepalive = (!d.is_zero()).then_some(d);
    }
    if let Some(s) = m.opt_str("handshake-timeout") {
        c.handshake_timeout = seconds("handshake-timeout", &s, false)?;
    }
    if let Some(s) = m.opt_str("connect-timeout") {
        c.connect_timeout = seconds("connect-timeout", &s, false)?;
    }
    if let Some(s) = m.opt_str("idle-timeout") {
        let d = seconds("idle-timeout", &s, true)?;
        c.idle_timeout = (!d.is_zero()).then_some(d);
    }
    if let Some(b) = m.opt_str("buffer-size") {
        c.buffer_size = number("buffer-size", &b, MIN_BUFFER, MAX_BUFFER)?;
    }
    for v in m.opt_strs("allow") {
        if v == crate::acl::SELF {
            return Err(ArgError(format!("invalid value for --allow: '{v}' is only meaningful with --deny-dest")));
        }
        c.acl.allow.push(v.parse().map_err(|e| ArgError(format!("invalid value for --allow: {e}")))?);
    }
    for (flag, deny) in [("allow-dest", false), ("deny-dest", true)] {
        for v in m.opt_strs(flag) {
            if v == crate::acl::SELF {
                if !deny {
                    return Err(ArgError(format!(
                        "invalid value for --{flag}: '{v}' is only meaningful with --deny-dest"
                    )));
                }
                c.acl.deny_self = true;
                continue;
            }
            let rule: DestRule = v.parse().map_err(|e| ArgError(format!("invalid value for --{flag}: {e}")))?;
            if deny { &mut c.acl.deny_dest } else { &mut c.acl.allow_dest }.push(rule);
        }
    }
    for v in m.opt_strs("nat64-prefix") {
        c.acl.nat64.push(nat64_prefix(&v)?);
    }
    c.auth_once = m.opt_present("auth-once");
    match (m.opt_present("splice"), m.opt_present("no-splice")) {
        (true, true) => return Err(ArgError("--splice and --no-splice contradict each other".into())),
        (true, false) => c.splice = true,
        (false, true) => c.splice = false,
        (false, false) => {}
    }
    c.no_bind = m.opt_present("no-bind");
    c.no_udp = m.opt_present("no-udp");
    if let Some(s) = m.opt_str("bind-timeout") {
        c.bind_timeout = seconds("bind-timeout", &s, false)?;
    }
    if let Some(a) = m.opt_str("udp-advertise") {
        let ip =
            a.parse().map_err(|_| ArgError(format!("invalid value for --udp-advertise: '{a}' (an IP address)")))?;
        c.udp_advertise = Some(ip);
    }
    if let Some(r) = m.opt_str("udp-ports") {
        c.udp_ports = Some(port_range(&r)?);
    }
    if let Some(n) = m.opt_str("udp-ports-per-ip") {
        if c.udp_ports.is_none() {
            return Err(ArgError("--udp-ports-per-ip needs --udp-ports".into()));
        }
        c.udp_ports_per_ip = Some(number("udp-ports-per-ip", &n, 0, 65535)?);
    }
    c.udp_full_cone = m.opt_present("udp-full-cone");
    c.verbosity = m.opt_count("v") as i32 - m.opt_count("q") as i32;
    c.log_procd = m.opt_present("log-procd");
    c.log_connections = m.opt_present("log-connections");
    c.log_time = m.opt_present("log-time");
    if c.log_time && c.log_procd {
        return Err(ArgError("--log-time and --log-procd contradict each other (procd stamps lines itself)".into()));
    }
    #[cfg(feature = "gssapi")]
    gss_flags(&m, &mut c)?;
    if m.opt_present("check") {
        return Ok(Action::Check(Box::new(c)));
    }
    Ok(Action::Run(Box::new(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Config {
        match parse_args(args) {
            Ok(Action::Run(c)) => *c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_flags() {
        let c = run(&[]);
        assert_eq!(c.listen, vec![DEFAULT_LISTEN.parse::<SocketAddr>().unwrap()]);
        assert_eq!(c.buffer_size, DEFAULT_BUFFER);
        assert_eq!(c.idle_timeout, None);
        let c = run(&[
            "-l",
            "[::1]:1081",
            "--listen",
            "0.0.0.0:9",
            "-t",
            "3",
            "-u",
            "a:b",
            "--no-socks4",
            "-b",
            "10.0.0.1",
            "--max-conns",
            "7",
            "--handshake-timeout",
            "0.5",
            "--connect-timeout",
            "2",
            "--idle-timeout",
            "0",
            "--buffer-size",
            "65536",
            "-vv",
            "-q",
        ]);
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.threads, 3);
        assert_eq!(c.users.len(), 1);
        assert!(c.no_socks4);
        assert_eq!(c.outgoing, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(c.max_conns, Some(7));
        assert_eq!(c.handshake_timeout, Duration::from_millis(500));
        assert_eq!(c.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.idle_timeout, None);
        assert_eq!(c.buffer_size, 65536);
        assert_eq!(c.verbosity, 1);
        let c = run(&[
            "--no-bind",
            "--no-udp",
            "--bind-timeout",
            "5",
            "--udp-advertise",
            "192.0.2.1",
            "--udp-ports",
            "40000-40009",
        ]);
        assert!(c.no_bind && c.no_udp);
        assert_eq!(c.bind_timeout, Duration::from_secs(5));
        assert_eq!(c.udp_advertise, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(c.udp_ports, Some((40000, 40009)));
        let c = run(&["--allow", "192.168.1.0/24", "--allow", "::1", "--deny-dest", "127.0.0.0/8", "--auth-once"]);
        assert_eq!(c.acl.allow.len(), 2);
        assert_eq!(c.acl.deny_dest.len(), 1);
        assert!(c.auth_once);
    }

    /// Review 2, item 7: `@REALM` is the principal's realm, not a suffix
    /// of its display name.
    #[cfg(feature = "gssapi")]
    #[test]
    fn gssapi_allow_matches_the_realm_exactly() {
        let g = GssConfig { allow: vec!["@GOOD.ORG".into(), "bob@B.ORG".into()], ..GssConfig::default() };
        assert!(g.admits("alice@GOOD.ORG"));
        assert!(g.admits("host/a.example@GOOD.ORG"));
        assert!(g.admits("x\\@y@GOOD.ORG"), "an escaped @ in the name");
        assert!(!g.admits("alice@EVIL\\@GOOD.ORG"), "a realm ending in an escaped @GOOD.ORG");
        assert!(!g.admits("alice@NOTGOOD.ORG"));
        assert!(!g.admits("x\\@GOOD.ORG@EVIL.ORG"), "GOOD.ORG inside the name, realm EVIL.ORG");
        assert!(g.admits("bob@B.ORG") && !g.admits("bob@B.ORG.EVIL"));
        assert!(GssConfig::default().admits("anyone@ANY"));
    }

    #[test]
    fn bulk_lanes_default_to_the_reactor_count() {
        let c = run(&["-t", "3"]);
        assert_eq!(c.lanes(), 3);
        let c = run(&["-t", "3", "--bulk-threads", "0"]);
        assert_eq!(c.lanes(), 0);
        let c = run(&["--bulk-threads", "1"]);
        assert_eq!(c.lanes(), 1);
    }

    #[test]
    fn busy_poll_is_off_on_one_cpu_and_in_microseconds() {
        assert_eq!(default_busy_poll(1), Duration::ZERO);
        assert_eq!(default_busy_poll(2), Duration::from_micros(DEFAULT_BUSY_POLL_US));
        assert_eq!(run(&["--busy-poll", "0"]).busy_poll, Duration::ZERO);
        assert_eq!(run(&["--busy-poll", "250"]).busy_poll, Duration::from_micros(250));
    }

    #[test]
    fn bad_values_are_one_line() {
        for args in [
            &["--listen", "1080"][..],
            &["--busy-poll", "1001"],
            &["--busy-poll", "-1"],
            &["--busy-poll", "50us"],
            &["--threads", "0"],
            &["--threads", "x"],
            &["--bulk-threads", "-1"],
            &["--bulk-threads", "257"],
            &["--user", "nopass"],
            &["--buffer-size", "10"],
            &["--connect-timeout", "-1"],
            &["--connect-timeout", "0"],
            &["--handshake-timeout", "nan"],
            &["--bogus"],
            &["stray"],
            &["--outgoing", "host"],
            &["--users-file", "/nonexistent/socksd-users"],
            &["--udp-ports", "9-1"],
            &["--udp-ports", "0-10"],
            &["--udp-ports", "100"],
            &["--udp-advertise", "nat"],
            &["--bind-timeout", "0"],
            &["--allow", "10.0.0.0/33"],
            &["--deny-dest", "router"],
            &["--nat64-prefix", "64:ff9b::/95"],
            &["--nat64-prefix", "10.0.0.0/8"],
            &["--nat64-prefix", "64:ff9b::"],
        ] {
            let err = parse_args(args).unwrap_err();
            assert!(!err.0.contains('\n'), "{args:?}: {}", err.0);
        }
    }

    #[test]
    fn help_lists_every_flag() {
        let h = crate::flags::usage();
        for f in [
            "--listen",
            "--threads",
            "--user",
            "--users-file",
            "--no-socks4",
            "--outgoing",
            "--outgoing-iface",
            "--max-conns",
            "--handshake-timeout",
            "--connect-timeout",
            "--idle-timeout",
            "--buffer-size",
            "--verbose",
            "--quiet",
            "--help",
            "--version",
            "--no-bind",
            "--no-udp",
            "--bind-timeout",
            "--udp-advertise",
            "--udp-ports",
            "--allow",
            "--allow-dest",
            "--deny-dest",
            "--auth-once",
            "--splice",
            "--no-splice",
            "--check",
        ] {
            assert!(h.contains(f), "{f}");
        }
        assert!(matches!(parse_args(&["-h"]), Ok(Action::Help(_))));
        assert!(matches!(parse_args(&["-V"]), Ok(Action::Version)));
    }
}
