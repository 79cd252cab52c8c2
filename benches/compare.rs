//! `cargo bench`: socksd against the direct path (and the peer servers
//! that are installed: 3proxy, microsocks, hev-socks5-server, fast-socks5's
//! example server and danted, found on PATH or named by
//! SOCKSD_BENCH_3PROXY, _MICROSOCKS, _HEV, _FAST_SOCKS5; and any named in
//! SOCKSD_BENCH_PROXIES), interleaved, medians of several rounds, every
//! figure also as a ratio to direct. Connection rate, latency and UDP run
//! on socksd-bench's comparison engine (the tool's `--proxy` comparison).
//!
//!   cargo bench                       # full run (a few minutes)
//!   SOCKSD_BENCH_QUICK=1 cargo bench  # one short round of each
//!   SOCKSD_BENCH_PROXIES="mine=127.0.0.1:9050 tor=socks5h://127.0.0.1:9150" cargo bench
//!
//! Connection-rate runs leave sockets in TIME_WAIT; runs are kept to a few
//! seconds with pauses between them.

use socksd_bench::{self as loadgen, Direction, Loaded, Percentiles, Route, Targets};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    name: String,
    child: Option<Child>,
    addr: Option<SocketAddr>,
    /// How it is spoken to, when not plain SOCKS5 (SOCKSD_BENCH_PROXIES).
    spec: Option<Route>,
}

