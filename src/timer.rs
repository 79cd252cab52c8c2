//! Per-thread deadlines: a min-heap of (when, slab key, connection id).
//!
//! Entries are never removed early. A connection remembers the one entry it
//! relies on (`timer_at`); stale entries (superseded, or for a slab key that
//! now holds another connection) are recognised by the id and skipped when
//! they surface. The poll timeout is the earliest entry.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// `d` in whole milliseconds, rounded down (or up, with `ceil`), in 64
/// bits: `Duration::as_millis` is a u128, whose division costs a 32-bit
/// router 2 KB of compiler-builtins code.
pub(crate) fn millis(d: Duration, ceil: bool) -> u64 {
    let sub = u64::from(d.subsec_nanos());
    let sub = if ceil { sub.div_ceil(1_000_000) } else { sub / 1_000_000 };
    d.as_secs().saturating_mul(1000).saturating_add(sub)
}

#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, usize, u64)>>,
}

impl Timers {
    pub fn with_capacity(n: usize) -> Timers {
        Timers { heap: BinaryHeap::with_capacity(n) }
    }

    pub fn push(&mut self, at: Instant, key: usize, id: u64) {
        self.heap.push(Reverse((at, key, id)));
    }

    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next entry due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, usize, u64)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn earliest_first() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.push(t0 + Duration::from_secs(3), 1, 10);
        t.push(t0 + Duration::from_secs(1), 2, 20);
        t.push(t0 + Duration::from_secs(2), 3, 30);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.pop_due(t0), None);
        let now = t0 + Duration::from_secs(2);
        assert_eq!(t.pop_due(now).map(|e| e.1), Some(2));
        assert_eq!(t.pop_due(now).map(|e| e.1), Some(3));
        assert_eq!(t.pop_due(now), None);
        assert_eq!(t.len(), 1);
    }
}
