//! The `socksd` binary: flags, logging, signals. Everything else lives in
//! the library.

use log::{error, info, LevelFilter};
use socksd::config::{self, Action};
use socksd::signals::{self, Signal};
use socksd::{auth, Server};
use std::io::Write;
use std::process::exit;

fn init_logging(verbosity: i32) {
    let level = match verbosity {
        i32::MIN..=-2 => LevelFilter::Error,
        -1 => LevelFilter::Warn,
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let mut b = env_logger::Builder::new();
    b.filter_level(level);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    b.format(|f, r| writeln!(f, "socksd: {}: {}", r.level().as_str().to_ascii_lowercase(), r.args()));
    b.init();
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

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let cfg = match config::parse_args(&args) {
        Ok(Action::Run(c)) => *c,
        Ok(Action::Help(text)) => {
            print!("{text}");
            exit(0);
        }
        Ok(Action::Check(c)) => match config::validate(&c) {
            Ok(()) => {
                println!("socksd: configuration OK");
                exit(0);
            }
            Err(e) => {
                eprintln!("socksd: {e}");
                exit(2);
            }
        },
        Ok(Action::Version) => {
            println!("socksd {}", env!("CARGO_PKG_VERSION"));
            exit(0);
        }
        Err(e) => {
            eprintln!("socksd: {} (see socksd --help)", e.0);
            exit(2);
        }
    };
    init_logging(cfg.verbosity);
    raise_nofile();
    let sigs = match signals::block() {
        Ok(s) => s,
        Err(e) => {
            error!("cannot block signals: {e}");
            exit(1);
        }
    };
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
                    info!("SIGHUP: no --users-file to re-read");
                    continue;
                };
                match auth::load_users_file(path) {
                    Ok(more) => {
                        let mut users = flag_users.clone();
                        users.extend(more);
                        info!("SIGHUP: {} users loaded", users.len());
                        server.set_users(users);
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
