//! A queue per client, served fairly: for the helper threads that do
//! blocking work on clients' behalf (name lookups, GSS-API context steps).
//! A thread that is free takes the next job of the client with the fewest
//! jobs running (a newcomer, with none, first), in turn among equals, and
//! only from clients below the share its caller allows. A client is what
//! [`crate::clients::client_key`] says. Pure: no threads, no time.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

struct Lane<T> {
    queue: VecDeque<T>,
    running: usize,
}

/// Jobs of type `T`, queued per client.
pub(crate) struct Fair<T> {
    lanes: HashMap<IpAddr, Lane<T>>,
    /// Clients with queued jobs, in turn order.
    turn: VecDeque<IpAddr>,
    queued: usize,
    running: usize,
    /// Clients with a job running (`running` less this: the jobs beyond
    /// each client's first).
    holders: usize,
}

impl<T> Default for Fair<T> {
    fn default() -> Fair<T> {
        Fair { lanes: HashMap::with_capacity(64), turn: VecDeque::with_capacity(64), queued: 0, running: 0, holders: 0 }
    }
}

impl<T> Fair<T> {
    pub fn queued(&self) -> usize {
        self.queued
    }

    pub fn running(&self) -> usize {
        self.running
    }

    /// Jobs running beyond each client's first.
    pub fn extras(&self) -> usize {
        self.running - self.holders
    }

    /// Jobs of `client` queued or running.
    pub fn held(&self, client: IpAddr) -> usize {
        self.lanes.get(&client).map_or(0, |l| l.queue.len() + l.running)
    }

    pub fn push(&mut self, client: IpAddr, job: T) {
        let lane = self.lanes.entry(client).or_insert_with(|| Lane { queue: VecDeque::new(), running: 0 });
        if lane.queue.is_empty() {
            self.turn.push_back(client);
        }
        lane.queue.push_back(job);
        self.queued += 1;
    }

    /// The next job to run: of the client with the fewest running, below
    /// `share`, the first in turn among equals. It counts as running until
    /// [`Fair::done`].
    pub fn pick(&mut self, share: usize) -> Option<(IpAddr, T)> {
        let mut best: Option<(usize, usize)> = None;
        for (i, ip) in self.turn.iter().enumerate() {
            let running = self.lanes.get(ip).map_or(usize::MAX, |l| l.running);
            if running < share && best.is_none_or(|(_, r)| running < r) {
                best = Some((i, running));
                if running == 0 {
                    break;
                }
            }
        }
        let ip = self.turn.remove(best?.0)?;
        let lane = self.lanes.get_mut(&ip)?;
        let job = lane.queue.pop_front()?;
        lane.running += 1;
        if lane.running == 1 {
            self.holders += 1;
        }
        if !lane.queue.is_empty() {
            self.turn.push_back(ip);
        }
        self.queued -= 1;
        self.running += 1;
        Some((ip, job))
    }

    /// A job of `client` has ended.
    pub fn done(&mut self, client: IpAddr) {
        let Some(lane) = self.lanes.get_mut(&client) else { return };
        self.running -= 1;
        lane.running -= 1;
        if lane.running == 0 {
            self.holders -= 1;
            if lane.queue.is_empty() {
                self.lanes.remove(&client);
            }
        }
    }

    /// Takes `client`'s queued jobs that `gone` picks out of the queue
    /// (their connection is gone); how many.
    pub fn cancel(&mut self, client: IpAddr, gone: impl Fn(&T) -> bool) -> usize {
        let Some(lane) = self.lanes.get_mut(&client) else { return 0 };
        let before = lane.queue.len();
        lane.queue.retain(|j| !gone(j));
        let removed = before - lane.queue.len();
        let (empty, idle) = (lane.queue.is_empty(), lane.running == 0);
        self.queued -= removed;
        if removed > 0 && empty {
            self.turn.retain(|ip| *ip != client);
            if idle {
                self.lanes.remove(&client);
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Among clients that wait, the one with the fewest running goes
    /// first, then each in turn; a client at its share waits.
    #[test]
    fn fewest_running_first_then_in_turn() {
        let mut f = Fair::default();
        f.push(ip("10.0.0.1"), 1);
        f.push(ip("10.0.0.1"), 2);
        f.push(ip("10.0.0.2"), 3);
        let order: Vec<u32> = std::iter::from_fn(|| f.pick(2).map(|(_, j)| j)).collect();
        assert_eq!(order, [1, 3, 2]);
        assert_eq!((f.running(), f.extras()), (3, 1));
        f.push(ip("10.0.0.1"), 4);
        assert!(f.pick(2).is_none(), "10.0.0.1 is at its share");
        f.done(ip("10.0.0.1"));
        assert_eq!(f.pick(2).map(|(_, j)| j), Some(4));
    }

    #[test]
    fn cancel_takes_queued_jobs_only() {
        let mut f = Fair::default();
        f.push(ip("10.0.0.1"), 1);
        f.push(ip("10.0.0.1"), 2);
        assert_eq!(f.pick(1).map(|(_, j)| j), Some(1));
        assert_eq!(f.cancel(ip("10.0.0.1"), |&j| j == 1 || j == 2), 1, "a running job is not queued");
        assert_eq!((f.queued(), f.held(ip("10.0.0.1"))), (0, 1));
        f.done(ip("10.0.0.1"));
        assert_eq!(f.held(ip("10.0.0.1")), 0);
        assert!(f.pick(1).is_none());
    }
}
