//! Signals (SIGINT, SIGTERM, SIGHUP, SIGUSR1), handled synchronously: the main thread blocks them before any
//! other thread starts (threads inherit the mask) and waits for them with
//! `sigwait`, so no code runs in signal context.

use std::io;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT or SIGTERM.
    Stop,
    /// SIGHUP.
    Reload,
    /// SIGUSR1: log the counters.
    Stats,
}

pub struct SignalSet(libc::sigset_t);

/// Blocks SIGINT, SIGTERM, SIGHUP and SIGUSR1 in the calling thread and in every
/// thread it starts from now on.
pub fn block() -> io::Result<SignalSet> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, exclusively borrowed sigset_t; the signal
    // numbers are valid constants.
    let rc = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(SignalSet(set))
}

/// Waits for the next blocked signal.
pub fn wait(set: &SignalSet) -> io::Result<Signal> {
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set.0` was initialised by `block`; `sig` is a valid out pointer.
        let rc = unsafe { libc::sigwait(&set.0, &mut sig) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        match sig {
            libc::SIGHUP => return Ok(Signal::Reload),
            libc::SIGUSR1 => return Ok(Signal::Stats),
            libc::SIGINT | libc::SIGTERM => return Ok(Signal::Stop),
            _ => {}
        }
    }
}
