//! socksd-bench: the load generator socksd's own benchmarks use, for any
//! SOCKS5 proxy (or none, for the direct baseline). It starts its own
//! loopback targets; output is key=value lines plus a human summary.

use getopts::Options;
use socksd_bench::{self as loadgen, Direction, Route};
use std::net::SocketAddr;
use std::process::exit;
use std::time::Duration;

fn usage(o: &Options) -> String {
    o.usage(
        "Usage: socksd-bench [--proxy HOST:PORT [--user U:P]] --mode bulk|connrate|latency|loaded-latency|idle [OPTIONS]\n\n\
         Measures a SOCKS5 proxy (or, without --proxy, the direct path) on loopback.",
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
    o.optopt("p", "proxy", "SOCKS5 proxy to measure; without it, the direct path", "HOST:PORT");
    o.optopt("u", "user", "username and password for the proxy", "USER:PASS");
    o.optopt("m", "mode", "bulk, connrate, latency, loaded-latency or idle", "MODE");
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
    let mut route = Route::direct();
    if let Some(p) = m.opt_str("proxy") {
        let addr: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&p)
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| fail(format!("invalid value for --proxy: '{p}'")));
        route = Route::socks5(addr);
    }
    if let Some(u) = m.opt_str("user") {
        let (a, b) = u.split_once(':').unwrap_or_else(|| fail("--user wants USER:PASS".into()));
        route.user = Some((a.into(), b.into()));
    }
    let time = Duration::from_secs_f64(num(&m, "time", 3.0));
    let pid: Option<u32> = m.opt_str("pid").map(|p| p.parse().unwrap_or_else(|_| fail(format!("bad --pid '{p}'"))));
    let proxy = route.proxy.map_or("direct".to_string(), |p| p.to_string());
    let targets = loadgen::Targets::start().unwrap_or_else(|e| fail(format!("cannot start targets: {e}")));
    let mode = m.opt_str("mode").unwrap_or_else(|| fail("--mode is required".into()));
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
                    format!("mode=bulk proxy={proxy} streams={streams} direction={dir:?} gbit_per_s={gbps:.2}");
                if let (Some(c0), Some(c1)) = (cpu0, pid.and_then(loadgen::tree_cpu_secs)) {
                    let gib = bps * time.as_secs_f64() / (1u64 << 30) as f64;
                    line += &format!(" proxy_cpu_s_per_gib={:.3}", (c1 - c0) / gib);
                }
                (line, format!("{streams} stream(s) {dir:?}: {gbps:.2} Gbit/s"))
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
