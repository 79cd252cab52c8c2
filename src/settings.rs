//! What a configuration comes to on this machine: the limits derived from
//! the open-file limit ([`Limits`]), every setting spelled out with its
//! default ([`describe`], which `--check` prints), and what can be tried
//! without serving ([`dry_run`]: the listen and `--outgoing` addresses).

use crate::config::Config;
use crate::resolver;
use std::fmt::Write as _;
use std::net::SocketAddr;

/// The connections one client may hold unless `--max-conns-per-ip` says
/// otherwise is half of `--max-conns`, but never fewer than this (or
/// `--max-conns` itself, when smaller): what one busy LAN host needs (a
/// browser keeps up to 256 connections through a proxy). A cap nobody set
/// should not be met by an ordinary user.
pub const BUSY_HOST: usize = 256;

/// The limits a server runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The open-file limit (RLIMIT_NOFILE) they come from.
    pub nofile: usize,
    /// Descriptors socksd may spend on clients.
    pub budget: usize,
    /// `--max-conns`, given or derived.
    pub max_conns: usize,
    /// `--max-conns-per-ip`, given or derived; 0: none.
    pub per_ip: usize,
    /// `--udp-ports-per-ip`, given or derived; 0: none.
    pub udp_per_ip: usize,
}

impl Limits {
    /// The limits for `cfg` under the open-file limit `nofile`.
    pub fn of(cfg: &Config, nofile: usize) -> Limits {
        let threads = cfg.threads + cfg.lanes();
        // A reserve for what every server holds anyway: standard streams,
        // per thread a poll instance, its waker and listeners, the
        // resolver threads' lookups.
        let reserve = 8 + threads * (3 + cfg.listen.len()) + 2 * resolver::MAX_WORKERS;
        let budget = nofile.saturating_sub(reserve).max(nofile / 2);
        // The most a connection holds that is not optional: a UDP
        // association's four (the control connection, the relay socket
        // and an out socket per family), so that every connection under
        // the cap can be served. Splice pipes are optional: without room
        // for one, a relay copies instead.
        let max_conns = cfg.max_conns.unwrap_or((budget / 4).max(1));
        let per_ip = cfg.max_conns_per_ip.unwrap_or((max_conns / 2).max(BUSY_HOST.min(max_conns)));
        let udp_per_ip = match (cfg.udp_ports_per_ip, cfg.udp_ports) {
            (Some(n), _) => n,
            (None, Some((lo, hi))) => (usize::from(hi - lo) + 1).div_ceil(4),
            (None, None) => 0,
        };
        Limits { nofile, budget, max_conns, per_ip, udp_per_ip }
    }
}

