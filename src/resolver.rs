//! Name resolution off the reactors.
//!
//! `getaddrinfo` blocks, so helper threads run it. Jobs come from any
//! reactor through one bounded queue; each answer goes back to the reactor
//! that asked, through its channel, followed by a wake-up of its
//! `mio::Poll`.
//!
//! A name whose DNS never answers holds a thread for the resolver's whole
//! timeout (5 s times the attempts, per nameserver, with glibc). So that one
//! client's unanswerable names cannot delay anybody else's:
//! - a client (see [`crate::clients::client_key`]) has at most
//!   [`INFLIGHT_PER_CLIENT`] lookups queued or running, and at most
//!   [`RUNNING_PER_CLIENT`] running; its other jobs wait without holding a
//!   thread, and others' jobs are taken past them;
//! - threads are started on demand, up to [`MAX_WORKERS`], whenever a job
//!   that may run finds no idle thread, and idle ones above
//!   [`MIN_WORKERS`] leave after [`IDLE_EXIT`];
//! - a job whose connection is gone is taken out of the queue
//!   ([`Resolver::cancel`]), and an answer for a gone connection is dropped;
//! - a name that just failed fails at once for [`NEGATIVE_TTL`].

use crate::reply::Reply;
use mio::Waker;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Addresses kept per name; more would only lengthen a failing connect.
pub const MAX_ADDRS: usize = 8;
/// Jobs waiting at once; past this a request fails at once (0x01) rather
/// than queueing without bound.
pub const MAX_QUEUE: usize = 4096;
/// Lookups one client may have queued or running; past this its requests
/// fail at once (0x01).
pub const INFLIGHT_PER_CLIENT: u32 = 64;
/// Lookups of one client that may hold a thread at once.
pub const RUNNING_PER_CLIENT: u32 = 4;
/// Threads kept while idle, and the most there may be. The maximum is also
/// what the descriptor reserve allows for (a lookup holds a socket).
pub const MIN_WORKERS: usize = 2;
pub const MAX_WORKERS: usize = 32;
/// An idle thread above the minimum leaves after this long.
pub const IDLE_EXIT: Duration = Duration::from_secs(30);
/// How long a failed name keeps failing without a new lookup.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);
const NEGATIVE_SLOTS: usize = 256;

pub struct Job {
    pub name: Box<str>,
    pub port: u16,
    pub reactor: usize,
    pub key: usize,
    pub id: u64,
    /// The asking client's key (its IPv4 address or IPv6 /64).
    pub client: IpAddr,
}

pub struct Answer {
    pub key: usize,
    pub id: u64,
    pub result: Result<Vec<SocketAddr>, Reply>,
}

/// Where one reactor receives its answers.
pub struct Outlet {
    pub tx: Sender<Answer>,
    pub waker: Arc<Waker>,
}

/// Why a job was not queued: the reply to give at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub Reply);

#[derive(Default, Clone, Copy)]
struct PerClient {
    /// Queued or running.
    inflight: u32,
    running: u32,
}

struct Queue {
    jobs: VecDeque<Job>,
    clients: HashMap<IpAddr, PerClient>,
    /// Names that failed lately: (hash, until), direct-mapped.
    negative: Box<[Option<(u64, Instant)>]>,
    workers: usize,
    /// Threads waiting for work, and how many of them were already sent a
    /// wake-up (so a burst starts threads instead of counting one twice).
    idle: usize,
    signalled: usize,
    stop: bool,
}

struct Inner {
    queue: Mutex<Queue>,
    ready: Condvar,
    outlets: Vec<Mutex<Outlet>>,
    hasher: std::collections::hash_map::RandomState,
}

#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

