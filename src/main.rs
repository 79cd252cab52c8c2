//! The `socksd` binary: flags, logging, signals. Everything else lives in
//! the library.

use log::{error, info};
use socksd::config::{self, Action};
mod logging;
mod signals;

use signals::Signal;
use socksd::escape::Escaped;
use socksd::{auth, Server};
use std::process::exit;

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
/// Under procd (`--log-procd`, looked for before the flags are parsed)
/// the line is shaped like the log's: procd tags it with the name itself.
fn usage_error(msg: &str) -> ! {
    if std::env::args_os().any(|a| a == "--log-procd") {
        eprintln!("error: {msg} (see socksd --help)");
    } else {
        eprintln!("socksd: {msg} (see socksd --help)");
    }
    exit(2);
}

/// What flags alone cannot tell (an interface that exists): checked before
/// serving, as `--check` does.
fn check_or_exit(cfg: &socksd::Config) {
    if let Err(e) = config::validate(cfg).and_then(|()| Server::check(cfg)) {
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
    // Before anything reads it: --check reports the limits a start gets.
    raise_nofile();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let cfg = match config::parse_args(&args) {
        Ok(Action::Run(c)) => *c,
        Ok(Action::Help(text)) => {
            print!("{text}");
            exit(0);
        }
        Ok(Action::Check(c)) => {
            check_or_exit(&c);
            // What a start would meet (an address in use or not of this
            // host): exit 1, as the start would.
            match socksd::settings::dry_run(&c) {
                Ok(notes) => {
                    println!("socksd {}: configuration OK; it would run with:", env!("CARGO_PKG_VERSION"));
                    let limits = socksd::settings::Limits::of(&c, socksd::fds_limit());
                    for line in socksd::settings::describe(&c, &limits) {
                        println!("  {line}");
                    }
                    for n in notes {
                        println!("note: {n}");
                    }
                    exit(0);
                }
                Err(e) => {
                    eprintln!("socksd: {e}");
                    exit(1);
                }
            }
        }
        Ok(Action::Version) => {
            println!("socksd {}", env!("CARGO_PKG_VERSION"));
            exit(0);
        }
        Err(e) => usage_error(&e.0),
    };
    check_or_exit(&cfg);
    logging::init(cfg.verbosity, cfg.log_connections, cfg.log_procd, cfg.log_time);
    let flag_users = cfg.users.clone();
    let users_file = cfg.users_file.clone();
    let server = match Server::start(cfg) {
        Ok(s) => s,
        Err(e) => {
            error!("{e}");
            logging::drain();
            exit(1);
        }
    };
    loop {
        match signals::wait(&sigs) {
            Ok(Signal::Stop) | Err(_) => break,
            Ok(Signal::Stats) => {
                for line in server.stats().report() {
                    info!("{line}");
                }
            }
            Ok(Signal::Reload) => {
                let Some(path) = &users_file else {
                    server.forget_auth_once();
                    info!("SIGHUP: no --users-file to re-read; --auth-once addresses forgotten");
                    continue;
                };
                // In effect before it is said: a client that reads the
                // line may rely on it. Setting users forgets the
                // --auth-once addresses too (earned against the old ones).
                match auth::reload_users(path, &flag_users, &server.users()) {
                    auth::Reload::Loaded(users) => {
                        let n = users.len();
                        server.set_users(users);
                        info!("SIGHUP: {n} users loaded; --auth-once addresses forgotten");
                    }
                    auth::Reload::Failed { why, users, revoked, kept_all } => {
                        let n = users.len();
                        server.set_users(users);
                        let now = if kept_all {
                            format!("all {n} previous users stay active (the file leaves none it can be trusted for)")
                        } else {
                            let names: Vec<String> = revoked.iter().map(|r| Escaped(r).to_string()).collect();
                            let gone = if names.is_empty() { "none".to_string() } else { names.join(", ") };
                            format!("{n} previous users stay active, revoked now: {gone}")
                        };
                        error!(
                            "SIGHUP: {why}; the reload failed: {now}; new users and passwords wait for a file without errors; --auth-once addresses forgotten"
                        );
                    }
                }
            }
        }
    }
    info!("stopping");
    server.shutdown();
    logging::drain();
    exit(0);
}
