//! The descriptor budget: every descriptor socksd opens on a client's
//! behalf is counted against one process-wide limit, below RLIMIT_NOFILE.
//!
//! A connection's cost varies: a relay holds two sockets, a UDP
//! association up to four, a busy splice relay borrows pipes (two
//! descriptors each). Counting what is really held, and refusing before
//! the kernel would, means a client can never push the process into
//! EMFILE: what it cannot have, it is told (reply 0x01, or a copy instead
//! of a splice), and accept, the listeners and the log keep working.

use std::sync::atomic::{AtomicUsize, Ordering};

static USED: AtomicUsize = AtomicUsize::new(0);
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Sets the budget (the server does, from RLIMIT_NOFILE, at start).
pub fn set_limit(n: usize) {
    LIMIT.store(n, Ordering::Relaxed);
}

/// Descriptors counted right now.
pub fn used() -> usize {
    USED.load(Ordering::Relaxed)
}

/// `n` descriptors held against the budget, given back on drop.
#[derive(Debug)]
pub struct Fds(usize);

/// Takes `n` descriptors from the budget, or `None` when they would exceed
/// it (the caller then does without, or refuses).
pub fn take(n: usize) -> Option<Fds> {
    let limit = LIMIT.load(Ordering::Relaxed);
    let mut cur = USED.load(Ordering::Relaxed);
    loop {
        if cur.checked_add(n).is_none_or(|v| v > limit) {
            return None;
        }
        match USED.compare_exchange_weak(cur, cur + n, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return Some(Fds(n)),
            Err(now) => cur = now,
        }
    }
}

impl Drop for Fds {
    fn drop(&mut self) {
        USED.fetch_sub(self.0, Ordering::AcqRel);
    }
}

/// The soft RLIMIT_NOFILE (1024 if it cannot be read).
pub fn nofile() -> usize {
    crate::sys::nofile().unwrap_or(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_and_gives_back() {
        // The budget is process-wide and other tests in this binary move
        // it too: check only what holds whatever they do.
        let a = take(2).expect("room");
        assert!(used() >= 2);
        assert!(take(usize::MAX).is_none(), "more than any limit");
        drop(a);
    }
}
