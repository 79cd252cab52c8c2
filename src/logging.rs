//! Logging that never stalls a reactor: every thread formats its line and
//! hands it to a bounded queue without waiting; one writer thread drains
//! the queue to stderr (and stdout, with `--log-procd`). When the reader of
//! those streams is slow (a paused terminal, a full pipe, a busy log
//! daemon) the queue fills and further lines are dropped and counted; the
//! count is written as soon as the writer gets through again.

use log::LevelFilter;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Lines the queue holds (about 100 KiB at worst).
const QUEUE: usize = 1024;

/// The queue: lines (and whether each goes to stdout), with the count of
/// lines pushed and written, for [`drain`]. The lock is held only to push
/// or pop one line, never while writing.
#[derive(Default)]
struct Queue {
    state: Mutex<Lines>,
    ready: Condvar,
    written: Condvar,
}

#[derive(Default)]
struct Lines {
    queue: VecDeque<(bool, Vec<u8>)>,
    pushed: u64,
    written: u64,
}

static QUEUE_REF: OnceLock<Arc<Queue>> = OnceLock::new();
static DROPPED: AtomicUsize = AtomicUsize::new(0);

/// Queues one line for the writer without waiting for it; a full queue
/// drops the line and counts it.
fn push(q: &Queue, out: bool, line: Vec<u8>) {
    let mut g = q.state.lock().unwrap_or_else(|e| e.into_inner());
    if g.queue.len() < QUEUE {
        g.queue.push_back((out, line));
        g.pushed += 1;
        q.ready.notify_one();
    } else {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

fn writer(q: Arc<Queue>, procd: bool) {
    let mut reported = 0;
    loop {
        let (out, text) = {
            let mut g = q.state.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(line) = g.queue.pop_front() {
                    break line;
                }
                g = q.ready.wait(g).unwrap_or_else(|e| e.into_inner());
            }
        };
        let _ = if out { std::io::stdout().write_all(&text) } else { std::io::stderr().write_all(&text) };
        let dropped = DROPPED.load(Ordering::Relaxed);
        if dropped != reported {
            let n = dropped.wrapping_sub(reported);
            reported = dropped;
            let prefix = if procd { "" } else { "socksd: " };
            let _ = writeln!(std::io::stderr(), "{prefix}warn: {n} log lines dropped: the log reader is too slow");
        }
        q.state.lock().unwrap_or_else(|e| e.into_inner()).written += 1;
        q.written.notify_all();
    }
}

/// socksd's own lines at `level`; its dependencies' (mio's "registering
/// event source" and the like) at warn unless `RUST_LOG` asks for them.
/// The connection log (`--log-connections`) is info whatever `-q` says.
/// Writes the time now, UTC to the millisecond (RFC 3339), and a space.
fn stamp(f: &mut impl Write) -> std::io::Result<()> {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let (days, secs) = ((t.as_secs() / 86_400) as i64, t.as_secs() % 86_400);
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    write!(
        f,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z ",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        t.subsec_millis()
    )
}

/// Which lines pass: a level per log target (a module path such as
/// `socksd::connection`, or `connlog`), the longest matching prefix
/// deciding, and a level for every other target.
#[derive(Debug, PartialEq)]
struct Filter {
    default: LevelFilter,
    rules: Vec<(String, LevelFilter)>,
}

impl Filter {
    fn level(&self, target: &str) -> LevelFilter {
        let under = |m: &str| target.strip_prefix(m).is_some_and(|t| t.is_empty() || t.starts_with("::"));
        let best = self.rules.iter().filter(|(m, _)| under(m)).max_by_key(|(m, _)| m.len());
        best.map_or(self.default, |r| r.1)
    }

    fn set(&mut self, target: &str, level: LevelFilter) {
        self.rules.retain(|(m, _)| m != target);
        self.rules.push((target.to_string(), level));
    }

    /// Applies `RUST_LOG` (the `env_logger` syntax without its `/regex`
    /// part): comma-separated `LEVEL` (every target, socksd's own
    /// included; `connlog` stays on with `--log-connections`), `TARGET`
    /// (all of it) or `TARGET=LEVEL`. Returns the directives not understood.
    fn apply(&mut self, spec: &str) -> Vec<String> {
        let mut bad = Vec::new();
        for d in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            match d.split_once('=') {
                None => match d.parse::<LevelFilter>() {
                    Ok(l) => {
                        self.default = l;
                        self.rules.retain(|(m, _)| m == "connlog");
                    }
                    Err(_) => self.set(d, LevelFilter::Trace),
                },
                Some((t, l)) => match l.trim().parse::<LevelFilter>() {
                    Ok(l) if !t.trim().is_empty() => self.set(t.trim(), l),
                    _ => bad.push(d.to_string()),
                },
            }
        }
        bad
    }

    fn max(&self) -> LevelFilter {
        self.rules.iter().map(|r| r.1).fold(self.default, Ord::max)
    }
}

