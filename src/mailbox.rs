//! Answers from helper threads (the resolver, the GSS-API threads) to one
//! reactor: a locked queue with a flag, so a reactor's turn with nothing
//! in it costs one load and no lock. It replaces `std::sync::mpsc`, whose
//! three channel flavours, monomorphised per message type, cost a 32-bit
//! router build 6 KB for what a queue and a mutex do here. The sender
//! wakes the reactor itself (its mio `Waker`), as before.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

struct Shared<T> {
    queue: Mutex<VecDeque<T>>,
    /// Something is queued: set and cleared under the lock.
    pending: AtomicBool,
    /// The receiving reactor has stopped: sends fail.
    closed: AtomicBool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, VecDeque<T>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The helper threads' end.
pub struct Sender<T>(Arc<Shared<T>>);

/// The reactor's end; dropping it refuses further messages and drops
/// those still queued.
pub struct Receiver<T>(Arc<Shared<T>>);

pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let s = Arc::new(Shared {
        queue: Mutex::new(VecDeque::new()),
        pending: AtomicBool::new(false),
        closed: AtomicBool::new(false),
    });
    (Sender(s.clone()), Receiver(s))
}

impl<T> Sender<T> {
    /// Queues `v`, or gives it back when the reactor has stopped.
    pub fn send(&self, v: T) -> Result<(), T> {
        let mut q = self.0.lock();
        if self.0.closed.load(Ordering::Relaxed) {
            return Err(v);
        }
        q.push_back(v);
        self.0.pending.store(true, Ordering::Release);
        Ok(())
    }
}

impl<T> Receiver<T> {
    /// The oldest message, if any. The sender wakes the reactor after
    /// queueing, so a message queued while the flag was read as clear is
    /// taken on the turn that wake-up starts.
    pub fn try_recv(&self) -> Option<T> {
        if !self.0.pending.load(Ordering::Acquire) {
            return None;
        }
        let mut q = self.0.lock();
        let v = q.pop_front();
        if q.is_empty() {
            self.0.pending.store(false, Ordering::Relaxed);
        }
        v
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut q = self.0.lock();
        self.0.closed.store(true, Ordering::Relaxed);
        q.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_then_refused_once_the_receiver_is_gone() {
        let (tx, rx) = channel();
        assert_eq!(rx.try_recv(), None);
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        assert_eq!((rx.try_recv(), rx.try_recv(), rx.try_recv()), (Some(1), Some(2), None));
        tx.send(3).unwrap();
        drop(rx);
        assert_eq!(tx.send(4), Err(4));
    }

    #[test]
    fn across_threads() {
        let (tx, rx) = channel();
        let t = std::thread::spawn(move || (0..1000).for_each(|i| tx.send(i).unwrap()));
        t.join().unwrap();
        let got: Vec<i32> = std::iter::from_fn(|| rx.try_recv()).collect();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    }
}
