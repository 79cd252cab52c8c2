//! Bulk lanes: threads that carry bulk transfers, apart from the reactors
//! that accept clients and serve interactive traffic.
//!
//! Why (issue 13, measured): a reactor that relays a bulk stream is always
//! busy, so the kernel schedules it as a CPU hog. A small exchange that
//! shares that thread waits for the scheduler to run it again, about 2 ms
//! per hop on a loaded 2-core machine, whatever the relay's own budget per
//! turn is (a 50 µs turn did not help; moving the exchange to a thread of
//! its own did). So a relay that spends a whole round's budget with more
//! waiting is handed to a bulk lane: one more reactor with no listener,
//! run at a lower priority ([`BULK_NICE`]). A relay on a lane that has not
//! had such a turn for a second (`QUIET` in connection/moving.rs) is handed
//! back to an accepting reactor, so an interactive session that once sent
//! a burst does not stay behind somebody's download. The accepting
//! reactors, which then sleep most of the time, ask for a short slice
//! ([`FRONT_SLICE_NS`]) so that they get a CPU soon after they wake. Only
//! socksd's own bulk work yields to its interactive work; no thread asks
//! for more than a normal share.

use crate::connection::Conn;
use mio::Waker;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// How much lower than the accepting reactors the lanes run (nice steps):
/// a woken interactive thread then preempts a lane at once, while a lane
/// still gets most of a CPU nobody else wants (weight 110 against 1024).
pub(crate) const BULK_NICE: libc::c_int = 10;

/// The slice the accepting reactors ask for (Linux 6.12+; the default is
/// 0.7 ms times 1 + log2 of the CPUs, 1.4 ms on 2 cores): how long a woken
/// reactor may have to wait for a busy thread's turn to end.
pub(crate) const FRONT_SLICE_NS: u64 = 300_000;

/// A reactor's queue of connections handed to it. A plain locked `Vec`,
/// held only to push or to swap with the reactor's own (empty) one, so
/// nothing is allocated once both have grown; an mpsc channel of `Conn`
/// cost 7 KB more binary on x86_64 for the same.
struct Inbox {
    queue: Mutex<Vec<Conn>>,
    /// Something is queued: the reactor locks only then.
    pending: AtomicBool,
    waker: Arc<Waker>,
    /// Connections on that thread that were handed to it (lanes only).
    load: AtomicUsize,
    /// The thread has stopped: nothing more is taken in.
    closed: AtomicBool,
}

impl Inbox {
    fn send(&self, c: Conn) -> Option<Conn> {
        {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if self.closed.load(Ordering::Acquire) {
                return Some(c);
            }
            q.push(c);
        }
        self.pending.store(true, Ordering::Release);
        // mio's eventfd waker fails only if the descriptor itself is bad;
        // the connection then waits in the queue for the thread's next wake.
        let _ = self.waker.wake();
        None
    }
}

/// Every reactor's inbox, by reactor index: the accepting ones first, then
/// the lanes. Empty (and no connection ever moves) with `--bulk-threads 0`.
#[derive(Default)]
pub(crate) struct Lanes {
    inboxes: Vec<Inbox>,
    /// How many of them are accepting reactors.
    fronts: usize,
    /// Round-robin over the accepting reactors for relays handed back.
    next_front: AtomicUsize,
}

impl Lanes {
    /// Inboxes for `fronts` accepting reactors and as many lanes as there
    /// are more `wakers` (one per reactor, in reactor order).
    pub fn new(fronts: usize, wakers: &[Arc<Waker>]) -> Lanes {
        let inbox = |w: &Arc<Waker>| Inbox {
            queue: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            waker: w.clone(),
            load: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        };
        Lanes { inboxes: wakers.iter().map(inbox).collect(), fronts, next_front: AtomicUsize::new(0) }
    }

    pub fn is_empty(&self) -> bool {
        self.inboxes.len() <= self.fronts
    }

    fn lanes(&self) -> &[Inbox] {
        self.inboxes.get(self.fronts..).unwrap_or(&[])
    }

    /// Hands `c` to the least loaded lane; gives it back if there is no
    /// lane or that lane has stopped (the server is shutting down).
    pub fn to_lane(&self, c: Conn) -> Option<Conn> {
        let Some(lane) = self.lanes().iter().min_by_key(|l| l.load.load(Ordering::Relaxed)) else {
            return Some(c);
        };
        lane.load.fetch_add(1, Ordering::Relaxed);
        let back = lane.send(c);
        if back.is_some() {
            lane.load.fetch_sub(1, Ordering::Relaxed);
        }
        back
    }

    /// Hands `c` back to an accepting reactor, in turn.
    pub fn to_front(&self, c: Conn) -> Option<Conn> {
        if self.fronts == 0 {
            return Some(c);
        }
        self.inboxes[self.next_front.fetch_add(1, Ordering::Relaxed) % self.fronts].send(c)
    }

    /// Some lane carries a relay: bulk work is under way, and the CPUs are
    /// not to be spun on (spin.rs).
    pub fn busy(&self) -> bool {
        self.lanes().iter().any(|l| l.load.load(Ordering::Relaxed) > 0)
    }

    /// A connection closed on lane `i`, or left it.
    pub fn left(&self, i: usize) {
        if let Some(l) = self.lanes().get(i) {
            l.load.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Swaps reactor `me`'s queue with `into` (empty), if anything waits.
    pub fn take(&self, me: usize, into: &mut Vec<Conn>) {
        let Some(b) = self.inboxes.get(me) else { return };
        // A plain load first: no read-modify-write on every round.
        if b.pending.load(Ordering::Relaxed) && b.pending.swap(false, Ordering::Acquire) {
            std::mem::swap(&mut *b.queue.lock().unwrap_or_else(|e| e.into_inner()), into);
        }
    }

    /// Reactor `me` is stopping: later hand-overs come back to the sender,
    /// and whatever is queued now is returned to be closed.
    pub fn close(&self, me: usize, into: &mut Vec<Conn>) {
        let Some(b) = self.inboxes.get(me) else { return };
        let mut q = b.queue.lock().unwrap_or_else(|e| e.into_inner());
        b.closed.store(true, Ordering::Release);
        into.append(&mut q);
    }
}
