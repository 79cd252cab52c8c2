//! Name resolution off the reactors.
//!
//! `getaddrinfo` blocks, so helper threads run it. Jobs come from any
//! reactor; each answer goes back to the reactor that asked, through its
//! channel, followed by a wake-up of its `mio::Poll`.
//!
//! A CONNECT to a name races its address families (RFC 8305, Happy
//! Eyeballs): its job is two lookups, IPv6 and IPv4, run on two threads
//! at once and answered each as it finishes, so that a slow AAAA answer
//! does not hold up a prompt A answer. BIND and UDP ask one lookup of
//! both families.
//!
//! A name whose DNS never answers holds a thread for the system
//! resolver's whole timeout (5 s times the attempts, per nameserver, with
//! glibc and musl). So that clients flooding such names cannot delay
//! anybody else's:
//! - lookups wait in one queue per client (a client is an IPv4 address,
//!   or an IPv6 host or /64: [`crate::clients`]), and a free thread takes
//!   the next lookup of the client with the fewest lookups running, in
//!   turn among equals: a newcomer, with none, goes first;
//! - a client's first running lookup may take any free thread; more than
//!   one only come from [`EXTRA`] threads of the pool, each client taking
//!   at most a quarter of those still free. However the clients arrive (a
//!   few early ones on an idle pool take the most), the extras hold at
//!   most [`EXTRA`] threads, so it takes [`MAX_WORKERS`] − [`EXTRA`] (96)
//!   clients, each holding an unanswerable lookup, to make a newcomer wait
//!   for a thread: until then its first lookup starts at once;
//! - threads are started on demand, up to [`MAX_WORKERS`], and idle ones
//!   above [`MIN_WORKERS`] leave after [`IDLE_EXIT`];
//! - a lookup whose connection is gone is taken out of the queue
//!   ([`Resolver::cancel`]) before it starts, and an answer for a gone
//!   connection is dropped;
//! - a client has at most [`INFLIGHT_PER_CLIENT`] lookups queued or
//!   running, and the queue at most [`MAX_QUEUE`];
//! - a name that just failed fails at once for [`NEGATIVE_TTL`].

use crate::fair::Fair;
use crate::mailbox::Sender;
use crate::reply::Reply;
pub(crate) use crate::sys::Family;
use mio::Waker;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Addresses kept per lookup; more would only lengthen a failing connect.
pub const MAX_ADDRS: usize = 8;
/// Lookups waiting at once; past this a request fails at once (0x01)
/// rather than queueing without bound.
pub const MAX_QUEUE: usize = 4096;
/// Lookups one client may have queued or running; past this its requests
/// fail at once (0x01).
pub const INFLIGHT_PER_CLIENT: usize = 64;
/// Threads kept while idle, and the most there may be. The maximum is also
/// what the descriptor reserve allows for (a lookup holds a socket).
pub const MIN_WORKERS: usize = 2;
pub const MAX_WORKERS: usize = 128;
/// Threads for clients' second and further lookups at once; the others
/// serve one lookup per client. A client takes at most a quarter of the
/// extras still free.
pub const EXTRA: usize = 32;
const SHARE: usize = 4;
/// An idle thread above the minimum leaves after this long.
pub const IDLE_EXIT: Duration = Duration::from_secs(30);
/// How long a failed name keeps failing without a new lookup.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);
const NEGATIVE_SLOTS: usize = 256;
/// Resolver threads' stacks: getaddrinfo needs a few tens of KiB.
const STACK: usize = 256 * 1024;

/// A connection's request for a name's addresses.
pub struct Job {
    pub name: Box<str>,
    pub port: u16,
    pub reactor: usize,
    pub key: usize,
    pub id: u64,
    /// The asking client's key (see [`crate::clients`]).
    pub client: IpAddr,
    /// Two lookups, IPv6 and IPv4, answered each on its own (a CONNECT's
    /// Happy Eyeballs); else one of both families, one answer.
    pub race: bool,
}

