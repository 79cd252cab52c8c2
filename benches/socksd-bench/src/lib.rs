//! The load generator behind `socksd-bench` and `benches/compare.rs`:
//! its own loopback targets, a minimal SOCKS5 client, and the four
//! measurements (bulk throughput, connection rate, round-trip latency, idle
//! memory). Blocking std sockets and threads: simple, and the same for the
//! direct path and every proxy, so ratios compare like with like.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

pub mod compare;
pub mod report;

/// How to reach a target: directly, or through a SOCKS proxy.
#[derive(Debug, Clone)]
pub struct Route {
    pub proxy: Option<SocketAddr>,
    pub user: Option<(String, String)>,
    pub proto: Proto,
}

/// The SOCKS flavour a proxy is spoken to in. The `h` and `a` forms send
/// the target as a name (its address as text), which the proxy resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Socks5,
    Socks5h,
    Socks4,
    Socks4a,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Socks5 => "socks5",
            Proto::Socks5h => "socks5h",
            Proto::Socks4 => "socks4",
            Proto::Socks4a => "socks4a",
        }
    }
}

/// A `--proxy` value: `NAME=[SCHEME://][USER:PASS@]HOST:PORT`, or the
/// address alone (named by it). SCHEME is socks5 (the default), socks5h,
/// socks4 or socks4a.
pub fn parse_proxy(spec: &str) -> Result<(String, Route), String> {
    let (name, rest) = match spec.split_once('=') {
        Some((n, r)) if !n.is_empty() && !n.contains(['/', '@', ':']) => (Some(n.to_string()), r),
        _ => (None, spec),
    };
    let (proto, rest) = match rest.split_once("://") {
        None => (Proto::Socks5, rest),
        Some(("socks5", r)) => (Proto::Socks5, r),
        Some(("socks5h", r)) => (Proto::Socks5h, r),
        Some(("socks4", r)) => (Proto::Socks4, r),
        Some(("socks4a", r)) => (Proto::Socks4a, r),
        Some((other, _)) => return Err(format!("'{spec}': unknown scheme {other} (socks5, socks5h, socks4, socks4a)")),
    };
    let (user, host) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let user = match user {
        None => None,
        Some(u) if proto == Proto::Socks4 || proto == Proto::Socks4a => Some((u.to_string(), String::new())),
        Some(u) => match u.split_once(':') {
            Some((a, b)) if a.len() <= 255 && b.len() <= 255 => Some((a.to_string(), b.to_string())),
            _ => return Err(format!("'{spec}': credentials are USER:PASS (each at most 255 bytes)")),
        },
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("'{spec}': '{host}' is not HOST:PORT"))?;
    Ok((name.unwrap_or_else(|| host.to_string()), Route { proxy: Some(addr), user, proto }))
}

impl Route {
    pub fn direct() -> Route {
        Route { proxy: None, user: None, proto: Proto::Socks5 }
    }

    pub fn socks5(proxy: SocketAddr) -> Route {
        Route { proxy: Some(proxy), user: None, proto: Proto::Socks5 }
    }

    /// SOCKS4 CONNECT (or 4a, with the address as a name): the user id is
    /// the `user` name; the reply is 8 bytes, 0x5a granted.
    fn open4(&self, proxy: SocketAddr, target: SocketAddr) -> io::Result<TcpStream> {
        let SocketAddr::V4(v4) = target else {
            return Err(io::Error::other("SOCKS4 reaches IPv4 targets only"));
        };
        let mut s = TcpStream::connect(proxy)?;
        s.set_nodelay(true)?;
        let mut req = vec![4, 1];
        req.extend_from_slice(&v4.port().to_be_bytes());
        let a = self.proto == Proto::Socks4a;
        req.extend_from_slice(&if a { [0, 0, 0, 1] } else { v4.ip().octets() });
        req.extend_from_slice(self.user.as_ref().map_or("", |u| u.0.as_str()).as_bytes());
        req.push(0);
        if a {
            req.extend_from_slice(v4.ip().to_string().as_bytes());
            req.push(0);
        }
        s.write_all(&req)?;
        let mut rep = [0u8; 8];
        s.read_exact(&mut rep)?;
        if rep[1] != 0x5a {
            return Err(io::Error::other(format!("proxy refused: reply {:#04x}", rep[1])));
        }
        Ok(s)
    }

