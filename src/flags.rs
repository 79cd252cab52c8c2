//! The one table of command-line flags, and what is made from it: the
//! getopts parser, the `--help` text, and socksd's wording of getopts'
//! errors. The values are checked by [`crate::config`].

use getopts::Options;

/// How a flag takes its value, as getopts knows it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Takes {
    /// `--check`
    Nothing,
    /// `-v -v`
    Count,
    /// `--threads N`
    One,
    /// `--listen A --listen B`
    Many,
}

/// One command-line flag. This table is the one list of flags: the parser,
/// `--help` and the missing-value check are all made from it.
pub(crate) struct Flag {
    /// `Some` on the first flag of a `--help` group: the group's heading.
    pub group: Option<&'static str>,
    pub short: &'static str,
    pub long: &'static str,
    pub takes: Takes,
    pub hint: &'static str,
    pub help: &'static str,
}

const fn flag(short: &'static str, long: &'static str, takes: Takes, hint: &'static str, help: &'static str) -> Flag {
    Flag { group: None, short, long, takes, hint, help }
}

const fn heading(title: &'static str, f: Flag) -> Flag {
    Flag { group: Some(title), ..f }
}

use Takes::{Count, Many, Nothing, One};

pub(crate) const FLAGS: &[Flag] = &[
    heading(
        "Listening",
        flag("l", "listen", Many, "ADDR:PORT", "listen address, repeatable; IPv6 as [::1]:1080 (default 127.0.0.1:1080)"),
    ),
    flag("t", "threads", One, "N", "reactor threads (default: number of CPUs)"),
    flag(
        "",
        "bulk-threads",
        One,
        "N",
        "threads that carry bulk transfers apart from small exchanges, at lower priority; 0 = none (default: as many as --threads)",
    ),
    flag(
        "",
        "busy-poll",
        One,
        "US",
        "keep polling up to US microseconds after work before sleeping, so a reply finds the thread awake; 0 = never (default 100; 0 on one CPU)",
    ),
    flag(
        "",
        "max-conns",
        One,
        "N",
        "cap on simultaneous client connections (default: a quarter of RLIMIT_NOFILE, less a reserve)",
    ),
    flag(
        "",
        "max-conns-per-ip",
        One,
        "N",
        "cap per client (IPv4 address; IPv6 host on this host's links, else /64); 0 = none (default: half of --max-conns, at least 256)",
    ),
    flag("", "reuse-port", Nothing, "", "share the listen ports with other socksd processes started with --reuse-port"),
    flag(
        "",
        "proxy-protocol",
        Nothing,
        "",
        "every client connection starts with a PROXY protocol header (v1 or v2) from a load balancer, naming the client",
    ),
    flag(
        "",
        "proxy-protocol-from",
        Many,
        "CIDR",
        "the load balancers' addresses, repeatable; with --proxy-protocol, connections from elsewhere are closed",
    ),
    heading(
        "Authentication",
        flag(
            "u",
            "user",
            Many,
            "NAME:PASSWORD",
            "add a user, repeatable; with any user configured SOCKS5 requires username/password and SOCKS4/4a requests are refused",
        ),
    ),
    flag(
        "",
        "users-file",
        One,
        "PATH",
        "add users from a file of NAME:PASSWORD lines (# comment lines); re-read on SIGHUP",
    ),
    flag("", "auth-once", Nothing, "", "a client IP that authenticated once may then connect without a password"),
    heading(
        "Access control",
        flag("", "allow", Many, "CIDR", "serve only clients from this network, repeatable (default: all)"),
    ),
    flag(
        "",
        "allow-dest",
        Many,
        "RULE",
        "allow only these destinations, repeatable: CIDR, CIDR:PORT[-PORT], [IPv6 CIDR]:PORT or *:PORT (default: all)",
    ),
    flag(
        "",
        "deny-dest",
        Many,
        "RULE|self",
        "refuse these destinations (as --allow-dest, e.g. *:25), repeatable; wins over --allow-dest; 'self' = every address of this host",
    ),
    flag(
        "",
        "nat64-prefix",
        Many,
        "PREFIX",
        "a NAT64 prefix whose addresses the IPv4 destination rules also cover, as 64:ff9b::/96 always is",
    ),
    flag("", "no-socks4", Nothing, "", "refuse SOCKS4 and SOCKS4a"),
    flag("", "no-bind", Nothing, "", "refuse BIND (SOCKS4 and SOCKS5)"),
    flag("", "no-udp", Nothing, "", "refuse UDP ASSOCIATE"),
    heading("Outgoing connections", flag("b", "outgoing", One, "ADDR", "source address for outgoing connections")),
    flag(
        "",
        "upstream",
        Many,
        "URL [for MATCH,..]",
        "send CONNECTs through an upstream proxy (socks5://, socks4a://, http://, [USER:PASS@]IP:PORT) or 'direct'; MATCH: .suffix, name, CIDR, :PORT[-PORT] or *; first match wins; repeatable",
    ),
    flag(
        "",
        "outgoing-iface",
        One,
        "IFACE",
        "send outgoing connections through this interface (SO_BINDTODEVICE, Linux)",
    ),
    heading(
        "Timeouts, in seconds (fractions allowed)",
        flag("", "handshake-timeout", One, "S", "to finish greeting/auth/request (default 10)"),
    ),
    flag("", "connect-timeout", One, "S", "to resolve and connect to the target (default 10)"),
    flag("", "idle-timeout", One, "S", "close a relay idle this long; 0 = never (default 0)"),
    flag("", "bind-timeout", One, "S", "a BIND waits for its peer (default 60)"),
    flag("", "keepalive", One, "S", "TCP keepalive: first probe after this idle time; 0 = off (default 60)"),
    heading("UDP", flag("", "udp-advertise", One, "ADDR", "address given to clients as the UDP relay address")),
    flag("", "udp-ports", One, "LOW-HIGH", "take UDP relay ports from this range, to forward them"),
    flag(
        "",
        "udp-ports-per-ip",
        One,
        "N",
        "--udp-ports ports one client may hold; 0 = no limit (default: a quarter of the range)",
    ),
    flag(
        "",
        "udp-full-cone",
        Nothing,
        "",
        "accept UDP replies from any address (default: only from addresses the client sent to)",
    ),
    heading(
        "Relay",
        flag("", "buffer-size", One, "BYTES", "relay buffer per direction in bytes, 1024 to 1048576 (default 16384)"),
    ),
    flag("", "splice", Nothing, "", "relay with splice(2) through pooled pipes (default on Linux)"),
    flag("", "no-splice", Nothing, "", "relay by copying through --buffer-size buffers"),
    heading(
        "Other",
        flag(
            "",
            "check",
            Nothing,
            "",
            "check the flags, users file, interfaces and addresses, print every setting, and exit without serving",
        ),
    ),
    flag("v", "verbose", Count, "", "more logging (repeatable); RUST_LOG also honoured"),
    flag(
        "",
        "log-connections",
        Nothing,
        "",
        "log a key=value line for every finished or refused connection (see socksd(8))",
    ),
    flag("", "log-time", Nothing, "", "start every log line with the time, UTC to the millisecond (not with --log-procd)"),
    flag("q", "quiet", Count, "", "less logging (repeatable)"),
    flag(
        "",
        "log-procd",
        Nothing,
        "",
        "for procd (OpenWrt): info to stdout, warnings and errors to stderr, no 'socksd:' prefix",
    ),
    flag("h", "help", Nothing, "", "print this help and exit"),
    flag("V", "version", Nothing, "", "print the version and exit"),
];

