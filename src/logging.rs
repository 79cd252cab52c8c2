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

/// One logger's output: a push that never waits for the writer.
struct QueueWriter {
    q: Arc<Queue>,
    /// Standard output (procd's info stream) rather than standard error.
    out: bool,
}

impl Write for QueueWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut g = self.q.state.lock().unwrap_or_else(|e| e.into_inner());
        if g.queue.len() < QUEUE {
            g.queue.push_back((self.out, buf.to_vec()));
            g.pushed += 1;
            self.q.ready.notify_one();
        } else {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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

/// Under procd (`--log-procd`), stdout lines are filed at syslog level
/// info and stderr lines at err: two loggers, chosen by level.
struct Split {
    info: env_logger::Logger,
    warn: env_logger::Logger,
}

impl log::Log for Split {
    fn enabled(&self, m: &log::Metadata) -> bool {
        self.info.enabled(m)
    }
    fn log(&self, r: &log::Record) {
        if r.level() <= log::Level::Warn {
            self.warn.log(r)
        } else {
            self.info.log(r)
        }
    }
    fn flush(&self) {}
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

fn logger(level: LevelFilter, conns: bool, procd: bool, time: bool, q: Arc<Queue>, out: bool) -> env_logger::Logger {
    let mut b = env_logger::Builder::new();
    b.filter_level(level.min(LevelFilter::Warn)).filter_module("socksd", level);
    if conns {
        b.filter_module("connlog", LevelFilter::Info);
    }
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    b.target(env_logger::Target::Pipe(Box::new(QueueWriter { q, out })));
    if procd {
        // procd tags every line "socksd[PID]" itself, and stamps it.
        b.format(|f, r| writeln!(f, "{}: {}", r.level().as_str().to_ascii_lowercase(), r.args()));
    } else {
        b.format(move |f, r| {
            if time {
                stamp(f)?;
            }
            writeln!(f, "socksd: {}: {}", r.level().as_str().to_ascii_lowercase(), r.args())
        });
    }
    b.build()
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
    if std::thread::Builder::new().name("socksd-log".into()).spawn(move || writer(wq, procd)).is_err() {
        return;
    }
    let warn = logger(level, conns, procd, time, q.clone(), false);
    let max = warn.filter();
    let result = if procd {
        let info = logger(level, conns, procd, time, q.clone(), true);
        log::set_boxed_logger(Box::new(Split { info, warn }))
    } else {
        log::set_boxed_logger(Box::new(warn))
    };
    if result.is_ok() {
        log::set_max_level(max);
        let _ = QUEUE_REF.set(q);
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