impl Inner {
    fn name_hash(&self, name: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        for b in name.bytes() {
            b.to_ascii_lowercase().hash(&mut h);
        }
        h.finish()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Resolver {
    /// Starts [`MIN_WORKERS`] threads; more start on demand.
    pub fn start(outlets: Vec<Outlet>) -> std::io::Result<Resolver> {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue {
                jobs: VecDeque::with_capacity(64),
                clients: HashMap::with_capacity(64),
                negative: vec![None; NEGATIVE_SLOTS].into_boxed_slice(),
                workers: MIN_WORKERS,
                idle: 0,
                signalled: 0,
                stop: false,
            }),
            ready: Condvar::new(),
            outlets: outlets.into_iter().map(Mutex::new).collect(),
            hasher: Default::default(),
        });
        for _ in 0..MIN_WORKERS {
            spawn_worker(&inner)?;
        }
        Ok(Resolver { inner })
    }

    /// Queues a job, or says at once what to reply: 0x04 for a name that
    /// failed within [`NEGATIVE_TTL`], 0x01 when the queue or the client's
    /// share of it is full.
    pub fn submit(&self, job: Job, now: Instant) -> Result<(), Refused> {
        let hash = self.inner.name_hash(&job.name);
        let mut q = self.inner.lock();
        if q.stop || q.jobs.len() >= MAX_QUEUE {
            return Err(Refused(Reply::GeneralFailure));
        }
        if let Some((h, until)) = q.negative[hash as usize % NEGATIVE_SLOTS] {
            if h == hash && now < until {
                return Err(Refused(Reply::HostUnreachable));
            }
        }
        let c = q.clients.entry(job.client).or_default();
        if c.inflight >= INFLIGHT_PER_CLIENT {
            return Err(Refused(Reply::GeneralFailure));
        }
        c.inflight += 1;
        let runnable = c.running < RUNNING_PER_CLIENT;
        q.jobs.push_back(job);
        if !runnable {
            // It runs when one of its client's lookups finishes.
            return Ok(());
        }
        if q.idle > q.signalled {
            q.signalled += 1;
            drop(q);
            self.inner.ready.notify_one();
        } else if q.workers < MAX_WORKERS {
            q.workers += 1;
            drop(q);
            if spawn_worker(&self.inner).is_err() {
                self.inner.lock().workers -= 1;
            }
        }
        Ok(())
    }

    /// Takes a job out of the queue if it has not started: its connection
    /// is gone. A job already running finishes, and its answer is dropped.
    pub fn cancel(&self, reactor: usize, key: usize, id: u64) {
        let mut q = self.inner.lock();
        if let Some(i) = q.jobs.iter().position(|j| j.reactor == reactor && j.key == key && j.id == id) {
            let job = q.jobs.remove(i).expect("position is in range");
            release(&mut q, job.client, false);
        }
    }

    /// Jobs waiting for a thread (not counting running ones).
    pub fn queued(&self) -> usize {
        self.inner.lock().jobs.len()
    }

    pub fn stop(&self) {
        self.inner.lock().stop = true;
        self.inner.ready.notify_all();
    }
}

/// One lookup of `client` is over (`ran`: it had a thread).
fn release(q: &mut Queue, client: IpAddr, ran: bool) {
    if let Some(c) = q.clients.get_mut(&client) {
        c.inflight = c.inflight.saturating_sub(1);
        if ran {
            c.running = c.running.saturating_sub(1);
        }
        if c.inflight == 0 {
            q.clients.remove(&client);
        }
    }
}

/// Threads are detached: one stuck in `getaddrinfo` cannot be interrupted,
/// and shutting down does not wait for it.
fn spawn_worker(inner: &Arc<Inner>) -> std::io::Result<()> {
    let inner = inner.clone();
    std::thread::Builder::new().name("socksd-dns".into()).stack_size(256 * 1024).spawn(move || worker(&inner))?;
    Ok(())
}

