//! Name resolution off the reactors.
//!
//! `getaddrinfo` blocks, so a small pool of helper threads runs it. Jobs
//! come from any reactor through one bounded queue; each answer goes back to
//! the reactor that asked, through its channel, followed by a wake-up of its
//! `mio::Poll`.

use crate::reply::Reply;
use mio::Waker;
use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Addresses kept per name; more would only lengthen a failing connect.
pub const MAX_ADDRS: usize = 8;
/// Jobs waiting at once; past this a request fails at once (0x01) rather
/// than queueing without bound.
pub const MAX_QUEUE: usize = 4096;

pub struct Job {
    pub name: Box<str>,
    pub port: u16,
    pub reactor: usize,
    pub key: usize,
    pub id: u64,
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

struct Queue {
    jobs: VecDeque<Job>,
    stop: bool,
}

struct Inner {
    queue: Mutex<Queue>,
    ready: Condvar,
    outlets: Vec<Mutex<Outlet>>,
}

#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

impl Resolver {
    pub fn start(threads: usize, outlets: Vec<Outlet>) -> std::io::Result<(Resolver, Vec<JoinHandle<()>>)> {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue { jobs: VecDeque::new(), stop: false }),
            ready: Condvar::new(),
            outlets: outlets.into_iter().map(Mutex::new).collect(),
        });
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let inner = inner.clone();
            let h = std::thread::Builder::new()
                .name(format!("socksd-dns-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || worker(&inner))?;
            handles.push(h);
        }
        Ok((Resolver { inner }, handles))
    }

    /// Queues a job; gives it back when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        let mut q = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.jobs.len() >= MAX_QUEUE || q.stop {
            return Err(job);
        }
        q.jobs.push_back(job);
        drop(q);
        self.inner.ready.notify_one();
        Ok(())
    }

    pub fn stop(&self) {
        self.inner.queue.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        self.inner.ready.notify_all();
    }
}

fn worker(inner: &Inner) {
    loop {
        let job = {
            let mut q = inner.queue.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if q.stop {
                    return;
                }
                if let Some(j) = q.jobs.pop_front() {
                    break j;
                }
                q = inner.ready.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let result = resolve(&job.name, job.port);
        let Some(outlet) = inner.outlets.get(job.reactor) else {
            continue;
        };
        let outlet = outlet.lock().unwrap_or_else(|e| e.into_inner());
        // A reactor that has stopped drops its receiver; nothing to do then.
        if outlet.tx.send(Answer { key: job.key, id: job.id, result }).is_ok() {
            let _ = outlet.waker.wake();
        }
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
