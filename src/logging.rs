//! Logging that never stalls a reactor: every thread formats its line and
//! hands it to a bounded queue without waiting; one writer thread drains
//! the queue to stderr (and stdout, with `--log-procd`). When the reader of
//! those streams is slow (a paused terminal, a full pipe, a busy log
//! daemon) the queue fills and further lines are dropped and counted; the
//! count is written as soon as the writer gets through again.

use log::LevelFilter;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Lines the queue holds (about 100 KiB at worst).
const QUEUE: usize = 1024;

enum Item {
    Line {
        out: bool,
        text: Vec<u8>,
    },
    /// Everything sent before this is written: say so.
    Drained(mpsc::Sender<()>),
}

static TX: OnceLock<SyncSender<Item>> = OnceLock::new();
static DROPPED: AtomicUsize = AtomicUsize::new(0);

/// One logger's output: a queue sender that never blocks.
struct QueueWriter {
    tx: SyncSender<Item>,
    /// Standard output (procd's info stream) rather than standard error.
    out: bool,
}

impl Write for QueueWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.tx.try_send(Item::Line { out: self.out, text: buf.to_vec() }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn writer(rx: Receiver<Item>, procd: bool) {
    let mut reported = 0;
    for item in rx {
        match item {
            Item::Line { out, text } => {
                let _ = if out { std::io::stdout().write_all(&text) } else { std::io::stderr().write_all(&text) };
            }
            Item::Drained(done) => {
                let _ = done.send(());
            }
        }
        let dropped = DROPPED.load(Ordering::Relaxed);
        if dropped != reported {
            let n = dropped.wrapping_sub(reported);
            reported = dropped;
            let prefix = if procd { "" } else { "socksd: " };
            let _ = writeln!(std::io::stderr(), "{prefix}warn: {n} log lines dropped: the log reader is too slow");
        }
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
fn logger(level: LevelFilter, conns: bool, procd: bool, tx: SyncSender<Item>, out: bool) -> env_logger::Logger {
    let mut b = env_logger::Builder::new();
    b.filter_level(level.min(LevelFilter::Warn)).filter_module("socksd", level);
    if conns {
        b.filter_module("connlog", LevelFilter::Info);
    }
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    b.target(env_logger::Target::Pipe(Box::new(QueueWriter { tx, out })));
    if procd {
        // procd tags every line "socksd[PID]" itself.
        b.format(|f, r| writeln!(f, "{}: {}", r.level().as_str().to_ascii_lowercase(), r.args()));
    } else {
        b.format(|f, r| writeln!(f, "socksd: {}: {}", r.level().as_str().to_ascii_lowercase(), r.args()));
    }
    b.build()
}

/// Installs the logger and starts its writer thread.
pub fn init(verbosity: i32, conns: bool, procd: bool) {
    let level = match verbosity {
        i32::MIN..=-2 => LevelFilter::Error,
        -1 => LevelFilter::Warn,
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    if std::thread::Builder::new().name("socksd-log".into()).spawn(move || writer(rx, procd)).is_err() {
        return;
    }
    let warn = logger(level, conns, procd, tx.clone(), false);
    let max = warn.filter();
    let result = if procd {
        let info = logger(level, conns, procd, tx.clone(), true);
        log::set_boxed_logger(Box::new(Split { info, warn }))
    } else {
        log::set_boxed_logger(Box::new(warn))
    };
    if result.is_ok() {
        log::set_max_level(max);
        let _ = TX.set(tx);
    }
}

/// Waits (a little) until the lines logged so far are written: before the
/// process exits, so that its last words are not lost in the queue.
pub fn drain() {
    let Some(tx) = TX.get() else { return };
    let end = Instant::now() + Duration::from_secs(2);
    let (done, wait) = mpsc::channel();
    // Never a blocking send: with a reader that stopped for good the queue
    // stays full, and the process must still exit.
    let mut item = Item::Drained(done);
    loop {
        match tx.try_send(item) {
            Ok(()) => break,
            Err(TrySendError::Full(back)) if Instant::now() < end => {
                item = back;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => return,
        }
    }
    let _ = wait.recv_timeout(end.saturating_duration_since(Instant::now()));
}