    /// Opens a stream to `target`: a SOCKS5 CONNECT (greeting, optional
    /// RFC 1929 login, request) through the proxy, or a plain connect.
    pub fn open(&self, target: SocketAddr) -> io::Result<TcpStream> {
        let Some(proxy) = self.proxy else {
            let s = TcpStream::connect(target)?;
            s.set_nodelay(true)?;
            return Ok(s);
        };
        if matches!(self.proto, Proto::Socks4 | Proto::Socks4a) {
            return self.open4(proxy, target);
        }
        let mut s = self.handshake5(proxy)?;
        let mut req = [0u8; 3 + 19 + 64];
        req[..3].copy_from_slice(&[5, 1, 0]);
        let n = if self.proto == Proto::Socks5h {
            let name = target.ip().to_string();
            req[3] = 3;
            req[4] = name.len() as u8;
            req[5..5 + name.len()].copy_from_slice(name.as_bytes());
            req[5 + name.len()..7 + name.len()].copy_from_slice(&target.port().to_be_bytes());
            7 + name.len()
        } else {
            3 + encode_addr(target, &mut req[3..])
        };
        s.write_all(&req[..n])?;
        read_reply5(&mut s)?;
        Ok(s)
    }

    /// Connects to the SOCKS5 proxy and gets through method selection and
    /// the RFC 1929 login.
    fn handshake5(&self, proxy: SocketAddr) -> io::Result<TcpStream> {
        let mut s = TcpStream::connect(proxy)?;
        s.set_nodelay(true)?;
        let bad = |what: &str| io::Error::other(format!("proxy refused: {what}"));
        let mut m = [0u8; 2];
        match &self.user {
            None => {
                s.write_all(&[5, 1, 0])?;
                s.read_exact(&mut m)?;
                if m != [5, 0] {
                    return Err(bad("method"));
                }
            }
            Some((u, p)) => {
                s.write_all(&[5, 1, 2])?;
                s.read_exact(&mut m)?;
                if m != [5, 2] {
                    return Err(bad("method"));
                }
                let mut a = vec![1, u.len() as u8];
                a.extend_from_slice(u.as_bytes());
                a.push(p.len() as u8);
                a.extend_from_slice(p.as_bytes());
                s.write_all(&a)?;
                s.read_exact(&mut m)?;
                if m[1] != 0 {
                    return Err(bad("login"));
                }
            }
        }
        Ok(s)
    }
}

/// A SOCKS5 reply (RFC 1928 §6): the bound address, or the refusal.
fn read_reply5(s: &mut TcpStream) -> io::Result<SocketAddr> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head)?;
    if head[1] != 0 {
        return Err(io::Error::other(format!("proxy refused: reply {:#04x}", head[1])));
    }
    let mut b = [0u8; 18];
    match head[3] {
        1 => {
            s.read_exact(&mut b[..6])?;
            Ok(SocketAddr::from(([b[0], b[1], b[2], b[3]], u16::from_be_bytes([b[4], b[5]]))))
        }
        4 => {
            s.read_exact(&mut b)?;
            let ip: [u8; 16] = b[..16].try_into().unwrap();
            Ok(SocketAddr::from((ip, u16::from_be_bytes([b[16], b[17]]))))
        }
        _ => Err(io::Error::other("proxy replied with an address type this tool does not expect")),
    }
}

fn serve<F: Fn(TcpStream) + Send + Sync + 'static>(f: F) -> io::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let a = l.local_addr()?;
    let f = Arc::new(f);
    thread::Builder::new().name("bench-target".into()).spawn(move || {
        for s in l.incoming().flatten() {
            let f = f.clone();
            let _ = s.set_nodelay(true);
            let _ = thread::Builder::new().stack_size(256 * 1024).spawn(move || f(s));
        }
    })?;
    Ok(a)
}

/// Loopback targets for the measurements.
pub struct Targets {
    /// Reads and discards until EOF.
    pub sink: SocketAddr,
    /// Writes until the peer goes away.
    pub source: SocketAddr,
    /// Echoes until EOF.
    pub echo: SocketAddr,
    /// Sends every datagram back to where it came from.
    pub udp_echo: SocketAddr,
}

