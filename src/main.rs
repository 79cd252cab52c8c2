//! The `socksd` binary: flags, logging, signals. Everything else lives in
//! the library.

use log::{error, info, LevelFilter};
use socksd::config::{self, Action};
mod signals;

use signals::Signal;
use socksd::{auth, Server};
use std::io::Write;
use std::process::exit;

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
    fn flush(&self) {
        self.info.flush();
        self.warn.flush();
    }
}

fn logger(level: LevelFilter, procd: bool, target: env_logger::Target) -> env_logger::Logger {
    let mut b = env_logger::Builder::new();
    b.filter_level(level).target(target);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    if procd {
        // procd tags every line "socksd[PID]" itself.
        b.format(|f, r| writeln!(f, "{}: {}", r.level().as_str().to_ascii_lowercase(), r.args()));
    } else {
        b.format(|f, r| writeln!(f, "socksd: {}: {}", r.level().as_str().to_ascii_lowercase(), r.args()));
    }
    b.build()
}

fn init_logging(verbosity: i32, procd: bool) {
    let level = match verbosity {
        i32::MIN..=-2 => LevelFilter::Error,
        -1 => LevelFilter::Warn,
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let warn = logger(level, procd, env_logger::Target::Stderr);
    let max = warn.filter();
    let result = if procd {
        let info = logger(level, procd, env_logger::Target::Stdout);
        log::set_boxed_logger(Box::new(Split { info, warn }))
    } else {
        log::set_boxed_logger(Box::new(warn))
    };
    if result.is_ok() {
        log::set_max_level(max);
    }
}

/// Raises the soft open-file limit to the hard one: every relayed
/// connection needs two descriptors, and 1024 is a common soft default.
fn raise_nofile() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write only the struct on our stack.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Every command-line error looks the same: one line, exit status 2.
fn usage_error(msg: &str) -> ! {
    eprintln!("socksd: {msg} (see socksd --help)");
    exit(2);
}

/// What flags alone cannot tell (an interface that exists): checked before
/// serving, as `--check` does.
fn check_or_exit(cfg: &socksd::Config) {
    if let Err(e) = config::validate(cfg) {
        usage_error(&e);
    }
}

fn main() {
    socksd::fatal::abort_on_panic();
    // Blocked first, before anything that could take time: a SIGHUP sent
    // right after start (an init script's reload) is then queued for the
    // signal loop instead of killing the process.
    let sigs = match signals::block() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("socksd: cannot block signals: {e}");
            exit(1);
        }
    };
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let cfg = match config::parse_args(&args) {
        Ok(Action::Run(c)) => *c,
        Ok(Action::Help(text)) => {
            print!("{text}");
            exit(0);
        }
        Ok(Action::Check(c)) => {
            check_or_exit(&c);
            println!("socksd: configuration OK");
            exit(0);
        }
        Ok(Action::Version) => {
            println!("socksd {}", env!("CARGO_PKG_VERSION"));
            exit(0);
        }
        Err(e) => usage_error(&e.0),
    };
    check_or_exit(&cfg);
    init_logging(cfg.verbosity, cfg.log_procd);
    raise_nofile();
    let flag_users = cfg.users.clone();
    let users_file = cfg.users_file.clone();
    let server = match Server::start(cfg) {
        Ok(s) => s,
        Err(e) => {
            error!("{e}");
            exit(1);
        }
    };
    loop {
        match signals::wait(&sigs) {
            Ok(Signal::Stop) | Err(_) => break,
            Ok(Signal::Reload) => {
                let Some(path) = &users_file else {
                    server.forget_auth_once();
                    info!("SIGHUP: no --users-file to re-read; --auth-once addresses forgotten");
                    continue;
                };
                // A file with no users, a duplicate name or a file caught
                // mid-rewrite is an error: the old users stay.
                match auth::load_users_file(path).and_then(|more| {
                    auth::check_unique(&flag_users, &more)?;
                    Ok(more)
                }) {
                    Ok(more) => {
                        let mut users = flag_users.clone();
                        users.extend(more);
                        let n = users.len();
                        // In effect before it is said: a client that reads
                        // the line may rely on the new users.
                        server.set_users(users);
                        info!("SIGHUP: {n} users loaded");
                    }
                    Err(e) => error!("SIGHUP: {e}; keeping the current users"),
                }
            }
        }
    }
    info!("stopping");
    server.shutdown();
    exit(0);
}
