//! Bulk lanes: threads that carry bulk transfers, apart from the reactors
//! that accept clients and serve interactive traffic.
//!
//! Why (issue 13, measured): a reactor that relays a bulk stream is always
//! busy, so the kernel schedules it as a CPU hog. A small exchange that
//! shares that thread waits for the scheduler to run it again, about 2 ms
//! per hop on a loaded 2-core machine, whatever the relay's own budget per
//! turn is (a 50 µs turn did not help; moving the exchange to a thread of
//! its own did). So a relay that spends a whole round's budget with more
//! waiting is handed, once, to a bulk lane: one more reactor with no
//! listener, run at a lower priority ([`BULK_NICE`]). The accepting
//! reactors, which then sleep most of the time, ask for a short slice
//! ([`FRONT_SLICE_NS`]) so that they get a CPU soon after they wake. Only
//! socksd's own bulk work yields to its interactive work; no thread asks for
//! more than a normal share.

use crate::connection::Conn;
use mio::Waker;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

/// How much lower than the accepting reactors the lanes run (nice steps):
/// a woken interactive thread then preempts a lane at once, while a lane
/// still gets most of a CPU nobody else wants (weight 110 against 1024).
pub(crate) const BULK_NICE: libc::c_int = 10;

/// The slice the accepting reactors ask for (Linux 6.12+; the default is
/// 0.7 ms times 1 + log2 of the CPUs, 1.4 ms on 2 cores): how long a woken
/// reactor may have to wait for a busy thread's turn to end.
pub(crate) const FRONT_SLICE_NS: u64 = 300_000;

/// One lane, as the accepting reactors see it.
pub(crate) struct Lane {
    tx: Sender<Conn>,
    waker: Arc<Waker>,
    /// Connections handed to it and not yet closed.
    load: AtomicUsize,
}

/// All the lanes; empty with `--bulk-threads 0`.
#[derive(Default)]
pub(crate) struct Lanes(Vec<Lane>);

impl Lanes {
    pub fn new(ends: Vec<(Sender<Conn>, Arc<Waker>)>) -> Lanes {
        Lanes(ends.into_iter().map(|(tx, waker)| Lane { tx, waker, load: AtomicUsize::new(0) }).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Hands `c` to the least loaded lane; gives it back if there is no
    /// lane or that lane has stopped (the server is shutting down).
    pub fn send(&self, c: Conn) -> Option<Conn> {
        let Some(lane) = self.0.iter().min_by_key(|l| l.load.load(Ordering::Relaxed)) else {
            return Some(c);
        };
        if let Err(e) = lane.tx.send(c) {
            return Some(e.0);
        }
        lane.load.fetch_add(1, Ordering::Relaxed);
        // mio's eventfd waker fails only if the descriptor itself is bad;
        // the connection then waits in the queue for the lane's next wake.
        let _ = lane.waker.wake();
        None
    }

    /// Lane `i` closed a connection it was handed.
    pub fn closed(&self, i: usize) {
        if let Some(l) = self.0.get(i) {
            l.load.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