impl Targets {
    pub fn start() -> io::Result<Targets> {
        let sink = serve(|mut s| {
            let mut b = vec![0u8; 256 * 1024];
            while matches!(s.read(&mut b), Ok(n) if n > 0) {}
        })?;
        let source = serve(|mut s| {
            let b = vec![0x5Au8; 256 * 1024];
            while s.write_all(&b).is_ok() {}
        })?;
        let echo = serve(|mut s| {
            let mut b = vec![0u8; 64 * 1024];
            loop {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if s.write_all(&b[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = s.shutdown(Shutdown::Write);
        })?;
        let u = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let udp_echo = u.local_addr()?;
        thread::Builder::new().name("bench-udp-echo".into()).spawn(move || {
            let mut b = [0u8; 2048];
            while let Ok((n, from)) = u.recv_from(&mut b) {
                let _ = u.send_to(&b[..n], from);
            }
        })?;
        Ok(Targets { sink, source, echo, udp_echo })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to target.
    Up,
    /// Target to client.
    Down,
}

impl Direction {
    /// As the --direction flag spells it.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// A short untimed bulk run: the first transfer in a fresh process runs at
/// about half speed while thread stacks and buffers fault in their pages,
/// so every measurement starts warm. Errors are ignored (the real run
/// reports them).
pub fn warm_up(route: &Route, t: &Targets) {
    let _ = bulk(route, t, 8, Direction::Down, Duration::from_millis(500));
    let _ = bulk(route, t, 8, Direction::Up, Duration::from_millis(300));
}

/// Bulk throughput: `streams` connections moving data one way for `time`.
/// Returns bytes per second.
pub fn bulk(route: &Route, t: &Targets, streams: usize, dir: Direction, time: Duration) -> io::Result<f64> {
    let target = if dir == Direction::Up { t.sink } else { t.source };
    let conns: Vec<TcpStream> = (0..streams).map(|_| route.open(target)).collect::<io::Result<_>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    // Each thread counts in a u64 of its own and returns it: no 64-bit
    // atomics, which 32-bit MIPS and PowerPC do not have.
    let handles: Vec<_> = conns
        .into_iter()
        .map(|mut s| {
            let stop = stop.clone();
            thread::spawn(move || -> u64 {
                let mut b = vec![0x33u8; 256 * 1024];
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let r = match dir {
                        Direction::Up => s.write(&b),
                        Direction::Down => s.read(&mut b),
                    };
                    match r {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k as u64,
                    }
                }
                let _ = s.shutdown(Shutdown::Both);
                n
            })
        })
        .collect();
    thread::sleep(time);
    stop.store(true, Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    Ok(total as f64 / secs)
}

/// Percentiles of a set of durations, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub count: usize,
}

pub fn percentiles(mut v: Vec<Duration>) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e6;
    Percentiles { p50: at(0.50), p99: at(0.99), p999: at(0.999), count: v.len() }
}

/// Connection rate: `workers` threads each repeating connect (+ SOCKS5
/// CONNECT) + 64-byte echo + close for `time`. Returns completed cycles
/// per second and the cycle-time percentiles.
pub fn connrate(route: &Route, t: &Targets, workers: usize, time: Duration) -> io::Result<(f64, Percentiles)> {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (route, echo, stop) = (route.clone(), t.echo, stop.clone());
            thread::spawn(move || {
                let mut times = Vec::with_capacity(64 * 1024);
                let msg = [0x42u8; 64];
                let mut back = [0u8; 64];
                let mut errors = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    let ok = route.open(echo).and_then(|mut s| {
                        s.write_all(&msg)?;
                        s.read_exact(&mut back)
                    });
                    match ok {
                        Ok(()) => times.push(t0.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
                (times, errors)
            })
        })
        .collect();
    thread::sleep(time);
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for h in handles {
        let (times, _errors) = h.join().map_err(|_| io::Error::other("worker panicked"))?;
        all.extend(times);
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = all.len() as f64 / secs;
    Ok((rate, percentiles(all)))
}

/// Round-trip latency of one established connection: `count` ping-pongs of
/// 64 bytes, after a warm-up.
pub fn latency(route: &Route, t: &Targets, count: usize) -> io::Result<Percentiles> {
    let mut s = route.open(t.echo)?;
    let msg = [0x17u8; 64];
    let mut back = [0u8; 64];
    for _ in 0..count / 10 + 1 {
        s.write_all(&msg)?;
        s.read_exact(&mut back)?;
    }
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let t0 = Instant::now();
        s.write_all(&msg)?;
        s.read_exact(&mut back)?;
        times.push(t0.elapsed());
    }
    Ok(percentiles(times))
}

/// What [`loaded_latency`] measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Loaded {
    /// Round trips of the small exchange.
    pub rtt: Percentiles,
    /// Bytes per second the bulk streams moved meanwhile, all together.
    pub bulk_bps: f64,
}

/// Size of each bulk stream's writes in [`loaded_latency`].
pub const LOADED_WRITE: usize = 64 * 1024;
/// Size of each ping and pong in [`loaded_latency`].
pub const LOADED_PING: usize = 32;

/// Latency under load: `streams` connections write [`LOADED_WRITE`]-byte
/// chunks to the sink as fast as they can while one more connection through
/// the same route does `count` round trips of [`LOADED_PING`] bytes. The
/// question it answers: does a small exchange wait behind a bulk transfer?
pub fn loaded_latency(route: &Route, t: &Targets, streams: usize, count: usize) -> io::Result<Loaded> {
    let mut ping = route.open(t.echo)?;
    let msg = [0x5au8; LOADED_PING];
    let mut back = [0u8; LOADED_PING];
    for _ in 0..count / 10 + 1 {
        ping.write_all(&msg)?;
        ping.read_exact(&mut back)?;
    }
    let conns: Vec<TcpStream> = (0..streams).map(|_| route.open(t.sink)).collect::<io::Result<_>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = conns
        .into_iter()
        .map(|mut s| {
            let stop = stop.clone();
            thread::spawn(move || -> u64 {
                let b = vec![0x33u8; LOADED_WRITE];
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match s.write(&b) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k as u64,
                    }
                }
                let _ = s.shutdown(Shutdown::Both);
                n
            })
        })
        .collect();
    // Let the streams reach full speed (and fill every buffer on the way).
    thread::sleep(Duration::from_millis(200));
    let mut times = Vec::with_capacity(count);
    let mut failed = None;
    for _ in 0..count {
        let t0 = Instant::now();
        if let Err(e) = ping.write_all(&msg).and_then(|()| ping.read_exact(&mut back)) {
            failed = Some(e);
            break;
        }
        times.push(t0.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(Loaded { rtt: percentiles(times), bulk_bps: total as f64 / secs })
}

/// Idle relayed connections: `n` connections through the route to targets
/// that never accept (the kernel completes their handshakes from the
/// listen backlog), so that the target side costs no descriptors here.
/// The returned handle keeps them open.
pub struct IdleSet {
    _listeners: Vec<socket2::Socket>,
    pub conns: Vec<TcpStream>,
}

pub fn idle(route: &Route, n: usize) -> io::Result<IdleSet> {
    use socket2::{Domain, SockAddr, Socket, Type};
    const BACKLOG: usize = 4096;
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..n.div_ceil(BACKLOG - 64) {
        let l = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        l.bind(&SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0))))?;
        l.listen(BACKLOG as i32)?;
        addrs.push(l.local_addr()?.as_socket().ok_or_else(|| io::Error::other("no address"))?);
        listeners.push(l);
    }
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        // How far it got, for a proxy that turns connections away.
        let c = route.open(addrs[i / (BACKLOG - 64)]).map_err(|e| {
            io::Error::new(e.kind(), format!("connection {} of {n} failed ({i} were held open): {e}", i + 1))
        })?;
        conns.push(c);
    }
    Ok(IdleSet { _listeners: listeners, conns })
}