/// The GSS-API method's flags (RFC 1961), in builds with the cargo
/// feature `gssapi`; other builds name them in their error instead.
#[cfg(feature = "gssapi")]
pub(crate) const GSS_FLAGS: &[Flag] = &[
    heading(
        "GSS-API (Kerberos)",
        flag("", "gssapi", Nothing, "", "offer the GSS-API method (RFC 1961), preferred over username/password"),
    ),
    flag("", "gssapi-keytab", One, "PATH", "keytab with the service's keys (default: KRB5_KTNAME or the system's)"),
    flag("", "gssapi-service", One, "NAME", "service name, or service/host (default rcmd, as curl asks)"),
    flag(
        "",
        "gssapi-protection",
        One,
        "LEVELS",
        "levels granted, comma-separated: none, integrity, confidentiality (default none; curl speaks none only)",
    ),
    flag("", "gssapi-allow", Many, "PRINCIPAL", "admit only this principal or @REALM, repeatable (default: any)"),
];
#[cfg(not(feature = "gssapi"))]
pub(crate) const GSS_FLAGS: &[Flag] = &[];

/// Every flag, in `--help` order.
pub(crate) fn all() -> impl Iterator<Item = &'static Flag> {
    FLAGS.iter().chain(GSS_FLAGS)
}