/// The first queued job whose client may run one more.
fn next_runnable(q: &mut Queue) -> Option<Job> {
    let clients = &q.clients;
    let i = q.jobs.iter().position(|j| clients.get(&j.client).is_some_and(|c| c.running < RUNNING_PER_CLIENT))?;
    let job = q.jobs.remove(i)?;
    if let Some(c) = q.clients.get_mut(&job.client) {
        c.running += 1;
    }
    Some(job)
}

fn worker(inner: &Inner) {
    let mut q = inner.lock();
    loop {
        if q.stop {
            return;
        }
        let Some(job) = next_runnable(&mut q) else {
            q.idle += 1;
            let (guard, timeout) = inner.ready.wait_timeout(q, IDLE_EXIT).unwrap_or_else(|e| e.into_inner());
            q = guard;
            q.idle -= 1;
            q.signalled = q.signalled.saturating_sub(1);
            if timeout.timed_out() && q.workers > MIN_WORKERS && q.jobs.is_empty() {
                q.workers -= 1;
                return;
            }
            continue;
        };
        drop(q);
        let result = resolve(&job.name, job.port);
        let hash = inner.name_hash(&job.name);
        q = inner.lock();
        release(&mut q, job.client, true);
        if result.is_err() {
            q.negative[hash as usize % NEGATIVE_SLOTS] = Some((hash, Instant::now() + NEGATIVE_TTL));
        }
        drop(q);
        if let Some(outlet) = inner.outlets.get(job.reactor) {
            let outlet = outlet.lock().unwrap_or_else(|e| e.into_inner());
            // A reactor that has stopped drops its receiver; nothing to do then.
            if outlet.tx.send(Answer { key: job.key, id: job.id, result }).is_ok() {
                let _ = outlet.waker.wake();
            }
        }
        q = inner.lock();
    }
}

/// Resolves with the system resolver and orders the answer the way RFC 8305
/// §4 suggests: alternate address families, starting with the first one
/// the resolver returned.
pub fn resolve(name: &str, port: u16) -> Result<Vec<SocketAddr>, Reply> {
    let addrs = (name, port).to_socket_addrs().map_err(|_| Reply::HostUnreachable)?;
    let mut all: Vec<SocketAddr> = Vec::with_capacity(MAX_ADDRS);
    for a in addrs {
        if !all.contains(&a) {
            all.push(a);
        }
        if all.len() == 4 * MAX_ADDRS {
            break;
        }
    }
    if all.is_empty() {
        return Err(Reply::HostUnreachable);
    }
    Ok(interleave(all))
}

/// Alternates families, keeping each family's own order; at most
/// [`MAX_ADDRS`] addresses.
pub fn interleave(all: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let first_v6 = all[0].is_ipv6();
    let (mut a, mut b): (VecDeque<_>, VecDeque<_>) = all.into_iter().partition(|s| s.is_ipv6() == first_v6);
    let mut out = Vec::with_capacity(MAX_ADDRS);
    while out.len() < MAX_ADDRS {
        match a.pop_front() {
            Some(x) => out.push(x),
            None if b.is_empty() => break,
            None => {}
        }
        std::mem::swap(&mut a, &mut b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaves_families() {
        let v = |s: &str| s.parse::<SocketAddr>().unwrap();
        let got = interleave(vec![v("[::1]:1"), v("[::2]:1"), v("[::3]:1"), v("1.1.1.1:1"), v("2.2.2.2:1")]);
        let want = vec![v("[::1]:1"), v("1.1.1.1:1"), v("[::2]:1"), v("2.2.2.2:1"), v("[::3]:1")];
        assert_eq!(got, want);
        let many: Vec<_> = (1..=20).map(|i| v(&format!("10.0.0.{i}:1"))).collect();
        assert_eq!(interleave(many).len(), MAX_ADDRS);
    }

    #[test]
    fn literal_and_failure() {
        assert_eq!(resolve("127.0.0.1", 80), Ok(vec!["127.0.0.1:80".parse().unwrap()]));
        assert_eq!(resolve("bad\u{0}name", 80), Err(Reply::HostUnreachable));
    }
}