/// Resident memory of a process, in KiB (Linux).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// The most resident memory the process ever had, in KiB (Linux).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

/// Whether an idle-memory figure from a process whose RSS is `now` KiB
/// and peaked at `peak` KiB can be trusted: not when it once held
/// noticeably more (over 1 MiB and 10% more), because memory its allocator
/// kept from that load is reused by the new connections without RSS
/// moving, and the figure comes out near zero.
pub fn fresh_enough(now: u64, peak: u64) -> bool {
    peak <= now + (now / 10).max(1024)
}

/// CPU time (user + system) a process has used, in seconds (Linux).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf reads a constant; no memory is touched.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ticks as f64 / hz)
}

/// `pid` and all its descendants (Linux): multi-process servers such as
/// danted do their work in children.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
            let Some(close) = stat.rfind(')') else { continue };
            if let Some(pp) = stat[close + 2..].split(' ').nth(1).and_then(|s| s.parse::<u32>().ok()) {
                parent_of.push((p, pp));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

/// RSS of a process and its descendants, in KiB.
pub fn tree_rss_kib(pid: u32) -> Option<u64> {
    let tree = process_tree(pid);
    Some(tree.iter().filter_map(|&p| rss_kib(p)).sum()).filter(|_| rss_kib(pid).is_some())
}

/// The sum of the peak RSS of the process and its descendants, in KiB.
pub fn tree_peak_rss_kib(pid: u32) -> Option<u64> {
    let tree = process_tree(pid);
    Some(tree.iter().filter_map(|&p| peak_rss_kib(p)).sum()).filter(|_| peak_rss_kib(pid).is_some())
}

/// CPU seconds of a process and its descendants.
pub fn tree_cpu_secs(pid: u32) -> Option<f64> {
    let tree = process_tree(pid);
    Some(tree.iter().filter_map(|&p| cpu_secs(p)).sum()).filter(|_| cpu_secs(pid).is_some())
}

/// What [`udp`] measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Udp {
    /// Datagram round trips (lost ones not counted).
    pub rtt: Percentiles,
    /// Datagrams echoed per second with up to [`UDP_WINDOW`] in flight.
    pub per_s: f64,
    /// Datagrams sent and never echoed, in percent of those sent.
    pub loss_pct: f64,
}