pub(crate) fn options() -> Options {
    let mut o = Options::new();
    for f in all() {
        match f.takes {
            Nothing => o.optflag(f.short, f.long, f.help),
            Count => o.optflagmulti(f.short, f.long, f.help),
            One => o.optopt(f.short, f.long, f.help, f.hint),
            Many => o.optmulti(f.short, f.long, f.help, f.hint),
        };
    }
    o
}

/// Where descriptions start in `--help`, and the line width they wrap at.
const HELP_INDENT: usize = 24;
const HELP_WIDTH: usize = 78;

/// The `--help` text: GNU-style aligned lines under headings. Written here
/// rather than by getopts' formatter, which costs 12 KB of binary.
pub(crate) fn usage() -> String {
    let mut s = String::from("Usage: socksd [OPTIONS]\n\nA SOCKS4, SOCKS4a and SOCKS5 proxy server.\n");
    for f in all() {
        if let Some(title) = f.group {
            s.push('\n');
            s.push_str(title);
            s.push_str(":\n");
        }
        let start = s.len();
        s.push_str(if f.short.is_empty() { "        " } else { "    -" });
        if !f.short.is_empty() {
            s.push_str(f.short);
            s.push_str(", ");
        }
        s.push_str("--");
        s.push_str(f.long);
        if !f.hint.is_empty() {
            s.push(' ');
            s.push_str(f.hint);
        }
        let mut col = s.len() - start;
        if col >= HELP_INDENT {
            s.push('\n');
            col = 0;
        }
        for (i, word) in f.help.split(' ').enumerate() {
            if i > 0 && col + 1 + word.len() > HELP_WIDTH {
                s.push('\n');
                col = 0;
            }
            if col < HELP_INDENT {
                s.extend(std::iter::repeat_n(' ', HELP_INDENT - col));
                col = HELP_INDENT;
            } else {
                s.push(' ');
                col += 1;
            }
            s.push_str(word);
            col += word.len();
        }
        s.push('\n');
    }
    s.push_str(
        "\nExamples:\n    socksd --listen 127.0.0.1:1080\n    \
         socksd -l 0.0.0.0:1080 -l [::]:1080 --users-file /etc/socksd.users --deny-dest self\n\n\
         Signals: SIGINT/SIGTERM stop cleanly; SIGHUP re-reads --users-file and forgets\n\
         --auth-once addresses.\n\
         See socksd(8).\n",
    );
    s
}

/// `--name` for a getopts option name (`-n` for one letter).
fn dashed(name: &str) -> String {
    if name.len() == 1 {
        format!("-{name}")
    } else {
        format!("--{name}")
    }
}

/// getopts' errors, in socksd's words.
pub(crate) fn getopts_error(e: getopts::Fail) -> String {
    use getopts::Fail;
    match e {
        Fail::UnrecognizedOption(o) if o.starts_with("gssapi") => {
            format!("{}: this socksd was built without GSS-API (cargo feature gssapi)", dashed(&o))
        }
        Fail::UnrecognizedOption(o) => match hint(&o) {
            Some(h) => format!("unknown option '{}': {h}", dashed(&o)),
            None => format!("unknown option '{}'", dashed(&o)),
        },
        Fail::ArgumentMissing(o) => format!("{} needs a value", dashed(&o)),
        Fail::OptionDuplicated(o) => format!("{} given more than once", dashed(&o)),
        Fail::UnexpectedArgument(o) => format!("{} takes no value", dashed(&o)),
        Fail::OptionMissing(o) => format!("{} is required", dashed(&o)),
    }
}

/// The socksd way for a flag of another SOCKS server that users bring
/// along (microsocks, Dante, 3proxy; README "Coming from ...").
fn hint(o: &str) -> Option<&'static str> {
    Some(match o {
        "P" => "socksd takes the password with the user, -u NAME:PASSWORD (microsocks' -u NAME -P PASSWORD)",
        "i" => "socksd listens with -l ADDR:PORT (microsocks' -i ADDR -p PORT)",
        "p" => "the port goes in -l ADDR:PORT (microsocks' -i ADDR -p PORT)",
        "1" => "that is --auth-once here (microsocks' -1)",
        "w" => "that is --allow CIDR here, once per network (microsocks' -w)",
        "f" => "socksd has no configuration file: every setting is a flag",
        "d" => "that is -v here, repeatable (Dante's -d)",
        _ => return None,
    })
}

/// A value that is really the next flag (`--listen --check`): getopts
/// would take it as the value. A leading `-` and a digit (a negative
/// number) is left to the value's own check.
pub(crate) fn looks_like_flag(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 2 && b[0] == b'-' && (b[1] == b'-' || b[1].is_ascii_alphabetic())
}
