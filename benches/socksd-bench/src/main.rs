//! socksd-bench: the load generator socksd's own benchmarks use, for any
//! SOCKS proxy (or none, for the direct baseline). It starts its own
//! loopback targets. One server and one mode: a key=value line plus a
//! human summary. Several servers (or rounds, or a report file): a
//! comparison in interleaved rounds (compare.rs), written by report.rs.

use getopts::Options;
use socksd_bench::{self as loadgen, Direction, Route};
use std::process::exit;
use std::time::Duration;

fn usage(o: &Options) -> String {
    o.usage(
        "Usage: socksd-bench [--proxy HOST:PORT [--user U:P]] --mode bulk|connrate|latency|loaded-latency|idle [OPTIONS]\n       \
         socksd-bench --proxy NAME=[SCHEME://][USER:PASS@]HOST:PORT ... [--mode all|MODE,...] [--rounds N] [--json F] [--csv F] [--markdown F] [--svg F]\n\n\
         Measures SOCKS proxies (and always the direct path) on loopback.",
    )
}

fn fail(msg: String) -> ! {
    eprintln!("socksd-bench: {msg} (see socksd-bench --help)");
    exit(2);
}

fn num<T: std::str::FromStr>(m: &getopts::Matches, flag: &str, default: T) -> T {
    match m.opt_str(flag) {
        None => default,
        Some(v) => v.parse().unwrap_or_else(|_| fail(format!("invalid value for --{flag}: '{v}'"))),
    }
}

/// A KiB figure for the key=value line: the number, or "unknown".
fn kib(v: Option<u64>) -> String {
    v.map_or_else(|| "unknown".into(), |k| k.to_string())
}

