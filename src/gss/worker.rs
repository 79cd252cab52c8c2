//! The helper threads that run `gss_accept_sec_context`, which reads the
//! keytab and writes the replay cache and so may wait on a disk: a
//! reactor never calls it (the resolver pool does the same for DNS).
//!
//! So that one client cannot fill them (a context step is cheap, but a
//! flood of them from one address is not):
//! - one thread per CPU ([`threads`], at most [`MAX_THREADS`]), each with
//!   credentials of its own, so no handle is shared between threads;
//! - steps wait in a queue per client ([`crate::fair`]) and a free thread
//!   takes the next of the client with none running, in turn: a newcomer
//!   goes first, and a client runs one step at a time;
//! - a client has at most [`PER_CLIENT`] steps queued or running, the
//!   queue at most [`MAX_QUEUE`]; past either a client is refused at once;
//! - a step whose connection is gone is taken out of the queue
//!   ([`Worker::cancel`]) before it runs.

use super::{Accepted, Context, Cred};
use crate::fair::Fair;
use crate::mailbox::Sender;
use mio::Waker;
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex};

/// Steps waiting for a thread; beyond this a client is refused.
pub const MAX_QUEUE: usize = 256;
/// Steps one client may have queued or running.
pub const PER_CLIENT: usize = 4;
/// The most threads, however many CPUs.
pub const MAX_THREADS: usize = 4;

/// How many threads for this machine: one per CPU, at most [`MAX_THREADS`].
pub fn threads() -> usize {
    crate::sys::cpus().clamp(1, MAX_THREADS)
}

/// One context-establishment step to run.
pub struct Job {
    pub reactor: usize,
    pub key: usize,
    pub id: u64,
    pub ctx: Box<Context>,
    /// The client's token (at most 65,535 bytes, RFC 1961 §3).
    pub token: Box<[u8]>,
}

/// Its outcome, back to the connection's reactor with the context.
pub struct Done {
    pub key: usize,
    pub id: u64,
    pub ctx: Box<Context>,
    pub result: Result<Accepted, String>,
}

/// Where one reactor receives its outcomes.
pub struct Outlet {
    pub tx: Sender<Done>,
    pub waker: Arc<Waker>,
}

#[derive(Default)]
struct Queue {
    jobs: Fair<Job>,
    stop: bool,
}

struct Inner {
    q: Mutex<Queue>,
    cv: Condvar,
    outlets: Vec<Outlet>,
}

/// Why a step was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The client has its share queued or running.
    Client,
    /// The queue is full.
    Full,
}

/// The handle reactors submit through.
pub struct Worker {
    inner: Arc<Inner>,
}

impl Worker {
    /// Starts a thread per credential, each owning its own from now on.
    pub fn start(creds: Vec<Cred>, outlets: Vec<Outlet>) -> std::io::Result<Worker> {
        let inner = Arc::new(Inner { q: Mutex::new(Queue::default()), cv: Condvar::new(), outlets });
        for cred in creds {
            let i = inner.clone();
            crate::sys::spawn_named("socksd-gss", None, move || run(&i, &cred))?;
        }
        Ok(Worker { inner })
    }

    /// Queues a step of `client`'s, or says why not (the job is dropped).
    pub fn submit(&self, client: IpAddr, job: Job) -> Result<(), Refused> {
        let mut q = self.inner.q.lock().unwrap_or_else(|e| e.into_inner());
        if q.stop || q.jobs.queued() >= MAX_QUEUE {
            return Err(Refused::Full);
        }
        if q.jobs.held(client) >= PER_CLIENT {
            return Err(Refused::Client);
        }
        q.jobs.push(client, job);
        drop(q);
        self.inner.cv.notify_one();
        Ok(())
    }

    /// Takes a connection's step out of the queue if it has not started:
    /// the connection is gone. One already running finishes, and its
    /// outcome is dropped.
    pub fn cancel(&self, client: IpAddr, reactor: usize, key: usize, id: u64) {
        let mut q = self.inner.q.lock().unwrap_or_else(|e| e.into_inner());
        q.jobs.cancel(client, |j| j.reactor == reactor && j.key == key && j.id == id);
    }

    /// Ends the threads after the steps they are running.
    pub fn stop(&self) {
        self.inner.q.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        self.inner.cv.notify_all();
    }
}

fn run(inner: &Inner, cred: &Cred) {
    loop {
        let (client, job) = {
            let mut q = inner.q.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if q.stop {
                    return;
                }
                // One step per client at a time.
                if let Some(next) = q.jobs.pick(1) {
                    break next;
                }
                q = inner.cv.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let Job { reactor, key, id, mut ctx, token } = job;
        let result = ctx.accept(cred, &token);
        let more = {
            let mut q = inner.q.lock().unwrap_or_else(|e| e.into_inner());
            q.jobs.done(client);
            q.jobs.queued() > 0
        };
        // This client's next step may be runnable now, for another thread.
        if more {
            inner.cv.notify_one();
        }
        if let Some(o) = inner.outlets.get(reactor) {
            // A stopped reactor has dropped its receiver: nothing to do.
            if o.tx.send(Done { key, id, ctx, result }).is_ok() {
                let _ = o.waker.wake();
            }
        }
    }
}