fn on(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

fn seconds(d: std::time::Duration) -> String {
    let ms = crate::timer::millis(d, false);
    if ms % 1000 == 0 {
        format!("{}", ms / 1000)
    } else {
        format!("{}.{:03}", ms / 1000, ms % 1000)
    }
}

/// Every setting `cfg` runs with, one per line, as its flag and value
/// (defaults and derived values included, and said so).
pub fn describe(cfg: &Config, l: &Limits) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = |s: String| out.push(s);
    for a in &cfg.listen {
        line(format!("--listen {a}"));
    }
    line(format!("--threads {}", cfg.threads));
    line(format!("--bulk-threads {}", cfg.lanes()));
    line(format!(
        "--busy-poll {}{}",
        // Under a millisecond; as_micros would be a u128 division.
        cfg.busy_poll.subsec_micros(),
        if cfg.busy_poll == crate::config::default_busy_poll(crate::sys::cpus()) { " (default)" } else { "" }
    ));
    let derived = |given: bool| if given { "" } else { " (default)" };
    line(format!(
        "--max-conns {}{}",
        l.max_conns,
        if cfg.max_conns.is_some() {
            String::new()
        } else {
            format!(" (default: from the open-file limit, {})", l.nofile)
        }
    ));
    line(format!("--max-conns-per-ip {}{}", l.per_ip, derived(cfg.max_conns_per_ip.is_some())));
    line(format!("--reuse-port {}", on(cfg.reuse_port)));
    match cfg.proxy_protocol.as_slice() {
        [] => line("--proxy-protocol off".into()),
        from => line(format!("--proxy-protocol on, from {}", list(from))),
    }
    let mut names = String::new();
    for (i, u) in cfg.users.iter().chain(&cfg.file_users).enumerate() {
        let _ = write!(names, "{}{}", if i > 0 { ", " } else { "" }, crate::escape::Escaped(&u.name));
    }
    let users = cfg.users.len() + cfg.file_users.len();
    line(format!("users: {users}{}{names}", if users > 0 { ": " } else { " (no authentication)" }));
    if let Some(p) = &cfg.users_file {
        line(format!("--users-file {} ({} users)", p.display(), cfg.file_users.len()));
    }
    line(format!("--auth-once {}", on(cfg.auth_once)));
    fn list<T: std::fmt::Display>(v: &[T]) -> String {
        if v.is_empty() {
            "all".to_string()
        } else {
            v.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" ")
        }
    }
    line(format!("--allow {}", list(&cfg.acl.allow)));
    line(format!("--allow-dest {}", list(&cfg.acl.allow_dest)));
    let mut deny: Vec<String> = cfg.acl.deny_dest.iter().map(|c| c.to_string()).collect();
    if cfg.acl.deny_self {
        deny.push(crate::acl::SELF.into());
    }
    line(format!("--deny-dest {}", if deny.is_empty() { "none".into() } else { deny.join(" ") }));
    let mut nat64 = vec![crate::acl::NAT64_WKP.to_string()];
    nat64.extend(cfg.acl.nat64.iter().map(|c| c.to_string()));
    line(format!("--nat64-prefix {}", nat64.join(" ")));
    line(format!("SOCKS4 {}, BIND {}, UDP ASSOCIATE {}", on(!cfg.no_socks4), on(!cfg.no_bind), on(!cfg.no_udp)));
    line(format!("--outgoing {}", cfg.outgoing.map_or("any (the route's)".into(), |a| a.to_string())));
    line(format!("--outgoing-iface {}", cfg.outgoing_iface.as_deref().unwrap_or("any (the route's)")));
    for r in &cfg.routes.rules {
        line(format!("--upstream {r}"));
    }
    if cfg.routes.rules.is_empty() {
        line("--upstream none (every destination directly)".into());
    }
    line(format!("--handshake-timeout {}", seconds(cfg.handshake_timeout)));
    line(format!("--connect-timeout {}", seconds(cfg.connect_timeout)));
    line(format!("--idle-timeout {}", cfg.idle_timeout.map_or("0 (never)".into(), seconds)));
    line(format!("--bind-timeout {}", seconds(cfg.bind_timeout)));
    line(format!("--keepalive {}", cfg.keepalive.map_or("0 (off)".into(), seconds)));
    line(format!("--udp-advertise {}", cfg.udp_advertise.map_or("the relay's own address".into(), |a| a.to_string())));
    match cfg.udp_ports {
        Some((lo, hi)) => {
            line(format!("--udp-ports {lo}-{hi}"));
            line(format!("--udp-ports-per-ip {}{}", l.udp_per_ip, derived(cfg.udp_ports_per_ip.is_some())));
        }
        None => line("--udp-ports any".into()),
    }
    line(format!("--udp-full-cone {}", on(cfg.udp_full_cone)));
    line(format!("--buffer-size {}", cfg.buffer_size));
    line(format!("--splice {}", on(cfg.splice)));
    line(format!("--log-connections {}", on(cfg.log_connections)));
    line(format!("--log-time {}", on(cfg.log_time)));
    line(format!("--log-procd {}", on(cfg.log_procd)));
    line(format!(
        "log level: {}",
        ["error", "warn", "info", "debug", "trace"][(cfg.verbosity + 2).clamp(0, 4) as usize]
    ));
    line(format!("descriptors for clients: {} of the open-file limit {}", l.budget, l.nofile));
    out
}

/// What `--check` tries without serving: every listen address can be
/// bound (a running socksd of this user that serves it is noted, not an
/// error: it is the one a reload keeps), and `--outgoing` is an address of
/// this host. Notes on success; the error a start would give.
pub fn dry_run(cfg: &Config) -> Result<Vec<String>, String> {
    let mut notes = Vec::new();
    for &a in &cfg.listen {
        if a.port() == 0 {
            continue;
        }
        match crate::listen::exclusive_overlapping(a) {
            Some(other) if other == a => notes.push(format!("{a} is served now by a running socksd of this user")),
            Some(other) if !cfg.reuse_port => {
                notes.push(format!("{other}, which overlaps {a}, is served now by a running socksd of this user"))
            }
            Some(other) => return Err(format!("listen on {a}: a socksd without --reuse-port serves {other}")),
            None => crate::listen::probe_free(a).map_err(|e| crate::listen::bind_error(a, &e))?,
        }
    }
    if let Some(ip) = cfg.outgoing {
        let sock =
            socket2::Socket::new(socket2::Domain::for_address(SocketAddr::new(ip, 0)), socket2::Type::DGRAM, None)
                .map_err(|e| format!("--outgoing {ip}: {e}"))?;
        sock.bind(&SocketAddr::new(ip, 0).into()).map_err(|e| {
            if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) {
                format!("--outgoing {ip}: not an address of this host ({e})")
            } else {
                format!("--outgoing {ip}: {e}")
            }
        })?;
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_nobody_set_leaves_a_busy_host_room() {
        let mut cfg = Config { threads: 2, bulk_threads: Some(2), ..Config::default() };
        let l = Limits::of(&cfg, 20_000);
        assert_eq!(l.max_conns, l.budget / 4, "a UDP association's four descriptors");
        assert_eq!(l.per_ip, l.max_conns / 2);
        cfg.max_conns = Some(5);
        assert_eq!(Limits::of(&cfg, 20_000).per_ip, 5, "not 2: a cap nobody set");
        cfg.max_conns = Some(300);
        assert_eq!(Limits::of(&cfg, 20_000).per_ip, BUSY_HOST);
        cfg.max_conns_per_ip = Some(3);
        assert_eq!(Limits::of(&cfg, 20_000).per_ip, 3, "as given");
        assert_eq!(Limits::of(&Config::default(), 400).budget, 200, "at least half of a small limit");
    }
}