/// socksd's own lines at `level`; its dependencies' (mio's "registering
/// event source" and the like) at warn unless `RUST_LOG` asks for them.
/// The connection log (`--log-connections`) is info whatever `-q` says.
fn filter(level: LevelFilter, conns: bool) -> Filter {
    let mut f = Filter { default: level.min(LevelFilter::Warn), rules: vec![("socksd".to_string(), level)] };
    if conns {
        f.set("connlog", LevelFilter::Info);
    }
    f
}

/// Formats each line and queues it. Under procd (`--log-procd`), lines
/// below warn go to stdout (procd files them at syslog level info) and the
/// others to stderr (err); procd tags and stamps them itself.
struct Logger {
    filter: Filter,
    procd: bool,
    time: bool,
    q: Arc<Queue>,
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.filter.level(m.target())
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let level = match r.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warn",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        let mut line = Vec::with_capacity(128);
        if self.procd {
            let _ = writeln!(line, "{level}: {}", r.args());
        } else {
            if self.time {
                let _ = stamp(&mut line);
            }
            let _ = writeln!(line, "socksd: {level}: {}", r.args());
        }
        push(&self.q, self.procd && r.level() > log::Level::Warn, line);
    }

    fn flush(&self) {}
}

/// Installs the logger and starts its writer thread.
pub fn init(verbosity: i32, conns: bool, procd: bool, time: bool) {
    let level = match verbosity {
        i32::MIN..=-2 => LevelFilter::Error,
        -1 => LevelFilter::Warn,
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let q = Arc::new(Queue::default());
    let wq = q.clone();
    if socksd::spawn_named("socksd-log", move || writer(wq, procd)).is_err() {
        return;
    }
    let mut filter = filter(level, conns);
    let bad = std::env::var("RUST_LOG").map(|spec| filter.apply(&spec)).unwrap_or_default();
    let max = filter.max();
    if log::set_logger(Box::leak(Box::new(Logger { filter, procd, time, q: q.clone() }))).is_ok() {
        log::set_max_level(max);
        let _ = QUEUE_REF.set(q);
        for d in bad {
            log::warn!("RUST_LOG: '{d}' is not LEVEL, TARGET or TARGET=LEVEL; ignored");
        }
    }
}

/// Waits (a little) until the lines logged so far are written: before the
/// process exits, so that its last words are not lost in the queue.
pub fn drain() {
    let Some(q) = QUEUE_REF.get() else { return };
    let end = Instant::now() + Duration::from_secs(2);
    let mut g = q.state.lock().unwrap_or_else(|e| e.into_inner());
    let target = g.pushed;
    // Bounded: with a reader that stopped for good the queue never
    // empties, and the process must still exit.
    while g.written < target {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        g = q.written.wait_timeout(g, left).unwrap_or_else(|e| e.into_inner()).0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_per_target() {
        let f = filter(LevelFilter::Debug, true);
        assert_eq!(f.level("socksd::connection::connect"), LevelFilter::Debug);
        assert_eq!(f.level("socksd"), LevelFilter::Debug);
        assert_eq!(f.level("socksdx"), LevelFilter::Warn, "a prefix counts only at a :: boundary");
        assert_eq!(f.level("mio::poll"), LevelFilter::Warn);
        assert_eq!(f.level("connlog"), LevelFilter::Info);
        let q = filter(LevelFilter::Error, false);
        assert_eq!(q.level("connlog"), LevelFilter::Error, "no connection log unless asked");
        assert_eq!(q.max(), LevelFilter::Error);
    }

    #[test]
    fn rust_log_directives() {
        let mut f = filter(LevelFilter::Info, true);
        assert!(f.apply("trace").is_empty());
        assert_eq!((f.level("socksd::reactor"), f.level("mio")), (LevelFilter::Trace, LevelFilter::Trace));
        assert_eq!(f.level("connlog"), LevelFilter::Info, "--log-connections stays");
        let mut f = filter(LevelFilter::Info, false);
        assert!(f.apply(" mio=debug, socksd::resolver=trace ,socksd::reactor").is_empty());
        assert_eq!(f.level("mio::net"), LevelFilter::Debug);
        assert_eq!(f.level("socksd::resolver"), LevelFilter::Trace);
        assert_eq!(f.level("socksd::reactor"), LevelFilter::Trace);
        assert_eq!(f.level("socksd::relay"), LevelFilter::Info);
        assert_eq!(f.max(), LevelFilter::Trace);
        assert_eq!(f.apply("mio=loud,=info,off"), vec!["mio=loud".to_string(), "=info".to_string()]);
        assert_eq!(f.level("socksd"), LevelFilter::Off);
    }
}