/// Datagrams in flight in [`udp`]'s throughput phase.
pub const UDP_WINDOW: usize = 32;
/// Payload of every datagram in [`udp`].
pub const UDP_PAYLOAD: usize = 64;

/// UDP through the proxy's UDP ASSOCIATE (RFC 1928 §7), or directly: `count`
/// sequential round trips of [`UDP_PAYLOAD`] bytes (one lost after 200 ms
/// counts as lost), then `time` of windowed sending for throughput.
pub fn udp(route: &Route, t: &Targets, count: usize, time: Duration) -> io::Result<Udp> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let mut _control = None;
    let (to, head) = match route.proxy {
        None => (t.udp_echo, Vec::new()),
        Some(proxy) => {
            if matches!(route.proto, Proto::Socks4 | Proto::Socks4a) {
                return Err(io::Error::other("SOCKS4 has no UDP"));
            }
            let mut c = route.handshake5(proxy)?;
            let mut req = vec![5, 3, 0];
            let mut a = [0u8; 19];
            let n = encode_addr(sock.local_addr()?, &mut a);
            req.extend_from_slice(&a[..n]);
            c.write_all(&req)?;
            let mut relay = read_reply5(&mut c)?;
            if relay.ip().is_unspecified() {
                relay.set_ip(proxy.ip());
            }
            _control = Some(c);
            let mut h = vec![0, 0, 0];
            let n = encode_addr(t.udp_echo, &mut a);
            h.extend_from_slice(&a[..n]);
            (relay, h)
        }
    };
    let mut d = head.clone();
    d.resize(head.len() + UDP_PAYLOAD, 0x33);
    let seq_at = head.len();
    let mut b = [0u8; 2048];
    let (mut sent, mut got) = (0u64, 0u64);
    // Round trips, one at a time; a late echo of an earlier one is skipped.
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut times = Vec::with_capacity(count);
    for i in 0..count as u64 {
        d[seq_at..seq_at + 8].copy_from_slice(&i.to_be_bytes());
        let t0 = Instant::now();
        sock.send_to(&d, to)?;
        sent += 1;
        loop {
            match sock.recv_from(&mut b) {
                Ok((n, _)) if n == d.len() && b[seq_at..seq_at + 8] == d[seq_at..seq_at + 8] => {
                    times.push(t0.elapsed());
                    got += 1;
                    break;
                }
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
                Err(e) => return Err(e),
            }
        }
    }
    if got == 0 && count > 0 {
        return Err(io::Error::other(format!("no datagram came back of {sent} sent")));
    }
    // Throughput: windows of datagrams, each drained before the next.
    sock.set_read_timeout(Some(Duration::from_millis(20)))?;
    let (mut tsent, mut tgot) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < time {
        for _ in 0..UDP_WINDOW {
            sock.send_to(&d, to)?;
        }
        tsent += UDP_WINDOW as u64;
        let mut back = 0;
        while back < UDP_WINDOW {
            match sock.recv_from(&mut b) {
                Ok(_) => back += 1,
                Err(_) => break,
            }
        }
        tgot += back as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    let (sent, got) = (sent + tsent, got + tgot);
    Ok(Udp {
        rtt: percentiles(times),
        per_s: tgot as f64 / secs,
        loss_pct: if sent == 0 { 0.0 } else { (sent - got) as f64 * 100.0 / sent as f64 },
    })
}

/// ATYP, address and port of a SOCKS5 request (RFC 1928 §5), into `out`;
/// returns the length. The tool's own copy: it measures any SOCKS server
/// and shares no code with socksd.
fn encode_addr(a: SocketAddr, out: &mut [u8]) -> usize {
    let n = match a {
        SocketAddr::V4(v4) => {
            out[0] = 1;
            out[1..5].copy_from_slice(&v4.ip().octets());
            5
        }
        SocketAddr::V6(v6) => {
            out[0] = 4;
            out[1..17].copy_from_slice(&v6.ip().octets());
            17
        }
    };
    out[n..n + 2].copy_from_slice(&a.port().to_be_bytes());
    n + 2
}