impl Server {
    fn route(&self) -> Route {
        if let Some(r) = &self.spec {
            return r.clone();
        }
        match self.addr {
            Some(a) => Route::socks5(a),
            None => Route::direct(),
        }
    }
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            // SAFETY: kill has no memory effects; the pid is our own child's.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_listening(addr: SocketAddr) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if TcpStream::connect(addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn socksd(threads: usize, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_socksd"))
        .args(["--listen", "127.0.0.1:0", "--threads", &threads.to_string(), "--max-conns", "30000"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start socksd");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let l = lines.next().expect("socksd exited").unwrap();
        if let Some(a) = l.strip_prefix("socksd: info: listening on ") {
            break a.parse().unwrap();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let name = if extra.is_empty() {
        format!("socksd -t{threads}")
    } else {
        format!("socksd -t{threads} {}", extra.join(" "))
    };
    Server { name, child: Some(child), addr: Some(addr), spec: None }
}

/// A peer program: `SOCKSD_BENCH_<VAR>` if set, else the first of
/// `names` on PATH.
fn find(var: &str, names: &[&str]) -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os(format!("SOCKSD_BENCH_{var}")).filter(|p| !p.is_empty()) {
        return Some(p.into());
    }
    let path = std::env::var_os("PATH")?;
    names.iter().flat_map(|n| std::env::split_paths(&path).map(move |d| d.join(n))).find(|p| p.is_file())
}

/// Starts a peer that will listen on 127.0.0.1:`port`, quiet, and waits
/// until it does.
fn peer(name: &str, mut cmd: Command, port: u16) -> Option<Server> {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().ok()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let s = Server { name: name.into(), child: Some(child), addr: Some(addr), spec: None };
    wait_listening(addr).then_some(s)
}

/// A scratch directory for a peer's configuration file.
fn scratch(name: &str) -> Option<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("socksd-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

/// Starts a peer whose only argument is its configuration file, written
/// with `text` to `file` in its scratch directory.
fn configured(name: &str, bin: std::path::PathBuf, file: &str, text: String, port: u16) -> Option<Server> {
    let conf = scratch(name)?.join(file);
    std::fs::write(&conf, text).ok()?;
    let mut cmd = Command::new(bin);
    cmd.arg(conf);
    peer(name, cmd, port)
}

fn microsocks() -> Option<Server> {
    let port = free_port();
    let mut cmd = Command::new(find("MICROSOCKS", &["microsocks"])?);
    cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
    peer("microsocks", cmd, port)
}

/// 3proxy (thread per connection), built from source with
/// `make -f Makefile.Linux` (bin/3proxy).
fn threeproxy() -> Option<Server> {
    let bin = find("3PROXY", &["3proxy"])?;
    let port = free_port();
    let text = format!("nscache 65536\nmaxconn 20000\nauth none\nsocks -p{port} -i127.0.0.1 -e127.0.0.1\n");
    configured("3proxy", bin, "3proxy.cfg", text, port)
}

/// hev-socks5-server (coroutines over epoll), built from source with
/// its submodules (`make`, bin/hev-socks5-server).
fn hev() -> Option<Server> {
    let bin = find("HEV", &["hev-socks5-server"])?;
    let port = free_port();
    let text = format!(
        "main:\n  workers: 2\n  port: {port}\n  listen-address: '127.0.0.1'\n\
         misc:\n  log-level: error\n  limit-nofile: 20000\n"
    );
    configured("hev", bin, "main.yml", text, port)
}

/// fast-socks5's example server (tokio), built with
/// `cargo build --release --example server` and installed as
/// fast-socks5-server.
fn fast_socks5() -> Option<Server> {
    let bin = find("FAST_SOCKS5", &["fast-socks5-server"])?;
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["--listen-addr", &format!("127.0.0.1:{port}"), "--allow-udp", "--public-addr", "127.0.0.1", "no-auth"]);
    peer("fast-socks5", cmd, port)
}

fn danted() -> Option<Server> {
    let bin = ["/usr/sbin/danted", "/usr/sbin/sockd"].into_iter().find(|p| std::path::Path::new(p).exists())?;
    let port = free_port();
    let dir = scratch("danted")?;
    let conf = dir.join("danted.conf");
    std::fs::write(
        &conf,
        format!(
            "logoutput: /dev/null\ninternal: 127.0.0.1 port = {port}\nexternal: 127.0.0.1\n\
             socksmethod: none\nclientmethod: none\nuser.privileged: root\nuser.unprivileged: nobody\n\
             client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}\nsocks pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}\n"
        ),
    )
    .ok()?;
    let mut cmd = Command::new(bin);
    cmd.args(["-f", conf.to_str()?, "-p", dir.join("pid").to_str()?]);
    peer("danted", cmd, port)
}

/// Percentiles of a run that failed: printed as n/a.
const NAN3: Percentiles = Percentiles { p50: f64::NAN, p99: f64::NAN, p999: f64::NAN, count: 0 };

/// Median of the runs that produced a figure; NaN (printed n/a) if none did.
fn median(v: Vec<f64>) -> f64 {
    let mut v: Vec<f64> = v.into_iter().filter(|x| x.is_finite()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn raise_nofile() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct on our stack.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

struct Row {
    figure: String,
    unit: &'static str,
    higher_is_better: bool,
    values: Vec<(String, f64)>,
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| figure | unit | {} |", rows[0].values.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(" | "));
    println!("|---|---|{}", "---|".repeat(rows[0].values.len()));
    for r in rows {
        let direct = r.values.iter().find(|(n, _)| n == "direct").map(|v| v.1);
        let cells: Vec<String> = r
            .values
            .iter()
            .map(|(n, v)| match (direct, n.as_str()) {
                (_, _) if v.is_nan() => "n/a".into(),
                (Some(d), name) if name != "direct" && d > 0.0 && r.higher_is_better => {
                    format!("{v:.2} ({:.2}x)", v / d)
                }
                (Some(d), name) if name != "direct" && d > 0.0 => format!("{v:.1} ({:+.1})", v - d),
                _ => format!("{v:.2}"),
            })
            .collect();
        println!("| {} | {} | {} |", r.figure, r.unit, cells.join(" | "));
    }
    println!();
}

fn main() {
    let quick = std::env::var_os("SOCKSD_BENCH_QUICK").is_some() || std::env::args().any(|a| a == "--quick");
    let (rounds, secs) = if quick { (1, 1.0) } else { (3, 2.0) };
    let time = Duration::from_secs_f64(secs);
    raise_nofile();
    let targets = Targets::start().expect("targets");
    let mut servers = vec![Server { name: "direct".into(), child: None, addr: None, spec: None }, socksd(2, &[])];
    servers.extend(threeproxy());
    servers.extend(microsocks());
    servers.extend(hev());
    servers.extend(fast_socks5());
    servers.extend(danted());
    // Servers of the user's: SOCKSD_BENCH_PROXIES, socksd-bench's --proxy
    // specs separated by spaces.
    for spec in std::env::var("SOCKSD_BENCH_PROXIES").unwrap_or_default().split_whitespace() {
        match socksd_bench::parse_proxy(spec) {
            Ok((name, route)) => servers.push(Server { name, child: None, addr: route.proxy, spec: Some(route) }),
            Err(e) => panic!("SOCKSD_BENCH_PROXIES: {e}"),
        }
    }
    let names: Vec<String> = servers.iter().map(|s| s.name.clone()).collect();
    println!(
        "socksd bench: {} rounds of {secs} s, servers: {}, machine: {} CPUs",
        rounds,
        names.join(", "),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut rows = Vec::new();
    for s in &servers {
        loadgen::warm_up(&s.route(), &targets);
    }

    // 1. Bulk throughput, with the proxy's CPU per GiB on the 8-stream runs.
    let mut cpu_per_gib: Vec<(String, Vec<f64>)> = names.iter().map(|n| (n.clone(), Vec::new())).collect();
    for (streams, dir) in [(1, Direction::Down), (1, Direction::Up), (8, Direction::Down), (8, Direction::Up)] {
        let mut per: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
        for _ in 0..rounds {
            for (i, s) in servers.iter().enumerate() {
                let cpu0 = s.pid().and_then(loadgen::tree_cpu_secs);
                let bps = loadgen::bulk(&s.route(), &targets, streams, dir, time).unwrap_or(f64::NAN);
                if let (Some(c0), Some(c1)) = (cpu0, s.pid().and_then(loadgen::tree_cpu_secs)) {
                    if streams == 8 {
                        cpu_per_gib[i].1.push((c1 - c0) / (bps * secs / (1u64 << 30) as f64));
                    }
                }
                per[i].push(bps * 8.0 / 1e9);
            }
        }
        let figure = format!("bulk {streams} stream{} {}", if streams > 1 { "s" } else { "" }, dir.name());
        let values = names.iter().cloned().zip(per.into_iter().map(median)).collect();
        rows.push(Row { figure, unit: "Gbit/s", higher_is_better: true, values });
    }

    // 2-3. Connection rate, round-trip latency and UDP, on socksd-bench's
    // comparison engine: the same rounds, rotation and report as
    // `socksd-bench --proxy NAME=... --rounds N`.
    {
        use socksd_bench::compare::{self, Mode, Settings};
        let engine_servers =
            servers.iter().map(|s| compare::Server { name: s.name.clone(), route: s.route(), pid: s.pid() }).collect();
        let settings =
            Settings { rounds, time, count: if quick { 5_000 } else { 20_000 }, quiet: true, ..Settings::default() };
        let c = compare::run(engine_servers, vec![Mode::Connrate, Mode::Latency, Mode::Udp], settings, &targets);
        let ctx = socksd_bench::report::Context::here(std::env::args().collect());
        print!("{}", socksd_bench::report::markdown(&c, &ctx));
    }

    // 4. Round trips under load: 2 bulk streams through the same server
    // while 32-byte ping-pongs measure whether a small exchange waits
    // behind them. socksd's copy path (--no-splice) is measured here too,
    // and socksd without bulk lanes (--bulk-threads 0: every relay stays
    // on the reactor that accepted it, as before issue 13). The tails are
    // noisy on a shared 2-core machine, so this part takes 5 rounds.
    let no_splice = socksd(2, &["--no-splice"]);
    let no_lanes = socksd(2, &["--bulk-threads", "0"]);
    let mut loaded_servers: Vec<&Server> = servers.iter().collect();
    loaded_servers.insert(2, &no_splice);
    loaded_servers.insert(3, &no_lanes);
    let loaded_names: Vec<String> = loaded_servers.iter().map(|s| s.name.clone()).collect();
    loadgen::warm_up(&no_splice.route(), &targets);
    loadgen::warm_up(&no_lanes.route(), &targets);
    let loaded_count = if quick { 2_000 } else { 5_000 };
    let loaded_rounds = if quick { 1 } else { 5 };
    let mut ll: [Vec<Vec<f64>>; 4] = std::array::from_fn(|_| vec![Vec::new(); loaded_servers.len()]);
    for _ in 0..loaded_rounds {
        for (i, s) in loaded_servers.iter().enumerate() {
            let l = loadgen::loaded_latency(&s.route(), &targets, 2, loaded_count)
                .unwrap_or(Loaded { rtt: NAN3, bulk_bps: f64::NAN });
            ll[0][i].push(l.rtt.p50);
            ll[1][i].push(l.rtt.p99);
            ll[2][i].push(l.rtt.p999);
            ll[3][i].push(l.bulk_bps * 8.0 / 1e9);
        }
    }
    let lcol = |v: Vec<Vec<f64>>| loaded_names.iter().cloned().zip(v.into_iter().map(median)).collect::<Vec<_>>();
    let [a, b, c, d] = ll;
    let loaded_rows = vec![
        Row { figure: "loaded round trip p50".into(), unit: "us", higher_is_better: false, values: lcol(a) },
        Row { figure: "loaded round trip p99".into(), unit: "us", higher_is_better: false, values: lcol(b) },
        Row { figure: "loaded round trip p99.9".into(), unit: "us", higher_is_better: false, values: lcol(c) },
        Row { figure: "bulk during it (2 streams)".into(), unit: "Gbit/s", higher_is_better: true, values: lcol(d) },
    ];
    drop(no_splice);
    drop(no_lanes);

    // 5. Memory per idle relayed connection (proxies only).
    // 9,000, not 10,000: a proxy needs two descriptors per relayed
    // connection, and this machine's hard limit is 20,000.
    let idle_n = if quick { 2_000 } else { 9_000 };
    let mut mem = Vec::new();
    for s in &servers {
        let Some(pid) = s.pid() else {
            mem.push((s.name.clone(), f64::NAN));
            continue;
        };
        let before = loadgen::tree_rss_kib(pid);
        let per = match loadgen::idle(&s.route(), idle_n) {
            Ok(set) => {
                std::thread::sleep(Duration::from_millis(500));
                let after = loadgen::tree_rss_kib(pid);
                drop(set);
                match (before, after) {
                    (Some(b), Some(a)) => a.saturating_sub(b) as f64 * 1024.0 / idle_n as f64,
                    _ => f64::NAN,
                }
            }
            Err(_) => f64::NAN,
        };
        mem.push((s.name.clone(), per));
        std::thread::sleep(Duration::from_millis(if quick { 300 } else { 1000 }));
    }
    rows.push(Row {
        figure: format!("RSS per idle relayed connection ({idle_n})"),
        unit: "bytes",
        higher_is_better: false,
        values: mem,
    });
    rows.push(Row {
        figure: "proxy CPU per GiB (8 streams)".into(),
        unit: "s",
        higher_is_better: false,
        values: cpu_per_gib.into_iter().map(|(n, v)| (n, median(v))).collect(),
    });
    print_table(&rows);
    println!(
        "Under load ({loaded_rounds} rounds): {loaded_count} round trips of 32 bytes while 2 streams write 64 KiB chunks through the same server:"
    );
    print_table(&loaded_rows);

    // Scaling across reactor threads: --threads 1 against --threads 2.
    drop(servers);
    let one = socksd(1, &[]);
    let two = socksd(2, &[]);
    let mut s8 = [Vec::new(), Vec::new()];
    let mut cr = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, s) in [&one, &two].into_iter().enumerate() {
            s8[i].push(loadgen::bulk(&s.route(), &targets, 8, Direction::Down, time).unwrap_or(f64::NAN) * 8.0 / 1e9);
            cr[i].push(loadgen::connrate(&s.route(), &targets, 32, time).map_or(f64::NAN, |r| r.0));
            std::thread::sleep(Duration::from_millis(if quick { 300 } else { 1000 }));
        }
    }
    let [a, b] = s8;
    let [c, d] = cr;
    println!(
        "scaling: 8 streams {:.2} -> {:.2} Gbit/s, connections/s {:.0} -> {:.0} (--threads 1 -> 2)",
        median(a),
        median(b),
        median(c),
        median(d)
    );

    // What the connection log costs: connection rate with it off and on,
    // interleaved (the log goes to a pipe that is drained, as procd's is).
    drop(one);
    let logged = socksd(2, &["--log-connections"]);
    let mut rate = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, s) in [&two, &logged].into_iter().enumerate() {
            rate[i].push(loadgen::connrate(&s.route(), &targets, 32, time).map_or(f64::NAN, |r| r.0));
            std::thread::sleep(Duration::from_millis(if quick { 300 } else { 1000 }));
        }
    }
    let [off, on] = rate.map(median);
    println!(
        "connection log: connections/s {off:.0} off, {on:.0} with --log-connections ({:+.1}%)",
        (on / off - 1.0) * 100.0
    );
}