/// One lookup's answer: the addresses of `family` (`Any`: both,
/// interleaved), at most [`MAX_ADDRS`].
pub struct Answer {
    pub key: usize,
    pub id: u64,
    pub family: Family,
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

/// One lookup of a job.
struct Task {
    name: Arc<str>,
    port: u16,
    reactor: usize,
    key: usize,
    id: u64,
    family: Family,
}

struct Queue {
    jobs: Fair<Task>,
    /// Names that failed lately: (hash of name and family, until),
    /// direct-mapped.
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
    fn name_hash(&self, name: &str, family: Family) -> u64 {
        let mut h = self.hasher.build_hasher();
        for b in name.bytes() {
            b.to_ascii_lowercase().hash(&mut h);
        }
        (family as u8).hash(&mut h);
        h.finish()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Queue {
    fn failed_lately(&self, hash: u64, now: Instant) -> bool {
        matches!(self.negative[hash as usize % NEGATIVE_SLOTS], Some((h, until)) if h == hash && now < until)
    }

    /// The next lookup to run, within the pool and the client's share:
    /// one, and a quarter of the free extras more.
    fn pick(&mut self) -> Option<(IpAddr, Task)> {
        if self.jobs.running() >= MAX_WORKERS {
            return None;
        }
        self.jobs.pick(1 + EXTRA.saturating_sub(self.jobs.extras()) / SHARE)
    }
}

impl Resolver {
    /// Starts [`MIN_WORKERS`] threads; more start on demand.
    pub fn start(outlets: Vec<Outlet>) -> std::io::Result<Resolver> {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue {
                jobs: Fair::default(),
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
        let families: &[Family] = if job.race { &[Family::V6, Family::V4] } else { &[Family::Any] };
        let hashes: Vec<u64> = families.iter().map(|&f| self.inner.name_hash(&job.name, f)).collect();
        let mut q = self.inner.lock();
        if q.stop || q.jobs.queued() + families.len() > MAX_QUEUE {
            return Err(Refused(Reply::GeneralFailure));
        }
        if hashes.iter().all(|&h| q.failed_lately(h, now)) {
            return Err(Refused(Reply::HostUnreachable));
        }
        if q.jobs.held(job.client) + families.len() > INFLIGHT_PER_CLIENT {
            return Err(Refused(Reply::GeneralFailure));
        }
        let name: Arc<str> = job.name.into();
        for &family in families {
            let (port, reactor, key, id) = (job.port, job.reactor, job.key, job.id);
            q.jobs.push(job.client, Task { name: name.clone(), port, reactor, key, id, family });
        }
        // A thread for each lookup that may run now.
        for _ in 0..families.len() {
            if q.idle > q.signalled {
                q.signalled += 1;
                self.inner.ready.notify_one();
            } else if q.workers < MAX_WORKERS {
                q.workers += 1;
                if spawn_worker(&self.inner).is_err() {
                    q.workers -= 1;
                }
            }
        }
        Ok(())
    }

    /// Takes a job's lookups out of the queue if they have not started:
    /// its connection is gone. One already running finishes, and its
    /// answer is dropped.
    pub fn cancel(&self, client: IpAddr, reactor: usize, key: usize, id: u64) {
        self.inner.lock().jobs.cancel(client, |t| t.reactor == reactor && t.key == key && t.id == id);
    }

    /// Lookups waiting for a thread (not counting running ones).
    pub fn queued(&self) -> usize {
        self.inner.lock().jobs.queued()
    }

    pub fn stop(&self) {
        self.inner.lock().stop = true;
        self.inner.ready.notify_all();
    }
}

/// Threads are detached: one stuck in `getaddrinfo` cannot be interrupted,
/// and shutting down does not wait for it.
fn spawn_worker(inner: &Arc<Inner>) -> std::io::Result<()> {
    let inner = inner.clone();
    crate::sys::spawn_named("socksd-dns", Some(STACK), move || worker(&inner))?;
    Ok(())
}

fn worker(inner: &Inner) {
    let mut q = inner.lock();
    loop {
        if q.stop {
            return;
        }
        let Some((client, task)) = q.pick() else {
            q.idle += 1;
            let (guard, timeout) = inner.ready.wait_timeout(q, IDLE_EXIT).unwrap_or_else(|e| e.into_inner());
            q = guard;
            q.idle -= 1;
            q.signalled = q.signalled.saturating_sub(1);
            if timeout.timed_out() && q.workers > MIN_WORKERS && q.jobs.queued() == 0 {
                q.workers -= 1;
                return;
            }
            continue;
        };
        let hash = inner.name_hash(&task.name, task.family);
        let result = if q.failed_lately(hash, Instant::now()) {
            Err(Reply::HostUnreachable)
        } else {
            drop(q);
            let r = resolve(&task.name, task.port, task.family);
            q = inner.lock();
            if r.is_err() {
                q.negative[hash as usize % NEGATIVE_SLOTS] = Some((hash, Instant::now() + NEGATIVE_TTL));
            }
            r
        };
        q.jobs.done(client);
        drop(q);
        if let Some(outlet) = inner.outlets.get(task.reactor) {
            let outlet = outlet.lock().unwrap_or_else(|e| e.into_inner());
            let answer = Answer { key: task.key, id: task.id, family: task.family, result };
            // A reactor that has stopped drops its receiver; nothing to do then.
            if outlet.tx.send(answer).is_ok() {
                let _ = outlet.waker.wake();
            }
        }
        q = inner.lock();
    }
}

/// Resolves with the system resolver. Both families come back
/// interleaved, starting with the first the resolver returned (RFC 8305
/// §4); one family in the resolver's order.
pub fn resolve(name: &str, port: u16, family: Family) -> Result<Vec<SocketAddr>, Reply> {
    let max = if family == Family::Any { 4 * MAX_ADDRS } else { MAX_ADDRS };
    let ips = crate::sys::lookup(name, family, max).ok_or(Reply::HostUnreachable)?;
    let all: Vec<SocketAddr> = ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect();
    Ok(if family == Family::Any { interleave(all) } else { all })
}

/// Alternates families, keeping each family's own order; at most
/// [`MAX_ADDRS`] addresses.
pub fn interleave(all: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = all.first() else { return all };
    let first_v6 = first.is_ipv6();
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
        assert_eq!(interleave(Vec::new()), Vec::new());
    }

    #[test]
    fn literal_and_failure() {
        assert_eq!(resolve("127.0.0.1", 80, Family::Any), Ok(vec!["127.0.0.1:80".parse().unwrap()]));
        assert_eq!(resolve("127.0.0.1", 80, Family::V4), Ok(vec!["127.0.0.1:80".parse().unwrap()]));
        assert_eq!(
            resolve("127.0.0.1", 80, Family::V6),
            Err(Reply::HostUnreachable),
            "no IPv6 address in a v4 literal"
        );
        assert_eq!(resolve("bad\u{0}name", 80, Family::Any), Err(Reply::HostUnreachable));
    }

    fn task(id: u64) -> Task {
        Task { name: "n".into(), port: 1, reactor: 0, key: 0, id, family: Family::Any }
    }

    fn queue() -> Queue {
        Queue {
            jobs: Fair::default(),
            negative: vec![None; NEGATIVE_SLOTS].into_boxed_slice(),
            workers: 0,
            idle: 0,
            signalled: 0,
            stop: false,
        }
    }

    fn push(q: &mut Queue, client: &str, id: u64) {
        q.jobs.push(client.parse().unwrap(), task(id));
    }

    /// Clients flooding lookups that never end, arriving one after the
    /// other (the early ones find the pool idle): the extras hold at most
    /// EXTRA threads, and a newcomer's lookup is the next to run while
    /// fewer than MAX_WORKERS - EXTRA clients hold one.
    #[test]
    fn a_newcomer_runs_next_however_the_flood_arrives() {
        for flooders in [1, 8, 64, MAX_WORKERS - EXTRA - 1] {
            let mut q = queue();
            for i in 0..flooders {
                for n in 0..INFLIGHT_PER_CLIENT as u64 {
                    push(&mut q, &format!("10.0.{}.{}", i / 256, i % 256), n);
                }
                // The pool takes what the shares let it; nothing ends.
                while q.pick().is_some() {}
            }
            assert!(q.jobs.extras() <= EXTRA, "{flooders} flooders: {} extras", q.jobs.extras());
            assert!(q.jobs.running() < MAX_WORKERS, "{flooders} flooders fill the pool ({})", q.jobs.running());
            push(&mut q, "192.0.2.1", 0);
            let (ip, _) = q.pick().expect("the newcomer runs");
            assert_eq!(ip, "192.0.2.1".parse::<IpAddr>().unwrap(), "{flooders} flooders");
        }
    }
}