fn main() {
    let mut o = Options::new();
    o.optmulti("p", "proxy", "a proxy to measure (repeatable: NAME=[SCHEME://][USER:PASS@]HOST:PORT, SCHEME socks5, socks5h, socks4 or socks4a); without it, the direct path", "SPEC");
    o.optopt("u", "user", "username and password for the proxy", "USER:PASS");
    o.optopt(
        "m",
        "mode",
        "bulk, connrate, latency, loaded-latency, udp or idle; comparing: a comma-separated list or all (default)",
        "MODE",
    );
    o.optopt("", "rounds", "compare in N interleaved rounds (default 3)", "N");
    o.optopt("", "json", "write the comparison as JSON (schema in socksd-bench(1))", "FILE");
    o.optopt("", "csv", "write the comparison as CSV", "FILE");
    o.optopt("", "markdown", "write the comparison's table as Markdown", "FILE");
    o.optopt("", "svg", "draw the comparison as SVG bars with min-max whiskers", "FILE");
    o.optflag("q", "quiet", "no progress lines on stderr");
    o.optopt("", "streams", "bulk: parallel streams (default 1); loaded-latency: bulk streams (default 2)", "N");
    o.optopt("", "direction", "bulk: down (target to client) or up (default down)", "DIR");
    o.optopt("", "time", "bulk, connrate: seconds to run (default 3)", "S");
    o.optopt("", "workers", "connrate: concurrent workers (default 32)", "N");
    o.optopt("", "count", "latency: round trips (default 20000); loaded-latency: (default 5000)", "N");
    o.optopt("", "conns", "idle: connections to hold (default 10000)", "N");
    o.optopt("", "pid", "idle, bulk: the proxy's pid, to report its RSS and CPU", "PID");
    o.optflag("h", "help", "print this help");
    o.optflag("V", "version", "print the version and exit");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let m = o.parse(&args).unwrap_or_else(|e| fail(e.to_string()));
    if m.opt_present("h") {
        print!("{}", usage(&o));
        return;
    }
    if m.opt_present("V") {
        println!("socksd-bench {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    let proxies: Vec<(String, Route)> = m
        .opt_strs("proxy")
        .iter()
        .map(|p| loadgen::parse_proxy(p).unwrap_or_else(|e| fail(format!("invalid value for --proxy: {e}"))))
        .collect();
    let comparing = proxies.len() > 1
        || m.opt_strs("proxy").iter().any(|p| p.contains('='))
        || ["rounds", "json", "csv", "markdown", "svg"].iter().any(|f| m.opt_present(f))
        || m.opt_str("mode").is_none_or(|v| v == "all" || v == "udp" || v.contains(','));
    if comparing {
        if m.opt_present("user") || m.opt_present("pid") || m.opt_present("conns") {
            fail("--user, --pid and --conns are for one proxy and one mode; in a comparison give credentials as --proxy NAME=USER:PASS@HOST:PORT".into());
        }
        compare(&m, proxies);
        return;
    }
    let mut route = proxies.into_iter().next().map_or_else(Route::direct, |p| p.1);
    if let Some(u) = m.opt_str("user") {
        let (a, b) = u.split_once(':').unwrap_or_else(|| fail("--user wants USER:PASS".into()));
        route.user = Some((a.into(), b.into()));
    }
    let time = Duration::from_secs_f64(num(&m, "time", 3.0));
    let pid: Option<u32> = m.opt_str("pid").map(|p| p.parse().unwrap_or_else(|_| fail(format!("bad --pid '{p}'"))));
    let proxy = route.proxy.map_or("direct".to_string(), |p| p.to_string());
    let targets = loadgen::Targets::start().unwrap_or_else(|e| fail(format!("cannot start targets: {e}")));
    let mode = m.opt_str("mode").unwrap_or_default();
    if mode == "bulk" {
        loadgen::warm_up(&route, &targets);
    }
    let result = match mode.as_str() {
        "bulk" => {
            let streams = num(&m, "streams", 1usize);
            let dir = match m.opt_str("direction").as_deref() {
                None | Some("down") => Direction::Down,
                Some("up") => Direction::Up,
                Some(d) => fail(format!("invalid value for --direction: '{d}'")),
            };
            let cpu0 = pid.and_then(loadgen::tree_cpu_secs);
            loadgen::bulk(&route, &targets, streams, dir, time).map(|bps| {
                let gbps = bps * 8.0 / 1e9;
                let mut line =
                    format!("mode=bulk proxy={proxy} streams={streams} direction={} gbit_per_s={gbps:.2}", dir.name());
                if let (Some(c0), Some(c1)) = (cpu0, pid.and_then(loadgen::tree_cpu_secs)) {
                    let gib = bps * time.as_secs_f64() / (1u64 << 30) as f64;
                    line += &format!(" proxy_cpu_s_per_gib={:.3}", (c1 - c0) / gib);
                }
                (line, format!("{streams} stream(s) {}: {gbps:.2} Gbit/s", dir.name()))
            })
        }
        "connrate" => {
            let workers = num(&m, "workers", 32usize);
            loadgen::connrate(&route, &targets, workers, time).map(|(rate, p)| {
                (
                    format!(
                        "mode=connrate proxy={proxy} workers={workers} conn_per_s={rate:.0} p50_us={:.0} p99_us={:.0}",
                        p.p50, p.p99
                    ),
                    format!(
                        "{workers} workers: {rate:.0} connections/s, cycle p50 {:.0} us, p99 {:.0} us",
                        p.p50, p.p99
                    ),
                )
            })
        }
        "latency" => {
            let count = num(&m, "count", 20_000usize);
            loadgen::latency(&route, &targets, count).map(|p| {
                (
                    format!(
                        "mode=latency proxy={proxy} count={count} p50_us={:.1} p99_us={:.1} p999_us={:.1}",
                        p.p50, p.p99, p.p999
                    ),
                    format!("round trip: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us", p.p50, p.p99, p.p999),
                )
            })
        }
        "loaded-latency" => {
            let streams = num(&m, "streams", 2usize);
            let count = num(&m, "count", 5_000usize);
            loadgen::loaded_latency(&route, &targets, streams, count).map(|l| {
                let (p, gbps) = (l.rtt, l.bulk_bps * 8.0 / 1e9);
                (
                    format!(
                        "mode=loaded-latency proxy={proxy} streams={streams} count={count} p50_us={:.1} p99_us={:.1} p999_us={:.1} bulk_gbit_per_s={gbps:.2}",
                        p.p50, p.p99, p.p999
                    ),
                    format!(
                        "round trip under {streams} bulk streams: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us; bulk {gbps:.2} Gbit/s",
                        p.p50, p.p99, p.p999
                    ),
                )
            })
        }
        "idle" => {
            let n = num(&m, "conns", 10_000usize);
            let before = pid.and_then(loadgen::tree_rss_kib);
            let peak = pid.and_then(loadgen::tree_peak_rss_kib);
            // A proxy that already ran other load has memory to reuse, and
            // the figure would come out near zero (socksd-bench(1), idle).
            let trusted = match (before, peak) {
                (Some(b), Some(p)) => loadgen::fresh_enough(b, p),
                _ => true,
            };
            if !trusted {
                eprintln!(
                    "socksd-bench: warning: the proxy's RSS peaked at {} KiB and is {} KiB now: memory it kept from earlier load hides what idle connections cost; measure idle on a freshly started proxy",
                    kib(peak),
                    kib(before)
                );
            }
            loadgen::idle(&route, n).map(|set| {
                std::thread::sleep(Duration::from_millis(500));
                let after = pid.and_then(loadgen::tree_rss_kib);
                let per = match (before, after) {
                    (Some(b), Some(a)) => format!("{:.0}", (a.saturating_sub(b)) as f64 * 1024.0 / n as f64),
                    _ => "unknown".into(),
                };
                drop(set);
                (
                    format!(
                        "mode=idle proxy={proxy} conns={n} rss_before_kib={} rss_after_kib={} peak_before_kib={} bytes_per_conn={per} trusted={}",
                        kib(before),
                        kib(after),
                        kib(peak),
                        if trusted { "yes" } else { "no" }
                    ),
                    format!("{n} idle relayed connections: {per} bytes of proxy RSS each"),
                )
            })
        }
        other => fail(format!("invalid value for --mode: '{other}'")),
    };
    match result {
        Ok((kv, human)) => {
            println!("{kv}");
            eprintln!("{human}");
        }
        Err(e) => {
            eprintln!("socksd-bench: {e}");
            exit(1);
        }
    }
}

/// Several servers (the direct path always among them) in interleaved
/// rounds; the table on stdout, the reports where asked.
fn compare(m: &getopts::Matches, proxies: Vec<(String, Route)>) {
    use loadgen::compare::{self, Mode, Server, Settings};
    use loadgen::report;
    let modes = Mode::parse_list(m.opt_str("mode").as_deref().unwrap_or("all")).unwrap_or_else(|e| fail(e));
    let d = Settings::default();
    let settings = Settings {
        rounds: num(m, "rounds", d.rounds).clamp(1, 100),
        time: Duration::from_secs_f64(num(m, "time", d.time.as_secs_f64()).clamp(0.05, 600.0)),
        streams: num(m, "streams", d.streams).clamp(1, 256),
        direction: match m.opt_str("direction").as_deref() {
            None | Some("down") => Direction::Down,
            Some("up") => Direction::Up,
            Some(x) => fail(format!("invalid value for --direction: '{x}'")),
        },
        workers: num(m, "workers", d.workers).clamp(1, 1024),
        count: num(m, "count", d.count).clamp(1, 10_000_000),
        loaded_count: num(m, "count", d.loaded_count).clamp(1, 10_000_000),
        loaded_streams: d.loaded_streams,
        quiet: m.opt_present("quiet"),
    };
    let mut servers = vec![Server::direct()];
    for (name, route) in proxies {
        if servers.iter().any(|s| s.name == name) {
            fail(format!("two servers are named '{name}'"));
        }
        servers.push(Server { name, route, pid: None });
    }
    // Every file is opened before the run, so a bad path fails at once.
    let mut outs = Vec::new();
    for flag in ["json", "csv", "markdown", "svg"] {
        if let Some(path) = m.opt_str(flag) {
            let f = std::fs::File::create(&path).unwrap_or_else(|e| fail(format!("--{flag} {path}: {e}")));
            outs.push((flag, path, f));
        }
    }
    let targets = loadgen::Targets::start().unwrap_or_else(|e| fail(format!("cannot start targets: {e}")));
    let ctx = report::Context::here(std::env::args().collect());
    let c = compare::run(servers, modes, settings, &targets);
    print!("{}", report::markdown(&c, &ctx));
    for (flag, path, mut f) in outs {
        let text = match flag {
            "json" => report::json(&c, &ctx),
            "csv" => report::csv(&c),
            "markdown" => report::markdown(&c, &ctx),
            _ => report::svg(&c, &ctx),
        };
        if let Err(e) = std::io::Write::write_all(&mut f, text.as_bytes()) {
            eprintln!("socksd-bench: --{flag} {path}: {e}");
            exit(1);
        }
    }
    if !c.failures.is_empty() {
        exit(1);
    }
}
